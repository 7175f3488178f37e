r"""Circuit analysis beside simulation: weighted type graphs, paths, fields and knockouts.

The type-level weight of a connected pair ``S -> T`` is what one interior ``T`` neuron
receives from all ``S`` neurons when they all have unit activity:

.. math::
    W_{S \to T} = \mathrm{sign}_{ST} \cdot \sum_{(du, dv)} \mathrm{count}_{ST}(du, dv)
    \cdot \mathrm{strength}_{ST}

(without a network the strength is 1 and ``W`` is the signed filter synapse count).

**Knockouts** come in two forms that silence the same synapses:

* on a connectome ``HeteroData`` (:class:`Knockout`, a PyG transform): the edge types leaving
  a knocked-out cell type, and the listed pairs, are removed. Nodes are kept, so the flat
  node order is unchanged, but the set of type pairs (and hence the network's parameter
  tables) shrinks.
* on a :class:`~flygnn.network.Network` (:func:`knockout`): a copy whose strengths of those
  pairs are zero. Nodes, edges and parameter tables are intact, so node indices and
  central-cell read-outs line up with the intact network. A gradient hook keeps the cut
  strengths at zero when the copy is trained.

In both forms a knocked-out cell type still receives input and still has activity (it is
recorded as usual); it only sends no signal.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence

import networkx as nx
import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from flygnn import hexgrid
from flygnn.flat import FlatGraph, flatten
from flygnn.graph import type_graph
from flygnn.transforms import Knockout

__all__ = ["weighted_type_graph", "paths", "receptive_field", "projective_field", "field_map",
           "Knockout", "knockout", "input_ablation"]


def _is_network(obj) -> bool:
    return isinstance(obj, torch.nn.Module) and isinstance(getattr(obj, "graph", None), FlatGraph) \
        and hasattr(obj, "syn_strength")


def _graph_of(obj) -> FlatGraph:
    if _is_network(obj):
        return obj.graph
    if isinstance(obj, FlatGraph):
        return obj
    if isinstance(obj, HeteroData):
        return flatten(obj)
    raise ValueError(f"expected a Network, a connectome HeteroData or a FlatGraph, got "
                     f"{type(obj).__name__}")


def _check_types(graph: FlatGraph, names: Iterable[str], arg: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in graph.cell_types]
    if unknown:
        raise ValueError(f"{arg}: unknown cell types {unknown}")
    return names


# --------------------------------------------------------------------------- type graph and paths


def weighted_type_graph(net) -> nx.DiGraph:
    """Type-level graph weighted by a network's learned signed strengths.

    Edge attributes are those of :func:`flygnn.graph.type_graph` plus ``strength`` (the
    pair's synapse strength) and ``count_filter`` (sum of the network's synapse counts over
    the pair's offsets); ``weight = sign * count_filter * strength``.

    Args:
        net: a :class:`~flygnn.network.Network`.

    **Shapes:** 65 nodes, one edge per connected pair (604 at extent 15).
    """
    if not _is_network(net):
        raise ValueError(f"net: expected a flygnn Network, got {type(net).__name__}")
    graph = type_graph(net.graph)
    strength = net.param_table("syn_strength")
    count = net.param_table("syn_count").astype(np.float64)
    per_pair = count.groupby(level=["source_type", "target_type"], sort=False).sum()
    for (s, t), value in strength.items():
        edge = graph.edges[s, t]
        edge["strength"] = float(value)
        edge["count_filter"] = float(per_pair[(s, t)])
        edge["weight"] = edge["sign"] * edge["count_filter"] * float(value)
    return graph


def paths(net_or_data, source: str | Sequence[str] = "R1", target: str = "T4a",
          max_length: int = 4) -> pd.DataFrame:
    """All simple type-level paths from ``source`` to ``target`` with their weights.

    A path ``S_0 -> S_1 -> ... -> S_L`` has ``weight_product = prod_k W(S_k, S_{k+1})`` (the
    linearised gain of the chain, sign included), ``weight_sum = sum_k W`` and
    ``sign = prod_k sign``; ``W`` as in the module docstring (signed filter counts without a
    network, times the learned strengths with one).

    Args:
        net_or_data: a Network (learned weights), a connectome HeteroData or a FlatGraph.
        source: one cell type or several.
        target: the target cell type.
        max_length: longest path, in synapses (edges).

    Returns:
        DataFrame with columns ``source, path`` (tuple of types), ``length``,
        ``weight_product``, ``weight_sum``, ``sign``, sorted by ``|weight_product|``
        descending (ties by length, then path).
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
    if _is_network(net_or_data):
        graph = weighted_type_graph(net_or_data)
    else:
        graph = type_graph(_graph_of(net_or_data))
    flat_types = list(graph.nodes)
    sources = [source] if isinstance(source, str) else list(source)
    unknown = [t for t in [*sources, target] if t not in flat_types]
    if unknown:
        raise ValueError(f"source/target: unknown cell types {unknown}")
    rows = []
    for s in sources:
        if s == target:
            continue
        for path in nx.all_simple_paths(graph, s, target, cutoff=max_length):
            w = [graph.edges[a, b]["weight"] for a, b in zip(path[:-1], path[1:])]
            sign = [graph.edges[a, b]["sign"] for a, b in zip(path[:-1], path[1:])]
            rows.append({"source": s, "path": tuple(path), "length": len(path) - 1,
                         "weight_product": float(np.prod(w)), "weight_sum": float(np.sum(w)),
                         "sign": float(np.prod(sign))})
    frame = pd.DataFrame(rows, columns=["source", "path", "length", "weight_product",
                                        "weight_sum", "sign"])
    frame["_abs"] = frame["weight_product"].abs()
    frame = frame.sort_values(["_abs", "length", "path"], ascending=[False, True, True],
                              kind="stable")
    return frame.drop(columns="_abs").reset_index(drop=True)


# --------------------------------------------------------------------------- receptive fields


def _node_at(graph: FlatGraph, cell_type: str, uv: tuple[int, int], arg: str) -> int:
    block = graph.type_slice(cell_type)
    hit = torch.nonzero((graph.u[block] == uv[0]) & (graph.v[block] == uv[1])).flatten()
    if len(hit) != 1:
        raise ValueError(f"{arg}: there is no {cell_type} neuron at (u, v) = {tuple(uv)}")
    return block.start + int(hit[0])


def _field(obj, graph: FlatGraph, target_type: str, source_type: str, node: int,
           incoming: bool) -> pd.DataFrame:
    pair = (source_type, target_type)
    if pair not in graph.pairs:
        raise ValueError(f"{source_type} -> {target_type} is not a connected type pair")
    p = graph.pairs.index(pair)
    end = graph.target if incoming else graph.source
    edges = torch.nonzero((end == node) & (graph.pair_index == p)).flatten()
    other = graph.source[edges] if incoming else graph.target[edges]
    frame = pd.DataFrame({
        "u": graph.u[other].numpy(), "v": graph.v[other].numpy(),
        "du": graph.du[edges].numpy(), "dv": graph.dv[edges].numpy(),
        "n_syn": graph.n_syn[edges].numpy().astype(np.float64),
        "sign": graph.sign[edges].numpy().astype(np.float64),
        "node": other.long().numpy(), "edge": edges.numpy(),
    })
    if _is_network(obj):
        with torch.no_grad():
            count = torch.exp(obj.syn_count.detach().cpu()[graph.offset_index[edges]])
            strength = float(obj.syn_strength.detach().cpu()[p])
        frame["count"] = count.double().numpy()
        frame["strength"] = strength
        frame["weight"] = frame["sign"] * frame["count"] * strength
    else:
        frame["weight"] = frame["sign"] * frame["n_syn"]
    return frame


def receptive_field(obj, target_type: str, source_type: str,
                    target_uv: tuple[int, int] = (0, 0)) -> pd.DataFrame:
    """Synapses onto one ``target_type`` neuron from all ``source_type`` neurons.

    The source of an edge with offset ``(du, dv)`` onto the target at ``(u_t, v_t)`` sits at
    ``(u_t - du, v_t - dv)`` (reference 3.3): the receptive field is the filter mirrored.
    Rim neurons have fewer entries (no padding).

    Args:
        obj: a Network (adds ``count``, ``strength`` and learned ``weight``), a connectome
            HeteroData or a FlatGraph (``weight = sign * n_syn``).
        target_type, source_type: the pair.
        target_uv: the target neuron (default the central one).

    Returns:
        one row per presynaptic neuron: ``u, v`` (its coordinates), ``du, dv, n_syn, sign,
        node`` (flat index), ``edge`` (flat edge index), ``weight``.
    """
    graph = _graph_of(obj)
    _check_types(graph, [target_type, source_type], "target_type/source_type")
    return _field(obj, graph, target_type, source_type,
                  _node_at(graph, target_type, target_uv, "target_uv"), incoming=True)


def projective_field(obj, source_type: str, target_type: str,
                     source_uv: tuple[int, int] = (0, 0)) -> pd.DataFrame:
    """Synapses from one ``source_type`` neuron onto all ``target_type`` neurons.

    Targets sit at ``(u_s + du, v_s + dv)``. Same columns as :func:`receptive_field`, with
    ``u, v, node`` those of the postsynaptic neurons.
    """
    graph = _graph_of(obj)
    _check_types(graph, [target_type, source_type], "target_type/source_type")
    return _field(obj, graph, target_type, source_type,
                  _node_at(graph, source_type, source_uv, "source_uv"), incoming=False)


def field_map(field: pd.DataFrame, extent: int, column: str = "weight") -> np.ndarray:
    """A receptive/projective field as one value per column of a hex lattice (0 elsewhere).

    Pass the result to :func:`flygnn.plotting.hex_map` to draw it.

    **Shapes:** -> ``(n_hexals,)`` in canonical order of ``hexgrid.disk(extent)``.
    """
    if column not in field.columns:
        raise ValueError(f"column {column!r} not in the field's columns {list(field.columns)}")
    u, v = hexgrid.disk(extent)
    index = {(a, b): i for i, (a, b) in enumerate(zip(u.tolist(), v.tolist()))}
    out = np.zeros(len(u))
    for a, b, value in zip(field["u"], field["v"], field[column]):
        if (int(a), int(b)) not in index:
            raise ValueError(f"field position ({a}, {b}) lies outside the lattice of "
                             f"extent {extent}")
        out[index[int(a), int(b)]] += float(value)
    return out


# --------------------------------------------------------------------------- knockouts


def _cut_pairs(graph: FlatGraph, cell_types, pairs) -> list[tuple[str, str]]:
    types = set(_check_types(graph, cell_types, "cell_types"))
    pairs = [tuple(p) for p in pairs]
    bad = [p for p in pairs if len(p) != 2 or p not in graph.pairs]
    if bad:
        raise ValueError(f"pairs: {bad} are not connected (source_type, target_type) pairs")
    return [p for p in graph.pairs if p[0] in types or p in pairs]




def _zero_grad_hook(mask: torch.Tensor) -> Callable:
    def hook(grad):
        return grad * mask.to(grad.device, grad.dtype)
    return hook


def knockout(obj, cell_types: Sequence[str] = (), pairs: Sequence[tuple[str, str]] = ()):
    """A new connectome or network in which cell types are silenced and pairs are cut.

    Args:
        obj: a connectome ``HeteroData`` (edge types removed, see :class:`Knockout`) or a
            :class:`~flygnn.network.Network` (copy with the strengths of the cut pairs set to
            0; nodes, edges and parameter order unchanged; the cut strengths' gradients are
            zeroed so training keeps them cut). The input is never modified.
        cell_types: types whose outgoing synapses are removed (they still receive input).
        pairs: ``(source_type, target_type)`` pairs to cut.

    Returns:
        the new object; a network carries ``knocked_out`` (the cut pairs, accumulated over
        repeated knockouts).

    Raises:
        ValueError: unknown cell types, unconnected pairs, or an unsupported ``obj``.
    """
    if isinstance(obj, HeteroData):
        return Knockout(cell_types, pairs)(obj)
    if not _is_network(obj):
        raise ValueError(f"knockout: expected a connectome HeteroData or a Network, got "
                         f"{type(obj).__name__}")
    cut = _cut_pairs(obj.graph, cell_types, pairs)
    new = copy.deepcopy(obj)  # shares the frozen graph and its derived structures
    previous = list(getattr(obj, "knocked_out", []))
    new.knocked_out = previous + [p for p in cut if p not in previous]
    index = torch.tensor([obj.graph.pairs.index(p) for p in new.knocked_out], dtype=torch.long)
    mask = torch.ones(len(obj.graph.pairs))
    mask[index] = 0
    with torch.no_grad():
        new.syn_strength[index.to(new.syn_strength.device)] = 0
    if new.syn_strength.requires_grad:  # a frozen copy needs no hook
        new.syn_strength.register_hook(_zero_grad_hook(mask))
    return new


def input_ablation(net, target: str = "T4a", measure: Callable | None = None,
                   sources: Sequence[str] | None = None, progress: bool = False) -> pd.DataFrame:
    """Knock out each input pair of ``target`` in turn and record a measure's change.

    ``change = measure(knockout(net, pairs=[(S, target)])) - measure(net)`` for every source
    type ``S`` that projects onto ``target``.

    Args:
        net: a :class:`~flygnn.network.Network`.
        target: the postsynaptic cell type.
        measure: ``net -> float`` or ``net -> dict/Series of floats`` (e.g. the ON and OFF DSI
            of T4a from :func:`flygnn.analysis.tuning.direction_selectivity_index`).
        sources: restrict to these presynaptic types (default all, in parameter order).
        progress: show a tqdm bar.

    Returns:
        for a scalar measure, columns ``value, intact, change`` indexed by ``source_type``
        (``intact``: the measure of the unablated network; for one release also under its
        deprecated name ``baseline``); for a mapping, columns ``(value | change, key)``.
    """
    if not _is_network(net):
        raise ValueError(f"net: expected a flygnn Network, got {type(net).__name__}")
    if not callable(measure):
        raise ValueError("measure must be a callable net -> float (or mapping of floats)")
    graph = net.graph
    _check_types(graph, [target], "target")
    inputs = [s for s, t in graph.pairs if t == target]
    if sources is not None:
        sources = _check_types(graph, sources, "sources")
        missing = [s for s in sources if s not in inputs]
        if missing:
            raise ValueError(f"sources: {missing} do not project onto {target}")
        inputs = [s for s in inputs if s in sources]
    intact = measure(net)
    iterator = inputs
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(inputs, desc=f"ablating inputs of {target}")
    values = [measure(knockout(net, pairs=[(s, target)])) for s in iterator]
    index = pd.Index(inputs, name="source_type")
    if np.isscalar(intact) or isinstance(intact, (torch.Tensor, np.ndarray)):
        value = np.array([float(v) for v in values])
        return pd.DataFrame({"value": value, "intact": float(intact),
                             "change": value - float(intact),
                             "baseline": float(intact)}, index=index)  # deprecated column
    base = pd.Series(intact, dtype=float)
    table = pd.DataFrame([pd.Series(v, dtype=float) for v in values], index=index)
    return pd.concat({"value": table, "change": table - base}, axis=1)
