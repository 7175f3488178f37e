"""Graph analysis at hand: networkx views of the connectome.

:func:`type_graph` summarises the neuron-level graph per cell type pair; :func:`to_networkx`
exports the neuron-level graph itself (sensible for small extents).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from flygnn.flat import FlatGraph, flatten

__all__ = ["type_graph", "to_networkx"]


def _as_flat(data) -> FlatGraph:
    return data if isinstance(data, FlatGraph) else flatten(data)


def type_graph(data, weights=None) -> nx.DiGraph:
    """Cell-type-level ``DiGraph`` of a connectome.

    Nodes are the cell types (attributes ``role``, ``n_neurons``). There is an edge S -> T
    for every connected type pair, with attributes:

    - ``n_syn_total``: sum of ``n_syn`` over the pair's neuron-level edges;
    - ``n_syn_mean``: mean of ``n_syn`` over those edges;
    - ``n_syn_filter``: sum of the filter's counts over its offsets (synapses onto one
      interior target neuron);
    - ``sign``: +1 / -1; ``n_edges``: number of neuron-level edges;
    - ``weight``: ``sign * n_syn_filter`` times ``weights[(S, T)]`` when ``weights`` (a mapping
      or pandas Series indexed by type pair, e.g. learned synapse strengths) is given, else
      ``sign * n_syn_filter``.

    Args:
        data: a connectome ``HeteroData`` or its :class:`~flygnn.flat.FlatGraph`.
        weights: optional per-pair multipliers.
    """
    g = _as_flat(data)
    graph = nx.DiGraph(extent=g.extent)
    counts = np.diff(g.type_ptr.numpy())
    for name, role, n in zip(g.cell_types, g.roles, counts):
        graph.add_node(name, role=role, n_neurons=int(n))
    pair = g.pair_index.numpy()
    n_syn = g.n_syn.numpy().astype(np.float64)
    total = np.bincount(pair, weights=n_syn, minlength=len(g.pairs))
    n_edges = np.bincount(pair, minlength=len(g.pairs))
    offset_pair = np.array([g.pairs.index((s, t)) for s, t, _, _ in g.offsets]) if g.offsets else []
    per_filter = np.bincount(offset_pair, weights=g.offset_n_syn.numpy().astype(np.float64),
                             minlength=len(g.pairs))
    for p, (s, t) in enumerate(g.pairs):
        sign = float(g.pair_sign[p])
        scale = 1.0
        if weights is not None:
            if (s, t) not in weights:
                raise ValueError(f"weights has no entry for type pair ({s!r}, {t!r})")
            scale = float(weights[(s, t)])
        graph.add_edge(s, t, n_syn_total=float(total[p]), n_syn_mean=float(total[p] / n_edges[p]),
                       n_syn_filter=float(per_filter[p]), sign=sign, n_edges=int(n_edges[p]),
                       weight=sign * float(per_filter[p]) * scale)
    return graph


def to_networkx(data, max_edges: int = 200_000) -> nx.DiGraph:
    """Neuron-level ``DiGraph``: nodes are flat node ids (attributes ``type, u, v, role``),
    edges carry ``n_syn``, ``sign``, ``du``, ``dv``.

    Raises:
        ValueError: if the graph has more than ``max_edges`` edges (use a smaller extent or
            raise the limit explicitly; extent 15 has 1.5M edges).
    """
    g = _as_flat(data)
    if g.num_edges > max_edges:
        raise ValueError(f"the graph has {g.num_edges} edges, more than max_edges={max_edges}; "
                         "use a smaller extent or pass a larger max_edges")
    graph = nx.DiGraph(extent=g.extent)
    types = g.node_type.tolist()
    for i, (k, u, v) in enumerate(zip(types, g.u.tolist(), g.v.tolist())):
        graph.add_node(i, type=g.cell_types[k], u=u, v=v, role=g.roles[k])
    graph.add_edges_from(
        (s, t, {"n_syn": n, "sign": sg, "du": a, "dv": b})
        for s, t, n, sg, a, b in zip(g.source.tolist(), g.target.tolist(), g.n_syn.tolist(),
                                     g.sign.tolist(), g.du.tolist(), g.dv.tolist())
    )
    return graph
