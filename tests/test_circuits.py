"""Circuit analysis: weighted type graph, paths, receptive fields, knockouts, input ablation."""

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn import hexgrid
from flygnn._paths import default_connectome_file
from flygnn.analysis import circuits as C
from flygnn.connectome import fill_filter, read_connectome
from flygnn.datasets import FlyVisConnectome
from flygnn.flat import edges_frame, flatten, nodes_frame
from flygnn.network import Network
from flygnn.simulate import simulate

EXTENT = 5


@pytest.fixture(scope="module")
def data():
    return FlyVisConnectome(extent=EXTENT)[0]


@pytest.fixture(scope="module")
def net(data):
    net = Network(data)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # distinct strengths per pair, so products are not degenerate
        net.syn_strength.mul_(1 + torch.rand(net.syn_strength.shape, generator=gen))
    return net


def _pair_weights(data, net=None) -> dict:
    """Hand computation: sign * sum of the pair's offset counts (* strength)."""
    edges = edges_frame(data)
    offsets = edges.drop_duplicates(["source_type", "target_type", "du", "dv"])
    counts = offsets.groupby(["source_type", "target_type"])["n_syn"].apply(
        lambda x: float(np.sum(x.to_numpy(np.float64))))
    sign = offsets.groupby(["source_type", "target_type"])["sign"].first()
    out = {k: float(sign[k]) * counts[k] for k in counts.index}
    if net is not None:
        strength = net.param_table("syn_strength")
        out = {k: w * float(strength[k]) for k, w in out.items()}
    return out


def test_weighted_type_graph_weights(net, data):
    graph = C.weighted_type_graph(net)
    expected = _pair_weights(data, net)
    assert graph.number_of_edges() == len(expected)
    for (s, t), w in expected.items():
        assert graph.edges[s, t]["weight"] == pytest.approx(w, rel=1e-6)
        assert graph.edges[s, t]["strength"] == pytest.approx(
            float(net.param_table("syn_strength")[(s, t)]), rel=0)


def test_paths_equal_hand_computed_products(data, net):
    for obj, weights in ((data, _pair_weights(data)), (net, _pair_weights(data, net))):
        table = C.paths(obj, "R1", "T4a", max_length=3)
        assert len(table) > 0
        for _, row in table.iterrows():
            path = row["path"]
            assert path[0] == "R1" and path[-1] == "T4a" and row["length"] == len(path) - 1
            w = [weights[(a, b)] for a, b in zip(path[:-1], path[1:])]
            assert row["weight_product"] == pytest.approx(np.prod(w), rel=1e-6)
            assert row["weight_sum"] == pytest.approx(np.sum(w), rel=1e-6)
            assert row["sign"] == np.prod(np.sign(w))
        mags = table["weight_product"].abs().to_numpy()
        assert np.all(np.diff(mags) <= 0)
    # every 3-synapse chain R1 -> X -> Y -> T4a is listed exactly once
    pairs = set(_pair_weights(data))
    types = {s for s, _ in pairs} | {t for _, t in pairs}
    chains = {("R1", x, y, "T4a") for x in types for y in types
              if len({"R1", x, y, "T4a"}) == 4 and ("R1", x) in pairs and (x, y) in pairs
              and (y, "T4a") in pairs}
    listed = {p for p in C.paths(data, "R1", "T4a", 3)["path"] if len(p) == 4}
    assert listed == chains


def test_paths_several_sources(data):
    table = C.paths(data, ["R1", "R2"], "Mi1", max_length=2)
    assert set(table["source"]) == {"R1", "R2"}
    assert all(p[0] == s for s, p in zip(table["source"], table["path"]))


def test_receptive_field_of_t4a_from_mi1_is_the_mirrored_filter(data):
    spec = read_connectome(default_connectome_file())
    filt = next(f for f in spec.filters if (f.source, f.target) == ("Mi1", "T4a"))
    offsets, counts = fill_filter(filt.offsets, filt.n_syn, 1.0)
    expected = {(-du, -dv): np.float32(n) for (du, dv), n in zip(offsets, counts)}
    field = C.receptive_field(data, "T4a", "Mi1")
    got = {(int(u), int(v)): np.float32(n) for u, v, n in zip(field.u, field.v, field.n_syn)}
    assert got == expected
    assert (field.du == -field.u).all() and (field.dv == -field.v).all()
    nodes = nodes_frame(data)
    assert (nodes.loc[field.node, "type"] == "Mi1").all()
    # an interior neuron away from the centre: the same field, translated
    moved = C.receptive_field(data, "T4a", "Mi1", target_uv=(1, -1))
    assert {(u - 1, v + 1) for u, v in zip(moved.u, moved.v)} == set(expected)


def test_projective_field_and_learned_weights(net):
    field = C.projective_field(net, "Mi1", "T4a")
    assert (field.u == field.du).all() and (field.v == field.dv).all()
    strength = float(net.param_table("syn_strength")[("Mi1", "T4a")])
    np.testing.assert_allclose(field.weight, field.n_syn * strength, rtol=1e-6)
    rf = C.receptive_field(net, "T4a", "Mi1")
    assert sorted(zip(rf.du, rf.dv)) == sorted(zip(field.du, field.dv))


def test_field_map(data):
    field = C.receptive_field(data, "T4a", "Mi1")
    values = C.field_map(field, EXTENT, "n_syn")
    u, v = hexgrid.disk(EXTENT)
    assert values.shape == (len(u),)
    assert values.sum() == pytest.approx(field.n_syn.sum())
    row = field.iloc[0]
    at = np.flatnonzero((u == row.u) & (v == row.v))[0]
    assert values[at] == pytest.approx(row.n_syn)
    assert np.count_nonzero(values) == len(field)


def test_heterodata_knockout_removes_exactly_outgoing_edges(data):
    before = edges_frame(data)
    n_types = len(data.edge_types)
    out = C.knockout(data, cell_types=["Mi1"], pairs=[("L1", "Tm3")])
    after = edges_frame(out)
    keep = (before.source_type != "Mi1") & ~((before.source_type == "L1")
                                             & (before.target_type == "Tm3"))
    pd.testing.assert_frame_equal(after, before[keep].reset_index(drop=True))
    assert len(data.edge_types) == n_types  # input untouched
    assert len(edges_frame(data)) == len(before)
    pd.testing.assert_frame_equal(nodes_frame(out), nodes_frame(data))
    assert any(t == "Mi1" for _, _, t in out.edge_types)  # Mi1 still receives input
    as_transform = C.Knockout(cell_types="Mi1")(data)
    assert set(as_transform.edge_types) == {k for k in data.edge_types if k[0] != "Mi1"}


def test_network_knockout_zeroes_strengths_of_outgoing_pairs(net):
    original = net.syn_strength.detach().clone()
    ko = C.knockout(net, cell_types=["Mi1"])
    assert ko is not net
    assert torch.equal(net.syn_strength.detach(), original)
    cut = torch.tensor([s == "Mi1" for s, _ in net.graph.pairs])
    assert torch.all(ko.syn_strength.detach()[cut] == 0)
    assert torch.equal(ko.syn_strength.detach()[~cut], original[~cut])
    assert sorted(ko.knocked_out) == sorted(p for p in net.graph.pairs if p[0] == "Mi1")
    with torch.no_grad():
        weight = ko.prepare().edge_weight()
    from_mi1 = net.graph.node_type[net.graph.source] == net.cell_types.index("Mi1")
    assert torch.all(weight[from_mi1] == 0) and torch.all(weight[~from_mi1] != 0)
    assert ko.num_nodes == net.num_nodes  # node set intact
    # training keeps the cut pairs cut: their gradients are zeroed
    (ko.syn_strength * torch.arange(1.0, len(cut) + 1)).sum().backward()
    assert torch.all(ko.syn_strength.grad[cut] == 0) and torch.all(ko.syn_strength.grad[~cut] > 0)
    twice = C.knockout(ko, pairs=[("L1", "Tm3")])
    assert set(twice.knocked_out) == set(ko.knocked_out) | {("L1", "Tm3")}


def test_photoreceptor_knockout_gives_no_light_response(net):
    dt, steps = 1 / 100, 20
    grey = torch.full((1, steps, net.n_hexals), 0.5)
    flash = torch.ones_like(grey)
    ko = C.knockout(net, cell_types=net.graph.input_types)
    with torch.no_grad():
        r_flash = simulate(ko, flash, dt, t_pre=0.2, record="central")
        r_grey = simulate(ko, grey, dt, t_pre=0.2, record="central")
        r_intact = simulate(net, flash, dt, t_pre=0.2, record="central")
        r_intact_grey = simulate(net, grey, dt, t_pre=0.2, record="central")
    inputs = [net.cell_types.index(t) for t in net.graph.input_types]
    others = [k for k in range(len(net.cell_types)) if k not in inputs]
    assert torch.equal(r_flash[..., others], r_grey[..., others])
    assert not torch.equal(r_flash[..., inputs], r_grey[..., inputs])  # R cells still see light
    assert (r_intact[..., others] - r_intact_grey[..., others]).abs().max() > 1e-3


def test_input_ablation_with_a_graph_measure(net):
    def in_weight(n):  # summed signed input weight onto T4a
        g = C.weighted_type_graph(n)
        return sum(g.edges[s, "T4a"]["weight"] for s in g.predecessors("T4a"))

    table = C.input_ablation(net, "T4a", in_weight)
    graph = C.weighted_type_graph(net)
    assert list(table.index) == [s for s, t in net.graph.pairs if t == "T4a"]
    for s, row in table.iterrows():
        assert row["change"] == pytest.approx(-graph.edges[s, "T4a"]["weight"], rel=1e-6,
                                              abs=1e-12)
        assert row["intact"] == pytest.approx(in_weight(net))


def test_input_ablation_with_a_simulation_measure(net):
    frame = torch.ones(1, 10, net.n_hexals)

    def measure(n):
        with torch.no_grad():
            r = simulate(n, frame, 1 / 100, t_pre=0.1, record="central")
        k = n.cell_types.index("T4a")
        return {"last": float(r[0, -1, k]), "mean": float(r[0, :, k].mean())}

    table = C.input_ablation(net, "T4a", measure, sources=["Mi1", "Tm3"])
    assert list(table.index) == ["Mi1", "Tm3"]
    direct = measure(C.knockout(net, pairs=[("Mi1", "T4a")]))
    base = measure(net)
    assert table.loc["Mi1", ("value", "last")] == pytest.approx(direct["last"])
    assert table.loc["Mi1", ("change", "mean")] == pytest.approx(direct["mean"] - base["mean"])


def test_knockout_rejects_unknown_cell_type(net):
    with pytest.raises(ValueError, match="unknown cell types"):
        C.knockout(net, cell_types=["NotAType"])


def test_knockout_rejects_unconnected_pair(data):
    with pytest.raises(ValueError, match="not connected"):
        C.knockout(data, pairs=[("T4a", "R1")])


def test_knockout_rejects_other_objects():
    with pytest.raises(ValueError, match="HeteroData or a Network"):
        C.knockout("graph", cell_types=["Mi1"])


def test_paths_rejects_bad_max_length(data):
    with pytest.raises(ValueError, match="max_length"):
        C.paths(data, "R1", "T4a", max_length=0)


def test_paths_rejects_unknown_type(data):
    with pytest.raises(ValueError, match="unknown cell types"):
        C.paths(data, "R1", "T9z")


def test_receptive_field_rejects_unconnected_pair(data):
    with pytest.raises(ValueError, match="not a connected type pair"):
        C.receptive_field(data, "R1", "T4a")


def test_receptive_field_rejects_missing_neuron(data):
    with pytest.raises(ValueError, match="target_uv"):
        C.receptive_field(data, "T4a", "Mi1", target_uv=(EXTENT + 1, 0))


def test_field_map_rejects_unknown_column(data):
    with pytest.raises(ValueError, match="column"):
        C.field_map(C.receptive_field(data, "T4a", "Mi1"), EXTENT, "nope")


def test_input_ablation_rejects_foreign_source(net):
    with pytest.raises(ValueError, match="do not project"):
        C.input_ablation(net, "T4a", lambda n: 0.0, sources=["R1"])


def test_flat_graph_is_accepted(data):
    g = flatten(data)
    assert C.paths(g, "R1", "L1", 1)["path"].tolist() == [("R1", "L1")]
