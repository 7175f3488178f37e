"""Responses container and the response runners (with a stand-in simulator, and for real once the
network and simulator exist)."""

import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn.analysis import known, runners, tuning
from flygnn.analysis.responses import Responses
from flygnn.analysis.runners import flash_responses, stimulus_responses
from flygnn.network import Network

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis"


def _resp(n_models=2, n_samples=3, n_frames=5, n_cells=4):
    r = np.arange(n_models * n_samples * n_frames * n_cells, dtype=np.float32)
    r = r.reshape(n_models, n_samples, n_frames, n_cells)
    params = pd.DataFrame(
        {"intensity": [0, 1, 1], "speed": [13.0, 13.0, 25.0]}, index=[10, 11, 12]
    )
    return Responses(r, params, 0.01, 0.02, ["A", "B", "C", "B"], model_names=["m0", "m1"])


def test_container_converts_tensors_and_adds_model_axis():
    resp = Responses(torch.ones(3, 5, 2, dtype=torch.float64), pd.DataFrame({"a": [1, 2, 3]}),
                     0.01, 0.0, ["x", "y"])
    assert isinstance(resp.responses, np.ndarray) and resp.responses.dtype == np.float32
    assert resp.shape == (1, 3, 5, 2) and resp.model_names == ["model_0"]
    np.testing.assert_array_equal(resp.time, np.arange(5) * 0.01)


def test_sel_by_cell_type_and_model():
    resp = _resp()
    b = resp.sel(cell_type="B")
    assert b.cell_types == ["B", "B"]
    np.testing.assert_array_equal(b.responses, resp.responses[..., [1, 3]])
    m = resp.sel(model="m1", cell_type=["C"])
    np.testing.assert_array_equal(m.responses, resp.responses[1:, :, :, [2]])
    assert m.model_names == ["m1"]
    np.testing.assert_array_equal(resp.sel(model=-1).responses, resp.responses[1:])


def test_where_selects_samples_and_keeps_index():
    resp = _resp()
    sub = resp.where(intensity=1, speed=[25])
    assert list(sub.params.index) == [12]
    np.testing.assert_array_equal(sub.responses, resp.responses[:, [2]])
    assert list(resp.where(speed=13.0).params.index) == [10, 11]


def test_change_from_rest_subtracts_each_samples_first_frame():
    resp = _resp()
    change = resp.change_from_rest()
    # _resp counts up by n_cells per frame: frame k is k * 4 above frame 0
    expected = np.broadcast_to((np.arange(5) * 4.0)[None, None, :, None], resp.shape)
    np.testing.assert_array_equal(change.responses, expected)
    assert change.params.equals(resp.params) and change.cell_types == resp.cell_types
    assert (change.dt, change.t_pre, change.model_names) == (resp.dt, resp.t_pre, resp.model_names)


def test_to_frame_long_form_values():
    resp = _resp()
    frame = resp.to_frame()
    assert len(frame) == resp.responses.size
    hit = (frame.model == "m1") & (frame["sample"] == 12) & (frame.frame == 3) & (frame.cell == 2)
    row = frame[hit]
    assert row.response.item() == resp.responses[1, 2, 3, 2]
    assert row.time.item() == pytest.approx(3 * 0.01 - 0.02)
    assert row.cell_type.item() == "C" and row.speed.item() == 25.0 and row.intensity.item() == 1


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match="n_models, n_samples"):
        Responses(np.zeros((3, 4)), pd.DataFrame({"a": [0, 1, 2]}), 0.01, 0.0, ["x"] * 4)


def test_rejects_param_row_mismatch():
    with pytest.raises(ValueError, match="params has 2 rows"):
        Responses(np.zeros((3, 4, 1)), pd.DataFrame({"a": [0, 1]}), 0.01, 0.0, ["x"])


def test_rejects_cell_type_mismatch():
    with pytest.raises(ValueError, match="cell_types has 2"):
        Responses(np.zeros((3, 4, 1)), pd.DataFrame({"a": [0, 1, 2]}), 0.01, 0.0, ["x", "y"])


def test_rejects_model_name_mismatch():
    with pytest.raises(ValueError, match="model_names"):
        Responses(np.zeros((2, 3, 4, 1)), pd.DataFrame({"a": [0, 1, 2]}), 0.01, 0.0, ["x"], ["m"])


def test_rejects_nonpositive_dt():
    with pytest.raises(ValueError, match="dt"):
        Responses(np.zeros((3, 4, 1)), pd.DataFrame({"a": [0, 1, 2]}), 0.0, 0.0, ["x"])


def test_sel_unknown_type_and_where_unknown_param():
    resp = _resp()
    with pytest.raises(ValueError, match="cell_type"):
        resp.sel(cell_type="Z")
    with pytest.raises(ValueError, match="not a stimulus parameter"):
        resp.where(angle=0)
    with pytest.raises(ValueError, match="no sample matches"):
        resp.where(speed=1.0)


# --------------------------------------------------------------------------- runner protocol


class _ToyNet(torch.nn.Module):
    """Stand-in network: 'central response' of cell c = gain_c * mean luminance + state."""

    def __init__(self, n_cells=65):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.linspace(0.5, 1.5, n_cells))


def _fake_simulate_module(calls):
    mod = types.ModuleType("flygnn.simulate")

    def steady_state(net, t_pre, dt, batch_size=1, value=0.5):
        calls.append(("steady_state", t_pre, dt, batch_size, value))
        return torch.full((batch_size, 1), value * 10.0)

    def simulate(net, movie, dt, initial_state=None, record="central"):
        calls.append(("simulate", tuple(movie.shape), dt, record, torch.is_grad_enabled()))
        mean = movie.mean(dim=-1, keepdim=True)  # (B, T, 1)
        return mean * net.gain + initial_state[:, :1, None]

    mod.steady_state, mod.simulate = steady_state, simulate
    return mod


def _patch_simulate(monkeypatch, calls):
    fake = _fake_simulate_module(calls)
    for name in ("steady_state", "simulate"):
        monkeypatch.setattr(runners, name, getattr(fake, name))


class _ToyData:
    def __init__(self, n=5, frames=7):
        g = torch.Generator().manual_seed(0)
        self.items = torch.rand(n, frames, 19, generator=g)
        self.params = pd.DataFrame({"k": np.arange(n)})
        self.dt, self.t_pre = 0.01, 0.03

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_stimulus_responses_protocol(monkeypatch):
    calls = []
    _patch_simulate(monkeypatch, calls)
    nets, data = [_ToyNet(), _ToyNet()], _ToyData()
    with torch.no_grad():
        nets[1].gain.mul_(2)
    resp = stimulus_responses(nets, data, t_pre_state=1.0, batch_size=2, model_names=["a", "b"])
    expected = data.items.mean(-1, keepdim=True) * nets[0].gain.detach() + 5.0
    np.testing.assert_allclose(resp.responses[0], expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(resp.responses[1] - 5.0, 2 * (expected.numpy() - 5.0), rtol=1e-5)
    assert resp.cell_types == known.cell_types() and resp.model_names == ["a", "b"]
    assert resp.t_pre == 0.03 and resp.dt == 0.01
    # one batch-1 grey state per network, batches of 2, 2, 1 in item order, no gradients
    assert [c[0] for c in calls] == ["steady_state", "simulate", "simulate", "simulate"] * 2
    assert calls[0] == ("steady_state", 1.0, 0.01, 1, 0.5)
    assert [c[1][0] for c in calls if c[0] == "simulate"] == [2, 2, 1, 2, 2, 1]
    assert not any(c[4] for c in calls if c[0] == "simulate")


def test_stimulus_responses_rejects_empty_and_bad_batch():
    with pytest.raises(ValueError, match="nets is empty"):
        stimulus_responses([], _ToyData())
    with pytest.raises(ValueError, match="batch_size"):
        stimulus_responses(_ToyNet(), _ToyData(), batch_size=0)


def test_flash_runner_feeds_flashes(monkeypatch):
    pytest.importorskip("flygnn.stimuli.flashes")
    calls = []
    _patch_simulate(monkeypatch, calls)
    resp = flash_responses(_ToyNet())
    assert resp.shape == (1, 4, 600, 65) and resp.attrs["t_stim"] == 1.0
    table = resp.params[["intensity", "radius"]].values.tolist()
    assert table == [[0, -1], [0, 6], [1, -1], [1, 6]]
    # toy response: gain * mean luminance + 5; full-field ON flash -> mean 1 during frames 200..399
    gain = np.linspace(0.5, 1.5, 65, dtype=np.float32)
    np.testing.assert_allclose(resp.responses[0, 2, 300], gain + 5.0, rtol=1e-6)
    np.testing.assert_allclose(resp.responses[0, 2, 100], 0.5 * gain + 5.0, rtol=1e-6)
    assert calls[1][1] == (4, 600, 721)
    fri = tuning.flash_response_index(resp, radius=-1)
    # window frames 200..400 (frame 400 is grey again); min = 5 (OFF flash, mean 0) is added:
    # on = gain + 5 + 5, off = 0.5 gain + 5 + 5 (grey frame 400) -> 0.5 gain / (1.5 gain + 20)
    np.testing.assert_allclose(fri.to_numpy(), 0.5 * gain / (1.5 * gain + 20.0), rtol=1e-5)


# --------------------------------------------------------------------------- the real network


def test_flash_responses_of_public_network_match_fixture():
    net = Network.from_flyvis_checkpoint(REF / "flyvis_chkpt_public.pt")
    resp = flash_responses(net)
    data = np.load(REF / "flashes_public.npz")
    np.testing.assert_allclose(resp.responses[0], data["central_responses"], atol=1e-5)
    fri = tuning.flash_response_index(resp).to_numpy()
    # the FRI divides response differences by their sum: the 1e-5 agreement of the responses
    # (summation order differs with the number of torch threads) allows ~2e-5 here
    np.testing.assert_allclose(fri, data["fri"][1], rtol=0, atol=3e-5)

