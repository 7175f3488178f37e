"""Ensemble analyses (prediction quality vs task error) and training on a transformed
connectome: three tiny-recipe models, one of them on a degree-preserving rewired graph."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import flygnn
from flygnn.analysis import known
from flygnn.analysis.comparison import dsi_correlation_to_known, fri_correlation_to_known
from flygnn.analysis.ensemble_report import (
    EnsembleAnalysis,
    analyze_ensemble,
    compare_ensembles,
    task_error_relation,
)
from flygnn.analysis.tuning import direction_selectivity_index, flash_response_index
from flygnn.config import TrainConfig
from flygnn.flat import flatten
from flygnn.recipes import run_recipe
from flygnn.transforms import RewireDegreePreserving

FLASHES = {"dt": 0.02, "t_stim": 0.2, "t_pre": 0.2}
EDGES = {"dt": 0.02, "speeds": [25], "t_pre": 0.2, "t_post": 0.2}
AT3 = {"extent": 3}  # the tiny recipe's final lattice
REWIRE = {"transform": "RewireDegreePreserving", "seed": 1}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Seeds 0 and 1 on flyvis's connectome (one ensemble folder), seed 0 rewired."""
    root = tmp_path_factory.mktemp("ens")
    cache = f"data.cache={root / 'movies'}"
    for seed in (0, 1):
        run_recipe("tiny", root / "true" / str(seed), seed=seed, overrides=[cache],
                   progress=False)
    run_recipe("tiny", root / "rewired" / "0", seed=0, progress=False,
               overrides=[cache, f"network.connectome={json.dumps(REWIRE)}"])
    return root


@pytest.fixture(scope="module")
def analysis(models):
    ensemble = flygnn.load_ensemble(models / "true")
    return ensemble, analyze_ensemble(ensemble, flashes=FLASHES, edges=EDGES)


def test_prediction_table_matches_a_direct_computation(analysis):
    ensemble, result = analysis
    table = result.table
    assert list(table.index) == ["0", "1"]
    for name, net in zip(ensemble.names, ensemble.networks):
        flash = flygnn.analysis.flash_responses(net, model_names=[name], **FLASHES, **AT3)
        edges = flygnn.analysis.moving_edge_responses(net, model_names=[name], **EDGES, **AT3)
        fri = flash_response_index(flash, radius=6)
        dsi = direction_selectivity_index(edges)
        row = table.loc[name]
        assert row.task_error == json.loads((ensemble.models[ensemble.names.index(name)].path
                                             / "metrics.json").read_text())["best_val_epe"]
        assert row.fri_correlation == pytest.approx(fri_correlation_to_known(fri), abs=1e-6)
        assert row.dsi_correlation == pytest.approx(dsi_correlation_to_known(dsi), abs=1e-6)
        polarity = known.known_polarity()
        wrong = int((np.sign(fri[polarity.index]) != polarity).sum())
        assert row.n_wrong_polarity == wrong
        assert row.dsi_T4c == pytest.approx(dsi.loc["T4c", "ON"], abs=1e-6)
        assert row.dsi_T5a == pytest.approx(dsi.loc["T5a", "OFF"], abs=1e-6)
    # the two seeds differ, so the table is not one model's values repeated
    assert table.task_error.nunique() == 2


def test_summary_holds_medians_and_the_median_indices(analysis):
    _, result = analysis
    assert result.summary.loc["median", "fri_correlation"] == pytest.approx(
        result.table.fri_correlation.median())
    median_fri = result.fri.median(axis=0)
    assert result.summary.loc["median_indices", "fri_correlation"] == pytest.approx(
        fri_correlation_to_known(median_fri))
    dsi = result.dsi
    median_t4c = np.median([dsi[(m, "ON")].loc["T4c"] for m in ("0", "1")])
    assert result.summary.loc["median_indices", "dsi_T4c"] == pytest.approx(median_t4c)


def test_task_error_relation_is_pearson_and_spearman():
    scipy = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"task_error": rng.random(7), "fri_correlation": rng.random(7),
                          "dsi_correlation": [0.1, 0.1, 0.3, 0.2, np.nan, 0.9, 0.1]})
    relation = task_error_relation(table)
    x, y = table.task_error, table.fri_correlation
    assert relation.loc["fri_correlation", "pearson"] == pytest.approx(scipy.pearsonr(x, y)[0])
    assert relation.loc["fri_correlation", "spearman"] == pytest.approx(
        scipy.spearmanr(x, y)[0])
    keep = table.dsi_correlation.notna()  # NaN rows are left out, ties get average ranks
    assert relation.loc["dsi_correlation", "n_models"] == 6
    assert relation.loc["dsi_correlation", "spearman"] == pytest.approx(
        scipy.spearmanr(x[keep], table.dsi_correlation[keep])[0])
    assert np.isnan(task_error_relation(table.iloc[:2]).loc["fri_correlation", "pearson"])
    with pytest.raises(ValueError, match="lacks columns"):
        task_error_relation(table, quality=("nope",))


def test_comparison_figure_and_files(analysis, models, tmp_path):
    from flygnn import plotting

    _, result = analysis
    rewired = analyze_ensemble(flygnn.load_ensemble(models / "rewired"), FLASHES, EDGES)
    table, summary = compare_ensembles({"true": result, "rewired": rewired})
    assert list(table.ensemble) == ["true", "true", "rewired"]
    assert summary.loc[("rewired", "median"), "fri_correlation"] == pytest.approx(
        rewired.table.fri_correlation.iloc[0])
    fig = plotting.prediction_quality(table, path=tmp_path / "fig.png")
    assert len(fig.axes) == 2 and (tmp_path / "fig.png").stat().st_size > 0
    xs = np.concatenate([line.get_xdata() for line in fig.axes[0].lines[::2]])
    np.testing.assert_allclose(np.sort(xs), np.sort(table.task_error.to_numpy()))
    again = EnsembleAnalysis.load(result.save(tmp_path / "out"))
    pd.testing.assert_frame_equal(again.table, result.table, check_dtype=False)
    pd.testing.assert_frame_equal(again.summary, result.summary, check_dtype=False)
    pd.testing.assert_frame_equal(again.relation, result.relation, check_dtype=False)
    with pytest.raises(FileNotFoundError, match="prediction_quality.csv"):
        EnsembleAnalysis.load(tmp_path)


def test_evaluate_ensemble_cli_writes_the_analysis(analysis, models, monkeypatch, capsys):
    import flygnn.distributed as distributed
    from flygnn.cli import main

    _, result = analysis
    fake = {"names": ["0", "1"], "validation_loss": result.table.task_error,
            "fri": result.fri, "dsi": result.dsi,
            "preferred_direction": result.preferred_direction}
    monkeypatch.setattr(distributed, "evaluate_ensemble", lambda *a, **k: fake)
    assert main(["evaluate-ensemble", str(models / "true"), "--cluster-types"]) == 0
    folder = models / "true" / "evaluation"
    table = pd.read_csv(folder / "prediction_quality.csv", index_col="model", dtype={"model": str})
    # flygnn score's table: the prediction table's columns and the training record
    pd.testing.assert_frame_equal(table[result.table.columns], result.table, check_dtype=False)
    assert (folder / "prediction_quality.png").is_file()
    assert "median_indices" in capsys.readouterr().out


# --------------------------------------------------------------- transformed connectome


def test_a_model_trained_on_a_rewired_connectome_loads_on_that_graph(models):
    model = flygnn.load_model(models / "rewired" / "0")
    assert model.config.network.connectome == (REWIRE,)
    intact = flygnn.FlyVisConnectome(extent=3)[0]
    rewired = flatten(RewireDegreePreserving(1)(intact))
    graph = model.network.graph
    assert torch.equal(graph.source, rewired.source) and torch.equal(graph.target, rewired.target)
    flat = flatten(intact)
    assert len(flat.source) == len(graph.source)
    assert not torch.equal(flat.target, graph.target)
    # the trained parameters are those saved, and the true-connectome models load intact
    saved = torch.load(models / "rewired" / "0" / "network.pt", weights_only=True)
    assert torch.equal(model.network.syn_strength, saved["state_dict"]["syn_strength"])
    true = flygnn.load_model(models / "true" / "0").network.graph
    assert torch.equal(true.target, flat.target)
    # an ensemble of both kinds loads each member on its own graph
    ensemble = flygnn.load_ensemble([models / "true" / "0", models / "rewired" / "0"])
    assert torch.equal(ensemble.networks[1].graph.target, rewired.target)


def test_a_model_trained_on_the_intact_graph_starts_a_knockout(models, tmp_path):
    from flygnn.build import build_network

    config = TrainConfig.from_dict({"network": {
        "extent": 3, "init": str(models / "true" / "0" / "network.pt"),
        "connectome": {"transform": "Knockout", "cell_types": ["Mi1"]}}})
    net = build_network(config)
    assert "Mi1" not in {s for s, _ in net.graph.pairs}
    trained = flygnn.load_model(models / "true" / "0").network
    assert net.param_table("bias").equals(trained.param_table("bias"))


@pytest.mark.parametrize("spec, match", [
    ({"transform": "Rewire"}, r"network\.connectome\[0\]: unknown transform 'Rewire'"),
    ([REWIRE, {"seed": 1}], r"network\.connectome\[1\]: expected an object"),
    ({"transform": "ScaleSynapses", "factor": -1}, r"connectome\[0\] \(ScaleSynapses\)"),
    ({"transform": "RewireDegreePreserving", "sed": 0}, r"connectome\[0\].*'sed'"),
])
def test_bad_connectome_specs_are_named(spec, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({"network": {"connectome": spec}})


def test_cli_set_accepts_a_connectome_spec():
    config = TrainConfig().with_overrides([f"network.connectome={json.dumps(REWIRE)}"])
    assert config.network.connectome == (REWIRE,)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
