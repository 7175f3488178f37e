"""Null models and perturbations of a connectome, as PyG transforms on its ``HeteroData``.

Each transform returns a new graph with the schema of
:class:`~flygnn.datasets.FlyVisConnectome` (the input is not modified; untouched tensors are
shared) and takes an explicit ``seed`` where it draws random numbers: the same seed gives the
same graph. Use them on a graph (``T(data)``), as a dataset's ``transform`` or
``pre_transform``, or chained with :class:`torch_geometric.transforms.Compose`.

=============================== ===================================================== ========
transform                       keeps                                                 random
=============================== ===================================================== ========
:class:`RewireDegreePreserving` per type pair: every neuron's in- and out-degree,      yes
                                each edge's count (with its source); no multi-edges
:class:`RewireLocal`            per type pair: the multiset of ``(du, dv, n_syn)``     yes
                                (each edge keeps its own); no multi-edges
:class:`Knockout`               everything but the removed edge types                 no
:class:`ScaleSynapses`          edges, signs; counts times ``factor`` (and noise)     noise
:class:`LatticeDensity`         the neurons on a coarser sublattice and their edges   no
=============================== ===================================================== ========

**Shapes:** node stores keep ``u, v`` ``(N_t,)`` and edge stores keep ``edge_index``
``(2, E_p)`` with ``n_syn, n_syn_certainty, sign, du, dv`` ``(E_p,)`` aligned; only
:class:`LatticeDensity` changes ``N_t`` and ``E_p``, and :class:`Knockout` removes stores.

Degree-preserving rewired edges get ``du, dv`` from their new endpoints; their counts then
vary along the lattice, which :func:`flygnn.flat.flatten` supports (one count group per
distinct count).
Note that a fresh :class:`~flygnn.network.Network` starts each pair's strength at
``0.01 / mean count``: a uniform count scaling leaves its initial weights unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

__all__ = ["TRANSFORMS", "Knockout", "LatticeDensity", "RewireDegreePreserving", "RewireLocal",
           "ScaleSynapses", "make_transforms"]


def _check(data) -> None:
    if not isinstance(data, HeteroData) or not hasattr(data, "cell_types"):
        raise ValueError("expected a connectome HeteroData (dataset[0]), got "
                         f"{type(data).__name__}")


def _edge_types(data) -> list[tuple[str, str, str]]:
    return [k for k in data.edge_types if "edge_index" in data[k]]


def _check_types(data, names, arg: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in data.cell_types]
    if unknown:
        raise ValueError(f"{arg}: unknown cell types {unknown}")
    return names


def _check_pairs(data, pairs) -> list[tuple[str, str]]:
    pairs = [tuple(p) for p in pairs]
    connected = {(s, t) for s, _, t in _edge_types(data)}
    bad = [p for p in pairs if len(p) != 2 or p not in connected]
    if bad:
        raise ValueError(f"pairs: {bad} are not connected (source_type, target_type) pairs")
    return pairs


def _swap_repair(values: np.ndarray, valid, rng: np.random.Generator, where: str,
                 max_tries: int) -> np.ndarray:
    """Swap entries of ``values`` until every edge is valid and unique.

    ``valid(i, value)`` returns the edge's key (a hashable, e.g. ``(source, target)``) when
    edge ``i`` may carry ``value``, else None. Swapping keeps the multiset of ``values``.
    """
    keys = [valid(i, values[i]) for i in range(len(values))]
    seen = Counter(k for k in keys if k is not None)
    bad = [i for i, k in enumerate(keys) if k is None or seen[k] > 1]
    for i in bad:
        if keys[i] is not None and seen[keys[i]] == 1:
            continue  # its duplicate moved away already
        for j in rng.integers(0, len(values), size=max_tries):
            ki, kj = valid(i, values[j]), valid(j, values[i])
            if j == i or ki is None or kj is None or ki == kj:
                continue
            old = (keys[i], keys[j])
            if seen[ki] - old.count(ki) > 0 or seen[kj] - old.count(kj) > 0:
                continue
            for k in old:
                if k is not None:
                    seen[k] -= 1
            values[i], values[j] = values[j], values[i]
            keys[i], keys[j] = ki, kj
            seen[ki] += 1
            seen[kj] += 1
            break
        else:
            raise ValueError(f"{where}: no valid rewiring found in {max_tries} tries per edge "
                             "(the pair is too dense)")
    return values


class RewireDegreePreserving(BaseTransform):
    """Random graph with the degrees of the original, per type pair.

    Within each type pair ``S -> T``, the targets are shuffled among the pair's edges, then
    multi-edges are removed by swapping targets between edges (a configuration model
    repaired by edge swaps). Every S neuron keeps its out-degree and every T neuron its
    in-degree in that pair; each edge keeps its source and its count ``n_syn``.

    Args:
        seed: seed of the shuffle (``numpy.random.default_rng``).
        max_tries: swap attempts per bad edge before giving up with a ValueError.
    """

    def __init__(self, seed: int = 0, max_tries: int = 1000):
        self.seed, self.max_tries = int(seed), int(max_tries)

    def forward(self, data: HeteroData) -> HeteroData:
        _check(data)
        rng = np.random.default_rng(self.seed)
        for key in _edge_types(data):
            store = data[key]
            src, tgt = store.edge_index.numpy()
            n_t = data[key[2]].num_nodes
            if len(src) == data[key[0]].num_nodes * n_t:
                continue  # complete: nothing to rewire
            new = tgt[rng.permutation(len(tgt))]
            new = _swap_repair(new, lambda i, t, src=src: (int(src[i]), int(t)), rng,
                               f"{key[0]}->{key[2]}", self.max_tries)
            _set_targets(data, key, torch.from_numpy(np.asarray(new, np.int64)))
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


def _set_targets(data, key, target: torch.Tensor) -> None:
    store = data[key]
    source = store.edge_index[0]
    store.edge_index = torch.stack([source, target])
    store.du = data[key[2]].u[target] - data[key[0]].u[source]
    store.dv = data[key[2]].v[target] - data[key[0]].v[source]


class RewireLocal(BaseTransform):
    """Locality-preserving random graph: edges keep their column offsets (or distances).

    Within each type pair ``S -> T``:

    * ``keep="offset"``: every edge keeps its offset ``(du, dv)`` and count and moves to a
      source drawn without replacement among the S neurons that have a T neuron at
      ``source + (du, dv)``. The multiset of ``(du, dv, n_syn)`` of the pair is kept
      exactly; degrees become random. On a graph built from filters
      (:class:`~flygnn.datasets.FlyVisConnectome`) every such slot is already taken, so the
      graph comes back unchanged (same edges, same order): use ``"distance"`` there.
    * ``keep="distance"``: every edge keeps its source, count and hex distance
      ``|(du, dv)|`` and moves to a random free offset at that distance (``n_rounds``
      rounds of proposals; a proposal is taken when its target exists and is not yet
      connected from that source). The distribution of distances and each neuron's
      out-degree are kept exactly.

    Where a column holds several T neurons, one is drawn. No multi-edges arise.

    Args:
        seed: seed of the draws.
        keep: ``"offset"`` or ``"distance"``.
        n_rounds: proposal rounds for ``"distance"``.
    """

    def __init__(self, seed: int = 0, keep: str = "offset", n_rounds: int = 20):
        if keep not in ("offset", "distance"):
            raise ValueError(f"keep must be 'offset' or 'distance', got {keep!r}")
        self.seed, self.keep, self.n_rounds = int(seed), keep, int(n_rounds)

    def forward(self, data: HeteroData) -> HeteroData:
        _check(data)
        rng = np.random.default_rng(self.seed)
        for key in _edge_types(data):
            store = data[key]
            su, sv = data[key[0]].u.numpy(), data[key[0]].v.numpy()
            lookup = _ColumnLookup(data[key[2]].u.numpy(), data[key[2]].v.numpy())
            if self.keep == "offset":
                source, target = self._by_offset(store, su, sv, lookup, rng)
            else:
                source, target = self._by_distance(store, su, sv, lookup, rng)
                store.du = torch.from_numpy(data[key[2]].u.numpy()[target] - su[source])
                store.dv = torch.from_numpy(data[key[2]].v.numpy()[target] - sv[source])
            store.edge_index = torch.from_numpy(np.stack([source, target]).astype(np.int64))
        return data

    @staticmethod
    def _by_offset(store, su, sv, lookup, rng):
        du, dv = store.du.numpy(), store.dv.numpy()
        source, target = np.empty(len(du), np.int64), np.empty(len(du), np.int64)
        offsets, group = np.unique(np.stack([du, dv], 1), axis=0, return_inverse=True)
        group = group.reshape(-1)
        for g, (a, b) in enumerate(offsets):
            edges = np.flatnonzero(group == g)
            tgt = lookup(su + a, sv + b, rng.random(len(su)))
            chosen = np.sort(rng.choice(np.flatnonzero(tgt >= 0), len(edges), replace=False))
            source[edges], target[edges] = chosen, tgt[chosen]
        return source, target

    def _by_distance(self, store, su, sv, lookup, rng):
        source, target = (x.numpy().copy() for x in store.edge_index)
        du, dv = store.du.numpy(), store.dv.numpy()
        dist = (np.abs(du) + np.abs(dv) + np.abs(du + dv)) // 2
        used = np.sort(source * lookup.n + target)
        for _ in range(self.n_rounds):
            a, b = _random_offset(dist, rng)
            tgt = lookup(su[source] + a, sv[source] + b, rng.random(len(source)))
            keys = source * lookup.n + tgt
            pos = np.minimum(np.searchsorted(used, keys), len(used) - 1)
            ok = (tgt >= 0) & (used[pos] != keys)
            _, first = np.unique(keys[ok], return_index=True)
            take = np.flatnonzero(ok)[first]
            target[take] = tgt[take]
            used = np.sort(source * lookup.n + target)
        return source, target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, keep={self.keep!r})"


def _random_offset(dist: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random lattice offset at hex distance ``dist`` (per entry)."""
    side = rng.integers(0, 6, len(dist))
    step = (rng.random(len(dist)) * np.maximum(dist, 1)).astype(np.int64)
    corners = np.array([(1, 0), (0, 1), (-1, 1), (-1, 0), (0, -1), (1, -1)])
    start, walk = corners[side], corners[(side + 2) % 6]
    return dist * start[:, 0] + step * walk[:, 0], dist * start[:, 1] + step * walk[:, 1]


class _ColumnLookup:
    """Neuron index at a column (``-1`` where none; one drawn by ``pick`` where several)."""

    def __init__(self, u: np.ndarray, v: np.ndarray):
        self.n = len(u)
        self.r = int(max(np.abs(u).max(), np.abs(v).max()))
        size = 2 * self.r + 1
        col = (u + self.r) * size + (v + self.r)
        self.order = np.argsort(col, kind="stable")
        self.start = np.full(size * size, -1)
        self.count = np.bincount(col, minlength=size * size)
        first = np.unique(col[self.order], return_index=True)
        self.start[first[0]] = first[1]

    def __call__(self, u: np.ndarray, v: np.ndarray, pick: np.ndarray) -> np.ndarray:
        size = 2 * self.r + 1
        inside = (np.abs(u) <= self.r) & (np.abs(v) <= self.r)
        col = np.where(inside, (u + self.r) * size + (v + self.r), 0)
        count = np.where(inside, self.count[col], 0)
        out = np.full(len(u), -1)
        hit = count > 0
        out[hit] = self.order[self.start[col[hit]] + (pick[hit] * count[hit]).astype(np.int64)]
        return out


class Knockout(BaseTransform):
    """Silence cell types and cut type pairs: their edge types are removed.

    Removes the edge types leaving every type in ``cell_types`` and those of ``pairs``;
    nodes and all other edges are kept (knocked-out types still receive input).

    Args:
        cell_types: types whose outgoing synapses are removed.
        pairs: ``(source_type, target_type)`` pairs to cut.
    """

    def __init__(self, cell_types: Sequence[str] = (), pairs: Sequence[tuple[str, str]] = ()):
        self.cell_types = [cell_types] if isinstance(cell_types, str) else list(cell_types)
        self.pairs = [tuple(p) for p in pairs]

    def forward(self, data: HeteroData) -> HeteroData:
        _check(data)
        types = set(_check_types(data, self.cell_types, "cell_types"))
        pairs = set(_check_pairs(data, self.pairs))
        for key in list(data.edge_types):
            if key[0] in types or (key[0], key[2]) in pairs:
                del data[key]
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cell_types={self.cell_types}, pairs={self.pairs})"


class ScaleSynapses(BaseTransform):
    r"""Scale synapse counts, optionally with multiplicative log-normal noise.

    .. math:: n'_e = n_e \cdot \mathrm{factor} \cdot \exp(\sigma z_e - \sigma^2 / 2),
        \quad z_e \sim \mathcal{N}(0, 1)

    (the noise has mean 1 and keeps counts positive), for the edges of ``pairs`` (all pairs
    when None).

    Args:
        factor: positive scale.
        noise_std: :math:`\sigma >= 0`; 0 means no noise.
        seed: seed of the noise.
        pairs: ``(source_type, target_type)`` pairs to change, or None for all.
    """

    def __init__(self, factor: float = 1.0, noise_std: float = 0.0, seed: int = 0,
                 pairs: Sequence[tuple[str, str]] | None = None):
        if not np.isfinite(factor) or factor <= 0:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.factor, self.noise_std, self.seed = float(factor), float(noise_std), int(seed)
        self.pairs = None if pairs is None else [tuple(p) for p in pairs]

    def forward(self, data: HeteroData) -> HeteroData:
        _check(data)
        chosen = None if self.pairs is None else set(_check_pairs(data, self.pairs))
        gen = torch.Generator().manual_seed(self.seed)
        for key in _edge_types(data):
            if chosen is not None and (key[0], key[2]) not in chosen:
                continue
            store = data[key]
            scale = torch.full(store.n_syn.shape, self.factor, dtype=torch.float64)
            if self.noise_std > 0:
                z = torch.randn(store.n_syn.shape, generator=gen, dtype=torch.float64)
                scale = scale * torch.exp(self.noise_std * z - self.noise_std ** 2 / 2)
            store.n_syn = (store.n_syn.double() * scale).to(store.n_syn.dtype)
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(factor={self.factor}, noise_std={self.noise_std})"


class LatticeDensity(BaseTransform):
    """Thin cell types to a coarser sublattice (flyvis's ``stride`` pattern).

    A type given stride ``(a, b)`` keeps only its neurons with ``u % a == 0`` and
    ``v % b == 0`` (the central one always stays), with the edges among kept neurons.
    With ``compensate``, the counts of a thinned type's outgoing edges are multiplied by
    ``n_before / n_after``, so that its total output stays about the same.

    Args:
        strides: ``{cell_type: (a, b)}`` with positive integers.
        compensate: rescale the outgoing counts of thinned types.

    Raises:
        ValueError: unknown types, bad strides, or an input type (the stimulus needs one
            input neuron per column).
    """

    def __init__(self, strides: Mapping[str, tuple[int, int]], compensate: bool = False):
        self.strides = {}
        for name, stride in dict(strides).items():
            ok = isinstance(stride, (tuple, list)) and len(stride) == 2 and all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in stride)
            if not ok:
                raise ValueError(f"strides[{name!r}]: expected two positive integers, "
                                 f"got {stride!r}")
            self.strides[name] = tuple(stride)
        self.compensate = bool(compensate)

    def forward(self, data: HeteroData) -> HeteroData:
        _check(data)
        _check_types(data, list(self.strides), "strides")
        inputs = [t for t in self.strides if t in data.input_types]
        if inputs:
            raise ValueError(f"strides: input types {inputs} cannot be thinned (the stimulus "
                             "needs one input neuron per column)")
        new_index, ratio = {}, {}
        for name, (a, b) in self.strides.items():
            store = data[name]
            keep = (store.u % a == 0) & (store.v % b == 0)
            index = torch.full((store.num_nodes,), -1, dtype=torch.long)
            index[keep] = torch.arange(int(keep.sum()))
            new_index[name] = index
            ratio[name] = store.num_nodes / int(keep.sum())
            store.u, store.v = store.u[keep], store.v[keep]
            store.num_nodes = int(keep.sum())
        for key in _edge_types(data):
            s, _, t = key
            if s not in new_index and t not in new_index:
                continue
            store = data[key]
            ei = store.edge_index.clone()
            for row, name in ((0, s), (1, t)):
                if name in new_index:
                    ei[row] = new_index[name][ei[row]]
            keep = (ei >= 0).all(0)
            if not keep.any():
                del data[key]
                continue
            n_edges = ei.shape[1]
            for attr, value in list(store.items()):
                per_edge = torch.is_tensor(value) and value.shape[:1] == (n_edges,)
                if attr != "edge_index" and per_edge:
                    store[attr] = value[keep]
            store.edge_index = ei[:, keep]
            if self.compensate and s in ratio:
                store.n_syn = store.n_syn * ratio[s]
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strides={self.strides}, compensate={self.compensate})"


#: the transforms a configuration may name (``network.connectome``), by class name
TRANSFORMS = {cls.__name__: cls for cls in (RewireDegreePreserving, RewireLocal, Knockout,
                                            ScaleSynapses, LatticeDensity)}


def make_transforms(specs, field: str = "connectome") -> list[BaseTransform]:
    """Transforms from JSON specs ``{"transform": NAME, **keyword arguments}``.

    Args:
        specs: one spec or a list of them, applied in order
            (e.g. ``{"transform": "RewireDegreePreserving", "seed": 0}``).
        field: the name of the config field, for messages.

    Raises:
        ValueError: a spec that is not an object, an unknown name (naming ``field``, the
            entry and :data:`TRANSFORMS`) or arguments the transform refuses.
    """
    specs = [specs] if isinstance(specs, Mapping) else list(specs)
    out = []
    for k, spec in enumerate(specs):
        where = f"{field}[{k}]"
        if not isinstance(spec, Mapping) or "transform" not in spec:
            raise ValueError(f"{where}: expected an object {{'transform': NAME, ...}}, got "
                             f"{spec!r}")
        kwargs = dict(spec)
        name = kwargs.pop("transform")
        if name not in TRANSFORMS:
            raise ValueError(f"{where}: unknown transform {name!r}; known: {sorted(TRANSFORMS)}")
        try:
            out.append(TRANSFORMS[name](**kwargs))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} ({name}): {err}") from None
    return out
