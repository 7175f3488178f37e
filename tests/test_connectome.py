"""Reading and validating connectome files; filling filter gaps."""

import json

import pytest

from flygnn._paths import default_connectome_file
from flygnn.connectome import fill_filter, read_connectome


@pytest.fixture
def raw():
    return json.loads(default_connectome_file().read_text())


def test_shipped_file_counts():
    spec = read_connectome(default_connectome_file())
    assert len(spec.cell_types) == 65 and len(spec.filters) == 605
    assert spec.input_types == tuple(f"R{i}" for i in range(1, 9))
    assert len(spec.output_types) == 34 and spec.output_types[0] == "T1"
    assert sum(len(f.offsets) for f in spec.filters) == 2140
    filled = sum(len(fill_filter(f.offsets, f.n_syn)[0]) for f in spec.filters)
    assert filled == 2378
    strides = {c.name: c.stride for c in spec.cell_types if c.stride != (1, 1)}
    assert strides == {"Lawf1": (3, 2), "Lawf2": (3, 2)}
    assert sum(f.sign > 0 for f in spec.filters) == 377


def test_fill_square_adds_interior_and_upper_boundary_but_not_bottom_edge():
    corners = [(0, 0), (2, 0), (0, 2), (2, 2)]
    offsets, counts = fill_filter(corners, [5.0] * 4, fill=1.0)
    assert offsets[:4] == corners and counts[:4] == [5.0] * 4
    added = offsets[4:]
    # bottom edge dv == 0 excluded: (1, 0); all other boundary and interior points added
    assert added == [(0, 1), (1, 1), (1, 2), (2, 1)]
    assert counts[4:] == [1.0] * 4


def test_fill_triangle_and_degenerate_cases():
    offsets, _ = fill_filter([(0, 0), (4, 0), (0, 4)], [1, 1, 1], fill=2.0)
    added = set(offsets[3:])
    expected = {(du, dv) for du in range(5) for dv in range(1, 5) if du + dv <= 4} - {(0, 4)}
    assert added == expected
    assert fill_filter([(0, 0), (1, 1), (2, 2)], [1, 1, 1])[0] == [(0, 0), (1, 1), (2, 2)]
    assert fill_filter([(0, 0), (3, 3)], [1, 1])[0] == [(0, 0), (3, 3)]
    assert fill_filter([(0, 0), (2, 0), (0, 2)], [1, 1, 1], fill=0)[0] == [(0, 0), (2, 0), (0, 2)]


def _write(tmp_path, raw):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    return path


def _expect(path, *words):
    with pytest.raises(ValueError) as err:
        read_connectome(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"nodes": [')
    _expect(path, "not valid JSON")


def test_missing_field(tmp_path, raw):
    del raw["edges"][3]["alpha"]
    _expect(_write(tmp_path, raw), "edges[3]", "'alpha'", "missing")


def test_missing_top_level_field(tmp_path, raw):
    del raw["output_units"]
    _expect(_write(tmp_path, raw), "output_units", "missing")


def test_unknown_cell_type(tmp_path, raw):
    raw["edges"][7]["tar"] = "T99"
    _expect(_write(tmp_path, raw), "edges[7]", "'tar'", "T99")


def test_non_integer_offset(tmp_path, raw):
    raw["edges"][2]["offsets"][0][0][1] = 0.5
    _expect(_write(tmp_path, raw), "edges[2]", "offsets[0].dv", "integer")


def test_negative_count(tmp_path, raw):
    raw["edges"][5]["offsets"][0][1] = -3
    _expect(_write(tmp_path, raw), "edges[5]", "offsets[0].n_syn", "positive")


def test_duplicate_cell_type(tmp_path, raw):
    raw["nodes"][9]["name"] = raw["nodes"][8]["name"]
    _expect(_write(tmp_path, raw), "nodes[9]", "duplicate", "L1")


def test_bad_pattern(tmp_path, raw):
    raw["nodes"][0]["pattern"] = ["spiral", 3]
    _expect(_write(tmp_path, raw), "nodes[0]", "'pattern'", "spiral")


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.json", "not found")
