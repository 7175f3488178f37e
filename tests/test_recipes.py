"""Recipes: the tiny recipe trains and loads, resumes bit for bit after interruptions between
stages, inside a stage and inside a write; robust resume of a run folder; ensembles."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

import flygnn
from flygnn import checkpoint
from flygnn.cli import main
from flygnn.recipes import load_recipe, recipe_names, run_recipe, stage_configs
from flygnn.train import Trainer


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("movies"))


def tiny(out, cache, **kwargs):
    kwargs.setdefault("progress", False)
    return run_recipe("tiny", out, overrides=[f"data.cache={cache}"], **kwargs)


def tensors(folder):
    """Every tensor of the final network and decoder of a model folder."""
    net = torch.load(folder / "network.pt", weights_only=True)
    dec = torch.load(folder / "decoder.pt", weights_only=True)
    flat = {}
    for prefix, blob in (("net", net), ("dec", dec)):
        for key, value in (blob.get("state_dict", blob) if isinstance(blob, dict) else {}).items():
            if isinstance(value, torch.Tensor):
                flat[f"{prefix}.{key}"] = value
    assert flat
    return flat


def assert_identical(a, b):
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        assert torch.equal(ta[key], tb[key]), key
    logs = [pd.read_csv(f / "log.csv").drop(columns="time") for f in (a, b)]
    pd.testing.assert_frame_equal(*logs)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("ref") / "model"
    metrics = tiny(out, cache)
    return out, metrics


def test_cli_trains_the_tiny_recipe_into_a_model_folder(tmp_path, cache, reference):
    out = tmp_path / "model"
    args = ["train", "--recipe", "tiny", "--out", str(out), "--set", f"data.cache={cache}",
            "--no-progress"]
    assert main(args) == 0
    assert main(args) == 2  # not empty: no silent overwrite
    model = flygnn.load_model(out)
    recipe = load_recipe("tiny")
    last = stage_configs(recipe)[-1]
    assert model.config.network.extent == last.network.extent
    assert model.network.graph.extent == last.network.extent and model.decoder is not None
    assert model.metrics["recipe"] == "tiny"
    assert [s["stage"] for s in model.metrics["stages"]] == [s["name"] for s in recipe["stages"]]
    log = pd.read_csv(out / "log.csv")
    counts = log.groupby("stage", sort=False).size()
    assert counts.to_dict() == {s["name"]: c.optim.n_iters
                                for s, c in zip(recipe["stages"], stage_configs(recipe))}
    assert json.loads((out / "recipe.json").read_text())["recipe"] == recipe
    assert (out / "loss.png").is_file()
    for k, stage in enumerate(recipe["stages"]):  # each stage's log and model, no checkpoints
        folder = out / "stages" / f"{k}_{stage['name']}"
        assert (folder / "log.csv").is_file() and (folder / "network.pt").is_file()
        assert not (folder / "checkpoint.pt").exists() and not (folder / "best.pt").exists()
    # training changed the network, and the same recipe and seed give the same model
    untrained = flygnn.Network(model.network.graph)
    assert not torch.equal(model.network.time_const, untrained.time_const)
    assert_identical(out, reference[0])


def test_resume_between_stages_is_bit_identical(tmp_path, cache, reference):
    out = tmp_path / "model"
    partial = tiny(out, cache, stop_after=1)
    assert len(partial["stages"]) == 1 and not (out / "metrics.json").exists()
    with pytest.raises(ValueError, match="not empty"):
        tiny(out, cache)
    metrics = tiny(out, cache, resume=True)
    assert metrics["best_val_epe"] == reference[1]["best_val_epe"]
    assert_identical(out, reference[0])


def test_resume_inside_a_stage_and_inside_a_write_is_bit_identical(tmp_path, cache, reference,
                                                                   monkeypatch):
    """Ctrl-C in the middle of the second stage's step, then a kill in the middle of writing a
    checkpoint (the temporary file half written): both resume to the same model."""
    out = tmp_path / "model"
    original_step = Trainer.step

    def interrupted(self, *args):
        if self.out.name == "1_decoder" and self.iteration == 1:
            raise KeyboardInterrupt
        return original_step(self, *args)

    monkeypatch.setattr(Trainer, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny(out, cache)
    monkeypatch.setattr(Trainer, "step", original_step)
    calls, save = [], torch.save

    def torn_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second checkpoint of the first stage
            f.write(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt
        return save(obj, f, *args, **kwargs)

    out2 = tmp_path / "model2"
    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        tiny(out2, cache)
    monkeypatch.setattr(checkpoint.torch, "save", save)
    stage = out2 / "stages" / "0_network"
    assert not list(stage.glob(".*.tmp"))  # the torn temporary file is gone
    with open(stage / "log.csv", "a") as f:
        f.write("3,0.5")  # and a torn log row, as a kill mid-append leaves it
    for folder in (out, out2):
        tiny(folder, cache, resume=True)
        assert_identical(folder, reference[0])


def test_resume_refuses_another_recipe_seed_or_overrides(tmp_path, cache):
    out = tmp_path / "model"
    tiny(out, cache, stop_after=1)
    with pytest.raises(ValueError, match="seed"):
        tiny(out, cache, resume=True, seed=5)
    with pytest.raises(ValueError, match="differ"):
        run_recipe("tiny", out, resume=True, progress=False)  # the cache override is missing
    edited = load_recipe("tiny")  # reworded descriptions: the same recipe; more iterations: not
    edited["about"] = "reworded"
    edited["stages"][0]["about"] = "reworded too"
    longer = json.loads(json.dumps(edited))
    longer["stages"][1]["config"].setdefault("optim", {})["n_iters"] = 99
    with pytest.raises(ValueError, match="n_iters"):
        run_recipe(longer, out, resume=True, progress=False, overrides=[f"data.cache={cache}"])
    run_recipe(edited, out, resume=True, progress=False, overrides=[f"data.cache={cache}"],
               stop_after=1)  # accepted (stage 0 is done: nothing to train)
    metrics = run_recipe(None, out, resume=True, progress=False)  # the saved recipe
    assert metrics["recipe"] == "tiny"


def _single(tmp_path, cache, until=None, **kwargs):
    config = stage_configs(load_recipe("tiny"), overrides=[f"data.cache={cache}",
                                                           "optim.n_iters=6"])[0]
    trainer = Trainer(config, tmp_path / "run", **kwargs)
    trainer.train(until)
    return trainer


def test_a_missing_checkpoint_falls_back_to_best_or_refuses(tmp_path, cache, caplog):
    straight = _single(tmp_path / "a", cache)
    _single(tmp_path / "b", cache, until=5)  # validated at 2 and 4: best.pt at 4 or earlier
    run = tmp_path / "b" / "run"
    (run / "checkpoint.pt").unlink()
    with caplog.at_level(logging.WARNING):
        resumed = Trainer(None, run, resume=True)
    assert "resuming from best.pt" in caplog.text
    assert resumed.iteration == resumed.best["iteration"] < 5
    assert len(pd.read_csv(run / "log.csv")) == resumed.iteration
    resumed.train()
    for a, b in zip(straight.network.parameters(), resumed.network.parameters()):
        assert torch.equal(a, b)
    _single(tmp_path / "c", cache, until=3)
    run = tmp_path / "c" / "run"
    (run / "checkpoint.pt").unlink()
    (run / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="logged 3 iterations but has no readable checkpoint"):
        Trainer(None, run, resume=True)


def test_a_checkpoint_of_the_wrong_shape_is_named(tmp_path, cache):
    _single(tmp_path / "a", cache, until=2)
    other = stage_configs(load_recipe("tiny"), overrides=[f"data.cache={cache}"])[1]
    run = tmp_path / "b" / "run"
    run.mkdir(parents=True)
    other.to_json(run / "config.json")
    (run / "checkpoint.pt").write_bytes((tmp_path / "a" / "run" / "checkpoint.pt").read_bytes())
    with pytest.raises(ValueError, match=r"checkpoint .* does not fit .*extent 3"):
        Trainer(None, run, resume=True)


def test_torn_log_rows_are_dropped(tmp_path, cache):
    trainer = _single(tmp_path, cache, until=4)
    log = trainer.out / "log.csv"
    with open(log, "a") as f:
        f.write("5,0.1,0.001,,,1.0\n6,0.2")  # a row after the checkpoint and a torn one
    Trainer(None, trainer.out, resume=True)
    assert pd.read_csv(log)["iteration"].tolist() == [1, 2, 3, 4]
    trainer.run.repair_log(4)
    log.write_text(log.read_text() + "1")  # a torn row whose first field parses
    trainer.run.repair_log(9)
    assert pd.read_csv(log)["iteration"].tolist() == [1, 2, 3, 4]


def test_shipped_recipes_are_valid():
    assert recipe_names() == ["cpu", "flyvis", "tiny"]
    cpu = stage_configs(load_recipe("cpu"))
    assert [c.network.extent for c in cpu] == [5, 5, 5, 7, 15]
    assert all(c.optim.strength_floor == 0.25 for c in cpu)
    assert cpu[-1].optim.train_network is False and cpu[-1].decoder.type_dropout == 0
    last = cpu[-1].optim
    assert last.lr_dec.value(0, last.n_iters) == 1e-4
    assert last.lr_dec.value(last.n_iters - 1, last.n_iters) == pytest.approx(1e-5)
    for stage in cpu[1:4]:  # the network's stages keep T4/T5 at rest in [-0.5, 0]
        p = stage.optim.penalty
        assert p.rest_weight > 0 and (p.rest_floor, p.rest_target) == (-0.5, 0.0)
        assert sorted(p.rest_types) == [f"T{k}{d}" for k in (4, 5) for d in "abcd"]
    # flyvis's activity penalty in tune only; refine trains the same tables without it
    assert [c.optim.penalty.stop_iter for c in cpu[1:4]] == [0, 150_000, 0]
    assert cpu[2].optim.train_params == cpu[3].optim.train_params
    (flyvis,) = stage_configs(load_recipe("flyvis"))
    assert flyvis.optim.n_iters == 250_000 and flyvis.network.extent == 15
    assert flyvis.optim.lr_net.start == 5e-5 and flyvis.optim.penalty.stop_iter == 150_000


@pytest.mark.parametrize("bad, match", [
    ({"stages": []}, "non-empty"),
    ({"stages": [{"name": "a", "cfg": {}}]}, "keys among"),
    ({"stages": [{"name": "a", "start": {"network": "previous"}}]}, "no previous stage"),
    ({"stages": [{"name": "a"}, {"name": "a"}]}, "unique"),
    ({"stages": [{"name": "a"}, {"name": "b", "config": {"optim": {"batch_size": 0}}}]},
     r"stage 1 \(b\).*optim.batch_size"),
])
def test_bad_recipes_are_named(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        run_recipe(bad, tmp_path / "x", progress=False)
    assert main(["train", "--recipe", "no-such-recipe", "--out", str(tmp_path / "y")]) == 2


def test_ensemble_of_two_tiny_models(tmp_path, cache, reference):
    from flygnn.analysis.ensembles import Ensemble
    from flygnn.analysis.runners import flash_responses

    tiny(tmp_path / "ens" / "seed1", cache, seed=1)
    (tmp_path / "ens" / "seed0").symlink_to(reference[0])
    ensemble = flygnn.load_ensemble(tmp_path / "ens")
    assert isinstance(ensemble, Ensemble) and ensemble.names == ["seed0", "seed1"]
    assert ensemble.validation_loss["seed0"] == reference[1]["best_val_epe"]
    assert not torch.equal(ensemble[0].syn_strength, ensemble[1].syn_strength)  # other seeds
    same = flygnn.load_ensemble([reference[0], tmp_path / "ens" / "seed1"])
    assert torch.equal(same[1].bias, ensemble[1].bias) and len(same.models) == 2
    best = ensemble.ranked().names[0]
    assert ensemble.validation_loss[best] == ensemble.validation_loss.min()
    responses = ensemble.responses(flash_responses, dt=1 / 50, t_stim=0.1, t_pre=0.1, extent=3)
    data = responses.responses
    assert data.shape[0] == 2 and np.isfinite(data).all()
    with pytest.raises(ValueError, match="holds no model"):
        flygnn.load_ensemble(tmp_path)


def test_a_killed_recipe_resumes_bit_identically(tmp_path, cache, reference):
    """SIGKILL the command at whatever point it reached once its first stage finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "model"
    cmd = [sys.executable, "-m", "flygnn.cli", "train", "--recipe", "tiny", "--out", str(out),
           "--set", f"data.cache={cache}", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out / "stages" / "0_network" / "metrics.json"
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists()
    # the resume and an uninterrupted run in the same environment as the killed one (sums in
    # the backward pass may round differently with another thread count)
    subprocess.run(cmd + ["--resume"], env=env, check=True, stdout=subprocess.DEVNULL)
    whole = tmp_path / "whole"
    subprocess.run([*cmd[:7], str(whole), *cmd[8:]], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    assert_identical(out, whole)


def test_ctrl_c_tells_how_to_resume(tmp_path, monkeypatch, capsys):
    import flygnn.recipes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(flygnn.recipes, "run_recipe", interrupted)
    assert main(["train", "--recipe", "tiny", "--out", str(tmp_path / "x")]) == 130
    assert "--resume" in capsys.readouterr().err


def test_load_pretrained_loads_a_shipped_ensemble_folder(tmp_path, reference, monkeypatch):
    from flygnn import pretrained

    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "a").symlink_to(reference[0])
    (tmp_path / "ens" / "b").symlink_to(reference[0])
    monkeypatch.setattr(pretrained, "_models_dir", lambda: tmp_path)
    ensemble = flygnn.load_pretrained("ens")
    assert ensemble.names == ["a", "b"] and len(ensemble.models) == 2
    assert torch.equal(ensemble[0].bias, ensemble[1].bias)
