"""Known-property tables: values verbatim from the reference spec (section 8.6)."""

import json

import numpy as np
import pandas as pd

from flygnn._paths import default_connectome_file
from flygnn.analysis import known


def test_cell_types_follow_the_connectome_json_order():
    nodes = json.loads(default_connectome_file().read_text())["nodes"]
    assert known.cell_types() == [n["name"] for n in nodes]
    assert len(known.cell_types()) == 65


def test_polarity_values():
    pol = known.polarity()
    assert pol.dtype.kind == "i" and len(pol) == 65
    assert (pol[[f"R{i}" for i in range(1, 9)]] == 1).all()
    expected = {"L1": -1, "L2": -1, "L3": -1, "L4": -1, "L5": 1, "Lawf1": 0, "C3": 1,
                "CT1(Lo1)": -1, "CT1(M10)": 1, "Mi1": 1, "Mi2": 0, "Mi4": 1, "Mi9": -1,
                "T4c": 1, "T5b": -1, "Tm1": -1, "Tm2": -1, "Tm3": 1, "Tm4": -1, "Tm9": -1,
                "Tm20": 0, "TmY18": 0, "T2a": 0}
    assert {k: int(pol[k]) for k in expected} == expected
    assert "Drews" in known.polarity(with_reference=True).loc["L5", "reference"]


def test_known_polarity_is_the_32_types_in_type_order():
    spec = ("R1 R2 R3 R4 R5 R6 R7 R8 L1 L2 L3 L4 L5 C3 CT1(Lo1) CT1(M10) Mi1 Mi4 Mi9 T4a T4b T4c "
            "T4d T5a T5b T5c T5d Tm1 Tm2 Tm3 Tm4 Tm9").split()
    assert list(known.known_polarity().index) == spec


def test_direction_selectivity_lists():
    ds = known.direction_selectivity()
    assert list(ds.index[ds.on_direction_selective == 1]) == ["T4a", "T4b", "T4c", "T4d"]
    assert list(ds.index[ds.off_direction_selective == 1]) == ["T5a", "T5b", "T5c", "T5d"]
    assert sorted(ds.index[ds.not_direction_selective == 1]) == sorted(
        ["CT1(Lo1)", "CT1(M10)", "Mi1", "Mi4", "Mi9", "Tm1", "Tm2", "Tm3", "Tm4", "Tm9"])
    asym = "T2 T2a T3 T4a T4b T4c T4d T5a T5b T5c T5d Tm3 Tm4 TmY3 TmY4 TmY5a TmY14 TmY15 TmY18"
    assert list(ds.index[ds.asymmetric_input == 1]) == asym.split()
    assert list(ds.index[ds.input_class == "noisy_data"]) == ["Tm1", "Tm2", "Tm5Y", "Tm9"]
    assert ds.loc["Tm16", "input_class"] == "unsufficient_data"
    assert ds.loc["L1", "input_class"] == "symmetric"


def test_known_dsi_types_order_and_truth():
    spec = ["Tm1", "Tm2", "Tm4", "Tm9", "CT1(Lo1)", "Mi1", "Tm3", "Mi4", "Mi9", "CT1(M10)",
            "T5a", "T5b", "T5c", "T5d", "T4a", "T4b", "T4c", "T4d"]
    assert known.known_dsi_types() == spec
    np.testing.assert_array_equal(known.known_dsi().to_numpy(), [0.0] * 10 + [1.0] * 8)
    mt = known.motion_tuning()
    assert list(mt.index[mt.edge_polarity == "on"]) == ["T4a", "T4b", "T4c", "T4d"]


def test_pathways():
    p = known.pathways()
    assert p["on"] == "L1 L3 L5 Mi1 Tm3 Mi4 Mi9 CT1(M10) T4a T4b T4c T4d".split()
    assert p["off"] == "L2 L3 L4 Tm1 Tm2 Tm4 Tm9 CT1(Lo1) T5a T5b T5c T5d".split()


def test_preferred_directions():
    deg = known.preferred_directions()
    assert deg.to_dict() == {"T4a": 180, "T4b": 0, "T4c": 90, "T4d": 270,
                             "T5a": 180, "T5b": 0, "T5c": 90, "T5d": 270}
    np.testing.assert_allclose(known.preferred_directions(radians=True)["T4d"], 1.5 * np.pi)


def test_tuning_curves_maisak_2013():
    tc = known.tuning_curves()
    assert list(tc.index) == list(range(0, 360, 30))
    assert list(tc.columns) == ["T4a", "T4b", "T4c", "T4d", "T5a", "T5b", "T5c", "T5d"]
    np.testing.assert_array_equal(
        tc["T4b"], [0.745, 0.785, 0.305, 0.265, 0.25, 0.335, 0.285, 0.23, 0.14, 0.11, 0.26, 0.775])
    np.testing.assert_array_equal(
        tc["T5c"], [0.20, 0.44, 0.69, 0.595, 0.745, 0.525, 0.34, 0.255, 0.34, 0.295, 0.26, 0.28])
    assert tc.loc[180, "T4a"] == 1.0 and tc.loc[330, "T4d"] == 0.51 and tc.loc[240, "T5d"] == 0.85


def test_every_table_names_its_reference():
    for name in ("polarity", "direction_selectivity", "motion_tuning", "pathways",
                 "preferred_directions", "tuning_curves"):
        table = pd.read_csv(known.known_dir() / f"{name}.csv")
        assert table["reference"].str.len().min() > 10, name
    assert (known.known_dir() / "README.md").exists()


def test_loaders_return_copies():
    pol = known.polarity()
    pol["L1"] = 5
    assert known.polarity()["L1"] == -1
