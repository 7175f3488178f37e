"""Random null models of a connectome that rewire its edges within each type pair.

:class:`RewireDegreePreserving` keeps every neuron's in- and out-degree (a configuration model
repaired by edge swaps); :class:`RewireLocal` keeps the edges' column offsets or hex distances.
Both are PyG transforms on the connectome's ``HeteroData``, drawing from an explicit ``seed``;
they are listed with the other transforms, and re-exported, in :mod:`flygnn.transforms`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from flygnn._transform_checks import check_data, edge_types

__all__ = ["RewireDegreePreserving", "RewireLocal"]


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
        check_data(data)
        rng = np.random.default_rng(self.seed)
        for key in edge_types(data):
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
        check_data(data)
        rng = np.random.default_rng(self.seed)
        for key in edge_types(data):
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
