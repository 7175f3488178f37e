"""Bad files: configs, checkpoints, model folders, ensemble metrics. Each error is a
ValueError/FileNotFoundError naming the file and the field or what was expected."""

import json

import numpy as np
import pytest
import torch

from flygnn.analysis.ensembles import Ensemble
from flygnn.checkpoint import FORMAT, load_checkpoint, load_file
from flygnn.config import TrainConfig
from flygnn.datasets import FlyVisConnectome
from flygnn.distributed.training import finished_metrics, read_manifest
from flygnn.network import Network
from flygnn.pretrained import load_model, simulate_file

EXTENT = 2


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return Network(FlyVisConnectome(root=tmp_path_factory.mktemp("c"), extent=EXTENT)[0])


def _error(call, path, *words, kind=ValueError):
    with pytest.raises(kind) as err:
        call()
    message = str(err.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


# --------------------------------------------------------------------------- configs


def test_network_config_with_a_list_extent(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"network": {"extent": [2]}}))
    with pytest.raises(ValueError, match=r"'network.extent'.*integer.*\[2\]"):
        TrainConfig.from_json(path)


def test_non_utf8_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b'{"seed": 1, "name": "\xff\xfe"}')
    _error(lambda: TrainConfig.from_json(path), path, "UTF-8")


def test_deeply_nested_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    _error(lambda: TrainConfig.from_json(path), path, "nested too deeply")


def test_config_that_is_a_folder(tmp_path):
    _error(lambda: TrainConfig.from_json(tmp_path), tmp_path, "not readable")


def test_missing_config(tmp_path):
    _error(lambda: TrainConfig.from_json(tmp_path / "nope.json"), tmp_path / "nope.json",
           "not found", kind=FileNotFoundError)


def test_config_with_trailing_garbage(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"seed": 1} x')
    _error(lambda: TrainConfig.from_json(path), path, "not valid JSON")


# --------------------------------------------------------------------------- checkpoints


def test_truncated_checkpoint(tmp_path, net):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "network": net.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:200])
    _error(lambda: load_checkpoint(path), path, "not readable")


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    _error(lambda: load_checkpoint(path), path, "not a flygnn training checkpoint")


def test_checkpoint_missing_keys(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "network": {}}, path)
    _error(lambda: load_checkpoint(path), path, "lacks the keys", "'optim'")


def test_load_file_of_a_folder(tmp_path):
    _error(lambda: load_file(tmp_path, "decoder.init"), tmp_path, "decoder.init", "not found")


def test_network_file_with_a_list_extent(tmp_path, net):
    path = tmp_path / "network.pt"
    net.save(path)
    blob = torch.load(path, weights_only=True)
    blob["config"]["extent"] = [2]
    torch.save(blob, path)
    _error(lambda: Network.load(path), path, "'extent'", "[2]")


def test_network_file_of_another_shape(tmp_path, net):
    path = tmp_path / "network.pt"
    net.save(path)
    blob = torch.load(path, weights_only=True)
    key = next(iter(blob["state_dict"]))
    blob["state_dict"][key] = torch.zeros(7)
    torch.save(blob, path)
    _error(lambda: Network.load(path, net.graph), path, "does not fit")


def test_decoder_file_of_another_shape(tmp_path, net):
    net.save(tmp_path / "network.pt")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "decoder.pt")
    with pytest.raises(ValueError, match="decoder weights do not fit"):
        load_model(tmp_path, net.graph)


def test_model_folder_without_weights(tmp_path):
    _error(lambda: load_model(tmp_path), tmp_path, "none of network.pt")


def test_model_folder_with_malformed_metrics(tmp_path, net):
    net.save(tmp_path / "network.pt")
    (tmp_path / "metrics.json").write_text('{"best_val_epe": ')
    _error(lambda: load_model(tmp_path, net.graph), tmp_path / "metrics.json", "not valid JSON")


@pytest.mark.parametrize("content", [b"\x00\x01", b"not numpy"])
def test_unreadable_movie_file(tmp_path, net, content, flygnn_cache):
    net.save(tmp_path / "network.pt")
    movie = tmp_path / "movie.npy"
    movie.write_bytes(content)
    _error(lambda: simulate_file(str(tmp_path / "network.pt"), movie, 0.02, tmp_path / "r.npz"),
           movie, "not readable")


def test_movie_file_of_strings(tmp_path, net, flygnn_cache):
    net.save(tmp_path / "network.pt")
    movie = tmp_path / "movie.npy"
    np.save(movie, np.array([["a"] * 19] * 3))
    _error(lambda: simulate_file(str(tmp_path / "network.pt"), movie, 0.02, tmp_path / "r.npz"),
           movie, "expected numbers")


# --------------------------------------------------------------------------- ensembles


def _member(folder, net, metrics: str):
    folder.mkdir(parents=True)
    net.save(folder / "network.pt")
    (folder / "metrics.json").write_text(metrics)
    return folder / "metrics.json"


@pytest.mark.parametrize("metrics, words", [
    ('{"best_val_epe": 1.5', ["not valid JSON"]),
    ('[1.5]', ["expected a JSON object"]),
    ('{"best_val_epe": "low"}', ["'best_val_epe'", "not a number"]),
    ('{"best_val_epe": true}', ["'best_val_epe'", "not a number"]),
])
def test_malformed_ensemble_metrics(tmp_path, net, metrics, words):
    path = _member(tmp_path / "ens" / "000", net, metrics)
    _error(lambda: Ensemble.from_dir(tmp_path / "ens", net.graph), path, *words)


def test_malformed_member_metrics_on_resume(tmp_path, net):
    path = _member(tmp_path / "000", net, "{")
    _error(lambda: finished_metrics(tmp_path / "000"), path, "not valid JSON")


def test_malformed_ensemble_manifest(tmp_path):
    (tmp_path / "ensemble.json").write_bytes(b"\xff")
    _error(lambda: read_manifest(tmp_path), tmp_path / "ensemble.json", "UTF-8")
