"""LIF: closed-form firing rates, surrogate gradients that reach the network, the full graph."""

import pytest
import torch

from flygnn.network import Network
from flygnn.neurons import make_model
from flygnn.simulate import simulate
from flygnn.spiking import LIF, lif_rate, spike


@pytest.mark.parametrize("method", ["exponential_euler", "euler"])
def test_rate_matches_closed_form(graph_small, method):
    """Uncoupled neurons under constant drives k_b * b: rate = 1 / (t_ref + tau ln(u / (u - 7 mV)))."""
    net = Network(graph_small, LIF())
    with torch.no_grad():
        net.syn_strength.zero_()
        net.bias.copy_(torch.linspace(0.3, 3.0, 65))  # 3 .. 30 mV: silent to ~150 Hz
    dt, t_end = 1e-4, 0.5
    with torch.no_grad():
        spikes = simulate(net, torch.zeros(1, round(t_end / dt), net.n_hexals), dt, t_pre=0,
                          method=method)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    rate = spikes[0].sum(0).double() / t_end
    drive = 10.0 * net.bias.detach().double()[net.graph.node_type]
    exact = lif_rate(drive)
    assert (exact == 0).any() and exact.max() > 120
    torch.testing.assert_close(rate, exact, rtol=0.02, atol=2 / t_end)
    assert (rate[exact == 0] == 0).all()


def test_lif_rate_formula():
    # u = 14 mV: t_ref + tau ln(14 / 7) = 2.2 ms + 20 ms ln 2
    expected = 1 / (0.0022 + 0.02 * torch.log(torch.tensor(2.0, dtype=torch.float64)))
    torch.testing.assert_close(lif_rate(14.0), expected)
    assert float(lif_rate(6.9)) == 0.0


def test_surrogate_gradient():
    x = torch.tensor([-2.0, 0.0, 0.5, 3.0], requires_grad=True)
    s = spike(x, slope=2.0)
    assert s.tolist() == [0.0, 0.0, 1.0, 1.0]
    s.sum().backward()
    torch.testing.assert_close(x.grad, 1 / (1 + 2.0 * x.detach().abs()) ** 2)


def test_reset_and_refractory_period(graph_small):
    """After a spike V is reset (output ``first``) and frozen for round(t_ref / dt) steps."""
    net = Network(graph_small, LIF(output="voltage", t_ref=0.003))
    with torch.no_grad():
        net.syn_strength.zero_()
        net.bias.fill_(3.0)  # 30 mV drive
        v = simulate(net, torch.zeros(1, 400, net.n_hexals), 1e-4, t_pre=0)[0, :, 0]
    first = int((v == -52.0).nonzero()[0])
    assert -52.0 < v[first - 1] < -45.0  # below threshold before the step that crossed it
    assert (v[first:first + 31] == -52.0).all() and v[first + 31] > -52.0


def test_gradients_reach_the_network(graph_small):
    net = Network(graph_small, LIF())
    movie = torch.rand(2, 60, net.n_hexals, generator=torch.Generator().manual_seed(0))
    spikes = simulate(net, movie, 0.002, t_pre=0, method="exponential_euler")
    assert spikes.sum() > 0
    spikes.mean().backward()
    for name in ("bias", "syn_strength"):
        grad = getattr(net, name).grad
        assert torch.isfinite(grad).all() and (grad != 0).sum() > 10, name
    assert net.time_const.grad is None  # tau_mem is the model's constant by default


def test_trainable_membrane_time_constant(graph_small):
    net = Network(graph_small, LIF(tau_mem=None, output="voltage"))
    with torch.no_grad():
        net.time_const.fill_(0.02)
    v = simulate(net, torch.rand(1, 30, net.n_hexals), 0.002, t_pre=0, method="exponential_euler")
    v.mean().backward()
    assert torch.isfinite(net.time_const.grad).all() and net.time_const.grad.abs().sum() > 0


def test_save_load_by_name(graph_small, tmp_path):
    net = Network(graph_small, LIF(tau_syn=0.01, output="voltage"))
    net.save(tmp_path / "lif.pt")
    again = Network.load(tmp_path / "lif.pt", data=graph_small)
    assert isinstance(again.dynamics, LIF) and again.dynamics.config() == net.dynamics.config()
    assert make_model("lif").config()["v_th"] == -45.0


@pytest.mark.parametrize("kwargs", [{"tau_syn": 0}, {"v_reset": -40.0}, {"output": "rate"},
                                    {"tau_mem": -1.0}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        LIF(**kwargs)


def test_runs_on_the_full_graph(graph15):
    net = Network(graph15, LIF())
    with torch.no_grad():
        spikes, state = simulate(net, torch.full((2, 40, net.n_hexals), 0.5), 0.002, t_pre=0,
                                 method="exponential_euler", return_state=True)
    assert all(torch.isfinite(s).all() for s in state)
    photoreceptors = net.graph.nodes_of(["R1"])
    assert spikes[:, :, photoreceptors].sum() > 0  # grey drives R1-R8 above threshold


def test_adam_steps_fit_a_target_rate(graph_small):
    """Training through the surrogate: a few Adam steps bring the mean rate to a target."""
    net = Network(graph_small, LIF())
    movie = torch.rand(2, 40, net.n_hexals, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(6):
        rate = simulate(net, movie, 0.002, t_pre=0, method="exponential_euler").mean() / 0.002
        loss = (rate - 40.0) ** 2  # Hz^2; starts near 4 Hz
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.project_()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 5, losses
