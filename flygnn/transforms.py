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

The two rewiring null models are defined in :mod:`flygnn.rewiring` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch_geometric.data import HeteroData
from torch_geometric.transforms import BaseTransform

from flygnn._transform_checks import check_data, check_pairs, check_types, edge_types
from flygnn.rewiring import RewireDegreePreserving, RewireLocal

__all__ = ["TRANSFORMS", "Knockout", "LatticeDensity", "RewireDegreePreserving", "RewireLocal",
           "ScaleSynapses", "make_transforms"]


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
        check_data(data)
        types = set(check_types(data, self.cell_types, "cell_types"))
        pairs = set(check_pairs(data, self.pairs))
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
        check_data(data)
        chosen = None if self.pairs is None else set(check_pairs(data, self.pairs))
        gen = torch.Generator().manual_seed(self.seed)
        for key in edge_types(data):
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
        check_data(data)
        check_types(data, list(self.strides), "strides")
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
        for key in edge_types(data):
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
