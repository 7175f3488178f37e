"""Bad connectome files and graphs: each error is a ValueError naming the file (or graph), the
entry and the field, never a raw traceback, a silent NaN or a hang."""

import json
import time

import pytest
import tiny_connectome as tc
import torch

from flygnn.connectome import MAX_FILL_BOX, fill_filter, read_connectome
from flygnn.datasets import FlyVisConnectome, build_graph
from flygnn.flat import flatten
from flygnn.network import Network


def _expect(path, *words):
    with pytest.raises(ValueError) as err:
        read_connectome(path)
    message = str(err.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


def _edit(tmp_path, change):
    raw = tc.raw()
    change(raw)
    return tc.write(tmp_path, raw)


def test_the_tiny_connectome_is_valid(tmp_path):
    spec = read_connectome(tc.write(tmp_path))
    assert spec.names == ["R1", "L1", "T1"] and spec.input_types == ("R1",)
    data = build_graph(spec, extent=2)
    assert data["R1"].num_nodes == 19 and data["R1", "chem", "L1"].edge_index.shape[0] == 2


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_synapse_count(tmp_path, value):
    def change(raw):
        raw["edges"][0]["offsets"][1][1] = value
    _expect(_edit(tmp_path, change), "edges[0] (R1->L1)", "offsets[1].n_syn", "finite")


def test_infinity_spelled_in_the_file(tmp_path):
    text = json.dumps(tc.raw()).replace('[[0, 0], 2.0]', '[[0, 0], Infinity]')
    path = tmp_path / "inf.json"
    path.write_text(text)
    _expect(path, "edges[1] (L1->T1)", "offsets[0].n_syn", "inf")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1.0", None])
def test_bad_lambda_mult(tmp_path, value):
    def change(raw):
        raw["edges"][2]["lambda_mult"] = value
    _expect(_edit(tmp_path, change), "edges[2] (L1->L1)", "'lambda_mult'")


@pytest.mark.parametrize("offset", [[100000, 0], [-3, 1e30], [1e30, 1e30]])
def test_huge_offsets_are_refused_without_overflow(tmp_path, offset):
    def change(raw):
        raw["edges"][1]["offsets"][0][0] = offset
    _expect(_edit(tmp_path, change), "edges[1] (L1->T1)", "offsets[0]", "10,000")


def test_an_offset_span_too_large_to_fill_is_refused_quickly(tmp_path):
    def change(raw):  # a 1,201 x 1,201 box: would take seconds to fill
        raw["edges"][0]["offsets"] = [[[-600, -600], 1.0], [[600, -600], 1.0], [[0, 600], 1.0]]
    spec = read_connectome(_edit(tmp_path, change))
    start = time.perf_counter()
    with pytest.raises(ValueError) as err:
        build_graph(spec, extent=2)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert spec.path in message and "R1->L1" in message and f"{MAX_FILL_BOX:,}" in message
    build_graph(spec, extent=2, n_syn_fill=0)  # without filling it builds


def test_fill_filter_names_the_box():
    with pytest.raises(ValueError, match="du -200..200"):
        fill_filter([(-200, 0), (200, 0), (0, 200)], [1, 1, 1])


def test_deeply_nested_json(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    _expect(path, "nested too deeply")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"nodes": [{"name": "L\xe9"}]}'.encode("latin-1"))
    _expect(path, "UTF-8")


def test_a_folder_instead_of_a_file(tmp_path):
    _expect(tmp_path, "not readable")


def test_no_input_types(tmp_path):
    def change(raw):
        raw["input_units"] = []
    _expect(_edit(tmp_path, change), "'input_units'", "at least one")


def test_unknown_input_type(tmp_path):
    def change(raw):
        raw["input_units"] = ["R9"]
    _expect(_edit(tmp_path, change), "input_units[0]", "R9")


def test_boolean_alpha(tmp_path):
    def change(raw):
        raw["edges"][0]["alpha"] = True
    _expect(_edit(tmp_path, change), "edges[0]", "'alpha'")


def test_edge_list_not_a_list_of_objects(tmp_path):
    def change(raw):
        raw["edges"][1] = "L1->T1"
    _expect(_edit(tmp_path, change), "edges[1]", "expected an object")


def test_dataset_names_the_callers_file(tmp_path):
    def change(raw):
        raw["edges"][0]["lambda_mult"] = float("nan")
    path = _edit(tmp_path, change)
    with pytest.raises(ValueError) as err:
        FlyVisConnectome(root=tmp_path / "cache", extent=2, file=path)
    assert str(path) in str(err.value) and "'lambda_mult'" in str(err.value)


@pytest.mark.parametrize("extent", [0, 26, 2.0, "3", True])
def test_bad_extent(tmp_path, extent):
    with pytest.raises(ValueError, match="extent"):
        FlyVisConnectome(root=tmp_path, extent=extent, file=tc.write(tmp_path))


# --------------------------------------------------------------------------- HeteroData


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return FlyVisConnectome(root=folder / "cache", extent=2, file=tc.write(folder))[0]


def _graph_error(data, *words):
    with pytest.raises(ValueError) as err:
        Network(data)
    message = str(err.value)
    assert "connectome HeteroData" in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("field", ["n_syn", "du", "sign", "n_syn_certainty"])
def test_heterodata_missing_an_edge_attribute(tiny, field):
    data = tiny.clone()
    del data["R1", "chem", "L1"][field]
    _graph_error(data, "('R1', 'chem', 'L1')", field)


def test_heterodata_missing_a_node_type(tiny):
    data = tiny.clone()
    del data["L1"]
    _graph_error(data, "'L1'", "missing")


def test_heterodata_missing_node_positions(tiny):
    data = tiny.clone()
    del data["T1"].u
    _graph_error(data, "'T1'", "'u'")


def test_heterodata_with_non_finite_counts(tiny):
    data = tiny.clone()
    data["L1", "chem", "T1"].n_syn[0] = float("nan")
    _graph_error(data, "('L1', 'chem', 'T1')", "'n_syn'", "NaN")


def test_heterodata_with_a_short_attribute(tiny):
    data = tiny.clone()
    data["L1", "chem", "T1"].sign = data["L1", "chem", "T1"].sign[:-1]
    _graph_error(data, "('L1', 'chem', 'T1')", "'sign'", "shape")


def test_heterodata_without_input_types(tiny):
    data = tiny.clone()
    data.input_types = []
    _graph_error(data, "'input_types'", "empty")


def test_heterodata_without_edges(tiny):
    data = tiny.clone()
    for edge_type in list(data.edge_types):
        del data[edge_type]
    _graph_error(data, "no edges")


def test_not_a_heterodata():
    with pytest.raises(ValueError, match="HeteroData"):
        flatten(torch.zeros(3))
