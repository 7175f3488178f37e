"""The command line as a user meets it: help, shipped names, the run's own validation settings
and movies outside the luminance range."""

import json

import numpy as np
import pytest

from flygnn import cli, pretrained

COMMANDS = ("demo", "connectome", "train", "simulate", "validate", "train-ensemble",
            "evaluate-ensemble")


def _subparsers(parser):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_lists_every_command_with_a_description(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert command in text
    assert "``" not in text and "later modules" not in text
    for name, sub in _subparsers(cli.build_parser()).items():
        assert sub.description and "``" not in sub.format_help(), name


def test_help_shows_defaults():
    subs = _subparsers(cli.build_parser())
    simulate = subs["simulate"].format_help()
    assert "(default: 0.02)" in simulate and "(default: 1.0)" in simulate
    assert "[0, 1]" in simulate
    assert "(default: 15)" in subs["demo"].format_help()


def test_simulate_refuses_a_movie_outside_0_1(tmp_path, capsys):
    movie = np.full((3, 721), 200, dtype=np.uint8)
    np.save(tmp_path / "movie.npy", movie)
    code = cli.main(["simulate", "--model", "flow_cpu", "--movie", str(tmp_path / "movie.npy"),
                     "--out", str(tmp_path / "r.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "[0, 1]" in err and "[200, 200]" in err and "255" in err
    assert not (tmp_path / "r.npz").exists()
    with pytest.raises(ValueError, match=r"got values in \[-0.5, 0.5\]"):
        pretrained.check_movie_range(np.array([[-0.5, 0.5]]), "movie")
    with pytest.raises(ValueError, match="NaN"):
        pretrained.check_movie_range(np.array([[np.nan, 0.5]]), "movie")
    pretrained.check_movie_range(np.array([[0.0, 1.0]]), "movie")  # the edges are fine


def test_validate_uses_the_runs_settings_and_accepts_shipped_names(monkeypatch, capsys):
    import flygnn.task

    seen = {}

    def evaluate(net, decoder, dataset, dt, t_pre, batch_size, progress):
        seen.update(t_pre=t_pre, batch_size=batch_size, dt=dt)
        return {"l2norm": 1.0, "epe": 2.0}

    def build_datasets(config):
        seen.update(val_start=config.data.val_start, n_val=config.data.n_val)
        return [], [0] * config.data.n_val

    monkeypatch.setattr(pretrained, "build_datasets", build_datasets)
    monkeypatch.setattr(flygnn.task, "evaluate", evaluate)
    monkeypatch.setattr(flygnn.task, "zero_flow_error", lambda val: {"epe": 3.0})
    name = "flow_cpu_threshold"
    config = pretrained.load_pretrained(name).config
    folder = pretrained._models_dir() / name
    before = sorted(p.name for p in folder.iterdir())
    assert cli.main(["validate", name]) == 0
    result = json.loads(capsys.readouterr().out)
    assert seen == {"t_pre": config.optim.val_t_pre, "batch_size": config.optim.val_batch_size,
                    "dt": config.data.dt, "val_start": config.data.val_start,
                    "n_val": config.data.n_val}
    assert config.optim.val_t_pre == 2.0  # not the 0.5 of a generic default
    metrics = json.loads((folder / "metrics.json").read_text())
    assert result["recorded"] == {"l2norm": metrics["val_l2norm"], "epe": metrics["val_epe"]}
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written into the package
    assert cli.main(["validate", str(folder), "--t-pre", "0.5", "--batch-size", "2",
                     "--out", "/dev/null"]) == 0
    assert (seen["t_pre"], seen["batch_size"]) == (0.5, 2)
    # another block of the same movie set: its items, and no 'recorded' (other movies)
    capsys.readouterr()
    assert cli.main(["validate", name, "--val-start", "272", "--n-val", "64"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (seen["val_start"], seen["n_val"]) == (272, 64)
    assert (result["val_start"], result["n_val"]) == (272, 64) and "recorded" not in result
    assert cli.main(["validate", name, "--n-val", "0"]) == 2
    assert "n_val must be an integer >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["validate", "no_such_model"]) == 2
    assert "shipped models" in capsys.readouterr().err
