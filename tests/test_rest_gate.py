"""RestGate: the gradient through relax_rest switched off for one gradient (the trainer's
activity penalty), equal to differentiating from a detached start state."""

import pytest
import torch

from flygnn.network import Network
from flygnn.simulate import RestGate, relax_rest, simulate, steady_state
from flygnn.task import activity_penalty

DT = 0.02


@pytest.fixture
def net64(graph_small):
    net = Network(graph_small).double()
    with torch.no_grad():
        net.time_const.uniform_(DT, 0.05, generator=torch.Generator().manual_seed(1))
    return net


def test_closed_gate_gives_the_detached_start_gradient(net64):
    lum = torch.rand(2, 6, net64.n_hexals, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        rest = steady_state(net64, 2.0, DT)
    central = torch.arange(0, net64.num_nodes, 7)

    def penalty(start):
        out = simulate(net64, lum, DT, initial_state=start, grad=True)
        return activity_penalty(out, central, 5.0, 0.1, 1.0, 0.1)

    gate = RestGate()
    start = relax_rest(net64, rest, 200, tol=1e-12, gate=gate)
    value = penalty(start)
    gate.enabled = False
    (closed,) = torch.autograd.grad(value, net64.bias, retain_graph=True)
    gate.enabled = True
    (open_,) = torch.autograd.grad(value, net64.bias)
    (detached,) = torch.autograd.grad(penalty(rest.detach()), net64.bias)
    torch.testing.assert_close(closed, detached, rtol=1e-12, atol=1e-14)
    # the open gate differentiates the rest too: a different gradient
    assert (open_ - detached).abs().max() > 1e-3 * detached.abs().max()
