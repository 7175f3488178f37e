"""Bad simulation and stimulus inputs: non-finite values are refused where they enter (movie
after the cast to the network's dtype, states, times, angles), with a ValueError naming the
argument; the flash asked for is simulated."""

import numpy as np
import pytest
import tiny_connectome as tc
import torch

from flygnn.analysis.tuning import flash_response_index
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.simulate import simulate, steady_state
from flygnn.stimuli import Flashes
from flygnn.stimuli.gratings import Gratings
from flygnn.stimuli.moving import MovingBars, MovingEdges

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    data = FlyVisConnectome(root=folder / "cache", extent=2, file=tc.write(folder))[0]
    return Network(data)


def movie(net, frames=3, value=0.5, dtype=torch.float32):
    return torch.full((1, frames, net.n_hexals), value, dtype=dtype)


def _error(call, *words):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    for word in words:
        assert word in message, message
    return message


def test_a_valid_simulation_is_finite(net):
    out = simulate(net, movie(net), dt=0.02, t_pre=0.1)
    assert out.shape == (1, 3, net.num_nodes) and torch.isfinite(out).all()


def test_float64_movie_of_1e300_is_refused_after_the_cast(net):
    big = movie(net, value=1e300, dtype=torch.float64)
    assert torch.isfinite(big).all()  # finite in float64, infinite in float32
    _error(lambda: simulate(net, big, dt=0.02, t_pre=0), "movie", "NaN or infinite", "float32")


@pytest.mark.parametrize("value", [NAN, INF, -INF])
def test_non_finite_movie(net, value):
    frames = movie(net)
    frames[0, 1, 2] = value
    _error(lambda: simulate(net, frames, dt=0.02, t_pre=0), "movie", "1 of")


@pytest.mark.parametrize("value", [NAN, INF])
def test_non_finite_initial_state(net, value):
    state = torch.zeros(1, net.num_nodes)
    state[0, 5] = value
    _error(lambda: simulate(net, movie(net), dt=0.02, initial_state=state), "initial_state",
           "NaN or infinite")


def test_initial_state_with_the_wrong_number_of_nodes(net):
    _error(lambda: simulate(net, movie(net), dt=0.02, initial_state=torch.zeros(1, 5)),
           "initial_state", f"(batch, {net.num_nodes})", "(1, 5)")


def test_initial_state_of_the_wrong_type(net):
    _error(lambda: simulate(net, movie(net), dt=0.02, initial_state=[1.0, 2.0]),
           "initial_state", "tensor")


def test_steady_state_start_with_nan(net):
    state = torch.full((1, net.num_nodes), NAN)
    _error(lambda: steady_state(net, 0.1, 0.02, state=state), "state", "NaN")


@pytest.mark.parametrize("t_pre", [NAN, INF, -INF, "1", None])
def test_non_finite_t_pre(net, t_pre):
    if t_pre is None:  # None means: start from rest
        assert torch.isfinite(simulate(net, movie(net), dt=0.02, t_pre=None)).all()
        return
    _error(lambda: simulate(net, movie(net), dt=0.02, t_pre=t_pre), "t_pre", "finite")
    _error(lambda: steady_state(net, t_pre, 0.02), "t_pre")


@pytest.mark.parametrize("dt", [0, -0.01, NAN, INF])
def test_bad_dt(net, dt):
    _error(lambda: simulate(net, movie(net), dt=dt, t_pre=0), "dt")


def test_empty_record_list(net):
    _error(lambda: simulate(net, movie(net), dt=0.02, t_pre=0, record=[]), "record",
           "empty list")


def test_unknown_recorded_type(net):
    _error(lambda: simulate(net, movie(net), dt=0.02, t_pre=0, record=["T99"]), "T99")


def test_movie_of_the_wrong_width(net):
    frames = torch.zeros(1, 3, net.n_hexals + 1)
    _error(lambda: simulate(net, frames, dt=0.02, t_pre=0), "movie", f"n_hexals={net.n_hexals}")


def test_empty_movie(net):
    frames = torch.zeros(1, 0, net.n_hexals)
    _error(lambda: simulate(net, frames, dt=0.02, t_pre=0), "movie", "(B, T, n_hexals)")


# --------------------------------------------------------------------------- stimuli


@pytest.mark.parametrize("cls", [MovingEdges, MovingBars])
@pytest.mark.parametrize("angles", [[NAN], [0, INF], ["east"]])
def test_moving_stimuli_refuse_bad_angles(cls, angles):
    _error(lambda: cls(angles=angles, speeds=[25]), "angles")


def test_moving_edges_refuse_a_nan_position():
    _error(lambda: MovingEdges(speeds=[25], bar_loc_horizontal=NAN), "bar_loc_horizontal")


def test_gratings_refuse_a_nan_angle():
    _error(lambda: Gratings(angles=[NAN]), "angles", "finite")


def test_flash_response_index_simulates_the_radius_asked_for(net):
    fri = flash_response_index(net, radius=1, extent=2, dt=0.02, t_stim=0.2, t_pre=0.2)
    assert list(fri.index) == ["R1", "L1", "T1"] and np.isfinite(fri.to_numpy()).all()
    assert fri["R1"] > 0.1  # a photoreceptor-driven cell follows the ON flash


def test_flash_response_index_names_the_missing_radius(net):
    from flygnn.analysis.runners import flash_responses

    resp = flash_responses(net, radius=(-1,), extent=2, dt=0.02, t_stim=0.2, t_pre=0.2)
    _error(lambda: flash_response_index(resp, radius=3), "radius=3", "radii [-1]")


def test_flashes_refuse_nan_duration():
    _error(lambda: Flashes(extent=2, t_stim=NAN), "t_stim")
