"""The flat view: parameter groupings in flyvis's order, totals of section 14.1."""

import copy

import numpy as np
import pytest
import torch

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import FlatGraph, edges_frame, flatten


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> FlatGraph:
    return flatten(FlyVisConnectome(root=tmp_path_factory.mktemp("connectome"))[0])


def test_sizes_and_totals(flat):
    assert flat.num_nodes == 45669 and flat.num_edges == 1513231
    assert len(flat.pairs) == 604 and len(flat.offsets) == 2355
    n_syn = flat.n_syn.double()
    assert n_syn.sum().item() == pytest.approx(5440440.5689, abs=1e-3)
    assert (flat.sign.double() * n_syn).sum().item() == pytest.approx(910339.6098, abs=1e-3)


def test_offset_groups(flat):
    assert flat.offsets[:5] == [("R1", "L1", 0, 0), ("R1", "L2", 0, 0), ("R1", "L3", 0, 0),
                                ("R1", "Am", 0, 0), ("R1", "T1", 0, 0)]
    raw = torch.log(flat.offset_n_syn.double()).float()
    assert torch.allclose(raw[:5], torch.tensor([3.6888795, 3.8286414, 2.3978953, 3.5835190, 0.6931472]))
    assert torch.exp(raw).double().sum().item() == pytest.approx(8293.4522, abs=1e-3)
    # every edge's group carries that edge's count, pair and offset
    assert torch.equal(flat.offset_n_syn[flat.offset_index], flat.n_syn)
    keys = np.array([(flat.pairs.index((s, t)), du, dv) for s, t, du, dv in flat.offsets])
    idx = flat.offset_index.numpy()
    assert np.array_equal(keys[idx, 0], flat.pair_index.numpy())
    assert np.array_equal(keys[idx, 1], flat.du.numpy()) and np.array_equal(keys[idx, 2], flat.dv.numpy())
    lawf2 = [o for o in flat.offsets if o[:2] == ("Lawf2", "Lawf2")]
    assert (0, 0) in [o[2:] for o in lawf2] and (1, 0) not in [o[2:] for o in lawf2]


def test_pair_strength_initial_values(flat):
    strength = (0.01 / flat.pair_mean_n_syn).float()
    expected = torch.tensor([2.5000001e-4, 2.1739131e-4, 9.0909092e-4, 2.7777778e-4, 4.9999999e-3])
    assert torch.allclose(strength[:5], expected, rtol=1e-6)
    assert strength.double().sum().item() == pytest.approx(3.3234836, abs=1e-5)
    assert torch.equal(flat.pair_sign[flat.pair_index], flat.sign)


def test_type_helpers(flat):
    assert flat.type_slice("Lawf2") == slice(9496, 9619)
    nodes = flat.nodes_of(["Am", "R2"])
    assert nodes[:2].tolist() == [9619, 9620] and nodes[-1].item() == 2 * 721 - 1 and len(nodes) == 1442
    with pytest.raises(ValueError, match="XYZ"):
        flat.nodes_of(["XYZ"])


def test_flatten_rejects_other_objects():
    with pytest.raises(ValueError, match="HeteroData"):
        flatten({"nodes": []})


# ------------------------------------------------------------------ compact storage (issue 26)
def reference_flat(data) -> dict:
    """The flat edge tensors by plain concatenation (int64) and one global grouping of
    ``(pair, du, dv, count)`` in order of first appearance: an independent code path."""
    types = list(data.cell_types)
    ptr = np.concatenate([[0], np.cumsum([data[t].num_nodes for t in types])])
    stores = [(s, t, data[s, r, t]) for s, r, t in data.edge_types if "edge_index" in data[s, r, t]]
    out = {"source": torch.cat([st.edge_index[0] + int(ptr[types.index(s)]) for s, _, st in stores]),
           "target": torch.cat([st.edge_index[1] + int(ptr[types.index(t)]) for _, t, st in stores]),
           "pair_index": torch.cat([torch.full((st.edge_index.shape[1],), k)
                                    for k, (*_, st) in enumerate(stores)])}
    for name in ("du", "dv", "n_syn", "n_syn_certainty", "sign"):
        out[name] = torch.cat([st[name] for *_, st in stores])
    groups = {}
    keys = zip(out["pair_index"].tolist(), out["du"].tolist(), out["dv"].tolist(),
               out["n_syn"].tolist())
    out["offset_index"] = torch.tensor([groups.setdefault(k, len(groups)) for k in keys])
    return out


def assert_flat_equals_reference(graph: FlatGraph, data) -> None:
    ref = reference_flat(data)
    for name in ("source", "target", "pair_index", "offset_index"):
        assert getattr(graph, name).dtype == torch.int32, name
        assert torch.equal(getattr(graph, name).long(), ref[name]), name
    for name in ("du", "dv", "n_syn", "n_syn_certainty", "sign"):
        value = getattr(graph, name)
        assert value.dtype == ref[name].dtype, name
        assert value.numpy().tobytes() == ref[name].numpy().tobytes(), name  # bit for bit
    first = np.unique(ref["offset_index"].numpy(), return_index=True)[1]
    assert torch.equal(graph.offset_n_syn, ref["n_syn"][first])
    assert len(graph.offsets) == len(first)


def test_flatten_equals_plain_concatenation(data_small):
    graph = flatten(data_small)
    assert_flat_equals_reference(graph, data_small)
    # every attribute of a FlyVisConnectome is stored per pair or per offset, not per edge
    groups = {name: group for name, (group, _) in graph.edge_tables.items()}
    assert groups == {"du": "offset", "dv": "offset", "n_syn": "offset",
                      "n_syn_certainty": "pair", "sign": "pair"}
    assert all(len(table) < graph.num_edges for _, table in graph.edge_tables.values())


def test_flatten_keeps_attributes_that_vary_per_edge(data_small):
    data = copy.copy(data_small)  # stores are copied, tensors shared
    for k, edge_type in enumerate(data.edge_types[:3]):
        store = data[edge_type]
        n = store.edge_index.shape[1]
        sign = store.sign.clone()
        sign[n // 2:] = -sign[n // 2:]  # signs that change within a pair
        store.sign = sign
        store.n_syn_certainty = torch.linspace(0.1, 1.0, n)  # one certainty per edge
        if k == 0:
            store.n_syn = store.n_syn * torch.linspace(0.5, 2.0, n)  # counts along the lattice
            store.du = store.du.to(torch.int32)  # promoted to int64 as torch.cat does
    graph = flatten(data)
    assert_flat_equals_reference(graph, data)
    groups = {name: group for name, (group, _) in graph.edge_tables.items()}
    assert groups["sign"] == "edge" and groups["n_syn_certainty"] == "edge"
    assert groups["n_syn"] == "offset" and len(graph.offsets) > len(flatten(data_small).offsets)
    assert torch.equal(flatten(data_small).sign, reference_flat(data_small)["sign"])  # untouched
    with pytest.raises(ValueError, match="unknown edge attribute 'weight'"):
        graph.edge_attr("weight")


def test_frames_keep_int64_ids(graph_small):
    edges = edges_frame(graph_small)
    assert edges["source"].dtype == np.int64 and edges["target"].dtype == np.int64
    assert np.array_equal(edges["source"].to_numpy(), graph_small.source.numpy())
