"""networkx views: type-level graph values and the neuron-level export."""

import pandas as pd
import pytest

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import edges_frame, flatten
from flygnn.graph import to_networkx, type_graph


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return FlyVisConnectome(root=tmp_path_factory.mktemp("connectome"), extent=3)[0]


def test_type_graph_values(data):
    graph = type_graph(data)
    edges = edges_frame(data)
    grouped = edges.groupby(["source_type", "target_type"], sort=False)["n_syn"]
    assert graph.number_of_nodes() == 65 and graph.number_of_edges() == grouped.ngroups
    for (s, t), col in grouped:
        attrs = graph.edges[s, t]
        assert attrs["n_edges"] == len(col)
        assert attrs["n_syn_total"] == pytest.approx(col.astype(float).sum())
        assert attrs["n_syn_mean"] == pytest.approx(col.astype(float).mean())
    assert graph.edges["R1", "L1"]["sign"] == -1.0 and graph.edges["R1", "L1"]["n_syn_filter"] == 40.0
    assert graph.nodes["Lawf1"]["n_neurons"] == 7 and graph.nodes["R1"]["role"] == "input"


def test_type_graph_weights(data):
    flat = flatten(data)
    weights = pd.Series(2.0, index=pd.MultiIndex.from_tuples(flat.pairs))
    graph = type_graph(data, weights=weights)
    assert graph.edges["R1", "L1"]["weight"] == -80.0
    with pytest.raises(ValueError, match="type pair"):
        type_graph(data, weights={("R1", "L1"): 1.0})


def test_neuron_level_export(data):
    graph = to_networkx(data)
    edges = edges_frame(data)
    assert graph.number_of_nodes() == flatten(data).num_nodes
    assert graph.number_of_edges() == len(edges)
    row = edges.iloc[1234]
    attrs = graph.edges[int(row.source), int(row.target)]
    assert attrs["n_syn"] == pytest.approx(float(row.n_syn)) and attrs["du"] == row.du
    assert graph.nodes[int(row.source)]["type"] == row.source_type
    with pytest.raises(ValueError, match="max_edges"):
        to_networkx(data, max_edges=10)
