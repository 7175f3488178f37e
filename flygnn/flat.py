"""The flat view of the connectome: one node and one edge list in flyvis's order.

``HeteroData`` keeps the meaning (cell types, type pairs); simulation wants flat tensors.
:func:`flatten` concatenates the node blocks in cell-type order (each in canonical
``(u, v)`` order) and the edge blocks in type-pair order, exactly the order of flyvis's
node and edge tables, and derives the parameter groupings: one group per connected type
pair (604 at extent 15) and one per ``(pair, du, dv)`` offset that produces edges (2,355),
both in order of first appearance along the edge list. Where the counts of one offset vary
along the lattice (graphs from neuron-level tables), each distinct count is its own group,
so that every edge keeps its own count. The central neuron of a cell type is the one at
column ``(0, 0)``, or else the first one nearest to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from flygnn._checks import check_graph

__all__ = ["FlatGraph", "flatten", "nodes_frame", "edges_frame", "central_index"]


@dataclass(frozen=True)
class FlatGraph:
    """Flat node and edge tensors (CPU) of a connectome graph in flyvis's order.

    Shapes:
        node tensors ``(N,)``; edge tensors ``(E,)``; ``type_ptr`` ``(n_types + 1,)``;
        ``central_index`` ``(n_types,)``; ``pair_sign`` ``(n_pairs,)``; ``offset_n_syn``
        ``(n_offsets,)``; ``pair_mean_n_syn`` ``(n_pairs,)`` float64.
    """

    extent: int
    cell_types: list[str]
    input_types: list[str]
    output_types: list[str]
    roles: list[str]
    node_type: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    type_ptr: torch.Tensor
    central_index: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    du: torch.Tensor
    dv: torch.Tensor
    n_syn: torch.Tensor
    n_syn_certainty: torch.Tensor
    sign: torch.Tensor
    pairs: list[tuple[str, str]]
    relations: list[str]
    pair_index: torch.Tensor
    pair_sign: torch.Tensor
    pair_mean_n_syn: torch.Tensor
    offsets: list[tuple[str, str, int, int]]
    offset_index: torch.Tensor
    offset_n_syn: torch.Tensor

    def __deepcopy__(self, memo) -> FlatGraph:
        """A frozen graph is shared, not copied (its tensors are never written)."""
        return self

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.numel())

    @property
    def num_edges(self) -> int:
        return int(self.source.numel())

    def type_slice(self, cell_type: str) -> slice:
        """Flat node range of one cell type."""
        k = self.cell_types.index(cell_type)
        return slice(int(self.type_ptr[k]), int(self.type_ptr[k + 1]))

    def nodes_of(self, cell_types) -> torch.Tensor:
        """Flat indices of all neurons of the given cell types, in the given order."""
        missing = [t for t in cell_types if t not in self.cell_types]
        if missing:
            raise ValueError(f"unknown cell types {missing}; known: {self.cell_types}")
        return torch.cat([torch.arange(self.type_ptr[k], self.type_ptr[k + 1])
                          for k in map(self.cell_types.index, cell_types)])


def _check(data) -> None:
    if not isinstance(data, HeteroData) or not hasattr(data, "cell_types"):
        raise ValueError(
            "expected the HeteroData of a FlyVisConnectome (dataset[0]) with a 'cell_types' "
            f"attribute, got {type(data).__name__}"
        )
    check_graph(data)


def _first_appearance(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group ids in order of first appearance along rows of ``keys``, and each group's first row."""
    shifted = keys - keys.min(axis=0)
    span = shifted.max(axis=0) + 1
    flat = shifted[:, 0]
    for k in range(1, keys.shape[1]):  # mixed-radix key (spans are small: no overflow)
        flat = flat * span[k] + shifted[:, k]
    _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], first[order]


def flatten(data: HeteroData) -> FlatGraph:
    """Concatenate a connectome ``HeteroData`` into a :class:`FlatGraph` (flyvis order)."""
    _check(data)
    cell_types = list(data.cell_types)
    counts = [data[t].num_nodes for t in cell_types]
    type_ptr = torch.tensor(np.concatenate([[0], np.cumsum(counts)]), dtype=torch.long)
    node_type = torch.repeat_interleave(torch.arange(len(cell_types)), torch.tensor(counts))
    u = torch.cat([data[t].u for t in cell_types])
    v = torch.cat([data[t].v for t in cell_types])
    if 0 in counts:
        raise ValueError(f"cell type {cell_types[counts.index(0)]!r} has no neurons")
    # the central neuron of a type: the first one nearest to column (0, 0)
    distance = (u.abs() + v.abs() + (u + v).abs()) // 2
    central_index = torch.stack([type_ptr[k] + torch.argmin(distance[type_ptr[k]:type_ptr[k + 1]])
                                 for k in range(len(cell_types))])

    index = {t: k for k, t in enumerate(cell_types)}
    src, tgt, du, dv, n_syn, cert, sign, pair_index = [], [], [], [], [], [], [], []
    pairs, relations, pair_sign = [], [], []
    for s, rel, t in data.edge_types:
        store = data[s, rel, t]
        if "edge_index" not in store:  # an empty store (e.g. created by a lookup)
            continue
        ei = store.edge_index
        src.append(ei[0] + type_ptr[index[s]])
        tgt.append(ei[1] + type_ptr[index[t]])
        du.append(store.du)
        dv.append(store.dv)
        n_syn.append(store.n_syn)
        cert.append(store.n_syn_certainty)
        sign.append(store.sign)
        pair_index.append(torch.full((ei.shape[1],), len(pairs), dtype=torch.long))
        pairs.append((s, t))
        relations.append(rel)
        pair_sign.append(float(store.sign[0]))
    pair_index_t = torch.cat(pair_index)
    du_t, dv_t, n_syn_t = torch.cat(du), torch.cat(dv), torch.cat(n_syn)

    count_rank = np.unique(n_syn_t.numpy(), return_inverse=True)[1].reshape(-1)
    keys = np.stack([pair_index_t.numpy(), du_t.numpy(), dv_t.numpy(), count_rank], axis=1)
    offset_index, first = _first_appearance(keys)
    offsets = [(pairs[keys[i, 0]][0], pairs[keys[i, 0]][1], int(keys[i, 1]), int(keys[i, 2]))
               for i in first]
    n_pairs = len(pairs)
    sums = np.bincount(pair_index_t.numpy(), weights=n_syn_t.numpy().astype(np.float64),
                       minlength=n_pairs)
    sizes = np.bincount(pair_index_t.numpy(), minlength=n_pairs)

    return FlatGraph(
        extent=int(data.extent),
        cell_types=cell_types,
        input_types=list(data.input_types),
        output_types=list(data.output_types),
        roles=[data[t].role for t in cell_types],
        node_type=node_type,
        u=u,
        v=v,
        type_ptr=type_ptr,
        central_index=central_index,
        source=torch.cat(src),
        target=torch.cat(tgt),
        du=du_t,
        dv=dv_t,
        n_syn=n_syn_t,
        n_syn_certainty=torch.cat(cert),
        sign=torch.cat(sign),
        pairs=pairs,
        relations=relations,
        pair_index=pair_index_t,
        pair_sign=torch.tensor(pair_sign, dtype=torch.float32),
        pair_mean_n_syn=torch.from_numpy(sums / sizes),
        offsets=offsets,
        offset_index=torch.from_numpy(offset_index),
        offset_n_syn=n_syn_t[torch.from_numpy(first)],
    )


def _as_flat(data) -> FlatGraph:
    return data if isinstance(data, FlatGraph) else flatten(data)


def nodes_frame(data) -> pd.DataFrame:
    """Neurons in flyvis's flat order: columns ``type, u, v, role`` (index = flat node id)."""
    g = _as_flat(data)
    types = np.asarray(g.cell_types, dtype=object)[g.node_type.numpy()]
    roles = np.asarray(g.roles, dtype=object)[g.node_type.numpy()]
    return pd.DataFrame({"type": types, "u": g.u.numpy(), "v": g.v.numpy(), "role": roles})


def edges_frame(data) -> pd.DataFrame:
    """Edges in flyvis's flat order.

    Columns ``source, target`` (flat node ids), ``source_type, target_type, du, dv,
    n_syn, n_syn_certainty, sign``.
    """
    g = _as_flat(data)
    names = np.asarray(g.cell_types, dtype=object)
    return pd.DataFrame({
        "source": g.source.numpy(),
        "target": g.target.numpy(),
        "source_type": names[g.node_type[g.source].numpy()],
        "target_type": names[g.node_type[g.target].numpy()],
        "du": g.du.numpy(),
        "dv": g.dv.numpy(),
        "n_syn": g.n_syn.numpy(),
        "n_syn_certainty": g.n_syn_certainty.numpy(),
        "sign": g.sign.numpy(),
    })


def central_index(data) -> torch.Tensor:
    """Flat indices of the central-column ``(0, 0)`` neuron of each cell type (type order)."""
    return _as_flat(data).central_index
