"""The command line on bad input: one line on stderr naming the problem, exit status 2, no
traceback (``--debug`` shows it); output paths and arguments are checked before any work."""

import numpy as np
import pytest

from flygnn import cli
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network


def _fails(capsys, argv, *words, status=2):
    assert cli.main(argv) == status
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"flygnn {argv[0]}: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A Network file at extent 2 (the connectome is rebuilt in the test cache when loaded)."""
    folder = tmp_path_factory.mktemp("model")
    Network(FlyVisConnectome(root=folder / "c", extent=2)[0]).save(folder / "network.pt")
    return folder / "network.pt"


@pytest.fixture
def movie(tmp_path):
    path = tmp_path / "movie.npy"
    np.save(path, np.full((3, 19), 0.5, np.float32))
    return path


def _simulate(model, movie, out, *extra):
    return ["simulate", "--model", str(model), "--movie", str(movie), "--out", str(out),
            "--t-pre", "0", *extra]


def test_simulate_works(capsys, tmp_path, model_file, movie, flygnn_cache):
    assert cli.main(_simulate(model_file, movie, tmp_path / "r.npz")) == 0
    with np.load(tmp_path / "r.npz") as z:
        assert z["responses"].shape[:2] == (1, 3) and np.isfinite(z["responses"]).all()


def test_output_that_is_a_folder(capsys, tmp_path, model_file, movie):
    _fails(capsys, _simulate(model_file, movie, tmp_path), "--out", "is a folder")


def test_output_under_a_file(capsys, tmp_path, model_file, movie):
    (tmp_path / "plain").write_text("x")
    _fails(capsys, _simulate(model_file, movie, tmp_path / "plain" / "r.npz"), "--out",
           "which is a file")


def test_unwritable_output(capsys, tmp_path, model_file, movie, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse)
    _fails(capsys, _simulate(model_file, movie, tmp_path / "r.npz"), "--out",
           "cannot write", "Permission denied")


def test_an_os_error_during_the_command_is_one_line(capsys, tmp_path, model_file, movie,
                                                    monkeypatch, flygnn_cache):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "r.npz"))
    monkeypatch.setattr(np, "savez", fail)
    _fails(capsys, _simulate(model_file, movie, tmp_path / "r.npz"), "No space left",
           str(tmp_path / "r.npz"))


def test_an_unexpected_error_says_to_use_debug(capsys, monkeypatch, tmp_path):
    def boom(args):
        raise RuntimeError("inner\nsecond line")
    monkeypatch.setattr(cli, "_demo", boom)  # the parser is built in main()
    line = _fails(capsys, ["demo", "--out", str(tmp_path / "d")], "RuntimeError: inner second line",
                  "--debug", status=1)
    assert "Traceback" not in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(capsys, tmp_path, where):
    argv = ["validate", "--run", str(tmp_path / "nope")]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("flygnn validate: error")


@pytest.mark.parametrize("speeds", ["a", "13,a", "0", "-5", "nan", "inf", ","])
def test_bad_speeds(capsys, tmp_path, speeds):
    _fails(capsys, ["demo", "--speeds", speeds, "--out", str(tmp_path / "d")], "--speeds",
           repr(speeds))


def test_train_output_that_is_a_file(capsys, tmp_path):
    (tmp_path / "run").write_text("x")
    _fails(capsys, ["train", "--out", str(tmp_path / "run")], "--out", "is a file")


def test_train_config_that_is_not_utf8(capsys, tmp_path):
    (tmp_path / "c.json").write_bytes(b"\xff\xfe{}")
    _fails(capsys, ["train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "r")],
           str(tmp_path / "c.json"), "UTF-8")


def test_validate_a_missing_run(capsys, tmp_path):
    _fails(capsys, ["validate", "--run", str(tmp_path / "nope")], "nope",
           "no run folder or shipped model")


def test_simulate_a_missing_movie(capsys, tmp_path, model_file, flygnn_cache):
    _fails(capsys, _simulate(model_file, tmp_path / "nope.npy", tmp_path / "r.npz"),
           "nope.npy", "not found")


def test_simulate_a_movie_of_the_wrong_width(capsys, tmp_path, model_file, flygnn_cache):
    np.save(tmp_path / "m.npy", np.zeros((3, 7), np.float32))
    _fails(capsys, _simulate(model_file, tmp_path / "m.npy", tmp_path / "r.npz"), "n_hexals=19")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_simulate_a_float64_movie_of_1e300(capsys, tmp_path, model_file, flygnn_cache):
    np.save(tmp_path / "m.npy", np.full((3, 19), 1e300))
    _fails(capsys, _simulate(model_file, tmp_path / "m.npy", tmp_path / "r.npz"), "movie",
           "must lie in [0, 1]", "1e+300")


def test_simulate_with_nan_t_pre(capsys, tmp_path, model_file, movie, flygnn_cache):
    argv = _simulate(model_file, movie, tmp_path / "r.npz")
    argv[argv.index("--t-pre") + 1] = "nan"
    _fails(capsys, argv, "t_pre", "finite")


def test_argparse_errors_still_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", "--dt", "fast"])
    assert exc.value.code == 2
