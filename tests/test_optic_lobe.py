"""Adapters for the public optic-lobe exports, on small files with the published headers."""

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn import Network, hexgrid, simulate
from flygnn.datasets import TableConnectome
from flygnn.flat import edges_frame, flatten
from flygnn.optic_lobe import flywire_tables, hex_to_axial, neuprint_tables, write_tables

CENTER = (10, 7)  # (p, q) / (hex1, hex2) of the centre column in the fake files


def fake_optic_lobe(extent=2):
    """Columns of a small eye in 120-degree coordinates, four columnar types, one wide-field
    cell, and connections within a column and to the +p neighbour (one row per neuropil)."""
    u, v = hexgrid.disk(extent + 1)  # one ring more than used: cropping is exercised
    a, b = u + CENTER[0], -v + CENTER[1]
    rows, ident = [], 1000
    for t in ("R7", "L1", "Mi1", "T4a"):
        for p, q in zip(a.tolist(), b.tolist()):
            rows.append((ident, t, p, q))
            ident += 1
    cells = pd.DataFrame(rows, columns=["id", "type", "p", "q"])
    cells.loc[len(cells)] = (9999, "Pm01", np.nan, np.nan)
    by = {(t, p, q): i for i, t, p, q in cells.dropna().itertuples(index=False)}
    conn = []
    for (t, p, q), i in by.items():
        if t in ("R7", "L1"):
            conn.append((i, by[("Mi1", p, q)], "ME_R", 4))
            conn.append((i, by[("Mi1", p, q)], "LO_R", 1))
        if t == "Mi1" and ("T4a", p + 1, q) in by:
            conn.append((i, by[("T4a", p + 1, q)], "ME_R", 6))
            conn.append((i, 9999, "ME_R", 2))
    conn = pd.DataFrame(conn, columns=["pre", "post", "neuropil", "n"])
    nt = {"R7": "HIS", "L1": "GLUT", "Mi1": "ACH", "T4a": "ACH", "Pm01": "GABA"}
    return cells, conn, nt


def test_hex_to_axial_keeps_neighbourhoods():
    a = np.array([0, 1, -1, 0, 0, 1, -1])
    b = np.array([0, 0, 0, 1, -1, 1, -1])  # the centre and its six neighbours (120 degrees)
    u, v = hex_to_axial(a, b)
    assert hexgrid.hex_distance(u, v).tolist() == [0, 1, 1, 1, 1, 1, 1]


@pytest.fixture
def flywire_files(tmp_path):
    cells, conn, nt = fake_optic_lobe()
    paths = {
        "connections": tmp_path / "connections_princeton_no_threshold.csv.gz",
        "neurons": tmp_path / "neurons.csv.gz",
        "cell_types": tmp_path / "consolidated_cell_types.csv.gz",
        "columns": tmp_path / "column_assignment.csv.gz",
    }
    pd.DataFrame({"pre_root_id": conn.pre, "post_root_id": conn.post, "neuropil": conn.neuropil,
                  "syn_count": conn.n, "nt_type": [nt[t] for t in cells.set_index("id").loc[
                      conn.pre, "type"]]}).to_csv(paths["connections"], index=False)
    pd.DataFrame({"root_id": cells.id, "group": "x", "nt_type": [nt[t] for t in cells.type],
                  "nt_type_score": 0.9}).to_csv(paths["neurons"], index=False)
    pd.DataFrame({"root_id": cells.id, "primary_type": cells.type,
                  "additional_type(s)": ""}).to_csv(paths["cell_types"], index=False)
    colled = cells.dropna()
    pd.DataFrame({"root_id": colled.id, "hemisphere": "right", "type": colled.type,
                  "column_id": np.arange(len(colled)), "p": colled.p.astype(int),
                  "q": colled.q.astype(int)}).to_csv(paths["columns"], index=False)
    return paths


def test_flywire_codex_files_to_a_network(flywire_files, tmp_path):
    tables = flywire_tables(**flywire_files, inputs=["R7", "L1"], outputs=["T4a"],
                            center=CENTER, extent=2, transmitter_signs={"HIS": -1})
    neurons, synapses, types = tables
    assert types.type.tolist()[:2] == ["R7", "L1"]
    assert dict(zip(types.type, types.sign)) == {"R7": -1, "L1": -1, "Mi1": 1, "T4a": 1,
                                                 "Pm01": -1}
    assert (synapses.n_syn[synapses.post.isin(neurons[neurons.type == "Mi1"].id)] == 5).all()
    ds = TableConnectome(root=tmp_path / "cache", uncolumned="center",
                         **write_tables(tables, tmp_path / "tables"))
    graph = flatten(ds[0])
    assert graph.extent == 2 and graph.num_nodes == 4 * 19 + 1
    edges = edges_frame(ds[0])
    mi1_t4a = edges[(edges.source_type == "Mi1") & (edges.target_type == "T4a")]
    assert set(zip(mi1_t4a.du, mi1_t4a.dv)) == {(1, 0)}  # +p maps to +u
    within = edges[edges.target_type == "Mi1"]
    assert (within.du == 0).all() and (within.dv == 0).all()
    net = Network(ds[0])
    with torch.no_grad():
        out = simulate(net, torch.ones(1, 5, net.n_hexals), dt=0.02)
    assert torch.isfinite(out).all()


def test_flywire_missing_column_is_named(flywire_files):
    bad = pd.read_csv(flywire_files["connections"]).drop(columns="syn_count")
    with pytest.raises(ValueError, match="connections: column 'syn_count' missing"):
        flywire_tables(bad, flywire_files["neurons"], flywire_files["cell_types"],
                       flywire_files["columns"], inputs=["R7"])
    with pytest.raises(ValueError, match="no neurons"):
        flywire_tables(**flywire_files, inputs=["R1"])


def test_fill_inputs_adds_placeholders(flywire_files, tmp_path):
    cols = pd.read_csv(flywire_files["columns"])
    cols = cols[~((cols.type == "R7") & (cols.p == CENTER[0] + 1) & (cols.q == CENTER[1]))]
    args = dict(flywire_files, columns=cols)
    neurons, _, _ = flywire_tables(**args, inputs=["R7"], center=CENTER, extent=2)
    with pytest.raises(ValueError, match="input type 'R7' is missing column"):
        TableConnectome(root=tmp_path / "c", **write_tables(
            flywire_tables(**args, inputs=["R7"], center=CENTER, extent=2), tmp_path / "a"))
    neurons, syn, types = flywire_tables(**args, inputs=["R7"], center=CENTER, extent=2,
                                         fill_inputs=True)
    filler = neurons[neurons.id < 0]
    assert len(filler) == 1 and (filler.type == "R7").all()
    assert (filler.u.iloc[0], filler.v.iloc[0]) == (1, 0)
    ds = TableConnectome(root=tmp_path / "c2", **write_tables((neurons, syn, types),
                                                                tmp_path / "b"))
    assert ds[0]["R7"].num_nodes == 19


@pytest.mark.parametrize("layout", ["long", "wide", "assigned"])
def test_neuprint_male_optic_lobe(tmp_path, layout):
    cells, conn, _ = fake_optic_lobe()
    nt = {"R7": "histamine", "L1": "glutamate", "Mi1": "acetylcholine", "T4a": "acetylcholine",
          "Pm01": "gaba"}
    neurons = pd.DataFrame({"bodyId": cells.id, "type": cells.type,
                            "instance": cells.type + "_R",
                            "predictedNt": [nt[t] for t in cells.type]})
    connections = pd.DataFrame({"bodyId_pre": conn.pre, "bodyId_post": conn.post,
                                "roi": conn.neuropil, "weight": conn.n})
    colled = cells.dropna()
    columns = None
    if layout == "long":
        columns = pd.DataFrame({"bodyId": colled.id, "hex1_id": colled.p, "hex2_id": colled.q})
    elif layout == "wide":
        columns = colled.pivot_table(index=["p", "q"], columns="type", values="id").reset_index()
        columns = columns.rename(columns={"p": "hex1_id", "q": "hex2_id"})
        columns.columns.name = None
        path = tmp_path / "ME_columnar-cells_location.csv"
        columns.to_csv(path, index=False)
        columns = path
    else:
        neurons["assignedOlHex1"] = cells.p
        neurons["assignedOlHex2"] = cells.q
    tables = neuprint_tables(connections, neurons, columns, inputs=["R7", "L1"],
                             outputs=["T4a"], center=CENTER, extent=2)
    ds = TableConnectome(root=tmp_path / "c", **write_tables(tables, tmp_path / "t"))
    edges = edges_frame(ds[0])
    assert ds[0].cell_types[-1] == "Pm01" and ds[0]["Pm01"].num_nodes == 1  # a lone cell: (0, 0)
    assert (edges[edges.target_type == "Mi1"].n_syn == 5).all()
    assert set(edges[edges.source_type == "L1"].sign) == {-1.0}
    assert flatten(ds[0]).num_nodes == 4 * 19 + 1
