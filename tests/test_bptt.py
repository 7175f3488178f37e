"""The hand-written adjoint of graded dynamics (flygnn.bptt) against autograd, in float64."""

import copy

import pytest
import torch

from flygnn import bptt
from flygnn.network import Network
from flygnn.neurons import Graded
from flygnn.simulate import relax_rest, simulate, steady_state
from flygnn.sparse import PairAdjacency

DT = 0.02
NAMES = ("bias", "time_const", "syn_strength")


@pytest.fixture
def net64(graph_small):
    """A float64 network with uneven strengths (a few at the clamp 0), time constants on both
    sides of the floor ``dt`` and a grey rest above threshold in some cells."""
    net = Network(graph_small).double()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net.syn_strength.mul_(1 + 4 * torch.rand(net.syn_strength.shape, generator=g,
                                                 dtype=torch.float64))
        net.syn_strength[::50] = 0.0
        net.time_const.uniform_(0.5 * DT, 0.1, generator=g)
        net.time_const[::7] = DT
    return net


def movie_of(net, batch, steps=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, net.n_hexals, generator=g, dtype=net.bias.dtype)


def both(net, monkeypatch, loss_of, inputs=()):
    """``loss_of()``'s gradients to the parameters and ``inputs``: (adjoint, autograd)."""
    out = []
    for enabled in (True, False):
        monkeypatch.setattr(bptt, "ENABLED", enabled)
        loss = loss_of()
        wrt = [getattr(net, n) for n in NAMES] + list(inputs)
        out.append(torch.autograd.grad(loss, wrt, allow_unused=True))
    return out


def assert_equal_to_rounding(adjoint, autograd, rtol=1e-10):
    for i, (a, b) in enumerate(zip(adjoint, autograd)):
        assert b is not None and float(b.abs().max()) > 0, i
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()),
                                   msg=lambda m, i=i: f"gradient {i}: {m}")


def weights_like(out, seed=2):
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)


def test_adjoint_path_is_taken_by_default(net64):
    assert bptt.ENABLED
    start = steady_state(net64, 0.1, DT, 2)
    assert bptt.applies(net64, start)
    assert not bptt.applies(Network(net64.graph, Graded(fused=False)), start)
    assert not bptt.applies(net64, (start, start))


def test_forward_is_bit_for_bit_the_no_grad_and_autograd_paths(graph_small, monkeypatch):
    net = Network(graph_small)
    lum = movie_of(net, 3)
    start = steady_state(net, 0.2, DT, 3)
    fast = simulate(net, lum, DT, initial_state=start, grad=False)
    adjoint = simulate(net, lum, DT, initial_state=start, grad=True)
    monkeypatch.setattr(bptt, "ENABLED", False)
    autograd = simulate(net, lum, DT, initial_state=start, grad=True)
    assert adjoint.grad_fn is not None and autograd.grad_fn is not None
    assert type(adjoint.grad_fn) is not type(autograd.grad_fn)  # two code paths
    assert not torch.equal(fast[:, 0], fast[:, -1])
    torch.testing.assert_close(adjoint.detach(), fast, rtol=0, atol=0)
    torch.testing.assert_close(autograd.detach(), fast, rtol=0, atol=0)


@pytest.mark.parametrize("batch, record, start_batch", [
    (1, None, 1),          # one sample
    (3, None, 1),          # a rest of batch 1 broadcast over the batch
    (2, "central", 2),     # a recorded subset (index)
    (2, ["T4a", "Mi1", "T4a"], 2),  # types named twice: duplicate indices
])
def test_adjoint_equals_autograd(net64, monkeypatch, batch, record, start_batch):
    lum = movie_of(net64, batch).requires_grad_()
    with torch.no_grad():
        rest = steady_state(net64, 0.5, DT, start_batch)
    start = rest.clone().requires_grad_()

    def loss():
        out, final = simulate(net64, lum, DT, initial_state=start, record=record,
                              return_state=True)
        return (weights_like(out) * out).sum() + (weights_like(final, 3) * final).sum()

    adjoint, autograd = both(net64, monkeypatch, loss, [lum, start])
    assert_equal_to_rounding(adjoint, autograd)


def test_adjoint_equals_autograd_through_the_rest(net64, monkeypatch):
    """The trainer's configuration: the start is the grey rest with its implicit gradient
    (relax_rest), the loss reads the responses and the rest."""
    lum = movie_of(net64, 2)
    with torch.no_grad():
        rest = steady_state(net64, 2.0, DT)

    def loss():
        start = relax_rest(net64, rest, 200, tol=1e-12)
        out = simulate(net64, lum, DT, initial_state=start)
        change = out - net64.dynamics.activity(start)[:, None]
        return (weights_like(out) * change).sum() + start.square().sum()

    adjoint, autograd = both(net64, monkeypatch, loss)
    assert_equal_to_rounding(adjoint, autograd, rtol=1e-9)  # a GMRES solve on each side


@pytest.mark.parametrize("activation", ["softplus", "tanh", "leakyrelu", "elu"])
def test_adjoint_equals_autograd_for_other_activations(graph_small, monkeypatch, activation):
    net = Network(graph_small, Graded(activation)).double()
    with torch.no_grad():
        net.time_const.uniform_(DT, 0.05, generator=torch.Generator().manual_seed(4))
    lum = movie_of(net, 2, steps=4)
    start = steady_state(net, 0.2, DT, 2).requires_grad_()

    def loss():
        out = simulate(net, lum, DT, initial_state=start, record="output")
        return (weights_like(out) * out).sum()

    adjoint, autograd = both(net, monkeypatch, loss, [start])
    assert_equal_to_rounding(adjoint, autograd)


def test_relu_kink_has_autograds_derivative(graph_small, monkeypatch):
    """Cells exactly at 0 (the kink of relu): the adjoint uses relu'(0) = 0, as autograd."""
    net = Network(graph_small).double()
    lum = movie_of(net, 2, steps=3)
    start = steady_state(net, 0.2, DT, 2)
    start[:, ::3] = 0.0
    start.requires_grad_()

    def loss():
        out = simulate(net, lum, DT, initial_state=start)
        return (weights_like(out) * out).sum()

    adjoint, autograd = both(net, monkeypatch, loss, [start])
    assert_equal_to_rounding(adjoint, autograd)


def test_adjoint_in_float32_matches_to_float_precision(graph_small, monkeypatch):
    net = Network(graph_small)
    lum = movie_of(net, 4, steps=10)
    start = steady_state(net, 0.5, DT, 4).requires_grad_()

    def loss():
        out = simulate(net, lum, DT, initial_state=start)
        return (weights_like(out) * out).sum()

    adjoint, autograd = both(net, monkeypatch, loss, [start])
    assert_equal_to_rounding(adjoint, autograd, rtol=1e-5)


def test_strength_gradient_in_chunks_of_steps(net64, monkeypatch):
    """The per-edge sums are collected CHUNK_COLUMNS // B steps at a time: a partial last
    chunk and chunks of one step give the same gradient."""
    lum = movie_of(net64, 2, steps=7)
    start = steady_state(net64, 0.2, DT, 2)

    def loss():
        out = simulate(net64, lum, DT, initial_state=start)
        return (weights_like(out) * out).sum()

    grads = []
    for columns in (6, 2, 64):  # 3 steps a chunk (7 = 3 + 3 + 1), 1 step, all at once
        monkeypatch.setattr(bptt, "CHUNK_COLUMNS", columns)
        grads.append(both(net64, monkeypatch, loss)[0][2])
    for g in grads[1:]:
        torch.testing.assert_close(g, grads[0], rtol=1e-12, atol=1e-12 * float(g.abs().max()))


# ---------------------------------------------------------------- tiny graph: gradcheck
def tiny(input_nodes):
    """A 6-node graph: 9 edges in 3 type pairs, coefficients of both signs."""
    source = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2, 4])
    target = torch.tensor([1, 2, 3, 4, 5, 0, 3, 5, 1])
    pair = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2])
    coeff = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 2.0, 1.5, -0.5, 1.0], dtype=torch.float64)
    structure = PairAdjacency(source, target, pair, 6, 3)
    n_in = 3 if isinstance(input_nodes, slice) else len(input_nodes)
    return structure, coeff, n_in


@pytest.mark.parametrize("input_nodes", [slice(0, 3), torch.tensor([5, 1, 3])])
@pytest.mark.parametrize("index", [None, torch.tensor([4, 0, 4])])
def test_gradcheck_on_a_tiny_graph(input_nodes, index):
    structure, coeff, n_in = tiny(input_nodes)
    g = torch.Generator().manual_seed(5)
    batch, steps, dt = 2, 4, 0.1

    def rand(*shape, scale=1.0, shift=0.0):
        return (shift + scale * torch.rand(*shape, generator=g, dtype=torch.float64)
                ).requires_grad_()

    v0 = rand(batch, 6, scale=2.0, shift=-0.7)  # cells on both sides of the kink
    currents = rand(batch, steps, n_in, shift=-0.5)
    bias, inv_tau, strength = rand(6, shift=-0.5), rand(6, scale=3.0, shift=2.0), rand(3)

    def fn(v0, currents, bias, inv_tau, strength):
        setup = (structure.bind(coeff, strength), input_nodes, torch.relu, dt, index)
        return bptt._GradedBPTT.apply(v0, currents, bias, inv_tau, strength, setup)

    assert torch.autograd.gradcheck(fn, (v0, currents, bias, inv_tau, strength))


def test_double_backward_is_refused(graph_small):
    net = Network(graph_small).double()
    start = steady_state(net, 0.1, DT, 1).requires_grad_()
    out = simulate(net, movie_of(net, 1, steps=2), DT, initial_state=start)
    (grad,) = torch.autograd.grad(out.square().sum(), start, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_retained_graph_gives_the_same_gradient_twice(graph_small):
    """The trainer's activity penalty walks the graph a second time (retain_graph)."""
    net = Network(graph_small).double()
    out = simulate(net, movie_of(net, 2, steps=3), DT, initial_state=steady_state(net, 0.1, DT))
    loss = (weights_like(out) * out).sum()
    first = torch.autograd.grad(loss, net.syn_strength, retain_graph=True)[0]
    second = torch.autograd.grad(loss, net.syn_strength)[0]
    assert float(first.abs().max()) > 0
    torch.testing.assert_close(first, second, rtol=0, atol=0)


# ---------------------------------------------------------------- the trainer
@pytest.mark.parametrize("rest_grad_steps, rtol", [(0, 1e-4), (100, 5e-3)])
def test_trainer_step_equals_autograd(tmp_path, monkeypatch, rest_grad_steps, rtol):
    """One training step (with the activity penalty, which walks the graph a second time) at
    the same parameters with the adjoint and with autograd: the same loss and gradients. With
    the rest's gradient, float32 rounding is amplified by the cancellation of the direct and
    the rest's gradient (see tests/test_train_gradients.py), and the biases' gradient cancels
    to rounding noise (compared in float64 in test_adjoint_equals_autograd_through_the_rest)."""
    from test_train_gradients import Movies, config, movie

    from flygnn.train import Trainer

    cfg = config(f"optim.rest_grad_steps={rest_grad_steps}", "optim.penalty.weight=0.1")
    trainer = Trainer(cfg, tmp_path / "run", datasets=(Movies(4), Movies(2)))
    trainer.train(until=2)
    saved = [copy.deepcopy(m.state_dict()) for m in (trainer.network, trainer.decoder)]
    optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    lum, flow = movie(2, 5), torch.rand(2, 6, 2, 19, generator=torch.Generator().manual_seed(6))
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(bptt, "ENABLED", enabled)
        trainer.network.load_state_dict(saved[0])
        trainer.decoder.load_state_dict(saved[1])
        trainer.optimizer.load_state_dict(optimizer)
        loss = trainer.step(lum, flow)
        net = trainer.network
        results.append((loss, {n: getattr(net, n).grad.clone() for n in NAMES}))
    (loss, grads), (ref_loss, ref_grads) = results
    assert loss == ref_loss  # the forward pass is bit for bit the same
    for name in NAMES[1:] if rest_grad_steps else NAMES:
        scale = float(ref_grads[name].abs().max())
        assert scale > 0, name
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=rtol, atol=rtol * scale)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_cuda_adjoint_equals_autograd(graph_small, monkeypatch, dtype, rtol):
    net = Network(graph_small).to(device="cuda", dtype=dtype)
    lum = movie_of(net, 4, steps=8).cuda()
    start = steady_state(net, 0.5, DT, 1).requires_grad_()

    def loss():
        out = simulate(net, lum, DT, initial_state=start, record="output")
        return (weights_like(out.cpu()).cuda() * out).sum()

    adjoint, autograd = both(net, monkeypatch, loss, [start])
    assert_equal_to_rounding(adjoint, autograd, rtol=rtol)
