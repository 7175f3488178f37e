"""No code runs from a file: a pickle payload planted in every file flygnn loads never runs.

The payload is an object whose ``__reduce__`` creates a marker file when unpickled. Each
loader must refuse it (a ``ValueError`` naming the file; caches are rebuilt with a warning)
and the marker must never appear. ``test_the_payload_works`` proves the payload fires under a
plain ``pickle``-style load, so the other tests can fail.
"""

import json
import logging

import numpy as np
import pytest
import torch

from flygnn import checkpoint
from flygnn.build import build_decoder, build_network
from flygnn.checkpoint import FORMAT, load_checkpoint, load_file
from flygnn.cli import main
from flygnn.config import TrainConfig
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.pretrained import load_model, simulate_file
from flygnn.stimuli.opticflow import OpticFlowMovies
from flygnn.task import FlowDecoder

EXTENT = 2


class Payload:
    """Creates ``marker`` when unpickled (``open(marker, "w")``)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a planted pickle payload ran"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return FlyVisConnectome(root=tmp_path_factory.mktemp("conn"), extent=EXTENT)[0]


@pytest.fixture(scope="module")
def net(data):
    return Network(data)


def plant(path, marker, wrap=None):
    """Write a payload (inside ``wrap``'s dict when given) to ``path``."""
    obj = Payload(marker) if wrap is None else {**wrap, "payload": Payload(marker)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def _checkpoint_keys():
    return {"format": FORMAT, "network": {}, "decoder": {}, "optim": {}, "rng": {},
            "iteration": 0, "epoch": 0, "order": None, "position": 0, "epoch_state": None,
            "config": TrainConfig().to_json()}


def _refused(call, path):
    with pytest.raises(ValueError) as err:
        call()
    assert str(path) in str(err.value)
    return str(err.value)


def test_the_payload_works(tmp_path):
    marker = tmp_path / "fired"
    path = plant(tmp_path / "x.pt", marker)
    torch.load(path, weights_only=False)  # what flygnn must never do
    assert marker.exists()


def test_load_file_refuses_a_payload_and_names_it(tmp_path, marker):
    path = plant(tmp_path / "x.pt", marker)
    message = _refused(lambda: load_file(path, "decoder.init"), path)
    assert "decoder.init" in message and "weights_only" in message


@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt"])
def test_checkpoint_in_a_run_folder(tmp_path, marker, name):
    path = plant(tmp_path / "run" / name, marker, _checkpoint_keys())
    _refused(lambda: load_checkpoint(path), path)
    _refused(lambda: load_model(tmp_path / "run"), path)


def test_network_file(tmp_path, marker, net):
    path = plant(tmp_path / "m" / "network.pt", marker, {"format": "flygnn.Network"})
    _refused(lambda: Network.load(path), path)
    _refused(lambda: load_model(tmp_path / "m"), path)


def test_flyvis_checkpoint(tmp_path, marker, data):
    path = plant(tmp_path / "chkpt", marker, {"network": {}})
    _refused(lambda: Network.from_flyvis_checkpoint(path, data), path)


def test_decoder_file_of_a_model_folder(tmp_path, marker, net):
    (tmp_path / "m").mkdir()
    net.save(tmp_path / "m" / "network.pt")
    path = plant(tmp_path / "m" / "decoder.pt", marker, {})
    _refused(lambda: load_model(tmp_path / "m", net.graph), path)


def test_decoder_and_network_init_of_a_config(tmp_path, marker, net, data):
    path = plant(tmp_path / "init.pt", marker, {"decoder": {}})
    config = TrainConfig.from_dict({"network": {"extent": EXTENT},
                                    "decoder": {"init": str(path)}})
    _refused(lambda: build_decoder(config, net), path)
    config = TrainConfig.from_dict({"network": {"extent": EXTENT, "init": str(path)}})
    _refused(lambda: build_network(config, data), path)


def test_cli_validate_and_simulate(tmp_path, marker, capsys):
    run = tmp_path / "run"
    path = plant(run / "checkpoint.pt", marker, _checkpoint_keys())
    assert main(["validate", "--run", str(run)]) == 2
    movie = tmp_path / "movie.npy"
    np.save(movie, np.full((3, 19), 0.5, np.float32))
    assert main(["simulate", "--model", str(run), "--movie", str(movie),
                 "--out", str(tmp_path / "r.npz")]) == 2
    assert main(["simulate", "--model", str(path), "--movie", str(movie),
                 "--out", str(tmp_path / "r.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(str(path) in line for line in err), err
    assert "Traceback" not in "".join(err)


def test_pickled_movie_file(tmp_path, marker, net, flygnn_cache):
    net.save(tmp_path / "network.pt")
    movie = tmp_path / "movie.npy"
    np.save(movie, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle") as err:
        simulate_file(str(tmp_path / "network.pt"), movie, 0.02, tmp_path / "r.npz")
    assert str(movie) in str(err.value)


def test_connectome_cache_is_rebuilt_not_run(tmp_path, marker, caplog):
    root = tmp_path / "conn"
    good = FlyVisConnectome(root=root, extent=EXTENT)
    n = good[0].num_nodes
    plant(root / "processed" / "pre_transform.pt", marker)
    plant(root / "processed" / "pre_filter.pt", marker)
    FlyVisConnectome(root=root, extent=EXTENT)  # PyG itself would unpickle these two
    path = plant(tmp_path / "conn" / "processed" / good.processed_file_names[0], marker)
    with caplog.at_level(logging.WARNING, logger="flygnn.datasets"):
        again = FlyVisConnectome(root=root, extent=EXTENT)
    assert again[0].num_nodes == n
    assert str(path) in caplog.text and "rebuilding" in caplog.text
    torch.load(path, weights_only=True)  # the rebuilt cache is a clean file again


def test_optic_flow_cache_is_rendered_again(tmp_path, marker, caplog):
    kwargs = dict(extent=EXTENT, n_source_frames=3, height=32, width=32, root=tmp_path, cache=False)
    movies = OpticFlowMovies(2, **kwargs)
    first = movies[0]
    files = sorted(tmp_path.rglob("item_*.pt"))
    assert files
    plant(files[0], marker)
    with caplog.at_level(logging.WARNING, logger="flygnn.stimuli.opticflow"):
        again = OpticFlowMovies(2, **kwargs)[0]
    assert str(files[0]) in caplog.text and "rendering the item again" in caplog.text
    torch.testing.assert_close(again["lum"], first["lum"])


def test_truncated_optic_flow_cache_is_rendered_again(tmp_path, caplog):
    kwargs = dict(extent=EXTENT, n_source_frames=3, height=32, width=32, root=tmp_path, cache=False)
    first = OpticFlowMovies(1, **kwargs)[0]
    (path,) = tmp_path.rglob("item_*.pt")
    path.write_bytes(path.read_bytes()[:50])
    with caplog.at_level(logging.WARNING, logger="flygnn.stimuli.opticflow"):
        again = OpticFlowMovies(1, **kwargs)[0]
    assert str(path) in caplog.text
    torch.testing.assert_close(again["flow"], first["flow"])
    assert set(torch.load(path, weights_only=True)) >= {"lum", "flow"}  # written again, whole


def test_training_checkpoints_load_with_weights_only(tmp_path, net):
    """What the trainer saves (Adam state, generator states, config) needs no pickle."""
    decoder = FlowDecoder(net.graph)
    params = list(net.parameters()) + list(decoder.parameters())
    optim = torch.optim.Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    optim.step()
    blob = {**_checkpoint_keys(), "network": net.state_dict(), "decoder": decoder.state_dict(),
            "optim": optim.state_dict(), "rng": {"order": torch.Generator().get_state()},
            "order": torch.randperm(5), "epoch_state": torch.zeros(1, net.num_nodes),
            "best": {"val_epe": 1.0, "iteration": 3}, "elapsed": 2.0, "time": "now"}
    checkpoint.atomic_torch_save(blob, tmp_path / "checkpoint.pt")
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["optim"]["state"].keys() == optim.state_dict()["state"].keys()
    assert json.loads(loaded["config"]) == json.loads(TrainConfig().to_json())
