"""The main job and the shipped model."""

import pandas as pd
import torch
import pytest

import flygnn
from flygnn.demo import fresh_folder, run_demo


def test_shipped_model_loads_and_beats_zero_flow():
    assert "flow_cpu" in flygnn.available_models()
    data = flygnn.FlyVisConnectome(extent=15)[0]
    model = flygnn.load_pretrained("flow_cpu", data=data)
    untrained = flygnn.Network(data)
    assert model.config.network.extent == 15 and model.decoder is not None
    for name in ("time_const", "syn_strength"):  # the tables its training changed
        assert not model.network.param_table(name).equals(untrained.param_table(name)), name
    assert model.network.param_table("bias").equals(untrained.param_table("bias"))
    trained = model.network.param_table("time_const")
    assert (trained > 0).all() and (model.network.param_table("syn_strength") >= 0).all()
    metrics = model.metrics
    assert metrics["val_epe"] < metrics["decoder_only_val_epe"] < metrics["zero_flow_val_epe"]
    assert metrics["iteration"] > 0
    with pytest.raises(ValueError, match="flow_cpu"):
        flygnn.load_pretrained("no_such_model")


def test_fresh_folder_never_reuses_a_non_empty_folder(tmp_path):
    out = tmp_path / "report"
    assert fresh_folder(out) == out
    out.mkdir()
    assert fresh_folder(out) == out  # empty: fine
    (out / "mine.txt").write_text("keep")
    assert fresh_folder(out) == tmp_path / "report-1"


@pytest.mark.slow
def test_demo_writes_a_report_and_keeps_earlier_ones(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "notes.txt").write_text("user data")
    folder = run_demo(out=out, speeds=(19,), progress=False)
    assert folder == tmp_path / "demo-1"
    assert (out / "notes.txt").read_text() == "user data"
    for name in ("summary.md", "fri.png", "dsi.png", "polarity.csv", "correlations.csv"):
        assert (folder / name).is_file(), name
    summary = (folder / "summary.md").read_text()
    assert "flow_cpu" in summary and "untrained" in summary
    table = pd.read_csv(folder / "correlations.csv")
    assert len(table) == 2 and table["fri_correlation"].between(-1, 1).all()
    printed = capsys.readouterr().out
    assert "report written to" in printed and str(folder.resolve()) in printed
    # the models-compared tables end the summary: flyvis's DSI of T4a-T5d, then the DSI of
    # the change from rest, which shows the untrained network's small tuning that flyvis's
    # index (rest included) reads as ~0
    def t4_t5(model):
        flyvis, change = [ln for ln in summary.splitlines() if ln.startswith(f"| {model} |")][-2:]
        return ([float(v) for v in flyvis.strip("|").split("|")[3:]],
                [float(v) for v in change.strip("|").split("|")[1:]])

    for model in ("flow_cpu", "untrained"):
        flyvis, change = t4_t5(model)
        assert len(flyvis) == len(change) == 8 and all(0 <= v <= 1 for v in flyvis + change)
    flyvis, change = t4_t5("untrained")
    assert max(flyvis) < 0.01 < max(change)
    assert t4_t5("flow_cpu")[0] != t4_t5("flow_cpu")[1]


def test_demo_names_a_missing_model(tmp_path):
    with pytest.raises(ValueError, match="no model 'nope'"):
        run_demo(out=tmp_path / "x", model="nope", progress=False)


def test_shipped_model_transfers_to_a_smaller_lattice():
    small = flygnn.FlyVisConnectome(extent=3)[0]
    model = flygnn.load_pretrained("flow_cpu", data=small)
    full = flygnn.load_pretrained("flow_cpu")
    assert model.network.graph.extent == 3 and model.decoder is not None
    for name in ("bias", "time_const"):
        assert model.network.param_table(name).equals(full.network.param_table(name))
    strength = model.network.param_table("syn_strength")
    assert strength.equals(full.network.param_table("syn_strength").loc[strength.index])
    movie = torch.full((1, 5, 37), 0.5)
    state = flygnn.steady_state(model.network, 1.0, 0.02)
    responses = flygnn.simulate(model.network, movie, 0.02, initial_state=state)
    flow = model.decoder(responses, model.network.dynamics.activity(state))
    assert flow.shape == (1, 5, 2, 37) and torch.isfinite(flow).all()


@pytest.mark.slow
def test_shipped_models_validation_epe_is_reproduced(tmp_path):
    """Re-render the 16 validation movies and score the shipped model: the numbers in its
    metrics.json come out again."""
    from flygnn.task import evaluate
    from flygnn.train import build_datasets

    model = flygnn.load_pretrained("flow_cpu")
    config = model.config.with_overrides([f"data.cache={tmp_path}"])
    _, val = build_datasets(config)
    scores = evaluate(model.network, model.decoder, val, config.data.dt, config.optim.val_t_pre)
    assert scores["epe"] == pytest.approx(model.metrics["val_epe"], rel=1e-4)
    assert scores["l2norm"] == pytest.approx(model.metrics["val_l2norm"], rel=1e-4)


def test_shipped_models_t4_t5_are_more_direction_selective_than_untrained():
    """Moving ON/OFF edges at extent 5 (``training/dsi.py``): the DSI of the change from rest
    of T4 (ON) rises by half or more with training, and flyvis's DSI of the rectified
    response (~1e-4 untrained) reaches 0.4 on average and 0.3 in every T4 type, and 0.1 for
    T5 on average (T5 is selective mainly in T5a); every T4 type prefers the flies'
    direction to within 40 degrees."""
    import numpy as np
    from flygnn.analysis import angular_distance_to_known
    from flygnn.analysis.runners import moving_edge_responses
    from flygnn.analysis.tuning import direction_selectivity_index, preferred_direction

    data = flygnn.FlyVisConnectome(extent=5)[0]
    t4, t5 = ["T4a", "T4b", "T4c", "T4d"], ["T5a", "T5b", "T5c", "T5d"]
    dsi, change, pref = {}, {}, {}
    for name, net in (("trained", flygnn.load_pretrained("flow_cpu", data=data).network),
                      ("untrained", flygnn.Network(data))):
        resp = moving_edge_responses(net, dt=1 / 100, speeds=(13, 25), offsets=(-5, 6),
                                     n_ommatidia=91)
        dsi[name], pref[name] = direction_selectivity_index(resp), preferred_direction(resp)
        change[name] = direction_selectivity_index(resp.change_from_rest())
    trained, untrained = change["trained"].loc[t4, 1], change["untrained"].loc[t4, 1]
    assert trained.mean() > 1.5 * untrained.mean()
    for types, on, least in ((t4, 1, 0.4), (t5, 0, 0.1)):
        trained, untrained = dsi["trained"].loc[types, on], dsi["untrained"].loc[types, on]
        assert untrained.mean() < 0.01 < least < trained.mean()
    assert (dsi["trained"].loc[t4, 1] > 0.3).all()
    distance = np.degrees(angular_distance_to_known(pref["trained"]))
    assert (distance.loc[t4] < 40).all()
