"""Dynamics: exact solutions, two aggregation paths, gradients, the filter model, user dynamics."""

import pytest
import torch
from torch import nn

from flygnn import neurons as dyn
from flygnn.network import Network
from flygnn.neurons import Graded as GradedDynamics
from flygnn.neurons import NeuronModel as Dynamics
from flygnn.neurons import SynapticFilter as SynapticFilterDynamics
from flygnn.simulate import simulate, steady_state


def uncoupled(graph, tau_range=(0.02, 0.2), seed=0):
    """A network without synaptic input and random time constants."""
    net = Network(graph)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.syn_strength.zero_()
        net.time_const.copy_(torch.empty(65).uniform_(*tau_range, generator=gen))
    return net


def test_single_neuron_exact_solution(graph_small):
    """No edges, no input: v_n = b + (v_0 - b)(1 - dt/tau)^n."""
    net = uncoupled(graph_small)
    dt, steps = 0.01, 30
    v0 = torch.randn(2, net.num_nodes, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = simulate(net, torch.zeros(2, steps, net.n_hexals), dt, initial_state=v0)
    b = net.bias.detach().double()[net.node_type]
    tau = net.time_const.detach().double()[net.node_type]
    n = torch.arange(1, steps + 1, dtype=torch.float64).view(1, -1, 1)
    exact = b + (v0.double().unsqueeze(1) - b) * (1 - dt / tau) ** n
    torch.testing.assert_close(out.double(), exact, rtol=0, atol=2e-6)


def test_time_constant_below_dt_jumps_in_one_step(graph_small):
    net = uncoupled(graph_small, tau_range=(1e-4, 5e-3))
    v0 = torch.full((1, net.num_nodes), 3.0)
    frame = torch.full((1, 2, net.n_hexals), 0.25)
    with torch.no_grad():
        out = simulate(net, frame, 0.01, initial_state=v0)
    target = net.bias.detach()[net.node_type].clone()
    target[net.graph.nodes_of(net.graph.input_types)] += 0.25
    torch.testing.assert_close(out[0, 0], target, rtol=0, atol=1e-6)
    torch.testing.assert_close(out[0, 1], target, rtol=0, atol=1e-6)


def run(net, steps=4, batch=2, dt=0.01, seed=0, grad=True):
    gen = torch.Generator().manual_seed(seed)
    movie = torch.rand(batch, steps, net.n_hexals, generator=gen, dtype=net.bias.dtype)
    with torch.no_grad():
        start = net.initial_state(batch)
        noise = 0.1 * torch.randn(batch, net.num_nodes, generator=gen, dtype=net.bias.dtype)
        start = start + noise if isinstance(start, torch.Tensor) else (start[0] + noise, start[1])
    return simulate(net, movie, dt, initial_state=start, grad=grad)


def grads_of(net, upstream_seed=3, **kwargs):
    out = run(net, **kwargs)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed),
                         dtype=out.dtype)
    net.zero_grad()
    (out * weight).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}


def randomised(graph, dynamics=None, seed=0):
    net = Network(graph, dynamics)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.syn_strength.mul_(torch.empty_like(net.syn_strength).uniform_(0.5, 3, generator=gen))
        net.time_const.uniform_(0.02, 0.1, generator=gen)
        net.bias.add_(0.2 * torch.randn(65, generator=gen))
    return net


def test_fused_and_gather_scatter_paths_agree(graph_small):
    fused = randomised(graph_small, GradedDynamics(fused=True))
    plain = randomised(graph_small, GradedDynamics(fused=False))
    out_f, grad_f = grads_of(fused)
    out_p, grad_p = grads_of(plain)
    torch.testing.assert_close(out_f, out_p, rtol=1e-6, atol=1e-6)
    for name in grad_f:
        torch.testing.assert_close(grad_f[name], grad_p[name], rtol=1e-4, atol=1e-6, msg=name)


def test_full_size_gradients_match_gather_scatter(graph15):
    fused = randomised(graph15, GradedDynamics(fused=True))
    plain = randomised(graph15, GradedDynamics(fused=False))
    _, grad_f = grads_of(fused, steps=3, dt=0.02)
    _, grad_p = grads_of(plain, steps=3, dt=0.02)
    for name in grad_f:
        err = (grad_f[name] - grad_p[name]).abs().max() / grad_p[name].abs().max()
        assert err < 1e-4, (name, float(err))


@pytest.mark.parametrize("activation", ["elu", "softplus"])
def test_other_activations_on_both_paths(graph_small, activation):
    a = randomised(graph_small, GradedDynamics(activation=activation))
    b = randomised(graph_small, GradedDynamics(activation=activation, fused=False))
    torch.testing.assert_close(run(a, grad=False), run(b, grad=False), rtol=1e-6, atol=1e-6)


def functional_gradcheck(net, names, steps=3, dt=0.01):
    net = net.double()
    gen = torch.Generator().manual_seed(0)
    movie = torch.rand(2, steps, net.n_hexals, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        start = net.initial_state(2)
    tensors = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()
               if n in names}

    def f(*values):
        out = torch.func.functional_call(net, dict(zip(tensors, values)), (movie, dt),
                                         {"initial_state": start})
        return out[:, :, ::97]

    return torch.autograd.gradcheck(f, tuple(tensors.values()), atol=1e-6, rtol=1e-4,
                                    fast_mode=True)


def test_gradcheck_graded_through_simulate(graph_small):
    net = randomised(graph_small)
    assert functional_gradcheck(net, ["bias", "time_const", "syn_strength"])


def test_gradcheck_synaptic_filter(graph_small):
    net = randomised(graph_small, SynapticFilterDynamics(syn_time_const=0.03))
    assert functional_gradcheck(net, ["syn_strength", "dynamics.syn_time_const", "bias"])


def reference_filter(net, movie, dt, v0):
    """Independent gather/scatter implementation of the synaptic-filter equations."""
    g = net.graph
    b = net.bias.detach()[g.node_type]
    tau = net.time_const.detach()[g.node_type].clamp(min=dt)
    coeff = g.pair_sign[g.pair_index] * torch.exp(net.syn_count[g.offset_index])
    s = net.syn_strength.detach()
    tau_p = net.dynamics.syn_time_const.detach().clamp(min=dt)
    n, p = g.num_nodes, len(g.pairs)
    inputs = g.nodes_of(g.input_types)

    def target_current(v):  # (B, P * N): current of pair p into node i at p * N + i
        msg = coeff * torch.relu(v[:, g.source])
        return v.new_zeros(v.shape[0], p * n).index_add_(1, g.pair_index * n + g.target, msg)

    v, current, outs = v0, target_current(v0), []
    for t in range(movie.shape[1]):
        syn = (current.view(-1, p, n) * s.view(1, p, 1)).sum(1)
        x = torch.zeros_like(v)
        x[:, inputs] = movie[:, t].repeat(1, len(g.input_types))
        v_new = v + (b - v + syn + x) / tau * dt
        current = current + (target_current(v) - current) / tau_p.repeat_interleave(n) * dt
        v = v_new
        outs.append(v)
    return torch.stack(outs, 1)


def test_synaptic_filter_matches_reference(graph_small):
    net = randomised(graph_small, SynapticFilterDynamics(syn_time_const=0.02))
    with torch.no_grad():
        net.dynamics.syn_time_const.uniform_(0.005, 0.08, generator=torch.Generator().manual_seed(2))
    movie = torch.rand(2, 6, net.n_hexals, generator=torch.Generator().manual_seed(4))
    v0 = net.bias.detach()[net.node_type].expand(2, -1)
    with torch.no_grad():
        out = simulate(net, movie, 0.01, t_pre=0)
    torch.testing.assert_close(out, reference_filter(net, movie, 0.01, v0), rtol=1e-5, atol=1e-5)


def test_synaptic_filter_shares_the_graded_fixed_point(graph_small):
    graded = randomised(graph_small)
    filtered = randomised(graph_small, SynapticFilterDynamics(syn_time_const=0.05))
    with torch.no_grad():
        v_star = steady_state(graded, 4.0, 0.01)
        ctx = filtered.prepare()
        state = (v_star, ctx.adjacency.grouped_matmul(torch.relu(v_star)))
        after = steady_state(filtered, 0.5, 0.01, state=state)
        drift = steady_state(graded, 0.5, 0.01, state=v_star)
    assert float((drift - v_star).abs().max()) < 1e-5  # graded has converged
    torch.testing.assert_close(after[0], v_star, rtol=0, atol=1e-4)
    torch.testing.assert_close(after[1], state[1], rtol=0, atol=1e-4)


def test_synaptic_filter_time_constant_is_trainable(graph_small):
    net = randomised(graph_small, SynapticFilterDynamics())
    out, grads = grads_of(net)
    assert grads["dynamics.syn_time_const"].abs().sum() > 0
    assert torch.isfinite(out).all()


class GainDynamics(Dynamics):
    """A user-written model: tanh synapses with a trainable gain per cell type."""

    name = "test_gain"

    def setup(self, graph):
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, len(graph.cell_types)))

    def initial_state(self, ctx, batch_size):
        return ctx.rest(batch_size)

    def derivative(self, v, input, ctx, dt):
        x = torch.tanh(v) * self.gain[ctx.node_type]
        syn = self.synapses(x, ctx.edges)
        return ctx.add_input(ctx.bias - v + syn, input) / ctx.time_const.clamp(min=dt)


def test_user_dynamics_plugs_in(graph_small, tmp_path):
    net = randomised(graph_small, GainDynamics())
    movie = torch.rand(1, 5, net.n_hexals, generator=torch.Generator().manual_seed(0))
    out = simulate(net, movie, 0.01, t_pre=0.05)
    # independent dense re-computation
    g = net.graph
    w = torch.zeros(g.num_nodes, g.num_nodes).index_put_(
        (g.target, g.source), net.context().edge_weight().detach(), accumulate=True)
    b = net.bias.detach()[g.node_type]
    tau = net.time_const.detach()[g.node_type].clamp(min=0.01)
    gain = net.dynamics.gain.detach()[g.node_type]
    inputs = g.nodes_of(g.input_types)
    n_pre = int(0.05 / 0.01)
    v = b.clone()
    for t in range(n_pre + 5):
        frame = torch.full((net.n_hexals,), 0.5) if t < n_pre else movie[0, t - n_pre]
        x = torch.zeros_like(v)
        x[inputs] = frame.repeat(len(g.input_types))
        v = v + (b - v + w @ (torch.tanh(v) * gain) + x) / tau * 0.01
        if t >= n_pre:
            torch.testing.assert_close(out[0, t - n_pre].detach(), v, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert net.dynamics.gain.grad.abs().sum() > 0
    net.save(tmp_path / "gain.pt")
    with pytest.raises(ValueError, match="test_gain"):
        Network.load(tmp_path / "gain.pt", data=graph_small)
    again = Network.load(tmp_path / "gain.pt", data=graph_small, dynamics=GainDynamics())
    assert torch.equal(again.dynamics.gain, net.dynamics.gain)


def test_registry():
    assert dyn.make_model("graded").config() == {"activation": "relu", "fused": True}
    filt = dyn.make_model("synaptic_filter", {"syn_time_const": 0.02})
    assert isinstance(filt, SynapticFilterDynamics) and filt.init_syn_time_const == 0.02


def test_registry_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown dynamics 'spiking'"):
        dyn.make_model("spiking")


def test_register_requires_a_name():
    with pytest.raises(ValueError, match="name"):
        dyn.register_model(type("Nameless", (Dynamics,), {}))


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        GradedDynamics(activation="swish")


def test_nonpositive_syn_time_const():
    with pytest.raises(ValueError, match="syn_time_const"):
        SynapticFilterDynamics(syn_time_const=0.0)


def test_broadcast_state_rejects_wrong_batch():
    with pytest.raises(ValueError, match="batch size 3"):
        dyn.broadcast_state(torch.zeros(3, 10), 2)


def test_broadcast_state_rejects_1d():
    with pytest.raises(ValueError, match="initial_state"):
        dyn.broadcast_state(torch.zeros(10), 2)
