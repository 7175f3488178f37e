"""Performance paths: the fused Euler step, the thread policy, stacked ensembles, CUDA."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REFERENCE

from flygnn import bptt, stacked, threads
from flygnn.analysis.runners import moving_edge_responses
from flygnn.network import Network
from flygnn.neurons import Graded as GradedDynamics
from flygnn.neurons import SynapticFilter as SynapticFilterDynamics
from flygnn.simulate import simulate, steady_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _members(graph, n=3, dynamics=GradedDynamics):
    nets = [Network(graph, dynamics(), seed=s) for s in range(n)]
    with torch.no_grad():
        for i, net in enumerate(nets):  # distinct strengths and time constants
            net.syn_strength.mul_(1 + 0.2 * i)
            net.time_const.add_(0.005 * i)
    return nets


# ---------------------------------------------------------------- fused Euler step
def test_fused_step_equals_autograd_path_bit_for_bit(graph_small):
    net = _members(graph_small, 2)[1]
    movie = torch.rand(3, 6, net.n_hexals, generator=torch.Generator().manual_seed(1))
    start = steady_state(net, 0.05, 0.01, batch_size=3)
    fast = simulate(net, movie, 0.01, initial_state=start, grad=False)
    reference = simulate(net, movie, 0.01, initial_state=start, grad=True).detach()
    assert not torch.equal(fast[:, 0], fast[:, -1])
    torch.testing.assert_close(fast, reference, rtol=0, atol=0)


def test_fused_step_accepts_a_contiguous_batch_state(graph_small):
    net = Network(graph_small)
    movie = torch.rand(2, 3, net.n_hexals)
    start = steady_state(net, 0.05, 0.01, batch_size=2)
    a = simulate(net, movie, 0.01, initial_state=start.contiguous(), grad=False)
    b = simulate(net, movie, 0.01, initial_state=start, grad=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("activation, record", [("relu", None), ("softplus", "central")])
def test_adjoint_gradients_equal_autograd(graph_small, monkeypatch, activation, record):
    net = Network(graph_small, GradedDynamics(activation))
    with torch.no_grad():
        net.time_const.uniform_(0.005, 0.05, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(3)
    movie = torch.rand(2, 5, net.n_hexals, generator=gen).requires_grad_()
    start = steady_state(net, 0.05, 0.01, batch_size=2).clone().requires_grad_()

    def run():
        out, final = simulate(net, movie, 0.01, initial_state=start, record=record,
                              return_state=True)
        weight = torch.rand(out.shape, generator=torch.Generator().manual_seed(4))
        loss = (out * weight).sum() + final.square().sum()
        return out, torch.autograd.grad(loss, [net.bias, net.time_const, net.syn_strength,
                                               movie, start])

    monkeypatch.setattr(bptt, "ENABLED", True)
    assert bptt.applies(net, start)
    out, grads = run()
    monkeypatch.setattr(bptt, "applies", lambda *args: False)
    ref_out, ref_grads = run()
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    for name, g, ref in zip(["bias", "time_const", "syn_strength", "movie", "start"], grads,
                            ref_grads):
        assert ref.abs().max() > 0, name
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max()),
                                   msg=name)


# ---------------------------------------------------------------- threads
def test_thread_policy_validates_and_restores_torch_setting():
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ValueError, match="set_num_threads"):
            threads.set_num_threads(bad)
    saved, policy = torch.get_num_threads(), threads.get_num_threads()
    try:
        threads.set_num_threads(1)
        with threads.num_threads() as loop:
            assert torch.get_num_threads() == 1
            with threads.num_threads(3):  # nested: the outer setting holds
                assert torch.get_num_threads() == 1
            loop.tick()
        assert torch.get_num_threads() == saved
        threads.set_num_threads(None)
        with threads.num_threads():
            assert torch.get_num_threads() == saved
    finally:
        threads.set_num_threads(policy)


def test_the_whole_call_runs_under_the_policy(graph_small, monkeypatch):
    """Not only the Euler loop: the work before it (here the weights' preparation) runs at
    the policy's count too, and nested uses share the outer manager."""
    net = Network(graph_small)
    seen, prepare = [], net.prepare
    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return prepare(*args, **kwargs)
    monkeypatch.setattr(net, "prepare", spy)
    movie = torch.rand(1, 4, net.n_hexals, generator=torch.Generator().manual_seed(0))
    saved, policy = torch.get_num_threads(), threads.get_num_threads()
    try:
        torch.set_num_threads(2)
        threads.set_num_threads(1)
        with torch.no_grad():
            simulate(net, movie, 0.01, t_pre=0.05)
            steady_state(net, 0.05, 0.01)
        assert len(seen) >= 2 and set(seen) == {1}
        assert torch.get_num_threads() == 2  # torch's setting is back after the call
        with threads.num_threads() as outer, threads.num_threads(3) as inner:
            assert inner is outer and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)
        threads.set_num_threads(policy)


def test_auto_threads_is_capped_by_the_request():
    for requested in (1, 2, 64):
        assert 1 <= threads.auto_threads(requested) <= requested


def test_import_is_lazy_and_the_command_sets_passive_waiting():
    code = ("import os, sys; import flygnn, flygnn.cli; assert 'torch' not in sys.modules; "
            "env = {}; set_ = flygnn.threads.configure_process(env); "
            "print(set_, env.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert out == ["True", "PASSIVE", "False"]
    assert threads.configure_process({}) is False  # torch is loaded here: too late


# ---------------------------------------------------------------- stacked ensembles
def test_stacked_simulation_equals_separate_runs(graph_small):
    nets = _members(graph_small)
    movie = torch.rand(2, 8, nets[0].n_hexals, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        separate = [simulate(n, movie, 0.01, t_pre=0.1, record="central", return_state=True)
                    for n in nets]
    together, state = simulate(nets, movie, 0.01, t_pre=0.1, record="central", return_state=True)
    assert together.shape == (3, 2, 8, 65)
    for k, (resp, final) in enumerate(separate):
        torch.testing.assert_close(together[k], resp, rtol=0, atol=1e-6)
        torch.testing.assert_close(state[k], final, rtol=0, atol=1e-6)
    assert (together[0] - together[2]).abs().max() > 1e-3  # the members really differ
    # continuing from the returned state equals continuing each member
    more = simulate(nets, movie[:, :2], 0.01, initial_state=state)
    torch.testing.assert_close(more[1], simulate(nets[1], movie[:, :2], 0.01,
                                                 initial_state=separate[1][1], grad=False),
                               rtol=0, atol=1e-6)


def test_stacked_runner_equals_separate_runs(graph_small):
    nets = _members(graph_small, 2)
    kw = {"speeds": (13, 25), "offsets": (-2, 3), "batch_size": 3, "dt": 1 / 100,
          "extent": graph_small.extent}
    together = moving_edge_responses(nets, **kw).responses
    separate = np.concatenate([moving_edge_responses(n, **kw).responses for n in nets])
    assert together.shape == separate.shape
    np.testing.assert_array_equal(np.isnan(together), np.isnan(separate))
    np.testing.assert_allclose(together, separate, rtol=0, atol=1e-6)


def test_other_dynamics_run_member_by_member(graph_small):
    nets = _members(graph_small, 2, SynapticFilterDynamics)
    stack = stacked.StackedNetworks(nets)
    assert stack.reason is not None and "SynapticFilter" in stack.reason
    movie = torch.rand(1, 3, nets[0].n_hexals)
    together = simulate(stack, movie, 0.01, t_pre=0.02)
    with torch.no_grad():
        torch.testing.assert_close(together[1], simulate(nets[1], movie, 0.01, t_pre=0.02))


def test_stack_with_gradients_runs_member_by_member(graph_small):
    nets = _members(graph_small, 2)
    movie = torch.rand(1, 3, nets[0].n_hexals)
    together = simulate(nets, movie, 0.01, t_pre=0.02, grad=True)
    assert together.requires_grad
    together[1].sum().backward()
    assert nets[1].bias.grad.abs().sum() > 0
    assert nets[0].bias.grad is None or not nets[0].bias.grad.any()
    torch.testing.assert_close(together[0].detach(),
                               simulate(nets[0], movie, 0.01, t_pre=0.02, grad=False))


def test_stack_rejects_bad_members(graph_small):
    with pytest.raises(ValueError, match="empty"):
        stacked.StackedNetworks([])
    with pytest.raises(ValueError, match="Network"):
        stacked.StackedNetworks([torch.nn.Linear(2, 2)])
    nets = _members(graph_small, 2)
    with pytest.raises(ValueError, match="initial_state"):
        simulate(nets, torch.rand(1, 2, nets[0].n_hexals), 0.01,
                 initial_state=torch.zeros(3, 1, nets[0].num_nodes))


# ---------------------------------------------------------------- CUDA
@cuda
def test_cuda_parity_with_flyvis(graph15):
    responses = np.load(REFERENCE / "responses_public.npz")
    net = Network.from_flyvis_checkpoint(REFERENCE / "flyvis_chkpt_public.pt", data=graph15)
    net = net.cuda()
    movie = torch.from_numpy(responses["movie"]).cuda()
    dt, t_pre = float(responses["dt"]), float(responses["t_pre"])
    central = simulate(net, movie, dt, t_pre=t_pre, record="central", grad=False)
    np.testing.assert_allclose(central.cpu().numpy(), responses["central_responses"],
                               rtol=0, atol=1e-5)


@cuda
def test_cuda_stacked_equals_cpu(graph_small):
    nets = _members(graph_small)
    movie = torch.rand(2, 5, nets[0].n_hexals)
    cpu = simulate(nets, movie, 0.01, t_pre=0.05)
    gpu = simulate([n.cuda() for n in nets], movie.cuda(), 0.01, t_pre=0.05)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-5)


@cuda
def test_cuda_training_gradients_equal_cpu(graph_small):
    net = Network(graph_small)
    movie = torch.rand(2, 4, net.n_hexals)
    grads = []
    for device in ("cpu", "cuda"):
        net = net.to(device)
        start = steady_state(net, 0.05, 0.01, batch_size=2)
        loss = simulate(net, movie.to(device), 0.01, initial_state=start).square().mean()
        grads.append([g.cpu() for g in torch.autograd.grad(loss, [net.bias, net.syn_strength])])
    for cpu, gpu in zip(*grads):
        torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-7)
