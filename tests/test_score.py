"""flygnn score: per-model tables equal to the analysis functions' values, the criteria as data
(from recipes, files and model folders), reports of one and two ensembles, named errors.

The models: two flyvis-initialised networks with perturbed parameters saved at extent 3 (one
with a stored recipe.json, one without), one tiny-recipe model (config, log, criteria of its
recipe) and one network on a degree-preserving rewired graph. The protocol is shortened
(dt 0.02, one edge speed); that its defaults are flyvis's is tested separately.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import flygnn
from flygnn.analysis import known, scores
from flygnn.analysis.comparison import (
    angular_distance_to_known,
    dsi_correlation_to_known,
    fri_correlation_to_known,
)
from flygnn.analysis.criteria import criteria_columns, read_criteria
from flygnn.analysis.ensemble_report import T4T5, EnsembleAnalysis
from flygnn.analysis.model_folders import ensemble_groups, training_record
from flygnn.analysis.runners import flash_responses, moving_edge_responses
from flygnn.analysis.tuning import (
    direction_selectivity_index,
    flash_response_index,
    preferred_direction,
)
from flygnn.cli import main
from flygnn.config import TrainConfig
from flygnn.recipes import load_recipe, run_recipe
from flygnn.transforms import RewireDegreePreserving

FLASHES = {"dt": 0.02, "t_stim": 0.2, "t_pre": 0.2}
EDGES = {"dt": 0.02, "speeds": [25], "t_pre": 0.2, "t_post": 0.2}
SHORT = ["--set", "flashes.dt=0.02", "--set", "flashes.t_stim=0.2", "--set", "flashes.t_pre=0.2",
         "--set", "edges.dt=0.02", "--set", "edges.speeds=[25]", "--set", "edges.t_pre=0.2",
         "--set", "edges.t_post=0.2"]
REWIRE = {"transform": "RewireDegreePreserving", "seed": 1}
CRITERIA = {"epe_over_zero_flow_max": 0.6, "fri_correlation_min": 0.8, "t4t5_dsi_min": 0.3,
            "t4t5_angle_max_deg": 45}


def _save(folder, data, seed, epe, config=None, criteria=None):
    """A perturbed flyvis-initialised network as a model folder."""
    net = flygnn.Network(data)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.syn_strength.mul_(torch.exp(0.5 * torch.randn(net.syn_strength.shape, generator=g)))
        net.bias.add_(0.3 * torch.randn(net.bias.shape, generator=g))
    folder.mkdir(parents=True)
    net.save(folder / "network.pt")
    metrics = {"best_val_epe": epe, "zero_flow": {"epe": 3.0, "l2norm": 90.0},
               "train_time_s": 1800.0 * (seed + 1)}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if config is not None:
        config.to_json(folder / "config.json")
    if criteria is not None:
        (folder / "recipe.json").write_text(json.dumps(
            {"recipe": {"name": "x", "stages": [{"name": "a"}], "criteria": criteria},
             "seed": seed, "overrides": []}))
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("score")


@pytest.fixture(scope="module")
def folders(root, data_small):
    """``true/{a,b,c}`` (c: a tiny-recipe model with criteria) and ``rewired/r``."""
    _save(root / "true" / "a", data_small, 0, 1.5, criteria={"fri_correlation_min": -1.0})
    _save(root / "true" / "b", data_small, 1, 2.4)
    recipe = dict(load_recipe("tiny"), criteria=CRITERIA)
    run_recipe(recipe, root / "true" / "c", seed=0, progress=False,
               overrides=[f"data.cache={root / 'movies'}"])
    config = TrainConfig.from_dict({"network": {"extent": 3, "connectome": REWIRE}})
    _save(root / "rewired" / "r", RewireDegreePreserving(1)(data_small), 2, 2.0, config=config)
    return root


@pytest.fixture(scope="module")
def scored(folders):
    return scores.score_models({"true": sorted((folders / "true").iterdir())},
                               flashes=FLASHES, edges=EDGES)


def _direct(path, extent=3, data=None):
    """Indices of one model, computed on its own with the analysis functions."""
    net = flygnn.load_model(path, data=data).network
    fri = flash_response_index(flash_responses(net, extent=extent, **FLASHES), radius=6)
    moving = moving_edge_responses(net, extent=extent, **EDGES)
    return fri, direction_selectivity_index(moving), preferred_direction(moving)


def test_the_table_equals_the_analysis_functions(folders, scored):
    table = scored.table
    assert list(table.index) == ["a", "b", "c"] and "ensemble" not in table
    for name in table.index:
        path = folders / "true" / name
        fri, dsi, pdir = _direct(path)
        row = table.loc[name]
        metrics = json.loads((path / "metrics.json").read_text())
        assert row.task_error == metrics["best_val_epe"]
        assert row.zero_flow_epe == metrics["zero_flow"]["epe"]
        assert row.epe_over_zero_flow == pytest.approx(metrics["best_val_epe"]
                                                       / metrics["zero_flow"]["epe"])
        assert row.train_time_h == pytest.approx(metrics["train_time_s"] / 3600)
        assert row.extent == 3
        # the three models ran in one pass; each alone gives the same indices
        assert row.fri_correlation == pytest.approx(fri_correlation_to_known(fri), abs=1e-6)
        assert row.dsi_correlation == pytest.approx(dsi_correlation_to_known(dsi), abs=1e-6)
        polarity = known.known_polarity()
        wrong = [t for t in polarity.index if np.sign(fri[t]) != polarity[t]]
        assert row.wrong_polarity == ", ".join(wrong) and row.n_wrong_polarity == len(wrong)
        angles = np.degrees(angular_distance_to_known(pdir))
        for t in T4T5:
            contrast = "ON" if t.startswith("T4") else "OFF"
            assert row[f"dsi_{t}"] == pytest.approx(dsi.loc[t, contrast], rel=1e-3, abs=1e-9)
            assert row[f"angle_error_{t}"] == pytest.approx(angles[t], abs=1e-3)
    assert table.fri_correlation.nunique() == 3  # three different models
    assert (table[[f"dsi_{t}" for t in T4T5]] > 0).any(axis=None)
    summary = scored.summary
    assert summary.loc["median", "task_error"] == pytest.approx(table.task_error.median())
    assert summary.loc["median_indices", "fri_correlation"] == pytest.approx(
        fri_correlation_to_known(scored.analyses["true"].fri.median(axis=0)))
    assert scored.relation.loc["fri_correlation", "n_models"] == 3


def test_training_time_falls_back_to_the_log(folders, tmp_path):
    model = folders / "true" / "c"
    log = pd.read_csv(model / "log.csv")
    expected = log.groupby("stage", sort=False)["time"].last().sum() / 3600
    metrics = json.loads((model / "metrics.json").read_text())
    assert training_record(model)["train_time_h"] == pytest.approx(
        metrics["train_time_s"] / 3600, abs=1e-4)
    copy = tmp_path / "c"
    copy.mkdir()
    (copy / "log.csv").write_text((model / "log.csv").read_text())
    (copy / "metrics.json").write_text(json.dumps({"best_val_epe": 1.0}))
    record = training_record(copy)
    assert record["train_time_h"] == pytest.approx(expected)
    assert np.isnan(record["zero_flow_epe"]) and np.isnan(record["epe_over_zero_flow"])
    (copy / "metrics.json").write_text(json.dumps({"best_val_epe": "low"}))
    with pytest.raises(ValueError, match="best_val_epe"):
        training_record(copy)


def test_another_extent_keeps_each_models_own_graph(folders):
    path = folders / "rewired" / "r"
    result = scores.score_models({"r": [path]}, extent=2, flashes=FLASHES, edges=EDGES)
    rewired = RewireDegreePreserving(1)(flygnn.FlyVisConnectome(extent=2)[0])
    fri, dsi, _ = _direct(path, extent=2, data=rewired)
    row = result.table.loc["r"]
    assert row.extent == 2
    assert row.fri_correlation == pytest.approx(fri_correlation_to_known(fri), abs=1e-6)
    assert row.dsi_correlation == pytest.approx(dsi_correlation_to_known(dsi), abs=1e-6)
    intact = flygnn.load_model(path, data=flygnn.FlyVisConnectome(extent=2)[0]).network
    intact_fri = flash_response_index(flash_responses(intact, extent=2, **FLASHES), radius=6)
    assert not np.allclose(intact_fri.to_numpy(), fri.to_numpy())  # the rewiring matters


def test_the_defaults_are_flyvis_protocols(folders, monkeypatch):
    settings = scores.protocol()
    flashes, edges = settings["flashes"], settings["edges"]
    assert flashes["dt"] == 1 / 200 and tuple(flashes["radius"]) == (-1, 6)
    assert (flashes["t_pre"], flashes["t_stim"]) == (1.0, 1.0) and settings["fri_radius"] == 6
    assert edges["dt"] == 1 / 200 and tuple(edges["speeds"]) == (2.4, 4.8, 9.7, 13, 19, 25)
    assert tuple(edges["intensities"]) == (0, 1) and tuple(edges["offsets"]) == (-10, 11)
    assert edges["height"] == 80 and edges["post_pad_mode"] == "continue"
    assert (edges["t_pre"], edges["t_post"]) == (1.0, 1.0)
    assert scores.protocol(edges={"speeds": [25]})["edges"]["speeds"] == [25]
    # without settings the runners get nothing but the lattice: their defaults run
    calls = {}
    real = {"flash_responses": flash_responses, "moving_edge_responses": moving_edge_responses}
    for name, short in (("flash_responses", FLASHES), ("moving_edge_responses", EDGES)):
        def fake(nets, _name=name, _short=short, **kwargs):
            calls[_name] = {k: v for k, v in kwargs.items()
                            if k not in ("model_names", "progress")}
            return real[_name](nets, **{**kwargs, **_short})
        monkeypatch.setattr(f"flygnn.analysis.runners.{name}", fake)
    scores.score_models({"x": [folders / "true" / "a"]})
    assert calls == {"flash_responses": {"extent": 3}, "moving_edge_responses": {"extent": 3}}


def test_criteria_flip_when_a_threshold_moves(scored):
    table = scored.table
    worst = table.fri_correlation.idxmin()
    at = {"fri_correlation_min": float(table.fri_correlation.min())}
    assert criteria_columns(table, [at] * 3).meets_all.tolist() == [True] * 3
    above = {"fri_correlation_min": float(table.fri_correlation.min()) + 1e-9}
    checked = criteria_columns(table, [above] * 3)
    assert checked.meets_all.tolist() == [name != worst for name in table.index]
    assert checked.loc[worst, "failures"].startswith("FRI correlation")
    ratio = float(table.epe_over_zero_flow.max())
    assert criteria_columns(table, [{"epe_over_zero_flow_max": ratio}] * 3).meets_epe.all()
    tight = criteria_columns(table, [{"epe_over_zero_flow_max": ratio - 1e-9}] * 3)
    assert tight.meets_epe.tolist() == [r < ratio for r in table.epe_over_zero_flow]
    low = float(table[[f"dsi_{t}" for t in T4T5]].min(axis=None))
    assert criteria_columns(table, [{"t4t5_dsi_min": low}] * 3).meets_dsi.all()
    assert not criteria_columns(table, [{"t4t5_dsi_min": low + 1e-9}] * 3).meets_dsi.all()
    high = float(table[[f"angle_error_{t}" for t in T4T5]].max(axis=None))
    assert criteria_columns(table, [{"t4t5_angle_max_deg": high}] * 3).meets_angle.all()
    angle = criteria_columns(table, [{"t4t5_angle_max_deg": high - 1e-6}] * 3)
    assert not angle.meets_angle.all() and "angle >" in ";".join(angle.failures)
    assert criteria_columns(table, [None] * 3).meets_all.isna().all()
    # each model's own: a's recipe.json (met), b none, c the tiny recipe's (run with CRITERIA)
    assert table.loc["a", ["meets_fri", "meets_all"]].tolist() == [True, True]
    assert table.loc["b", ["meets_epe", "meets_fri", "meets_all"]].isna().all()
    assert table.loc["c", "meets_epe"] is False and table.loc["c", "meets_all"] is False
    assert "EPE / zero flow" in table.loc["c", "failures"]


def test_criteria_are_read_from_recipes_files_and_model_folders(folders, tmp_path):
    assert read_criteria("cpu") == {k: float(v) for k, v in CRITERIA.items()}
    assert read_criteria(folders / "true" / "c" / "recipe.json") == read_criteria("cpu")
    file = tmp_path / "criteria.json"
    file.write_text(json.dumps({"fri_correlation_min": 0.5}))
    assert read_criteria(file) == {"fri_correlation_min": 0.5}
    with pytest.raises(ValueError, match="sets no criteria"):
        read_criteria("tiny")
    file.write_text(json.dumps({"fri_corr_min": 0.5}))
    with pytest.raises(ValueError, match=r"criteria\.json.*unknown keys \['fri_corr_min'\]"):
        read_criteria(file)
    file.write_text(json.dumps({"t4t5_angle_max_deg": 270}))
    with pytest.raises(ValueError, match="t4t5_angle_max_deg must be a number in"):
        read_criteria(file)
    with pytest.raises(ValueError, match="criteria: unknown keys"):
        run_recipe(dict(load_recipe("tiny"), criteria={"dsi": 1}), tmp_path / "x")


def test_criteria_do_not_change_training_or_resume(folders, tmp_path):
    """A run stored without criteria (as before they existed) resumes with the recipe that
    has them, to the same model as the run that had them from the start."""
    cpu = load_recipe("cpu")
    bare = {k: v for k, v in cpu.items() if k != "criteria"}
    from flygnn.recipes import stage_configs

    assert stage_configs(bare, seed=3) == stage_configs(cpu, seed=3)
    out = tmp_path / "old"
    cache = [f"data.cache={folders / 'movies'}"]
    run_recipe("tiny", out, seed=0, overrides=cache, progress=False, stop_after=1)
    assert "criteria" not in json.loads((out / "recipe.json").read_text())["recipe"]
    run_recipe(dict(load_recipe("tiny"), criteria=CRITERIA), out, seed=0, overrides=cache,
               progress=False, resume=True)
    reference = folders / "true" / "c"
    for file in ("network.pt", "decoder.pt"):
        a, b = (torch.load(f / file, weights_only=True) for f in (out, reference))
        a, b = (x.get("state_dict", x) for x in (a, b))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_writes_the_report_of_one_ensemble(folders, tmp_path, capsys, scored):
    out = tmp_path / "report"
    assert main(["score", str(folders / "true"), "--out", str(out), "--no-progress",
                 *SHORT]) == 0
    markdown = (out / "prediction_quality.md").read_text()
    for name in ("a", "b", "c"):
        assert f"| {name} |" in markdown
    table = pd.read_csv(out / "prediction_quality.csv", index_col="model", dtype={"model": str})
    pd.testing.assert_frame_equal(table[["task_error", "fri_correlation", "dsi_T4a"]],
                                  scored.table[["task_error", "fri_correlation", "dsi_T4a"]],
                                  check_dtype=False)
    again = EnsembleAnalysis.load(out)  # the files EnsembleAnalysis.save writes
    assert list(again.summary.index) == ["median", "median_indices"]
    summary = (out / "summary.md").read_text()
    assert "FRI at radius 6" in summary and "speeds (25,)" in summary
    assert (out / "prediction_quality.png").stat().st_size > 0
    assert not (out / "ensemble_comparison.png").exists()
    assert "report written to" in capsys.readouterr().out
    # never into a non-empty folder: a fresh sibling
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["score", str(folders / "true" / "a"), "--out", str(out), *SHORT]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert (tmp_path / "report-1" / "prediction_quality.md").is_file()


def test_cli_compares_two_ensembles(folders, tmp_path):
    out = tmp_path / "both"
    true = [str(folders / "true" / n) for n in ("a", "b", "c")]
    assert main(["score", "--ensemble", "true", *true, "--ensemble", "rewired",
                 str(folders / "rewired"), "--out", str(out), "--criteria", "cpu",
                 *SHORT]) == 0
    table = pd.read_csv(out / "prediction_quality.csv", dtype={"model": str})
    assert table.ensemble.tolist() == ["true"] * 3 + ["rewired"]
    assert table.model.tolist() == ["a", "b", "c", "r"]
    assert not table.meets_all.any() and table.failures.str.contains("FRI correlation").all()
    summary = pd.read_csv(out / "prediction_summary.csv", index_col=[0, 1])
    assert summary.loc[("true", "median"), "task_error"] == pytest.approx(
        table[table.ensemble == "true"].task_error.median())
    relation = pd.read_csv(out / "task_error_relation.csv", index_col=[0, 1])
    assert relation.loc[("rewired", "fri_correlation"), "n_models"] == 1
    assert (out / "ensemble_comparison.png").stat().st_size > 0
    assert "| rewired | r |" in (out / "prediction_quality.md").read_text()
    # ensemble folders with names give the same comparison
    named = tmp_path / "named"
    assert main(["score", str(folders / "true"), str(folders / "rewired"), "--names", "t",
                 "w", "--out", str(named), *SHORT]) == 0
    again = pd.read_csv(named / "prediction_quality.csv", dtype={"model": str})
    assert again.ensemble.tolist() == ["t"] * 3 + ["w"]
    np.testing.assert_allclose(again.fri_correlation, table.fri_correlation)


def test_comparison_figure_draws_every_model(scored):
    from flygnn.plotting.ensembles import ensemble_comparison

    table = pd.concat({"x": scored.table, "y": scored.table.iloc[:2]},
                      names=["ensemble"]).reset_index(level=0)
    fig = ensemble_comparison(table)
    assert len(fig.axes) == 3
    np.testing.assert_allclose(fig.axes[2].lines[2].get_ydata(), scored.table.task_error[:2])
    assert fig.axes[2].lines[3].get_ydata()[0] == pytest.approx(
        scored.table.task_error[:2].median())


def test_evaluate_ensemble_writes_the_same_table(folders, scored, tmp_path, monkeypatch):
    import shutil

    import flygnn.distributed as distributed

    ensemble = tmp_path / "true"
    shutil.copytree(folders / "true", ensemble)
    analysis = scored.analyses["true"]
    fake = {"names": ["a", "b", "c"], "validation_loss": analysis.table.task_error,
            "fri": analysis.fri, "dsi": analysis.dsi,
            "preferred_direction": analysis.preferred_direction}
    monkeypatch.setattr(distributed, "evaluate_ensemble", lambda *a, **k: fake)
    assert main(["evaluate-ensemble", str(ensemble), "--cluster-types"]) == 0
    written = pd.read_csv(ensemble / "evaluation" / "prediction_quality.csv", index_col="model",
                          dtype={"model": str})
    expected = scored.table.drop(columns="extent")
    expected = expected[[c for c in expected if not c.startswith("meets_") and c != "failures"]]
    pd.testing.assert_frame_equal(written[expected.columns], expected, check_dtype=False)
    assert written.meets_all.isna().tolist() == expected.index.isin(["b"]).tolist()
    assert "| c |" in (ensemble / "evaluation" / "prediction_quality.md").read_text()


@pytest.mark.parametrize("make, args, match", [
    (lambda p: p.mkdir(), [], "neither a model folder"),
    (lambda p: (p.mkdir(), (p / "recipe.json").write_text("{}")), [], "has not finished"),
    (None, ["--criteria", "{criteria}"], r"unknown keys \['dsi_min'\]"),
    (None, ["--criteria", "nowhere.json"], "neither a file nor a recipe"),
    (None, ["--names", "a", "b"], "2 names for 1 ensembles"),
    (None, ["--set", "edges.sped=3"], r"edges: unknown settings \['sped'\]"),
    (None, ["--set", "flashes.extent=3"], "set the extent separately"),
    (None, ["--set", "flash.dt=0.1"], "--set keys must start with"),
    (None, ["--ensemble", "lonely"], "a name and at least one folder"),
])
def test_bad_input_is_one_named_line(folders, tmp_path, capsys, make, args, match):
    target = folders / "true" / "a"
    if make is not None:
        target = tmp_path / "bad"
        make(target)
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps({"dsi_min": 0.3}))
    args = [a.replace("{criteria}", str(criteria)) for a in args]
    assert main(["score", str(target), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flygnn score: error:") and "\n" not in err
    assert pytest.importorskip("re").search(match, err), err
    assert not (tmp_path / "out").exists()


def test_model_and_ensemble_folders_do_not_mix(folders):
    with pytest.raises(ValueError, match="not both"):
        ensemble_groups([folders / "true", folders / "true" / "a"])
    with pytest.raises(ValueError, match="given twice"):
        ensemble_groups(groups=[("x", [folders / "true", folders / "true" / "a"])])
    with pytest.raises(ValueError, match="one unique name each"):
        ensemble_groups([folders / "true", folders / "rewired"], names=["x", "x"])
    groups = ensemble_groups([folders / "true" / "a", folders / "true" / "b"])
    assert groups == {"true": [folders / "true" / "a", folders / "true" / "b"]}
