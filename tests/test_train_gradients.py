"""The network's training gradient: through the grey rest (relax_rest) and log-space steps."""

import copy
import json

import pytest
import torch

from flygnn import bptt
from flygnn.config import TrainConfig
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.simulate import IntegrationWarning, relax_rest, simulate, steady_state
from flygnn.task import FlowDecoder, l2norm, rest_cost
from flygnn.train import Trainer

EXTENT, N_HEX, T, DT = 2, 19, 6, 0.02


@pytest.fixture(scope="module")
def data():
    return FlyVisConnectome(extent=EXTENT)[0]


@pytest.fixture
def net(data):
    net = Network(data)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # stronger, uneven synapses: the rest depends on them
        net.syn_strength.mul_(1 + 4 * torch.rand(net.syn_strength.shape, generator=g))
    return net


def movie(batch=2, seed=0):
    return torch.rand(batch, T, N_HEX, generator=torch.Generator().manual_seed(seed))


def grads(net, loss):
    net.zero_grad()
    loss.backward()
    return {n: getattr(net, n).grad.clone() for n in ("bias", "syn_strength")}


def readout(net, start, lum, weights):
    """A loss on the change from rest, as the flow decoder reads it."""
    responses = simulate(net, lum, DT, initial_state=start, grad=True)
    return (weights * (responses - net.dynamics.activity(start)[:, None])).sum()


def test_relax_rest_keeps_the_rest_and_gives_the_implicit_gradient(net):
    lum = movie()
    weights = torch.randn(2, T, net.num_nodes, generator=torch.Generator().manual_seed(2))
    # exact: differentiate through 4 s of grey from v = bias (converged to float precision)
    exact = grads(net, readout(net, steady_state(net, 4.0, DT, 2, grad=True), lum, weights))
    with torch.no_grad():
        rest = steady_state(net, 4.0, DT, 2)
    relaxed = relax_rest(net, rest)
    torch.testing.assert_close(relaxed, rest, rtol=0, atol=1e-6)
    implicit = grads(net, readout(net, relaxed, lum, weights))
    detached = grads(net, readout(net, rest, lum, weights))

    def error(g):
        return {n: float((g[n] - exact[n]).norm() / exact[n].norm()) for n in exact}

    # strengths: the implicit gradient; biases: the change from rest does not depend on them
    # (linear regime), so the exact gradient is ~0 and two large terms must cancel
    assert error(implicit)["syn_strength"] < 1e-4
    assert float((implicit["bias"] - exact["bias"]).norm()) < 1e-5 * float(detached["bias"].norm())
    # a detached start state differentiates the drift to the new rest instead
    assert error(detached)["syn_strength"] > 0.1
    # too few solver steps: a warning and a less accurate gradient
    with pytest.warns(IntegrationWarning, match="did not converge"):
        truncated = grads(net, readout(net, relax_rest(net, rest, max_steps=3), lum, weights))
    assert error(truncated)["syn_strength"] > 10 * error(implicit)["syn_strength"]
    with pytest.raises(ValueError, match="max_steps >= 1"):
        relax_rest(net, rest, -1)


def test_one_shared_rest_gives_the_gradient_of_a_rest_per_sample(net):
    """The trainer relaxes one grey rest and broadcasts it over the batch (grey is the same
    for every sample): the adjoint of the summed gradient is the sum of the adjoints."""
    lum = movie(batch=3)
    weights = torch.randn(3, T, net.num_nodes, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        rest = steady_state(net, 4.0, DT)
    each = relax_rest(net, rest.expand(3, -1).contiguous())
    per_sample = grads(net, readout(net, each, lum, weights))
    shared = grads(net, readout(net, relax_rest(net, rest), lum, weights))
    scale = float(per_sample["syn_strength"].abs().max())
    assert scale > 0
    torch.testing.assert_close(shared["syn_strength"], per_sample["syn_strength"], rtol=1e-4,
                               atol=1e-4 * scale)
    # the bias gradient cancels to ~0 (see above): compare on the scale of its terms
    detached = grads(net, readout(net, rest.expand(3, -1), lum, weights))
    difference = float((shared["bias"] - per_sample["bias"]).norm())
    assert difference < 1e-5 * float(detached["bias"].norm())


class Movies(torch.utils.data.Dataset):
    def __init__(self, n):
        self.lum = torch.rand(n, T, N_HEX, generator=torch.Generator().manual_seed(n))
        self.flow = torch.stack([self.lum - 0.5, 0.2 * self.lum], 2)

    def __len__(self):
        return len(self.lum)

    def __getitem__(self, i):
        return {"lum": self.lum[i], "flow": self.flow[i]}


def config(*overrides):
    return TrainConfig.from_dict({
        "network": {"extent": EXTENT}, "seed": 0,
        "data": {"n_train": 4, "n_val": 2, "cache": ""},
        "decoder": {"p_dropout": 0.0, "input_reference": "rest", "input_norm": "rms"},
        "optim": {"n_iters": 4, "batch_size": 2, "t_pre": 2.0, "val_t_pre": 0.1,
                  "penalty": {"weight": 0.0}, "fresh_state": True,
                  "lr_net": {"start": 1e-3, "stop": 1e-3, "steps": 1},
                  "lr_dec": {"start": 1e-3, "stop": 1e-3, "steps": 1}}},
    ).with_overrides(list(overrides))


def trained_step(cfg, tmp_path, data, net):
    """A trainer from ``net`` after two iterations (the next step recomputes its rest), one
    more step on a fixed batch (its gradients stay on the network), and copies of its network
    and decoder before that step, to recompute the gradient independently."""
    trainer = Trainer(cfg, tmp_path / "run", datasets=(Movies(4), Movies(2)), data=data)
    trainer.network.load_state_dict(net.state_dict())
    trainer.train(until=2)
    ref_net = Network(data)
    ref_net.load_state_dict(trainer.network.state_dict())
    ref_dec = FlowDecoder.from_config(ref_net.graph, cfg.decoder)
    ref_dec.load_state_dict(trainer.decoder.state_dict())
    lum, flow = movie(2, 5), torch.rand(2, T, 2, N_HEX, generator=torch.Generator().manual_seed(6))
    trainer.step(lum, flow)
    return trainer, ref_net, ref_dec, lum, flow


def test_trainer_differentiates_through_the_rest(tmp_path, data, net, monkeypatch):
    cfg = config("optim.rest_grad_steps=100")
    trainer, ref_net, ref_dec, lum, flow = trained_step(cfg, tmp_path, data, net)
    names = ("syn_strength", "time_const")

    def gradient(start):  # the loss as a function of the parameters, from ``start``
        ref_net.zero_grad()
        decoder = copy.deepcopy(ref_dec).train()
        loss = l2norm(decoder(simulate(ref_net, lum, DT, initial_state=start),
                              ref_net.dynamics.activity(start)), flow)
        loss.backward()
        return {name: getattr(ref_net, name).grad.clone() for name in names}

    def error(g, reference):
        return {n: float((g[n] - reference[n]).abs().max() / reference[n].abs().max())
                for n in names}

    trained = {name: getattr(trainer.network, name).grad for name in names}
    # the trainer's recipe recomputed (grey rest of t_pre, relax_rest), simulated with
    # autograd: equal up to float32 rounding, which the cancellation below amplifies ~5000x
    # (each side is ~1.5e-3 of the largest entry from its float64 value)
    monkeypatch.setattr(bptt, "ENABLED", False)
    with torch.no_grad():
        rest = steady_state(ref_net, cfg.optim.t_pre, DT)
    recipe = gradient(relax_rest(ref_net, rest, cfg.optim.rest_grad_steps))
    assert max(error(trained, recipe).values()) < 5e-3
    # exact: the grey rest recomputed with the parameters (4 s of grey, differentiated).
    # relax_rest solves the rest's adjoint to a residual of 1e-6 (GMRES) and the gradient
    # through the rest cancels the direct one to ~1/5000 of its size, so the two differ by
    # up to ~0.6 % of the largest entry (0.3-0.6 % measured, in float64 too)
    exact = gradient(steady_state(ref_net, 4.0, DT, 2, grad=True))
    assert max(error(trained, exact).values()) < 2e-2
    # without the gradient through the rest the strengths' gradient is far off
    detached = gradient(steady_state(ref_net, 4.0, DT, 2, grad=False))
    assert error(detached, exact)["syn_strength"] > 10


def test_log_steps_move_strengths_by_a_relative_rate(tmp_path, data):
    cfg = config('optim.log_steps=["syn_strength"]', "optim.train_params=[\"syn_strength\"]")
    trainer = Trainer(cfg, tmp_path / "run", datasets=(Movies(4), Movies(2)), data=data)
    before = trainer.network.syn_strength.detach().clone()
    trainer.train(until=1)
    grad = trainer.network.syn_strength.grad
    # Adam's first step is -lr * sign(grad); in log space it multiplies by exp(-lr * sign)
    expected = before * torch.exp(-1e-3 * torch.sign(grad))
    torch.testing.assert_close(trainer.network.syn_strength.detach(), expected, rtol=1e-5, atol=0)
    assert (trainer.network.syn_strength > 0).all()
    with pytest.raises(ValueError, match="optim.log_steps"):
        config('optim.log_steps=["bias"]')
    with pytest.raises(ValueError, match="optim.rest_grad_steps"):
        config("optim.rest_grad_steps=-2")
    with pytest.raises(ValueError, match="needs optim.fresh_state"):
        config("optim.rest_grad_steps=5", "optim.fresh_state=false")


def test_relax_rest_handles_states_of_several_tensors(data):
    from flygnn.neurons import SynapticFilter as SynapticFilterDynamics

    net = Network(data, SynapticFilterDynamics(syn_time_const=0.03))
    with torch.no_grad():
        net.syn_strength.mul_(3.0)
    lum = movie(seed=3)
    weights = torch.randn(2, T, net.num_nodes, generator=torch.Generator().manual_seed(4))
    exact = grads(net, readout(net, steady_state(net, 4.0, DT, 2, grad=True), lum, weights))
    with torch.no_grad():
        rest = steady_state(net, 4.0, DT, 2)
    relaxed = relax_rest(net, rest)
    assert isinstance(relaxed, tuple) and len(relaxed) == 2
    for a, b in zip(relaxed, rest):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    implicit = grads(net, readout(net, relaxed, lum, weights))
    err = (implicit["syn_strength"] - exact["syn_strength"]).norm() / exact["syn_strength"].norm()
    assert err < 1e-3


@pytest.mark.parametrize("restart", [50, 10])
def test_gmres_solves_a_nonsymmetric_system(restart):
    from flygnn.linsolve import gmres

    g = torch.Generator().manual_seed(7)
    n = 40
    noise = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = torch.eye(n, dtype=torch.float64) + 0.9 * noise / n ** 0.5
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x, converged, used = gmres(lambda v: a @ v, b, tol=1e-10, max_iter=400, restart=restart)
    assert converged and used <= 400  # restarted: more products, same solution
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-8)
    for cap in (3, 23):
        x, converged, used = gmres(lambda v: a @ v, b, tol=1e-10, max_iter=cap, restart=restart)
        assert not converged and used <= cap
    assert gmres(lambda v: a @ v, torch.zeros(n, dtype=torch.float64))[1:] == (True, 0)


def test_rest_cost_hand_computed():
    rest = torch.tensor([[0.5, -1.0, 2.0, 3.0]])
    value = rest_cost(rest, torch.tensor([0, 1, 2]), weight=4.0)
    assert float(value) == pytest.approx(4.0 * (0.25 + 0.0 + 4.0) / 3)
    below = rest_cost(rest, torch.tensor([0, 1, 2]), weight=4.0, target=-0.5)
    assert float(below) == pytest.approx(4.0 * (1.0 + 0.0 + 6.25) / 3)
    band = rest_cost(rest, torch.tensor([0, 1, 3]), weight=4.0, target=0.0, floor=-0.5)
    assert float(band) == pytest.approx(4.0 * (0.25 + 0.25 + 9.0) / 3)
    inside = rest_cost(torch.tensor([[-0.3, 0.0, -0.5]]), torch.arange(3), 4.0, 0.0, -0.5)
    assert float(inside) == 0.0
    x = torch.tensor([[0.5, -1.0, 2.0, -0.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: rest_cost(r, torch.arange(4), 3.0, 0.1, -0.4), x)
    with pytest.raises(ValueError, match="floor"):
        rest_cost(rest, torch.tensor([0]), floor=1.0)


def test_rest_cost_enters_the_gradient_through_the_rest(tmp_path, data, net):
    with torch.no_grad():
        rest = net.dynamics.activity(steady_state(net, 4.0, DT))[0, net.graph.central_index]
    types = [t for t, r in zip(net.graph.cell_types, rest.tolist()) if r > 0.05 and t[0] == "T"][:5]
    assert len(types) == 5  # cells above threshold at grey: the cost acts on them
    cfg = config("optim.rest_grad_steps=100", "optim.penalty.rest_weight=30.0",
                 "optim.penalty.rest_target=-0.05", f"optim.penalty.rest_types={json.dumps(types)}")
    trainer, ref_net, ref_dec, lum, flow = trained_step(cfg, tmp_path, data, net)
    start = steady_state(ref_net, 4.0, DT, 2, grad=True)
    rest = ref_net.dynamics.activity(start)
    index = ref_net.graph.central_index[[ref_net.graph.cell_types.index(t) for t in types]]
    ref_dec.train()
    task = l2norm(ref_dec(simulate(ref_net, lum, DT, initial_state=start), rest), flow)
    cost = 30.0 * (rest[:, index] + 0.05).relu().pow(2).mean()
    (task + cost).backward()
    for name in ("bias", "syn_strength"):
        expected = getattr(ref_net, name).grad
        torch.testing.assert_close(getattr(trainer.network, name).grad, expected, rtol=5e-3,
                                   atol=5e-3 * float(expected.abs().max()))
    # the cost's share of the bias gradient is not negligible: the test would see it missing
    start = steady_state(ref_net, 4.0, DT, 2, grad=True)
    rest = ref_net.dynamics.activity(start)
    task_only = l2norm(ref_dec(simulate(ref_net, lum, DT, initial_state=start), rest), flow)
    assert float((trainer.network.bias.grad - torch.autograd.grad(task_only, ref_net.bias)[0])
                 .abs().max()) > 0.05 * float(expected.abs().max())


def test_rest_cost_config_is_checked(tmp_path, data):
    with pytest.raises(ValueError, match=r"optim.penalty.rest_floor.*<= rest_target"):
        config("optim.rest_grad_steps=10", "optim.penalty.rest_weight=1.0",
               'optim.penalty.rest_types=["T5a"]', "optim.penalty.rest_floor=0.5")
    with pytest.raises(ValueError, match="optim.penalty.rest_types"):
        config("optim.rest_grad_steps=10", "optim.penalty.rest_weight=1.0")
    with pytest.raises(ValueError, match="needs optim.rest_grad_steps"):
        config("optim.penalty.rest_weight=1.0", 'optim.penalty.rest_types=["T5a"]')
    cfg = config("optim.rest_grad_steps=10", "optim.penalty.rest_weight=1.0",
                 'optim.penalty.rest_types=["T5a", "T5z"]')
    with pytest.raises(ValueError, match=r"rest_types.*unknown cell types \['T5z'\]"):
        Trainer(cfg, tmp_path / "run", datasets=(Movies(4), Movies(2)), data=data)
