"""FlyVisConnectome: exact parity with flyvis's graph, other extents, custom files, caching."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from flygnn import hexgrid
from flygnn._paths import default_connectome_file
from flygnn.connectome import fill_filter, read_connectome
from flygnn.datasets import FlyVisConnectome
from flygnn.flat import central_index, edges_frame, flatten, nodes_frame

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "flyvis"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return FlyVisConnectome(root=tmp_path_factory.mktemp("connectome"))[0]


@pytest.fixture(scope="module")
def tables():
    return np.load(REFERENCE / "connectome_tables.npz")


def test_nodes_equal_flyvis(data, tables):
    nodes = nodes_frame(data)
    assert len(nodes) == 45669
    assert (nodes["type"].to_numpy() == tables["node_type"]).all()
    assert (nodes["u"].to_numpy() == tables["node_u"]).all()
    assert (nodes["v"].to_numpy() == tables["node_v"]).all()
    assert (nodes["role"].to_numpy() == tables["node_role"]).all()


def test_edges_equal_flyvis(data, tables):
    edges = edges_frame(data)
    assert len(edges) == 1513231
    for column in ("source", "target", "du", "dv"):
        assert np.array_equal(edges[column].to_numpy(), tables[f"edge_{column}"].astype(np.int64))
    for column in ("n_syn", "n_syn_certainty"):
        assert np.array_equal(edges[column].to_numpy(), tables[f"edge_{column}"])
    assert np.array_equal(edges["sign"].to_numpy(), tables["edge_sign"].astype(np.float32))
    types = tables["node_type"]
    assert (edges["source_type"].to_numpy() == types[tables["edge_source"]]).all()
    assert (edges["target_type"].to_numpy() == types[tables["edge_target"]]).all()


def test_hetero_structure(data):
    spec = read_connectome(default_connectome_file())
    assert data.node_types == spec.names
    assert len(data.edge_types) == 604
    assert all(rel == "chem" for _, rel, _ in data.edge_types)
    pairs = [(f.source, f.target) for f in spec.filters if (f.source, f.target) != ("Lawf1", "Lawf1")]
    assert [(s, t) for s, _, t in data.edge_types] == pairs
    assert data.extent == 15 and data.cell_types == spec.names
    assert data.input_types == [f"R{i}" for i in range(1, 9)] and len(data.output_types) == 34
    assert data["R1"].role == "input" and data["T4a"].role == "output" and data["Mi1"].role == "intermediate"
    assert data["Lawf1"].num_nodes == 123 and data["T4a"].num_nodes == 721
    store = data["R1", "chem", "L1"]
    assert store.edge_index.dtype == torch.long and torch.equal(store.edge_index[0], store.edge_index[1])
    assert float(store.n_syn[0]) == 40.0 and float(store.sign[0]) == -1.0


def test_to_homogeneous_keeps_flat_order(data):
    flat = flatten(data)
    homo = data.to_homogeneous()
    assert torch.equal(homo.node_type, flat.node_type)
    assert torch.equal(homo.u, flat.u) and torch.equal(homo.v, flat.v)
    assert torch.equal(homo.edge_index[0], flat.source) and torch.equal(homo.edge_index[1], flat.target)


def test_central_index(data):
    expected = [360 + 721 * k for k in range(13)] + [9434, 9557] + [9979 + 721 * k for k in range(50)]
    assert central_index(data).tolist() == expected


def _brute_force_edges(spec, extent):
    """An independent, loop-based construction of the flat edge list."""
    nodes, index = [], {}
    for cell in spec.cell_types:
        us, vs = hexgrid.disk(0 if cell.single else extent)
        for u, v in zip(us.tolist(), vs.tolist()):
            if cell.single or (u % cell.stride[0] == 0 and v % cell.stride[1] == 0):
                index[(cell.name, u, v)] = len(nodes)
                nodes.append((cell.name, u, v))
    edges = []
    for f in spec.filters:
        sources = [(i, u, v) for i, (t, u, v) in enumerate(nodes) if t == f.source]
        for (du, dv), n in zip(*fill_filter(f.offsets, f.n_syn)):
            for i, u, v in sources:
                j = index.get((f.target, u + du, v + dv))
                if j is not None:
                    edges.append((i, j, du, dv, np.float32(n)))
    return nodes, edges


@pytest.mark.parametrize("extent", [1, 4])
def test_other_extents_match_brute_force(tmp_path, extent):
    spec = read_connectome(default_connectome_file())
    nodes, edges = _brute_force_edges(spec, extent)
    data = FlyVisConnectome(root=tmp_path, extent=extent)[0]
    flat = nodes_frame(data)
    assert list(zip(flat["type"], flat["u"], flat["v"])) == nodes
    frame = edges_frame(data)
    got = list(zip(frame["source"], frame["target"], frame["du"], frame["dv"], frame["n_syn"]))
    assert got == edges


def test_extent_bounds(tmp_path):
    for bad in (0, 26, 2.5, "15"):
        with pytest.raises(ValueError, match="extent"):
            FlyVisConnectome(root=tmp_path, extent=bad)
    n_lawf = len(hexgrid.disk(25, (3, 2))[0])
    assert n_lawf == sum(1 for u in range(-25, 26) for v in range(-25, 26)
                         if abs(u + v) <= 25 and u % 3 == 0 and v % 2 == 0)
    assert FlyVisConnectome(root=tmp_path, extent=25)[0].num_nodes == 63 * 1951 + 2 * n_lawf


def test_cache_is_reused_and_keyed_by_content(tmp_path):
    ds = FlyVisConnectome(root=tmp_path, extent=2)
    processed = Path(ds.processed_paths[0])
    stamp = processed.stat().st_mtime_ns
    again = FlyVisConnectome(root=tmp_path, extent=2)
    assert again.processed_paths[0] == str(processed) and processed.stat().st_mtime_ns == stamp
    assert FlyVisConnectome(root=tmp_path, extent=3).processed_paths[0] != str(processed)
    os.utime(processed, ns=(0, 0))
    FlyVisConnectome(root=tmp_path, extent=2, force_reload=True)
    assert processed.stat().st_mtime_ns != 0

    raw = json.loads(default_connectome_file().read_text())
    raw["edges"][0]["offsets"][0][1] = 41
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps(raw))
    mine = FlyVisConnectome(root=tmp_path, extent=2, file=custom)
    assert mine.processed_paths[0] != str(processed)
    assert float(mine[0]["R1", "chem", "L1"].n_syn[0]) == 41.0
    assert float(FlyVisConnectome(root=tmp_path, extent=2)[0]["R1", "chem", "L1"].n_syn[0]) == 40.0


def test_custom_file_errors_name_the_file(tmp_path):
    raw = json.loads(default_connectome_file().read_text())
    raw["edges"][1]["src"] = "Nobody"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="Nobody"):
        FlyVisConnectome(root=tmp_path / "cache", extent=2, file=bad)
    with pytest.raises(ValueError, match="not found"):
        FlyVisConnectome(root=tmp_path / "cache", file=tmp_path / "missing.json")


def test_transforms_apply(tmp_path):
    def mark(data):
        data.marked = True
        return data

    ds = FlyVisConnectome(root=tmp_path, extent=1, pre_transform=mark)
    assert ds[0].marked is True
