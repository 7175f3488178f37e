"""Neuron-level tables in and out: TableConnectome, to_tables, the round trip, named errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn import Network, simulate
from flygnn.datasets import FlyVisConnectome, TableConnectome, to_tables
from flygnn.flat import edges_frame, flatten, nodes_frame
from flygnn.tables import tables_to_graph

FIELDS = ["node_type", "u", "v", "type_ptr", "central_index", "source", "target", "du", "dv",
          "n_syn", "n_syn_certainty", "sign", "pair_index", "pair_sign", "pair_mean_n_syn",
          "offset_index", "offset_n_syn"]
LISTS = ["cell_types", "input_types", "output_types", "roles", "pairs", "relations", "offsets",
         "extent"]


def assert_same_graph(a, b):
    a, b = flatten(a), flatten(b)
    for name in LISTS:
        assert getattr(a, name) == getattr(b, name), name
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def responses(data, n_frames=12):
    net = Network(data)
    movie = torch.rand(2, n_frames, net.n_hexals, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return simulate(net, movie, dt=0.02)


@pytest.fixture(scope="module")
def tables(data_small, tmp_path_factory):
    return to_tables(data_small, tmp_path_factory.mktemp("tables"))


@pytest.fixture(scope="module")
def frames(tables):
    return {name: pd.read_csv(path) for name, path in tables.items()}


def test_round_trip_is_exact_and_simulates_the_same(data_small, tables, tmp_path):
    data = TableConnectome(root=tmp_path, **tables)[0]
    assert_same_graph(data, data_small)
    assert set(data.node_types) == set(data_small.node_types)
    for key in data_small.edge_types:
        for attr in ("edge_index", "n_syn", "sign", "du", "dv", "n_syn_certainty"):
            assert torch.equal(data[key][attr], data_small[key][attr]), (key, attr)
    np.testing.assert_allclose(responses(data).numpy(), responses(data_small).numpy(), atol=1e-6)


@pytest.mark.parametrize("fmt", ["parquet", "feather"])
def test_round_trip_through_arrow_formats(data_small, tmp_path, fmt):
    pytest.importorskip("pyarrow")
    paths = to_tables(data_small, tmp_path / "t", format=fmt)
    assert paths["neurons"].suffix == f".{fmt}"
    assert_same_graph(TableConnectome(root=tmp_path / "c", **paths)[0], data_small)


@pytest.mark.slow
def test_round_trip_at_extent_15(data15, tmp_path):
    paths = to_tables(data15, tmp_path / "t", format="parquet" if _has_arrow() else "csv")
    data = TableConnectome(root=tmp_path / "c", **paths)[0]
    assert_same_graph(data, data15)
    np.testing.assert_allclose(responses(data, 4).numpy(), responses(data15, 4).numpy(),
                               atol=1e-6)


def _has_arrow():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def test_cache_is_reused_and_keyed_by_content(tables, tmp_path, frames):
    ds = TableConnectome(root=tmp_path, **tables)
    processed = list((tmp_path / "processed").glob("tables-*.pt"))
    assert len(processed) == 1
    torch.load(processed[0], weights_only=True)  # a plain tensor file: safe to load
    stamp = processed[0].stat().st_mtime_ns
    again = TableConnectome(root=tmp_path, **tables)
    assert processed[0].stat().st_mtime_ns == stamp
    assert_same_graph(again[0], ds[0])
    changed = frames["synapses"].copy()
    changed.loc[0, "n_syn"] = 99.0
    path = tmp_path / "synapses2.csv"
    changed.to_csv(path, index=False)
    other = TableConnectome(root=tmp_path, **{**tables, "synapses": path})
    assert other.processed_paths[0] != ds.processed_paths[0]
    assert float(edges_frame(other[0]).n_syn[0]) == 99.0
    TableConnectome(root=tmp_path, force_reload=True, **tables)
    assert processed[0].stat().st_mtime_ns != stamp


def test_crop_to_smaller_extent_equals_flyvis_graph(tables, tmp_path, cache_root):
    cropped = TableConnectome(root=tmp_path, extent=2, **tables)[0]
    assert_same_graph(cropped, FlyVisConnectome(root=cache_root / "connectome", extent=2)[0])


def test_counts_need_not_be_translation_invariant(frames, data_small):
    syn = frames["synapses"].copy()
    syn["n_syn"] = syn["n_syn"] * np.linspace(0.5, 2.0, len(syn))
    data = tables_to_graph(frames["neurons"], syn, frames["types"])
    net = Network(data)
    per_edge = torch.exp(net.syn_count.double())[net.offset_index]
    np.testing.assert_allclose(per_edge.numpy(), syn["n_syn"].to_numpy(), rtol=1e-6)
    # type-pair parameters are unchanged in number
    assert len(net.syn_strength) == len(flatten(data_small).pairs)


def test_transmitters_stand_in_for_signs(frames, data_small):
    types = frames["types"].copy()
    types["transmitter"] = np.where(types.pop("sign") > 0, "ACH", "gaba")
    syn = frames["synapses"].drop(columns="sign")
    data = tables_to_graph(frames["neurons"], syn, types)
    signs = edges_frame(data).groupby("source_type").sign.first()
    expected = frames["types"].set_index("type").sign
    assert (signs == expected[signs.index]).all()
    flipped = tables_to_graph(frames["neurons"], syn, types, transmitter_signs={"ach": -1})
    assert (edges_frame(flipped).sign == -1).all()
    types.loc[3, "transmitter"] = "nitric oxide"
    with pytest.raises(ValueError, match=r"types: row 3, column 'transmitter'.*nitric"):
        tables_to_graph(frames["neurons"], syn, types, files=("neurons", "synapses", "types"))


def toy_tables():
    """Two input types on extent 1, one hidden type with a wide-field cell, one output."""
    cols = [(0, 0), (0, 1), (1, 0), (-1, 1), (1, -1), (0, -1), (-1, 0)]
    rows = [(k, t, u, v) for t in ("R", "T") for k, (u, v) in enumerate(cols, 100 if t == "R"
                                                                         else 200)]
    rows += [(300, "W", np.nan, np.nan), (301, "W", np.nan, np.nan), (302, "W", 0, 0),
             (400, "S", np.nan, np.nan)]
    neurons = pd.DataFrame(rows, columns=["id", "type", "u", "v"])
    synapses = pd.DataFrame({"pre": [100, 101, 100, 300, 302, 400, 100],
                             "post": [200, 201, 302, 200, 400, 202, 400],
                             "n_syn": [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 2.0]})
    types = pd.DataFrame({"type": ["R", "W", "S", "T"], "sign": [1, -1, 1, 1],
                          "role": ["input", "hidden", "hidden", "output"]})
    return neurons, synapses, types


def test_rows_without_a_column():
    neurons, synapses, types = toy_tables()
    data = tables_to_graph(neurons, synapses, types)
    assert data["W"].num_nodes == 1 and data["S"].num_nodes == 1  # W's uncolumned dropped
    assert (int(data["S"].u), int(data["S"].v)) == (0, 0)  # a lone uncolumned cell: (0, 0)
    frame = edges_frame(data)
    assert len(frame) == 6 and 6.0 not in frame.n_syn.tolist()  # 300 -> 200 dropped
    kept = tables_to_graph(neurons, synapses, types, uncolumned="center")
    assert kept["W"].num_nodes == 3 and len(edges_frame(kept)) == 7
    assert nodes_frame(kept).query("type == 'W'")[["u", "v"]].abs().sum().sum() == 0
    wide = neurons[neurons.id != 302]  # W without any columned neuron: the type goes
    dropped = tables_to_graph(wide, synapses[(synapses.pre != 302) & (synapses.post != 302)],
                              types)
    assert dropped.cell_types == ["R", "S", "T"]
    assert all("W" not in (s, t) for s, _, t in dropped.edge_types)
    with pytest.raises(ValueError, match=r"input types \['R'\] have no neurons"):
        tables_to_graph(neurons.assign(u=np.where(neurons.type == "R", np.nan, neurons.u),
                                       v=np.where(neurons.type == "R", np.nan, neurons.v)),
                        synapses, types)
    net = Network(kept)
    assert net.graph.extent == 1 and net.n_hexals == 7
    with torch.no_grad():
        out = simulate(net, torch.ones(1, 5, 7), dt=0.02)
    assert torch.isfinite(out).all()


def test_central_neuron_is_the_nearest_when_none_sits_at_the_centre():
    neurons, synapses, types = toy_tables()
    neurons.loc[neurons.id == 302, ["u", "v"]] = (1, 0)
    graph = flatten(tables_to_graph(neurons, synapses, types, uncolumned="center"))
    w = graph.type_slice("W")
    assert int(graph.central_index[graph.cell_types.index("W")]) == w.start  # (0, 0) rows first
    graph = flatten(tables_to_graph(neurons, synapses, types))
    k = graph.cell_types.index("W")
    assert (int(graph.u[graph.central_index[k]]), int(graph.v[graph.central_index[k]])) == (1, 0)


def _edit(frames, name, fn):
    out = {k: v.copy() for k, v in frames.items()}
    edited = fn(out[name])  # edits in place (returns None) or returns the edited frame
    if edited is not None:
        out[name] = edited
    return out


BAD = [
    ("synapses", lambda f: f.__setitem__("pre", f["pre"].where(f.index != 5, 10**9)),
     r"synapses: row 5, column 'pre': unknown neuron id"),
    ("synapses", lambda f: f.__setitem__("post", f["post"].where(f.index != 7, -3)),
     r"synapses: row 7, column 'post': unknown neuron id"),
    ("neurons", lambda f: f.__setitem__("type", f["type"].where(f.index != 2, "Xx")),
     r"neurons: row 2, column 'type': unknown cell type 'Xx'"),
    ("neurons", lambda f: f.__setitem__("id", f["id"].where(f.index != 9, 0)),
     r"neurons: row 9, column 'id': duplicate neuron id 0"),
    ("synapses", lambda f: f.__setitem__("n_syn", f["n_syn"].where(f.index != 4, -1.0)),
     r"synapses: row 4, column 'n_syn': expected a positive finite count"),
    ("synapses", lambda f: f.__setitem__("n_syn", f["n_syn"].where(f.index != 6, np.inf)),
     r"synapses: row 6, column 'n_syn'"),
    ("synapses", lambda f: f.__setitem__("n_syn", f["n_syn"].where(f.index != 8, np.nan)),
     r"synapses: row 8, column 'n_syn'"),
    ("types", lambda f: f.__setitem__("role", f["role"].where(f.index != 1, "sensory")),
     r"types: row 1, column 'role': unknown role 'sensory'"),
    ("types", lambda f: f.__setitem__("sign", f["sign"].where(f.index != 2, 0)),
     r"types: row 2, column 'sign': expected \+1 or -1"),
    ("types", lambda f: f.__setitem__("type", f["type"].where(f.index != 3, f["type"][0])),
     r"types: row 3, column 'type': duplicate cell type"),
    ("neurons", lambda f: f.__setitem__("u", f["u"].where(f.index != 11, 0.5)),
     r"neurons: row 11, column 'u': expected an integer"),
    ("neurons", lambda f: f.drop(columns="v"),
     r"neurons: column 'v' missing"),
    ("synapses", lambda f: f.drop(columns="n_syn"),
     r"synapses: column 'n_syn' missing"),
    ("types", lambda f: f.drop(columns="sign"),
     r"types: column 'sign' missing"),
    ("neurons", lambda f: f.drop(index=3),
     r"neurons: input type 'R1' is missing column"),
    ("synapses", lambda f: f.__setitem__("sign", f["sign"].where(f.index != 1, -f["sign"])),
     r"synapses: row 1, column 'sign': signs differ within the type pair"),
]


@pytest.mark.parametrize("name, edit, message", BAD, ids=[m.split(":")[1][:40] for *_, m in BAD])
def test_bad_tables_get_named_errors(frames, name, edit, message):
    f = _edit(frames, name, edit)
    with pytest.raises(ValueError, match=message):
        tables_to_graph(f["neurons"], f["synapses"], f["types"],
                        files=("neurons", "synapses", "types"))


def test_duplicate_connection_is_named(frames):
    syn = pd.concat([frames["synapses"], frames["synapses"].iloc[[10]]], ignore_index=True)
    with pytest.raises(ValueError, match=rf"synapses: row {len(syn) - 1}, column 'pre/post'"):
        tables_to_graph(frames["neurons"], syn, frames["types"],
                        files=("neurons", "synapses", "types"))


def test_files_are_named_in_errors(tables, tmp_path, frames):
    bad = frames["types"].copy()
    bad.loc[0, "role"] = "eye"
    path = tmp_path / "my_types.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"my_types\.csv: row 0, column 'role'"):
        TableConnectome(root=tmp_path / "c", **{**tables, "types": path})
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        TableConnectome(root=tmp_path / "c", **{**tables, "types": tmp_path / "nope.csv"})
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"t\.xlsx: unknown table format"):
        TableConnectome(root=tmp_path / "c", **{**tables, "types": tmp_path / "t.xlsx"})
    with pytest.raises(ValueError, match="needs the synapses table"):
        TableConnectome(root=tmp_path / "c", neurons=tables["neurons"], types=tables["types"])


def test_pack_round_trip_and_schema_guard(data_small, tables, tmp_path):
    from flygnn.tables import pack, unpack

    assert_same_graph(unpack(pack(data_small)), data_small)

    def tag(data):
        data["R1"].extra = torch.zeros(data["R1"].num_nodes)
        return data

    with pytest.raises(ValueError, match=r"cannot cache attributes \['extra'\]"):
        TableConnectome(root=tmp_path, pre_transform=tag, **tables)
    ds = TableConnectome(root=tmp_path, transform=tag, **tables)
    assert ds[0]["R1"].extra.shape == (ds[0]["R1"].num_nodes,)


def test_round_trip_of_transformed_graphs(data_small, tmp_path):
    from flygnn.transforms import Knockout, LatticeDensity, RewireDegreePreserving

    graph = Knockout("Mi4")(LatticeDensity({"Tm3": (2, 1)})(RewireDegreePreserving(5)(data_small)))
    again = TableConnectome(root=tmp_path / "c", **to_tables(graph, tmp_path / "t"))[0]
    assert_same_graph(again, graph)
