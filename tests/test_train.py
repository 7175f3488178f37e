"""Training: config validation, overfitting, checkpoints, resume equivalence, penalty, CLI."""

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import flygnn.checkpoint as checkpoint
from flygnn.cli import main
from flygnn.config import TrainConfig
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.simulate import simulate, steady_state
from flygnn.stimuli.augment import Augment
from flygnn.task import evaluate, zero_flow_error
from flygnn.train import Trainer, activity_penalty

EXTENT, N_HEX, T = 2, 19, 6


class Movies(torch.utils.data.Dataset):
    """Fixed random movies whose flow is a smooth function of the luminance."""

    def __init__(self, n, seed, transform=None):
        g = torch.Generator().manual_seed(seed)
        self.lum = torch.rand(n, T, N_HEX, generator=g)
        self.flow = torch.stack([self.lum - 0.5, 0.3 * torch.ones_like(self.lum)], 2)
        self.transform = transform

    def __len__(self):
        return len(self.lum)

    def __getitem__(self, i):
        item = {"lum": self.lum[i].clone(), "flow": self.flow[i].clone()}
        return self.transform(item) if self.transform is not None else item


@pytest.fixture(scope="module")
def data():
    return FlyVisConnectome(extent=EXTENT)[0]


def config(**optim):
    o = {"n_iters": 6, "batch_size": 2, "val_every": 3, "checkpoint_every": 100, "t_pre": 0.1,
         "val_t_pre": 0.1, "lr_net": {"start": 1e-2, "stop": 1e-3, "steps": 3},
         "lr_dec": {"start": 1e-2, "stop": 1e-3, "steps": 3},
         "penalty": {"stop_iter": 4, "weight": 0.1}}
    o.update(optim)
    return TrainConfig.from_dict({"network": {"extent": EXTENT}, "optim": o, "seed": 3,
                                  "data": {"n_train": 4, "n_val": 2, "cache": ""}})


def datasets(augment=True):
    transform = Augment(None, noise_std=0.05, enabled=augment)
    return Movies(4, 0, transform), Movies(2, 1)


def test_loss_falls_when_overfitting_two_movies(tmp_path, data):
    cfg = config(n_iters=40, val_every=40, penalty={"weight": 0.0},
                 lr_net={"start": 1e-2, "stop": 1e-2, "steps": 1},
                 lr_dec={"start": 3e-2, "stop": 3e-2, "steps": 1})
    cfg = cfg.with_overrides(["data.n_train=2", "decoder.p_dropout=0.0"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=(Movies(2, 0), Movies(2, 0)), data=data)
    start = evaluate(trainer.network, trainer.decoder, trainer.val_set, 0.02, 0.1)
    metrics = trainer.train()
    loss = pd.read_csv(tmp_path / "run" / "log.csv")["loss"].to_numpy()
    assert len(loss) == 40 and np.isfinite(loss).all()
    assert loss[-5:].mean() < 0.3 * loss[:5].mean()
    # eval mode (BatchNorm running statistics) generalises less sharply than the batch loss
    assert metrics["best_val_epe"] < 0.75 * start["epe"]
    assert metrics["best_val_epe"] < 0.7 * zero_flow_error(trainer.val_set)["epe"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["best_iteration"] == 40
    for name in ("network.pt", "decoder.pt", "best.pt", "checkpoint.pt", "config.json"):
        assert (tmp_path / "run" / name).is_file()


def _states(trainer):
    return {**{f"net.{k}": v for k, v in trainer.network.state_dict().items()},
            **{f"dec.{k}": v for k, v in trainer.decoder.state_dict().items()}}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("ref") / "run"
    trainer = Trainer(config(), out, datasets=datasets(), data=data)
    trainer.train()
    return trainer, out


def test_resume_after_stop_gives_identical_parameters(tmp_path, data, reference_run):
    ref, ref_out = reference_run
    first = Trainer(config(), tmp_path / "run", datasets=datasets(), data=data)
    first.train(until=3)  # stops mid-epoch (2 iterations per epoch)
    assert first.iteration == 3 and first.position == 2
    second = Trainer(config(), tmp_path / "run", resume=True, datasets=datasets(), data=data)
    assert second.iteration == 3
    second.train()
    a, b = _states(ref), _states(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = pd.read_csv(ref_out / "log.csv")
    log_b = pd.read_csv(tmp_path / "run" / "log.csv")
    pd.testing.assert_frame_equal(log_a.drop(columns="time"), log_b.drop(columns="time"))


def test_resume_after_crash_drops_unsaved_log_rows(tmp_path, data, reference_run, monkeypatch):
    ref, _ = reference_run
    cfg = config(checkpoint_every=2)
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    original = Trainer.step

    def crash(self, lum, flow):
        if self.iteration == 4:
            raise KeyboardInterrupt
        return original(self, lum, flow)

    monkeypatch.setattr(Trainer, "step", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.setattr(Trainer, "step", original)
    blob = checkpoint.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert blob["iteration"] == 4
    resumed = Trainer(cfg, tmp_path / "run", resume=True, datasets=datasets(), data=data)
    resumed.train()
    for k, v in _states(ref).items():
        assert torch.equal(v, _states(resumed)[k]), k
    assert pd.read_csv(tmp_path / "run" / "log.csv")["iteration"].tolist() == [1, 2, 3, 4, 5, 6]


def test_log_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path, data, reference_run):
    ref, ref_out = reference_run
    cfg = config(checkpoint_every=2)
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=2)
    with open(tmp_path / "run" / "log.csv", "a") as f:  # rows of iterations lost in a crash
        f.write("3,1.0,0.01,,,9.0\n4,1.0,0.01,,,9.5\n")
    Trainer(cfg, tmp_path / "run", resume=True, datasets=datasets(), data=data).train()
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(log["loss"], pd.read_csv(ref_out / "log.csv")["loss"])


def test_checkpoint_round_trip_and_atomic_write(tmp_path, data, reference_run, monkeypatch):
    ref, ref_out = reference_run
    blob = checkpoint.load_checkpoint(ref_out / "checkpoint.pt")
    assert blob["iteration"] == 6 and blob["epoch"] == 3
    assert TrainConfig.from_dict(json.loads(blob["config"])) == config()
    assert blob["best_val_epe"] == min(pd.read_csv(ref_out / "log.csv")["val_epe"].dropna())
    for k, v in ref.network.state_dict().items():
        assert torch.equal(blob["network"][k], v)
    before = (ref_out / "checkpoint.pt").read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ref.save_checkpoint()
    assert (ref_out / "checkpoint.pt").read_bytes() == before
    assert not [p for p in ref_out.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os

    mask = os.umask(0o027)
    try:
        path = checkpoint.atomic_write_text(tmp_path / "a.json", "{}")
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("max_step", [None, 1e-5])
def test_penalty_step_equals_adam_then_sgd_on_the_bias(tmp_path, data, max_step):
    """The penalty's SGD step after Adam's, each entry bounded by ``penalty.max_step``."""
    cfg = config(n_iters=1, penalty={"weight": 50.0, "stop_iter": 10, "target": 5.0,
                                     "max_step": max_step})
    cfg = cfg.with_overrides(["decoder.p_dropout=0.0"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(augment=False), data=data)
    trainer._start_epoch()
    lum = trainer.train_set.lum[:2]
    flow = trainer.train_set.flow[:2]
    # independent: Adam on the task loss alone, plus the penalty gradient at the old parameters
    net = Network(data)
    net.load_state_dict(trainer.network.state_dict())
    responses = simulate(net, lum, 0.02, initial_state=trainer.epoch_state)
    penalty = activity_penalty(responses, net.graph.central_index, 5.0, 50.0, 1.0, 0.1)
    (g,) = torch.autograd.grad(penalty, net.bias)
    control = Trainer(cfg.with_overrides(["optim.penalty.weight=0.0"]), tmp_path / "ctl",
                      datasets=datasets(augment=False), data=data)
    control._start_epoch()
    control.step(lum, flow)
    trainer.step(lum, flow)
    step = 1e-2 * g
    if max_step is not None:
        assert step.abs().max() > 10 * max_step  # the bound acts in this case
        step = step.clamp(-max_step, max_step)
    torch.testing.assert_close(trainer.network.bias, control.network.bias - step)
    assert not torch.equal(trainer.network.bias, control.network.bias)
    assert torch.equal(trainer.network.syn_strength, control.network.syn_strength)


def test_activity_penalty_hand_computed():
    r = torch.zeros(1, 4, 3)
    r[0, 1:, 0] = 6.0  # frames t >= 1 count: mean 6 -> x = -1 -> g = -0.1
    r[0, 1:, 1] = 3.0  # mean 3 -> x = 2 -> g = 2
    r[0, 0, 2] = 100.0  # frame 0 is ignored: mean 0 -> x = 5 -> g = 5
    value = activity_penalty(r, torch.tensor([0, 1, 2]))
    assert float(value) == pytest.approx(0.1 * (0.01 + 4 + 25) / 3)


def test_zero_flow_error_is_the_mean_flow_norm():
    ds = Movies(2, 0)
    expected = ds.flow.norm(dim=2).mean()
    assert zero_flow_error(ds)["epe"] == pytest.approx(float(expected), rel=1e-6)


def test_non_empty_folder_needs_resume(tmp_path, data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty; pass resume=True"):
        Trainer(config(), tmp_path / "run", datasets=datasets(), data=data)


def test_resume_with_a_different_config_is_rejected(tmp_path, data):
    Trainer(config(), tmp_path / "run", datasets=datasets(), data=data).train(until=1)
    with pytest.raises(ValueError, match=r"optim\.batch_size"):
        Trainer(config(batch_size=4), tmp_path / "run", resume=True, datasets=datasets(), data=data)


BAD = [
    ({"optim": {"batch_size": 0}}, "optim.batch_size"),
    ({"optim": {"lr_net": {"start": "fast"}}}, "optim.lr_net.start"),
    ({"optim": {"lr_dec": {"steps": 0}}}, "optim.lr_dec.steps"),
    ({"optim": {"n_iter": 5}}, "unknown keys \\['n_iter'\\]"),
    ({"bogus": 1}, "unknown keys \\['bogus'\\]"),
    ({"data": {"augment": {"n_clip_frames": 30}}}, "data.augment.n_clip_frames"),
    ({"data": {"dt": -0.02}}, "data.dt"),
    ({"data": {"augment": {"p_flip": 1.5}}}, "data.augment.p_flip"),
    ({"data": {"augment": {"flip_axes": [0, 5]}}}, "data.augment.flip_axes"),
    ({"data": {"movies": {"n_objects": [3, 1]}}}, "data.movies.n_objects"),
    ({"data": {"augment": {"enabled": "yes"}}}, "data.augment.enabled"),
    ({"data": {"movies": {"prior": {"speed": -1.0}}}}, "data.movies.prior.speed"),
    ({"data": {"movies": {"prior": {"object_speed": float("inf")}}}},
     "data.movies.prior.object_speed"),
    ({"data": {"movies": {"prior": {"contrast": [0.4, 0.2]}}}}, "data.movies.prior.contrast"),
    ({"decoder": {"kernel_size": 4}}, "decoder.kernel_size"),
    ({"decoder": {"p_dropout": 1.0}}, "decoder.p_dropout"),
    ({"decoder": {"type_dropout": -0.1}}, "decoder.type_dropout"),
    ({"decoder": {"pathway_dropout": 1.0}}, "decoder.pathway_dropout"),
    ({"decoder": {"type_dropout_groups": "pairs"}}, "decoder.type_dropout_groups"),
    ({"optim": {"penalty": {"rest_weight": -1.0}}}, "optim.penalty.rest_weight"),
    ({"decoder": {"input_reference": "mean"}}, "decoder.input_reference"),
    ({"decoder": {"input_norm": "batch"}}, "decoder.input_norm"),
    ({"decoder": {"norm_momentum": 0.0}}, "decoder.norm_momentum"),
    ({"optim": {"net_warmup": -1}}, "optim.net_warmup"),
    ({"optim": {"strength_floor": 1.5}}, "optim.strength_floor"),
    ({"network": {"extent": 0}}, "network.extent"),
    ({"optim": {"penalty": {"weight": -1}}}, "optim.penalty.weight"),
    ({"optim": {"batch_size": 8}, "data": {"n_train": 4}}, "optim.batch_size"),
    ({"seed": 1.5}, "'seed'"),
    ({"optim": 3}, "'optim': expected an object"),
]


@pytest.mark.parametrize("bad,field", BAD, ids=[b[1] for b in BAD])
def test_bad_config_is_rejected_naming_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_dict(bad)


def test_config_json_round_trip_and_overrides(tmp_path):
    cfg = config()
    cfg.to_json(tmp_path / "c.json")
    assert TrainConfig.from_json(tmp_path / "c.json") == cfg
    new = cfg.with_overrides(["optim.lr_net.start=0.5", "data.cache=/x", "device=meta"])
    assert (new.optim.lr_net.start, new.data.cache, new.device) == (0.5, "/x", "meta")
    with pytest.raises(ValueError, match="key=value"):
        cfg.with_overrides(["optim.n_iters"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        TrainConfig.from_json(tmp_path / "bad.json")


def test_stepwise_schedule_matches_flyvis():
    s = TrainConfig().optim.lr_net
    expected = np.linspace(5e-5, 5e-6, 10)
    for it, k in ((0, 0), (24_999, 0), (25_000, 1), (124_999, 4), (249_999, 9), (400_000, 9)):
        assert s.value(it, 250_000) == pytest.approx(expected[k], rel=1e-12)


def test_cli_train_validate_simulate(tmp_path, data):
    cfg = {"network": {"extent": EXTENT},
           "data": {"n_train": 2, "n_val": 1, "cache": str(tmp_path / "cache"),
                    "movies": {"n_source_frames": 4, "height": 60, "width": 60, "n_objects": [0, 1]},
                    "augment": {"n_clip_frames": 3}},
           "optim": {"n_iters": 2, "batch_size": 2, "val_every": 2, "t_pre": 0.1}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    run = tmp_path / "run"
    args = ["train", "--config", str(tmp_path / "cfg.json"), "--out", str(run), "--no-progress"]
    assert main(args + ["--set", "optim.lr_net.start=1e-3"]) == 0
    assert pd.read_csv(run / "log.csv")["iteration"].tolist() == [1, 2]
    assert main(args) == 2  # the folder exists: no silent overwrite
    assert main(["validate", "--run", str(run)]) == 0
    result = json.loads((run / "validation.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert result["epe"] == pytest.approx(metrics["best_val_epe"], rel=1e-5)
    assert math.isfinite(result["l2norm"]) and result["zero_flow"]["epe"] > 0
    # the run's own block named explicitly is the run's validation; another block is not
    assert main(["validate", str(run), "--val-start", "2", "--n-val", "1",
                 "--out", str(tmp_path / "own.json")]) == 0
    own = json.loads((tmp_path / "own.json").read_text())
    assert (own["epe"], own["zero_flow"]) == (result["epe"], result["zero_flow"])
    assert main(["validate", str(run), "--val-start", "3", "--n-val", "2",
                 "--out", str(tmp_path / "held_out.json")]) == 0
    held_out = json.loads((tmp_path / "held_out.json").read_text())
    assert (held_out["val_start"], held_out["n_val"]) == (3, 2) and "recorded" not in held_out
    assert held_out["zero_flow"]["epe"] != result["zero_flow"]["epe"]  # other movies
    movie = np.random.default_rng(0).random((5, N_HEX)).astype(np.float32)
    np.save(tmp_path / "movie.npy", movie)
    out = tmp_path / "resp.npz"
    assert main(["simulate", "--model", str(run), "--movie", str(tmp_path / "movie.npy"),
                 "--dt", "0.02", "--out", str(out), "--record", "central"]) == 0
    net = Network.load(run / "network.pt", data)
    expected = simulate(net, torch.from_numpy(movie)[None], 0.02, t_pre=1.0, record="central",
                        grad=False)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["responses"], expected.numpy())
        assert list(z["node_type"]) == net.cell_types
    assert main(["simulate", "--model", "no-such-model", "--movie", str(tmp_path / "movie.npy"),
                 "--out", str(out)]) == 2


def test_network_warmup_trains_the_decoder_first(tmp_path, data):
    # 4 training movies, batch 2: epochs start at iterations 0, 2, 4; warm-up 3 -> the
    # network's rate is 0 in the epochs starting at 0 and 2, non-zero from iteration 4 on
    # (and the decoder reads the change from rest: training and validation pass ``rest``)
    cfg = config(n_iters=6, net_warmup=3, penalty={"stop_iter": 6, "weight": 0.1})
    cfg = cfg.with_overrides(["decoder.input_reference=rest"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    start = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    decoder = trainer.decoder.state_dict()["base.0.weight"].clone()
    trainer.train(until=4)
    for k, v in trainer.network.state_dict().items():
        assert torch.equal(v, start[k]), k
    assert not torch.equal(trainer.decoder.state_dict()["base.0.weight"], decoder)
    trainer.train()
    assert not torch.equal(trainer.network.bias, start["bias"])
    assert not torch.equal(trainer.network.syn_strength, start["syn_strength"])
    assert pd.read_csv(tmp_path / "run" / "log.csv")["val_epe"].notna().sum() == 2


def test_motion_prior_comes_from_the_data_config():
    from flygnn.train import build_datasets

    cfg = config().with_overrides(["data.movies.prior.speed=12", "data.movies.prior.object_speed=16",
                                   "data.movies.prior.contrast=[0.2, 0.4]", "data.cache="])
    for dataset in build_datasets(cfg):
        prior = dataset.config.prior
        assert (prior.speed, prior.object_speed, prior.contrast) == (12.0, 16.0, (0.2, 0.4))


def test_val_start_keeps_validation_fixed_and_training_disjoint():
    from flygnn.stimuli.augment import Augment
    from flygnn.stimuli.opticflow import OpticFlowMovies
    from flygnn.train import build_datasets

    small = {"cache": "", "augment": {"n_clip_frames": 3, "enabled": False},
             "movies": {"n_source_frames": 4, "height": 40, "width": 40, "n_objects": [0, 1]}}
    cfg = TrainConfig.from_dict({"network": {"extent": 2}, "optim": {"batch_size": 2},
                                 "data": dict(small, n_train=5, n_val=2, val_start=2)})
    train, val = build_datasets(cfg)
    assert (len(train), len(val)) == (5, 2)
    common = dict(n_source_frames=4, height=40, width=40, extent=2, dt=cfg.data.dt, n_objects=(0, 1),
                  prior=train.config.prior, transform=Augment(3, enabled=False))
    for dataset, i, item in ((val, 0, 2), (val, 1, 3), (train, 1, 1), (train, 2, 4), (train, 4, 6)):
        expected = OpticFlowMovies(1, start=item, **common)[0]
        assert torch.equal(dataset[i]["lum"], expected["lum"]), (i, item)
    with pytest.raises(ValueError, match="data.val_start"):
        cfg.with_overrides(["data.val_start=-1"])


def test_decoder_only_training_keeps_the_network_fixed(tmp_path, data):
    cfg = config(train_network=False, n_iters=8)
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    before_net = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    before_dec = {k: v.clone() for k, v in trainer.decoder.state_dict().items()}
    trainer.train()
    for k, v in trainer.network.state_dict().items():
        assert torch.equal(v, before_net[k]), k
    assert not torch.equal(trainer.decoder.state_dict()["base.0.weight"], before_dec["base.0.weight"])
    assert TrainConfig.from_json(tmp_path / "run" / "config.json").optim.train_network is False


def test_a_run_starts_from_a_network_and_decoder_of_another_extent(tmp_path, data):
    """network.init / decoder.init from a run at extent 2 start a run at extent 3: the
    per-type parameter tables and the decoder's weights carry over."""
    from flygnn.pretrained import transfer

    cfg = config(n_iters=3, val_every=3).with_overrides(["decoder.input_norm=rms",
                                                          "decoder.input_reference=rest"])
    first = Trainer(cfg, tmp_path / "small", datasets=datasets(), data=data)
    first.train()
    small = Network.load(tmp_path / "small" / "network.pt")
    decoder = torch.load(tmp_path / "small" / "decoder.pt", weights_only=True)
    big = cfg.with_overrides(["network.extent=3", f"network.init={tmp_path / 'small' / 'network.pt'}",
                              f"decoder.init={tmp_path / 'small' / 'decoder.pt'}"])
    data3 = FlyVisConnectome(extent=3)[0]
    second = Trainer(big, tmp_path / "big", datasets=(Movies(4, 0), Movies(2, 1)), data=data3)
    assert second.network.graph.extent == 3
    expected = transfer(small, data3)
    for name in ("bias", "time_const", "syn_strength"):
        pd.testing.assert_series_equal(second.network.param_table(name), expected.param_table(name))
    for k, v in second.decoder.state_dict().items():
        assert torch.equal(v, decoder[k]), k
    assert bool(second.decoder.input_norm.initialized)  # the running RMS came along too
    # a checkpoint works as decoder.init as well; a foreign file is named in the error
    ckpt = cfg.with_overrides([f"decoder.init={tmp_path / 'small' / 'checkpoint.pt'}"])
    third = Trainer(ckpt, tmp_path / "third", datasets=datasets(), data=data)
    assert torch.equal(third.decoder.base[0].weight, first.decoder.base[0].weight)
    for bad, message in ((tmp_path / "nope.pt", "not found"), (tmp_path / "small" / "config.json",
                                                               "not readable")):
        with pytest.raises(ValueError, match=f"decoder.init .*{message}"):
            Trainer(cfg.with_overrides([f"decoder.init={bad}"]), tmp_path / "x", datasets=datasets(),
                    data=data)
    plain = cfg.with_overrides(["decoder.input_norm=none", f"decoder.init={tmp_path / 'small' / 'decoder.pt'}"])
    with pytest.raises(ValueError, match="does not fit the decoder"):
        Trainer(plain, tmp_path / "y", datasets=datasets(), data=data)


@pytest.mark.parametrize("fresh", [True, False])
def test_fresh_state_restarts_movies_from_the_current_networks_rest(tmp_path, data, fresh):
    from flygnn.simulate import steady_state

    cfg = config(n_iters=4, penalty={"weight": 0.0}).with_overrides([f"optim.fresh_state={str(fresh).lower()}"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=1)  # first batch of the epoch: the epoch's state
    stale = trainer.epoch_state.clone()
    with torch.no_grad():
        current = steady_state(trainer.network, cfg.optim.t_pre, cfg.data.dt)  # batch 1, broadcast
    assert not torch.allclose(current, stale)  # the first step changed the network
    trainer.train(until=2)  # second batch: fresh_state recomputes it before the step
    torch.testing.assert_close(trainer.epoch_state, current if fresh else stale)


def test_train_params_trains_only_the_listed_tables(tmp_path, data):
    cfg = config(n_iters=3, penalty={"weight": 0.0}).with_overrides(['optim.train_params=["time_const"]'])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.train()
    after = trainer.network.state_dict()
    assert not torch.equal(after["time_const"], before["time_const"])
    for name in ("bias", "syn_strength"):
        assert torch.equal(after[name], before[name]), name
    with pytest.raises(ValueError, match="optim.train_params"):
        config().with_overrides(['optim.train_params=["tau"]'])


def test_net_rate_scale_sets_each_tables_rate(tmp_path, data):
    cfg = config(n_iters=2, penalty={"weight": 0.0}).with_overrides(
        ["optim.net_rate_scale.bias=0", "optim.net_rate_scale.syn_strength=0.1"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.train(until=1)
    lr = cfg.optim.lr_net.value(0, cfg.optim.n_iters)
    rates = {}
    for group in trainer.optimizer.param_groups[:-1]:
        for p in group["params"]:
            name = next(n for n, q in trainer.network.named_parameters() if q is p)
            rates[name] = group["lr"]
    assert rates == pytest.approx({"bias": 0.0, "time_const": lr, "syn_strength": 0.1 * lr})
    assert trainer.optimizer.param_groups[-1]["lr"] == cfg.optim.lr_dec.value(0, cfg.optim.n_iters)
    after = trainer.network.state_dict()
    assert torch.equal(after["bias"], before["bias"])
    # Adam's first step moves each entry by about its rate: 10x less for the strengths
    step_tau = (after["time_const"] - before["time_const"]).abs().max()
    step_syn = (after["syn_strength"] - before["syn_strength"]).abs().max()
    assert step_tau == pytest.approx(lr, rel=1e-3) and step_syn == pytest.approx(0.1 * lr, rel=1e-3)
    with pytest.raises(ValueError, match="optim.net_rate_scale.bias"):
        config().with_overrides(["optim.net_rate_scale.bias=-1"])


def test_strength_floor_keeps_strengths_above_a_fraction_of_their_init(tmp_path, data):
    init = Network(data).syn_strength.detach().clone()
    ends = {}
    for floor in (0.0, 0.9):
        cfg = config(n_iters=3, penalty={"weight": 0.0}).with_overrides(
            ['optim.train_params=["syn_strength"]', f"optim.strength_floor={floor}"])
        trainer = Trainer(cfg, tmp_path / f"run{floor}", datasets=datasets(), data=data)
        trainer.train()
        ends[floor] = trainer.network.syn_strength.detach()
    assert (ends[0.0] < 0.9 * init).any()  # without the floor, Adam's steps (1e-2) prune
    assert (ends[0.9] >= 0.9 * init).all()
    assert torch.isclose(ends[0.9], 0.9 * init).any()  # and with it, they stop at the floor


def test_fixed_strengths_stay_at_their_initial_value(tmp_path, data):
    net = Network(data)
    init = net.syn_strength.detach().clone()
    pairs = ["T4a->T5a", "Tm9->T5c"]
    index = net.param_table("syn_strength").index
    fixed = [index.get_loc(tuple(p.split("->"))) for p in pairs]
    start = tmp_path / "start.pt"
    with torch.no_grad():
        net.syn_strength.mul_(2.0)  # a trained network: the fixed pairs go back to the init
    net.save(start)
    cfg = config(n_iters=3, penalty={"weight": 0.0}).with_overrides(
        ['optim.train_params=["syn_strength"]', f"network.init={start}",
         f"optim.fixed_strengths={json.dumps(pairs)}"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train()
    end = trainer.network.syn_strength.detach()
    torch.testing.assert_close(end[fixed], init[fixed], rtol=0, atol=0)
    others = torch.ones_like(end, dtype=torch.bool)
    others[fixed] = False
    assert (end[others] != 2.0 * init[others]).mean(dtype=torch.float) > 0.9  # the rest learn
    with pytest.raises(ValueError, match=r"optim.fixed_strengths.*\['T4a->T5b'\]"):
        Trainer(cfg.with_overrides(['optim.fixed_strengths=["T4a->T5b"]']), tmp_path / "bad",
                datasets=datasets(), data=data)
    with pytest.raises(ValueError, match="optim.fixed_strengths"):
        cfg.with_overrides(['optim.fixed_strengths=["T4a-T5a"]'])


def test_resume_does_not_need_the_init_files(tmp_path, data):
    first = config(n_iters=2)
    Trainer(first, tmp_path / "a", datasets=datasets(), data=data).train()
    init = tmp_path / "init"
    init.mkdir()
    for f in ("network.pt", "decoder.pt"):
        (init / f).write_bytes((tmp_path / "a" / f).read_bytes())
    cfg = config(n_iters=4).with_overrides([f"network.init={init / 'network.pt'}",
                                            f"decoder.init={init / 'decoder.pt'}"])
    run = Trainer(cfg, tmp_path / "b", datasets=datasets(), data=data)
    run.train(until=2)
    straight = Trainer(cfg, tmp_path / "c", datasets=datasets(), data=data)
    straight.train()
    for f in init.iterdir():
        f.unlink()  # the starting weights are gone; the checkpoint has everything
    resumed = Trainer(cfg, tmp_path / "b", resume=True, datasets=datasets(), data=data)
    resumed.train()
    for k, v in resumed.network.state_dict().items():
        assert torch.equal(v, straight.network.state_dict()[k]), k
    for k, v in resumed.decoder.state_dict().items():
        assert torch.equal(v, straight.decoder.state_dict()[k]), k


def test_val_at_start_validates_the_start_and_can_hand_it_on(tmp_path, data, monkeypatch):
    """``optim.val_at_start``: the start's validation is recorded, training follows the same
    trajectory as without it, and when no later validation beats the start, the run's model
    is the starting network and decoder."""
    plain = Trainer(config(), tmp_path / "plain", datasets=datasets(), data=data)
    start = plain.validate()
    plain.train()
    checked = Trainer(config(val_at_start=True), tmp_path / "checked", datasets=datasets(),
                      data=data)
    metrics = checked.train()
    assert metrics["start_val_epe"] == start["epe"]
    logs = [pd.read_csv(tmp_path / name / "log.csv") for name in ("plain", "checked")]
    pd.testing.assert_frame_equal(logs[0].drop(columns="time"), logs[1].drop(columns="time"))
    later = logs[1]["val_epe"].dropna().to_numpy()
    assert metrics["best_val_epe"] == min(start["epe"], later.min())

    # every later validation worse than the start: the start is handed on
    monkeypatch.setattr(Trainer, "validate",
                        lambda self: {"epe": 1.0 + self.iteration, "l2norm": 2.0 + self.iteration})
    worse = Trainer(config(val_at_start=True), tmp_path / "worse", datasets=datasets(), data=data)
    before = {k: v.clone() for k, v in worse.network.state_dict().items()}
    before_dec = {k: v.clone() for k, v in worse.decoder.state_dict().items()}
    metrics = worse.train()
    assert metrics["best_iteration"] == 0 and metrics["best_val_epe"] == 1.0
    assert any(not torch.equal(v, before[k]) for k, v in worse.network.state_dict().items())
    saved = Network.load(tmp_path / "worse" / "network.pt")
    for k, v in saved.state_dict().items():
        assert torch.equal(v, before[k]), k
    decoder = torch.load(tmp_path / "worse" / "decoder.pt", weights_only=True)
    decoder = decoder.get("state_dict", decoder)
    for k, v in before_dec.items():
        assert torch.equal(decoder[k], v), k


@pytest.mark.parametrize("every, stops", [(2, True), (3, False)])
def test_a_stage_whose_updates_never_last_ends_early(tmp_path, data, monkeypatch, every, stops):
    """``optim.nonfinite_stall``: with every 2nd loss non-finite from the third step on, each
    update from the second on is taken back by the next step and the weights stay those of
    iteration 1; after 3 such steps the stage ends, hands on those weights and says so. With
    every 3rd loss non-finite, every other update lasts, and the stage runs to its end."""
    import flygnn.train as train_module
    calls, l2norm = [], train_module.l2norm

    def loss(*args):
        calls.append(1)
        value = l2norm(*args)
        return value * float("inf") if len(calls) >= 3 and len(calls) % every == 1 else value
    monkeypatch.setattr(train_module, "l2norm", loss)
    cfg = config(n_iters=12, val_every=100, skip_nonfinite=2, nonfinite_stall=3)
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=1)
    kept = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    metrics = trainer.train()
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    if stops:
        assert metrics["iteration"] == 7 == saved["iteration"]  # skipped at 3, 5, 7
        assert saved["stopped_early"].startswith("3 non-finite steps without an update that "
                                                 "lasted, the last at iteration 7")
        net = Network.load(tmp_path / "run" / "network.pt", data)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in kept.items())
    else:
        assert metrics["iteration"] == 12 and "stopped_early" not in saved
        assert trainer.guard.stalled <= 1
        assert not all(torch.equal(trainer.network.state_dict()[k], v) for k, v in kept.items())


def test_a_step_with_a_nonfinite_loss_is_skipped_then_training_stops(tmp_path, data):
    """``optim.skip_nonfinite``: a step whose loss is not finite changes no weight, takes back
    the update before it (weights, the decoder's running statistics and Adam's state: the
    next finite step is then the one that update would have followed), is logged, and
    training goes on; more such steps in a row than allowed stop it with an error naming the
    count."""
    cfg = config(n_iters=4, skip_nonfinite=2).with_overrides(["decoder.p_dropout=0.0"])
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=1)
    movies = [trainer.train_set[i] for i in range(2)]
    lum = torch.stack([m["lum"] for m in movies])
    flow = torch.stack([m["flow"] for m in movies])
    bad = flow.clone()  # an infinite target: the decoder's statistics still move in forward
    bad[0, 2, 0, 3] = float("inf")

    def weights():
        return {k: v.clone() for k, v in {**trainer.network.state_dict(),
                                          **trainer.decoder.state_dict()}.items()}

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    before, adam = weights(), copy.deepcopy(trainer.optimizer.state_dict())
    with torch.no_grad():  # the rest an undo recomputes from the weights it restores
        trainer.epoch_state = steady_state(trainer.network, cfg.optim.t_pre, cfg.data.dt)
    assert math.isfinite(trainer.step(lum, flow))
    updated = weights()
    assert not same(updated, before)
    for n in (1, 2):
        assert not math.isfinite(trainer.step(lum, bad)) and trainer.guard.count == n
        assert same(weights(), before)  # the update before the first one is taken back
    assert str(trainer.optimizer.state_dict()["state"]) == str(adam["state"])
    with pytest.raises(FloatingPointError, match=r"3th step in a row \(optim.skip_nonfinite = 2\)"):
        trainer.step(lum, bad)
    trainer.guard.count = 2
    assert math.isfinite(trainer.step(lum, flow)) and trainer.guard.count == 0
    assert same(weights(), updated)  # the same update again, from the same state


def test_state_size_is_the_largest_magnitude(data):
    """``state_size``: the largest ``|v|`` of a state (or of a tuple of states), ``inf`` for a
    non-finite one; a rest with strengths scaled beyond the stable range runs away by orders of
    magnitude within the same ``t_pre``."""
    from flygnn.simulate import state_size
    net = Network(data)
    with torch.no_grad():
        v = steady_state(net, 2.0, 0.02)
        assert state_size(v) == float(v.abs().max()) > 0
        assert state_size((v, -3 * v)) == 3 * float(v.abs().max())
        net.syn_strength.mul_(30.0)
        grown = steady_state(net, 2.0, 0.02)
    assert state_size(grown) > 1e3 * state_size(v)  # the rest ran away
    bad = v.clone()
    bad[0, 5] = float("nan")
    assert state_size(bad) == math.inf == state_size((v, bad))


@pytest.mark.parametrize("check", [0.0, 100.0])
def test_a_runaway_rest_counts_as_a_nonfinite_step(tmp_path, data, check):
    """``optim.max_rest``: a network whose grey rest runs away (strengths scaled 30x after the
    2nd update) still gives a finite loss (the decoder normalises its input); with the check
    on, the 3rd step is skipped like a non-finite one and the update that led there (the 2nd,
    with the scaling) is taken back."""
    cfg = config(n_iters=4, max_rest=check, fresh_state=True, t_pre=2.0)
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=1)
    before_update = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.train(until=2)
    with torch.no_grad():  # as if the 2nd update had crossed the edge
        trainer.network.syn_strength.mul_(30.0)
    scaled = trainer.network.syn_strength.detach().clone()
    trainer.train(until=3)  # a new epoch: its rest is computed from the scaled network
    loss = float(pd.read_csv(tmp_path / "run" / "log.csv")["loss"].iloc[-1])
    after = trainer.network.state_dict()
    if check:
        assert math.isnan(loss) and trainer.guard.count == 1
        assert all(torch.equal(after[k], v) for k, v in before_update.items())
    else:
        assert math.isfinite(loss) and trainer.guard.count == 0
        assert not torch.equal(after["syn_strength"], scaled)


def test_backoff_shortens_the_step_after_an_undone_update(tmp_path, data, monkeypatch):
    """``optim.nonfinite_backoff``: the update taken back by the non-finite 3rd step halves
    the network's rate; each update that lasts after it (those of steps 4 and 5, followed by
    finite steps) raises it by ``2 ** 0.1``; the decoder's rate is untouched. The factor is
    part of the checkpoint."""
    import flygnn.train as train_module
    calls, l2norm = [], train_module.l2norm

    def loss(*args):
        calls.append(1)
        return l2norm(*args) * (float("inf") if len(calls) == 3 else 1.0)
    monkeypatch.setattr(train_module, "l2norm", loss)
    rate = {"start": 1e-2, "stop": 1e-2, "steps": 1}
    cfg = config(n_iters=6, val_every=100, nonfinite_backoff=0.5, lr_net=rate, lr_dec=rate,
                 net_rate_scale={"syn_strength": 3.0}, penalty={"weight": 0.0})
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train()
    expected = 0.5 * 2 ** 0.2
    assert trainer.guard.rate == pytest.approx(expected, rel=1e-12)
    *net_groups, decoder_group = trainer.optimizer.param_groups
    assert sorted(g["lr"] for g in net_groups) == pytest.approx([1e-2 * expected,
                                                                 3e-2 * expected])
    assert decoder_group["lr"] == 1e-2
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["nonfinite_rate"] == trainer.guard.rate


def test_shrink_scales_the_restored_strengths(tmp_path, data, monkeypatch):
    """``optim.nonfinite_shrink``: the update taken back by the non-finite 3rd step leaves the
    strengths of before it times ``1 - shrink`` (the other tables as they were)."""
    import flygnn.train as train_module
    calls, l2norm = [], train_module.l2norm

    def loss(*args):
        calls.append(1)
        return l2norm(*args) * (float("inf") if len(calls) == 3 else 1.0)
    monkeypatch.setattr(train_module, "l2norm", loss)
    cfg = config(n_iters=3, val_every=100, nonfinite_shrink=0.25, penalty={"weight": 0.0})
    trainer = Trainer(cfg, tmp_path / "run", datasets=datasets(), data=data)
    trainer.train(until=1)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.train()
    after = trainer.network.state_dict()
    assert trainer.guard.count == 1
    assert torch.equal(after["syn_strength"], before["syn_strength"] * 0.75)
    assert all(torch.equal(after[k], v) for k, v in before.items() if k != "syn_strength")
