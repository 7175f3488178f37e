"""Integrators by name: orders of convergence against closed-form solutions."""

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from flygnn import integrators
from flygnn.network import Network
from flygnn.neurons import NeuronModel
from flygnn.simulate import simulate

A, B, C, U = 3.0, 7.0, 5.0, 2.0  # y1' = -A y1 + U, y2' = -B y2 + C y1


class Cascade(NeuronModel):
    """Two linear compartments in a chain (a toy model outside any network)."""

    def derivative(self, state, input, ctx, dt):
        y1, y2 = state
        return -A * y1 + U, -B * y2 + C * y1

    def decay(self, state, ctx, dt):
        return A, B


def cascade_exact(t):
    """y1(0) = 1, y2(0) = 0."""
    y1_inf = U / A
    y1 = y1_inf + (1 - y1_inf) * math.exp(-A * t)
    # y2' + B y2 = C y1_inf + C (1 - y1_inf) e^{-A t}
    y2 = (C * y1_inf / B * (1 - math.exp(-B * t))
          + C * (1 - y1_inf) / (B - A) * (math.exp(-A * t) - math.exp(-B * t)))
    return y1, y2


def cascade_error(method, n, t_end=1.0):
    ctx = SimpleNamespace(bias=torch.zeros(1, dtype=torch.float64))
    state = (torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    step, model, dt = integrators.get_integrator(method), Cascade(), t_end / n
    for _ in range(n):
        state = step(model, state, None, ctx, dt)
    return max(abs(float(s) - e) for s, e in zip(state, cascade_exact(t_end)))


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("exponential_euler", 1), ("rk4", 4)])
def test_order_of_convergence(method, order):
    errors = [cascade_error(method, n) for n in (40, 80, 160)]
    observed = [math.log2(a / b) for a, b in itertools.pairwise(errors)]
    assert all(abs(p - order) < 0.15 for p in observed), (method, errors, observed)


def uncoupled(graph):
    net = Network(graph).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.syn_strength.zero_()
        net.time_const.copy_(torch.empty(65, dtype=torch.float64).uniform_(0.03, 0.2, generator=gen))
    return net


def network_error(net, method, dt, t_end=0.12, x=0.3):
    steps = round(t_end / dt)
    movie = torch.full((1, steps, net.n_hexals), x, dtype=torch.float64)
    v0 = torch.zeros(1, net.num_nodes, dtype=torch.float64)
    with torch.no_grad():
        out = simulate(net, movie, dt, initial_state=v0, method=method)[0, -1]
    g = net.graph
    target = net.bias.detach()[g.node_type].clone()
    target[g.nodes_of(g.input_types)] += x
    tau = net.time_const.detach()[g.node_type]
    exact = target - target * torch.exp(-steps * dt / tau)
    return float((out - exact).abs().max())


def test_network_exponential_euler_is_exact_for_linear_decay(graph_small):
    assert network_error(uncoupled(graph_small), "exponential_euler", 0.02) < 1e-12


def test_network_rk4_is_fourth_order(graph_small):
    net = uncoupled(graph_small)
    coarse, fine = network_error(net, "rk4", 0.004), network_error(net, "rk4", 0.002)
    assert 14.5 < coarse / fine < 17.5, (coarse, fine)
    euler_coarse, euler_fine = network_error(net, "euler", 0.004), network_error(net, "euler", 0.002)
    assert 1.8 < euler_coarse / euler_fine < 2.2
    assert coarse < euler_coarse / 100


def test_graded_methods_share_the_fixed_point(graph_small):
    net = Network(graph_small)
    with torch.no_grad():
        rest = {m: simulate(net, torch.full((1, 300, net.n_hexals), 0.5), 0.01, t_pre=0, method=m)
                for m in ("euler", "exponential_euler", "rk4")}
    for m in ("exponential_euler", "rk4"):
        torch.testing.assert_close(rest[m][:, -1], rest["euler"][:, -1], rtol=0, atol=1e-4)


def test_unknown_method(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match="unknown integrator 'midpoint'"):
        simulate(net, torch.zeros(1, 2, net.n_hexals), 0.01, method="midpoint")


def test_exponential_euler_needs_a_decay_rate():
    class NoDecay(Cascade):
        def decay(self, state, ctx, dt):
            return None

    with pytest.raises(ValueError, match="decay"):
        integrators.exponential_euler(NoDecay(), (torch.ones(1, 1), torch.ones(1, 1)), None,
                                      SimpleNamespace(bias=torch.zeros(1)), 0.1)
