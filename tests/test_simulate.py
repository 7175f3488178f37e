"""simulate / steady_state / fade_in_state: conventions, recording, grad modes, bad input."""

import warnings

import numpy as np
import pytest
import torch

from flygnn.network import Network
from flygnn.simulate import IntegrationWarning, fade_in_state, simulate, steady_state


@pytest.fixture(scope="module")
def net(graph_small):
    return Network(graph_small)


def grey(net, batch=1, steps=3, value=0.5):
    return torch.full((batch, steps, net.n_hexals), value)


def test_default_initial_state_is_grey_steady_state(net):
    movie = torch.rand(2, 4, net.n_hexals, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        auto = simulate(net, movie, 0.02)
        start = steady_state(net, 1.0, 0.02, batch_size=1)
        explicit = simulate(net, movie, 0.02, initial_state=start)
    torch.testing.assert_close(auto, explicit, rtol=0, atol=0)


def test_steady_state_counts_truncated_steps(net):
    """int(t_pre / dt) grey steps from rest: 0.25 s at dt 0.02 is 12 steps."""
    with torch.no_grad():
        state = steady_state(net, 0.25, 0.02)
        from_rest = simulate(net, grey(net, steps=12), 0.02, t_pre=0)
    torch.testing.assert_close(state, from_rest[:, -1], rtol=0, atol=0)


def test_steady_state_without_time_is_rest(net):
    with torch.no_grad():
        assert torch.equal(steady_state(net, 0.0, 0.02, batch_size=2), net.initial_state(2))
        start = torch.full((1, net.num_nodes), 0.3)
        assert torch.equal(steady_state(net, None, 0.02, state=start), start)


def test_grey_steady_state_is_invariant(net):
    """After long grey, more grey leaves the state (nearly) unchanged."""
    with torch.no_grad():
        state = steady_state(net, 5.0, 0.02)
        more = simulate(net, grey(net, steps=20), 0.02, initial_state=state)
    assert float((more - state.unsqueeze(1)).abs().max()) < 1e-5
    assert float((more[:, -1] - more[:, -2]).abs().max()) < 1e-6


def test_full_field_step_response(graph15):
    """Section 14.2: 20 frames of grey then 40 of white at dt 1/200, untrained network."""
    big = Network(graph15)
    movie = torch.cat([grey(big, steps=20), grey(big, steps=40, value=1.0)], 1)
    with torch.no_grad():
        central = simulate(big, movie, 1 / 200, record="central")[0]
    expected = {
        "R1": [0.954138, 1.004138, 1.049138, 1.297233, 1.446740],
        "L1": [0.516858, 0.516858, 0.516508, 0.506225, 0.484426],
        "Mi1": [0.508643, 0.508643, 0.508693, 0.510123, 0.512991],
        "T4c": [0.173779, 0.173779, 0.173779, 0.173838, 0.174304],
        "TmY18": [0.464172, 0.464172, 0.464172, 0.464199, 0.464453],
    }
    frames = [19, 20, 21, 30, 59]
    for cell_type, values in expected.items():
        k = big.cell_types.index(cell_type)
        np.testing.assert_allclose(central[frames, k].numpy(), values, rtol=0, atol=1.5e-6,
                                   err_msg=cell_type)
    assert float(central.double().sum()) == pytest.approx(2342.58128, abs=2e-3)


def test_record_options(net):
    movie = torch.rand(2, 3, net.n_hexals, generator=torch.Generator().manual_seed(1))
    g = net.graph
    with torch.no_grad():
        full = simulate(net, movie, 0.01, t_pre=0.1)
        central = simulate(net, movie, 0.01, t_pre=0.1, record="central")
        output = simulate(net, movie, 0.01, t_pre=0.1, record="output")
        some = simulate(net, movie, 0.01, t_pre=0.1, record=["T4a", "L1"])
        one = simulate(net, movie, 0.01, t_pre=0.1, record="Mi1")
    assert full.shape == (2, 3, g.num_nodes)
    assert torch.equal(central, full[..., g.central_index])
    assert output.shape == (2, 3, 34 * net.n_hexals)
    assert torch.equal(output, full[..., g.nodes_of(g.output_types)])
    assert torch.equal(some, torch.cat([full[..., g.type_slice("T4a")],
                                        full[..., g.type_slice("L1")]], -1))
    assert torch.equal(one, full[..., g.type_slice("Mi1")])


def test_record_rejects_unknown_cell_type(net):
    with pytest.raises(ValueError, match="unknown cell types"):
        simulate(net, grey(net), 0.01, record=["T4e"])


def test_record_rejects_other_objects(net):
    with pytest.raises(ValueError, match="record"):
        simulate(net, grey(net), 0.01, record=3)


def test_batch_one_initial_state_broadcasts(net):
    movie = torch.rand(3, 2, net.n_hexals, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        start = steady_state(net, 0.1, 0.01)
        a = simulate(net, movie, 0.01, initial_state=start)
        b = simulate(net, movie, 0.01, initial_state=start.expand(3, -1).contiguous())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_chunked_simulation_continues_exactly(net):
    movie = torch.rand(1, 6, net.n_hexals, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = simulate(net, movie, 0.01)
        first, state = simulate(net, movie[:, :4], 0.01, return_state=True)
        rest = simulate(net, movie[:, 4:], 0.01, initial_state=state)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, rtol=0, atol=0)


def test_fade_in_state(net):
    frames = torch.rand(2, net.n_hexals, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        start = steady_state(net, 0.1, 0.01)
        faded = fade_in_state(net, 0.05, 0.01, frames, state=start)
        ramp = torch.linspace(0, 1, 5)
        movie = 0.5 + ramp.view(1, 5, 1) * (frames.unsqueeze(1) - 0.5)
        manual = simulate(net, movie, 0.01, initial_state=start)
    torch.testing.assert_close(faded, manual[:, -1], rtol=0, atol=1e-7)
    torch.testing.assert_close(movie[:, -1], frames)  # the ramp ends on the frames


def test_fade_in_without_time_returns_state(net):
    with torch.no_grad():
        start = steady_state(net, 0.1, 0.01, batch_size=2)
        out = fade_in_state(net, 0.0, 0.01, torch.zeros(2, net.n_hexals), state=start)
    assert torch.equal(out, start)


def test_fade_in_rejects_wrong_shape(net):
    with pytest.raises(ValueError, match="initial_frames"):
        fade_in_state(net, 0.1, 0.01, torch.zeros(2, 1, net.n_hexals))


def test_grad_follows_caller_by_default(net):
    movie = grey(net, steps=2)
    assert simulate(net, movie, 0.01, t_pre=0).requires_grad
    with torch.no_grad():
        assert not simulate(net, movie, 0.01, t_pre=0).requires_grad
        assert simulate(net, movie, 0.01, t_pre=0, grad=True).requires_grad
    assert not simulate(net, movie, 0.01, t_pre=0, grad=False).requires_grad


def test_gradient_reaches_the_movie(net):
    movie = grey(net, steps=3).requires_grad_(True)
    simulate(net, movie, 0.01, t_pre=0.05, record="central")[:, -1].sum().backward()
    assert movie.grad.abs().sum() > 0
    assert net.bias.grad is not None


def test_initial_states_carry_no_gradient_by_default(net):
    assert not steady_state(net, 0.05, 0.01).requires_grad
    assert steady_state(net, 0.05, 0.01, grad=True).requires_grad


def test_large_dt_warns(net):
    with pytest.warns(IntegrationWarning, match="dt=0.05"):
        simulate(net, grey(net, steps=1), 0.05, t_pre=0, grad=False)


def test_dt_of_one_fiftieth_does_not_warn(net):
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrationWarning)
        simulate(net, grey(net, steps=1), 0.02, t_pre=0, grad=False)


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan")])
def test_nonpositive_dt_raises(net, dt):
    with pytest.raises(ValueError, match="dt"):
        simulate(net, grey(net), dt)


def test_nan_movie_raises(net):
    movie = grey(net)
    movie[0, 1, 5] = float("nan")
    with pytest.raises(ValueError, match="movie.*NaN"):
        simulate(net, movie, 0.01)


def test_inf_movie_raises(net):
    movie = grey(net)
    movie[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        simulate(net, movie, 0.01)


def test_movie_with_channel_axis_raises(net):
    with pytest.raises(ValueError, match=r"movie.*\(B, T, n_hexals\)"):
        simulate(net, torch.zeros(1, 3, 1, net.n_hexals), 0.01)


def test_movie_with_wrong_hexal_count_raises(net):
    with pytest.raises(ValueError, match="n_hexals"):
        simulate(net, torch.zeros(1, 3, 721), 0.01)


def test_initial_state_with_wrong_batch_raises(net):
    with pytest.raises(ValueError, match="batch size"):
        simulate(net, grey(net, batch=2), 0.01, initial_state=torch.zeros(3, net.num_nodes))


def test_numpy_movie_is_accepted(net):
    movie = np.full((1, 2, net.n_hexals), 0.5)
    with torch.no_grad():
        out = simulate(net, movie, 0.01, t_pre=0)
        ref = simulate(net, grey(net, steps=2), 0.01, t_pre=0)
    assert out.dtype == torch.float32 and torch.equal(out, ref)


def test_tensor_dt_is_accepted(net):
    with torch.no_grad():
        a = simulate(net, grey(net, steps=2), torch.tensor(0.01), t_pre=0.02)
        b = simulate(net, grey(net, steps=2), 0.01, t_pre=0.02)
    assert torch.equal(a, b)


def test_corrupt_flygnn_checkpoint_is_rejected(tmp_path, graph_small):
    torch.save({"format": "flygnn.Network", "version": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt.*config"):
        Network.load(tmp_path / "bad.pt", data=graph_small)
