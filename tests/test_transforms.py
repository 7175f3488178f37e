"""Null models and perturbations: each transform keeps what it promises, reproducibly."""

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn import Network, simulate
from flygnn.analysis import circuits
from flygnn.flat import edges_frame, flatten, nodes_frame
from flygnn.transforms import (
    Knockout,
    LatticeDensity,
    RewireDegreePreserving,
    RewireLocal,
    ScaleSynapses,
)


def frame(data):
    """Edges with the endpoints' coordinates (by flat index) and local indices."""
    e = edges_frame(data)
    n = nodes_frame(data)
    for end in ("source", "target"):
        e[f"{end}_u"] = n.u.to_numpy()[e[end]]
        e[f"{end}_v"] = n.v.to_numpy()[e[end]]
    return e


def degrees(e, end):
    return e.groupby(["source_type", "target_type", end]).size().sort_index()


def assert_consistent(e):
    """Offsets match the endpoints and there are no multi-edges."""
    assert (e.du == e.target_u - e.source_u).all() and (e.dv == e.target_v - e.source_v).all()
    assert not e.duplicated(["source", "target"]).any()


def changed(a, b):
    return float(((a.source != b.source) | (a.target != b.target)).mean())


def test_degree_preserving_rewiring_keeps_degrees(data_small):
    before = frame(data_small)
    out = RewireDegreePreserving(seed=1)(data_small)
    after = frame(out)
    pd.testing.assert_series_equal(degrees(after, "source"), degrees(before, "source"))
    pd.testing.assert_series_equal(degrees(after, "target"), degrees(before, "target"))
    assert (after.source == before.source).all()  # each edge keeps its source ...
    assert (after.n_syn == before.n_syn).all()  # ... and its count
    assert_consistent(after)
    assert changed(before, after) > 0.5
    pd.testing.assert_frame_equal(frame(data_small), before)  # input untouched
    pd.testing.assert_frame_equal(frame(RewireDegreePreserving(seed=1)(data_small)), after)
    assert changed(after, frame(RewireDegreePreserving(seed=2)(data_small))) > 0.5


def test_locality_preserving_rewiring_keeps_offsets(data_small):
    # free some slots first: keep every other edge, so that sources can change
    sparse = data_small.clone()
    for key in sparse.edge_types:
        store = sparse[key]
        keep = torch.arange(store.edge_index.shape[1]) % 2 == 0
        for attr in ("n_syn", "n_syn_certainty", "sign", "du", "dv"):
            store[attr] = store[attr][keep]
        store.edge_index = store.edge_index[:, keep]
    before = frame(sparse)
    after = frame(RewireLocal(seed=0)(sparse))
    assert_consistent(after)
    cols = ["source_type", "target_type", "du", "dv", "n_syn"]
    assert (after[cols] == before[cols]).all().all()  # every edge keeps offset and count
    assert changed(before, after) > 0.3
    assert not degrees(after, "source").equals(degrees(before, "source"))  # degrees move
    pd.testing.assert_frame_equal(frame(RewireLocal(seed=0)(sparse)), after)


def test_locality_preserving_rewiring_of_a_filter_graph_is_the_identity(data_small):
    pd.testing.assert_frame_equal(frame(RewireLocal(seed=3)(data_small)), frame(data_small))


def test_distance_preserving_rewiring(data_small):
    before = frame(data_small)
    after = frame(RewireLocal(seed=0, keep="distance")(data_small))
    assert_consistent(after)

    def dist(e):
        return (e.du.abs() + e.dv.abs() + (e.du + e.dv).abs()) // 2

    assert (dist(after) == dist(before)).all()
    assert (after.source == before.source).all() and (after.n_syn == before.n_syn).all()
    assert 0.1 < changed(before, after) < 1.0
    with pytest.raises(ValueError, match="keep"):
        RewireLocal(keep="angle")


def test_scale_synapses(data_small):
    before = edges_frame(data_small)
    twice = edges_frame(ScaleSynapses(2.0)(data_small))
    np.testing.assert_allclose(twice.n_syn, 2 * before.n_syn, rtol=1e-6)
    noisy = edges_frame(ScaleSynapses(noise_std=0.3, seed=4)(data_small))
    ratio = noisy.n_syn / before.n_syn
    assert (noisy.n_syn > 0).all() and ratio.std() > 0.2
    assert abs(ratio.mean() - 1) < 0.01  # mean-one log-normal noise
    pd.testing.assert_frame_equal(edges_frame(ScaleSynapses(noise_std=0.3, seed=4)(data_small)),
                                  noisy)
    only = edges_frame(ScaleSynapses(3.0, pairs=[("L1", "Mi1")])(data_small))
    pair = (before.source_type == "L1") & (before.target_type == "Mi1")
    np.testing.assert_allclose(only.n_syn[pair], 3 * before.n_syn[pair], rtol=1e-6)
    assert (only.n_syn[~pair] == before.n_syn[~pair]).all()
    for bad in ({"factor": 0}, {"noise_std": -1}):
        with pytest.raises(ValueError):
            ScaleSynapses(**bad)
    with pytest.raises(ValueError, match="not connected"):
        ScaleSynapses(2.0, pairs=[("T4a", "R1")])(data_small)


def test_lattice_density(data_small):
    out = LatticeDensity({"Mi1": (2, 2)})(data_small)
    mi1 = data_small["Mi1"]
    keep = (mi1.u % 2 == 0) & (mi1.v % 2 == 0)
    assert torch.equal(out["Mi1"].u, mi1.u[keep]) and torch.equal(out["Mi1"].v, mi1.v[keep])
    before, after = frame(data_small), frame(out)
    assert_consistent(after)
    cols = ["source_type", "target_type", "source_u", "source_v", "target_u", "target_v",
            "n_syn", "sign"]

    def gone(e):
        return ((e.source_type == "Mi1") & ((e.source_u % 2 != 0) | (e.source_v % 2 != 0))) | (
            (e.target_type == "Mi1") & ((e.target_u % 2 != 0) | (e.target_v % 2 != 0)))

    pd.testing.assert_frame_equal(after[cols], before[~gone(before)][cols].reset_index(drop=True))
    flat = flatten(out)
    assert flat.central_index.numel() == len(flat.cell_types)
    more = edges_frame(LatticeDensity({"Mi1": (2, 2)}, compensate=True)(data_small))
    ratio = mi1.num_nodes / int(keep.sum())
    from_mi1 = more.source_type == "Mi1"
    np.testing.assert_allclose(more.n_syn[from_mi1], after.n_syn[from_mi1] * ratio, rtol=1e-6)
    with pytest.raises(ValueError, match="input types"):
        LatticeDensity({"R1": (2, 2)})(data_small)
    with pytest.raises(ValueError, match="positive integers"):
        LatticeDensity({"Mi1": (0, 2)})


def test_knockout_is_the_circuits_transform(data_small):
    assert circuits.Knockout is Knockout
    out = Knockout(cell_types="Mi1", pairs=[("L1", "Tm3")])(data_small)
    assert all(s != "Mi1" for s, _, _ in out.edge_types)
    assert ("L1", "chem", "Tm3") not in out.edge_types
    assert len(out.edge_types) == len(data_small.edge_types) - 1 - sum(
        s == "Mi1" for s, _, _ in data_small.edge_types)


@pytest.mark.parametrize("transform", [RewireDegreePreserving(0), RewireLocal(0, "distance"),
                                       ScaleSynapses(1.5, 0.2), LatticeDensity({"Mi1": (2, 1)}),
                                       Knockout("Mi1")], ids=repr)
def test_networks_simulate_on_transformed_graphs(data_small, transform):
    net = Network(transform(data_small))
    with torch.no_grad():
        out = simulate(net, torch.full((1, 6, net.n_hexals), 0.5), dt=0.02)
    assert out.shape[-1] == net.num_nodes and torch.isfinite(out).all()
