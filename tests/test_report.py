"""Prediction report: tables equal the indices they summarise; folders are never clobbered."""

import numpy as np
import pandas as pd
import pytest

from flygnn.analysis import comparison, known
from flygnn.analysis.report import REPORT_FILES, write_report

TYPES = known.cell_types()


def _inputs(n_models=1, seed=0):
    rng = np.random.default_rng(seed)
    pol = known.polarity().astype(float)
    fri = pd.DataFrame(
        0.4 * pol.to_numpy() + 0.1 * rng.standard_normal((n_models, 65)) + 0.05,
        index=pd.Index([f"m{i}" for i in range(n_models)], name="model"), columns=TYPES,
    )
    dsi_vals = rng.uniform(0, 0.1, (n_models, 2, 65))
    pd_vals = rng.uniform(-np.pi, np.pi, (n_models, 2, 65))
    for t in ("T4a", "T4b", "T4c", "T4d"):
        dsi_vals[:, 1, TYPES.index(t)] = 0.6
    if n_models == 1:
        cols = pd.Index(["OFF", "ON"], name="intensity")
        return (fri.iloc[0].rename("fri"), pd.DataFrame(dsi_vals[0].T, index=TYPES, columns=cols),
                pd.DataFrame(pd_vals[0].T, index=TYPES, columns=cols))
    cols = pd.MultiIndex.from_product([fri.index, ["OFF", "ON"]], names=["model", "intensity"])
    flat = lambda a: a.transpose(2, 0, 1).reshape(65, -1)  # noqa: E731
    return (fri, pd.DataFrame(flat(dsi_vals), index=TYPES, columns=cols),
            pd.DataFrame(flat(pd_vals), index=TYPES, columns=cols))


def test_single_model_report(tmp_path):
    fri, dsi, pdir = _inputs()
    out = write_report(fri, dsi, pdir, out_dir=tmp_path / "rep", title="Test report")
    for name in (*REPORT_FILES, "preferred_directions.png"):
        assert (out / name).stat().st_size > 0, name
    pol = pd.read_csv(out / "polarity.csv", index_col="cell_type")
    np.testing.assert_allclose(pol.fri_mean.to_numpy(), fri.to_numpy())
    np.testing.assert_array_equal(pol.predicted_polarity, np.sign(fri.to_numpy()).astype(int))
    np.testing.assert_array_equal(pol.known_polarity, known.polarity().to_numpy())
    ds = pd.read_csv(out / "direction_selectivity.csv", index_col="cell_type")
    np.testing.assert_allclose(ds.dsi_on_mean, dsi["ON"])
    np.testing.assert_allclose(ds.dsi_off_mean, dsi["OFF"])
    assert list(ds.index[ds.predicted_direction_selective]) == ["T4a", "T4b", "T4c", "T4d"]
    assert ds.loc["T5a", "known_direction_selective"] == "OFF"
    assert ds.loc["Mi1", "known_direction_selective"] == "not"
    np.testing.assert_allclose(np.radians(ds.pd_on_deg), pdir["ON"], atol=1e-9)
    corr = pd.read_csv(out / "correlations.csv")
    assert corr.fri_correlation.item() == pytest.approx(comparison.fri_correlation_to_known(fri))
    assert corr.dsi_correlation.item() == pytest.approx(comparison.dsi_correlation_to_known(dsi))
    dist = comparison.angular_distance_to_known(pdir)
    assert corr["angular_distance_T4c_deg"].item() == pytest.approx(np.degrees(dist["T4c"]))
    unknown = pd.read_csv(out / "unknown_predictions.csv", index_col="cell_type")
    # every type whose polarity or direction selectivity is unknown, and only those
    both_known = set(known.known_polarity().index) & set(known.known_dsi_types())
    assert set(unknown.index) == set(TYPES) - both_known
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# Test report") and "Tm20" in summary


def test_ensemble_report_means_and_stds(tmp_path):
    fri, dsi, pdir = _inputs(n_models=3)
    out = write_report(fri, dsi, pdir, out_dir=tmp_path / "ens")
    pol = pd.read_csv(out / "polarity.csv", index_col="cell_type")
    np.testing.assert_allclose(pol.fri_mean, fri.mean(axis=0))
    np.testing.assert_allclose(pol.fri_std, fri.std(axis=0, ddof=0))
    ds = pd.read_csv(out / "direction_selectivity.csv", index_col="cell_type")
    on = dsi.xs("ON", level="intensity", axis=1)
    np.testing.assert_allclose(ds.dsi_on_mean, on.mean(axis=1))
    corr = pd.read_csv(out / "correlations.csv", index_col="model")
    assert list(corr.index) == ["m0", "m1", "m2"]
    np.testing.assert_allclose(corr.fri_correlation, comparison.fri_correlation_to_known(fri))
    np.testing.assert_allclose(corr.dsi_correlation, comparison.dsi_correlation_to_known(dsi))


def test_report_without_preferred_directions(tmp_path):
    fri, dsi, _ = _inputs()
    out = write_report(fri, dsi, out_dir=tmp_path / "r")
    assert not (out / "preferred_directions.png").exists()
    assert "pd_on_deg" not in pd.read_csv(out / "direction_selectivity.csv").columns


def test_refuses_non_empty_folder_without_overwrite(tmp_path):
    fri, dsi, _ = _inputs()
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        write_report(fri, dsi, out_dir=tmp_path)
    write_report(fri, dsi, out_dir=tmp_path, overwrite=True)
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "fri.png").exists()


def test_empty_existing_folder_is_fine(tmp_path):
    fri, dsi, _ = _inputs()
    write_report(fri, dsi, out_dir=tmp_path)
    assert (tmp_path / "summary.md").exists()


def test_rejects_model_count_mismatch(tmp_path):
    fri, _, _ = _inputs(n_models=2)
    _, dsi, _ = _inputs()
    with pytest.raises(ValueError, match="fri has 2 models but dsi has 1"):
        write_report(fri, dsi, out_dir=tmp_path / "x")


def test_rejects_non_pandas_fri(tmp_path):
    _, dsi, _ = _inputs()
    with pytest.raises(ValueError, match="fri must be"):
        write_report(np.zeros(65), dsi, out_dir=tmp_path / "x")


def test_rejects_file_as_folder(tmp_path):
    fri, dsi, _ = _inputs()
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        write_report(fri, dsi, out_dir=tmp_path / "f")
