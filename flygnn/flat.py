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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from flygnn._checks import check_graph

__all__ = ["FlatGraph", "flatten", "nodes_frame", "edges_frame", "central_index"]

EDGE_ATTRS = ("du", "dv", "n_syn", "n_syn_certainty", "sign")


@dataclass(frozen=True)
class FlatGraph:
    """Flat node and edge tensors (CPU) of a connectome graph in flyvis's order.

    Edge indices (``source``, ``target``, ``pair_index``, ``offset_index``) are int32: half
    the memory of int64, and every torch index operation takes them (``edges_frame`` and
    ``Context.edge_index`` give int64). The edge attributes ``du``, ``dv``, ``n_syn``,
    ``n_syn_certainty`` and ``sign`` are stored once per type pair or per offset group when
    they are constant over it (always, for a :class:`~flygnn.datasets.FlyVisConnectome`) and
    gathered into ``(E,)`` tensors on access (:meth:`edge_attr`). At extent 15 the edge
    tensors take 23 MB instead of 88 MB.

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
    pairs: list[tuple[str, str]]
    relations: list[str]
    pair_index: torch.Tensor
    pair_sign: torch.Tensor
    pair_mean_n_syn: torch.Tensor
    offsets: list[tuple[str, str, int, int]]
    offset_index: torch.Tensor
    offset_n_syn: torch.Tensor
    edge_tables: dict[str, tuple[str, torch.Tensor]] = field(repr=False)

    def __deepcopy__(self, memo) -> FlatGraph:
        """A frozen graph is shared, not copied (its tensors are never written)."""
        return self

    def edge_attr(self, name: str) -> torch.Tensor:
        """The ``(E,)`` tensor of one edge attribute (``du``, ``dv``, ``n_syn``,
        ``n_syn_certainty``, ``sign``), gathered on each access from the table it is
        constant over (``edge_tables[name]``: ``("pair", (P,))``, ``("offset", (O,))`` or
        ``("edge", (E,))``, the last stored as is)."""
        if name not in self.edge_tables:
            raise ValueError(f"unknown edge attribute {name!r}; known: {list(self.edge_tables)}")
        group, table = self.edge_tables[name]
        if group == "edge":
            return table
        return table[self.pair_index if group == "pair" else self.offset_index]

    @property
    def du(self) -> torch.Tensor:
        """``(E,)`` lattice offset ``u_target - u_source`` of every edge."""
        return self.edge_attr("du")

    @property
    def dv(self) -> torch.Tensor:
        """``(E,)`` lattice offset ``v_target - v_source`` of every edge."""
        return self.edge_attr("dv")

    @property
    def n_syn(self) -> torch.Tensor:
        """``(E,)`` synapse count of every edge."""
        return self.edge_attr("n_syn")

    @property
    def n_syn_certainty(self) -> torch.Tensor:
        """``(E,)`` certainty of every edge's count."""
        return self.edge_attr("n_syn_certainty")

    @property
    def sign(self) -> torch.Tensor:
        """``(E,)`` sign (+1 / -1) of every edge."""
        return self.edge_attr("sign")

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


def _edge_stores(data: HeteroData) -> list[tuple]:
    """``(source type, relation, target type, store)`` of every connected pair (file order)."""
    out = []
    for s, rel, t in data.edge_types:
        store = data[s, rel, t]
        if "edge_index" in store:  # not an empty store (e.g. created by a lookup)
            out.append((s, rel, t, store))
    return out


def _bits(x: torch.Tensor) -> np.ndarray:
    return x.contiguous().numpy().view(np.uint8)


class _Tables:
    """Per-pair and per-offset tables of the edge attributes, and whether each attribute is
    constant over the pairs (else the offset groups) of every store seen so far."""

    def __init__(self, names):
        self.parts = {name: {"pair": [], "offset": []} for name in names}
        self.valid = {name: {"pair": True, "offset": True} for name in names}

    def add(self, store, group: np.ndarray, first: np.ndarray) -> None:
        index, first = torch.from_numpy(group), torch.from_numpy(first)
        for name, parts in self.parts.items():
            values, valid = store[name], self.valid[name]
            parts["pair"].append(values[:1])
            parts["offset"].append(values[first])
            if valid["pair"]:  # bit for bit
                valid["pair"] = bool((_bits(values) == _bits(values[:1].expand(len(values))))
                                     .all())
            if valid["offset"]:
                valid["offset"] = bool((_bits(values) == _bits(parts["offset"][-1][index]))
                                       .all())

    def table(self, name: str, group: str) -> torch.Tensor:
        """The concatenated table (the dtype ``torch.cat`` gives the stores' tensors)."""
        return torch.cat(self.parts[name][group])

    def result(self, stores: list) -> dict[str, tuple[str, torch.Tensor]]:
        out = {}
        for name in self.parts:
            group = next((g for g in ("pair", "offset") if self.valid[name][g]), "edge")
            out[name] = (group, self.table(name, group) if group != "edge"
                         else torch.cat([store[name] for *_, store in stores]))
        return out


def flatten(data: HeteroData) -> FlatGraph:
    """Concatenate a connectome ``HeteroData`` into a :class:`FlatGraph` (flyvis order).

    Edge indices are written pair by pair into tensors of their final size and offset
    groups are found within each pair (they never span two): no edge-sized intermediate is
    made, so the peak memory is the ``HeteroData`` plus the flat graph.
    """
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
    stores = _edge_stores(data)
    num_edges = sum(store.edge_index.shape[1] for *_, store in stores)
    index_dtype = torch.int32 if max(num_edges, int(type_ptr[-1])) < 2**31 else torch.long
    edge = {name: torch.empty(num_edges, dtype=index_dtype)
            for name in ("source", "target", "pair_index", "offset_index")}
    tables = _Tables(EDGE_ATTRS)
    pairs, relations, pair_sign, offsets = [], [], [], []
    sums, sizes = np.zeros(len(stores)), np.zeros(len(stores), dtype=np.int64)
    start = 0
    for k, (s, rel, t, store) in enumerate(stores):
        ei = store.edge_index
        part = slice(start, start + ei.shape[1])
        edge["source"][part] = ei[0] + type_ptr[index[s]]
        edge["target"][part] = ei[1] + type_ptr[index[t]]
        edge["pair_index"][part] = k
        # offset groups of this pair: (du, dv, count) in order of first appearance
        n_syn = store.n_syn.numpy()
        count_rank = np.unique(n_syn, return_inverse=True)[1].reshape(-1)
        keys = np.stack([store.du.numpy(), store.dv.numpy(), count_rank], axis=1)
        group, first = _first_appearance(keys)
        edge["offset_index"][part] = torch.from_numpy(group + len(offsets))
        offsets += [(s, t, int(keys[i, 0]), int(keys[i, 1])) for i in first]
        tables.add(store, group, first)
        # the mean count of the pair, summed in edge order in float64 (as np.bincount)
        sums[k] = np.bincount(np.zeros(len(n_syn), dtype=np.intp),
                              weights=n_syn.astype(np.float64), minlength=1)[0]
        sizes[k] = len(n_syn)
        pairs.append((s, t))
        relations.append(rel)
        pair_sign.append(float(store.sign[0]))
        start = part.stop

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
        source=edge["source"],
        target=edge["target"],
        pairs=pairs,
        relations=relations,
        pair_index=edge["pair_index"],
        pair_sign=torch.tensor(pair_sign, dtype=torch.float32),
        pair_mean_n_syn=torch.from_numpy(sums / sizes),
        offsets=offsets,
        offset_index=edge["offset_index"],
        offset_n_syn=tables.table("n_syn", "offset"),  # each group's first edge
        edge_tables=tables.result(stores),
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

    Columns ``source, target`` (flat node ids, int64), ``source_type, target_type, du, dv,
    n_syn, n_syn_certainty, sign``.
    """
    g = _as_flat(data)
    names = np.asarray(g.cell_types, dtype=object)
    return pd.DataFrame({
        "source": g.source.numpy().astype(np.int64),
        "target": g.target.numpy().astype(np.int64),
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
