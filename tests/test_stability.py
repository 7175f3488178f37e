"""The loop gain (flygnn.stability) against dense eigenvalues, its gradient against finite
differences, the loop-gain cost and a training run that resumes with it bit for bit."""

import pytest
import torch

from flygnn.constraints import LoopGainCost, LoopGainLimit, build_constraints, build_regularisers
from flygnn.datasets import FlyVisConnectome
from flygnn.linsolve import rightmost_eig
from flygnn.network import Network
from flygnn.simulate import steady_state
from flygnn.stability import loop_gain
from flygnn.train import Trainer


@pytest.fixture(scope="module")
def data():
    return FlyVisConnectome(extent=2)[0]


@pytest.fixture
def net(data):
    net = Network(data)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # strong, uneven strengths: a loop gain near 1
        net.syn_strength.mul_(3 + 20 * torch.rand(net.syn_strength.shape, generator=g))
    return net


def random_state(net, seed=0):
    """A state with cells on and off at random: D breaks the lattice's symmetries, so the
    leading eigenvalue is simple and differentiable."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, net.num_nodes, generator=g) - 0.3).to(net.bias.dtype)


def dense_gain(net, state) -> float:
    """max Re eig(W D), built independently from the network's edges."""
    with torch.no_grad():
        ctx = net.prepare()
        (source, target), weight = ctx.edges
        on = (state[0] > 0).double()
        a = torch.zeros(net.num_nodes, net.num_nodes, dtype=torch.float64)
        a.index_put_((target, source), weight.double() * on[source], accumulate=True)
        return float(torch.linalg.eigvals(a).real.max())


def resumed_and_free(cfg, free_override, tmp_path, data):
    """A run of ``cfg`` whole; the same stopped at 3 and resumed (its network equal bit for
    bit to the whole run's, checked here); a run with ``free_override`` (the rule off); and
    the loop gains of the free and the whole run at their grey rests."""
    from test_train_gradients import Movies

    def trainer(config, name, resume=False):
        return Trainer(config, tmp_path / name, resume=resume, datasets=(Movies(4), Movies(2)),
                       data=data)
    whole = trainer(cfg, "whole")
    whole.train()
    trainer(cfg, "split").train(until=3)
    second = trainer(cfg, "split", resume=True)
    hooks = [h.state_dict() for h in second.constraints + second.regularisers]
    second.train()
    for k, v in whole.network.state_dict().items():
        assert torch.equal(v, second.network.state_dict()[k]), k
    free = trainer(cfg.with_overrides([free_override]), "free")
    free.train()
    gains = [float(loop_gain(t.network, steady_state(t.network, 2.0, 0.02), tol=1e-8,
                             max_restarts=300).value) for t in (free, whole)]
    return whole, hooks, gains


def test_rightmost_eig_finds_a_real_and_a_complex_leading_eigenvalue():
    g = torch.Generator().manual_seed(0)
    n = 80
    q = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0]
    bulk = 0.5 * torch.randn(n, n, generator=g, dtype=torch.float64) / n ** 0.5
    for outlier in (torch.tensor([[1.4, 0.0], [0.0, -0.2]], dtype=torch.float64),
                    torch.tensor([[1.4, 0.3], [-0.3, 1.4]], dtype=torch.float64)):  # 1.4 +- 0.3i
        block = torch.zeros(n, n, dtype=torch.float64)
        block[:2, :2] = outlier
        a = bulk + q @ block @ q.T
        expected = torch.linalg.eigvals(a)
        expected = expected[torch.argmax(expected.real)]
        theta, z, ok = rightmost_eig(lambda x, a=a: a @ x, torch.ones(n, dtype=torch.float64),
                                     krylov=15, tol=1e-10, max_restarts=100)
        assert ok and min(abs(complex(theta) - complex(expected)),
                          abs(complex(theta) - complex(expected).conjugate())) < 1e-8
        residual = (a.to(z.dtype) @ z - theta * z).abs().max()
        assert float(residual) < 1e-8 and float(torch.linalg.vector_norm(z)) == pytest.approx(1)
    with pytest.raises(ValueError, match="finite and not zero"):
        rightmost_eig(lambda x: x, torch.zeros(3, dtype=torch.float64))


def test_loop_gain_is_the_largest_real_part_of_the_eigenvalues(net):
    state = random_state(net)
    gain = loop_gain(net, state, tol=1e-9, max_restarts=300)
    expected = dense_gain(net, state)
    assert gain.converged and float(gain.value) == pytest.approx(expected, abs=1e-5)
    assert gain.active == int((state > 0).sum())
    warm = loop_gain(net, state, warm=gain, tol=1e-9, max_restarts=1)  # already there
    assert warm.converged and float(warm.value) == pytest.approx(expected, abs=1e-5)
    # at the grey rest of the initial network: the same check on the rest itself
    plain = Network(net.graph)
    rest = steady_state(plain, 2.0, 0.02)
    assert float(loop_gain(plain, rest, tol=1e-9, max_restarts=300).value) == \
        pytest.approx(dense_gain(plain, rest), abs=1e-5)


def test_loop_gain_gradient_matches_finite_differences(net):
    state = random_state(net, 1)
    gain = loop_gain(net, state, grad=True, tol=1e-10, max_restarts=300)
    (grad,) = torch.autograd.grad(gain.value, net.syn_strength)
    torch.testing.assert_close(grad.double(), gain.sensitivity, rtol=1e-5, atol=1e-9)
    order = torch.argsort(grad.abs(), descending=True)
    checked = 0
    for p in order[:4].tolist():
        h = 1e-3 * float(net.syn_strength.detach()[p])
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                net.syn_strength[p] += sign * h
            values.append(dense_gain(net, state))
            with torch.no_grad():
                net.syn_strength[p] -= sign * h
        fd = (values[0] - values[1]) / (2 * h)
        assert float(grad[p]) == pytest.approx(fd, rel=2e-2, abs=1e-3 * float(grad.abs().max()))
        checked += abs(fd) > 0
    assert checked >= 3  # the strongest sensitivities are not zero


def test_loop_gain_rejects_bad_states(net):
    with pytest.raises(ValueError, match=r"expected \(N,\) or \(B, N\).*got \(3,\)"):
        loop_gain(net, torch.zeros(3))
    state = random_state(net)
    state[0, 5] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        loop_gain(net, state)


def test_loop_gain_cost_below_and_above_its_limit(net):
    state = random_state(net)
    g = float(loop_gain(net, state, tol=1e-9, max_restarts=300).value)
    responses = torch.zeros(1, 2, net.num_nodes)
    below = LoopGainCost(net, weight=50.0, limit=g + 0.1, every=3)
    cost = below(state, responses)
    assert float(cost) == 0 and below.last == pytest.approx(g, abs=1e-3)
    above = LoopGainCost(net, weight=50.0, limit=g - 0.1, every=3)
    cost = above(state, responses)
    assert float(cost) == pytest.approx(50.0 * (above.last - g + 0.1) ** 2, rel=1e-6)
    (grad,) = torch.autograd.grad(cost, net.syn_strength)
    expected = 2 * 50.0 * (above.last - g + 0.1) * above.gain.sensitivity
    torch.testing.assert_close(grad.double(), expected, rtol=1e-4, atol=1e-9)
    # between new eigenvectors, the value follows the strengths to first order
    sensitivity = above.gain.sensitivity.clone()
    with torch.no_grad():
        net.syn_strength.mul_(0.9)
    above(state, responses)
    assert above.last == pytest.approx(float(net.syn_strength.double() @ sensitivity), rel=1e-6)
    assert torch.equal(above.gain.sensitivity, sensitivity)
    above(state, responses)  # the third call: still the same eigenvectors
    above(state, responses)  # the fourth: found again (every = 3), for the new strengths
    assert not torch.equal(above.gain.sensitivity, sensitivity)
    assert above.last == pytest.approx(0.9 * g, abs=2e-3)  # W scaled by 0.9: the gain too


def test_training_with_the_loop_gain_cost_resumes_bit_for_bit(tmp_path, data):
    from test_train_gradients import config

    cfg = config("optim.n_iters=6", "optim.rest_grad_steps=20", "optim.penalty.gain_weight=10.0",
                 "optim.penalty.gain_limit=0.01", "optim.gain_every=2",
                 "optim.net_rate_scale.syn_strength=10.0")
    (cost,) = build_regularisers(cfg.optim, Network(data))
    assert isinstance(cost, LoopGainCost) and cost.every == 2 and cost.limit == 0.01
    _, hooks, gains = resumed_and_free(cfg, "optim.penalty.gain_weight=0.0", tmp_path, data)
    assert hooks[-1]["calls"] == 3  # the cost's state came back with the checkpoint
    # the cost acted: with the limit far below the gain, the gain fell against a run without it
    assert gains[1] < gains[0] - 0.02, gains


@pytest.mark.parametrize("field,value", [("penalty.gain_weight", float("nan")),
                                         ("penalty.gain_limit", 0.0), ("gain_every", 0),
                                         ("max_gain", -1.0), ("max_gain", float("inf"))])
def test_loop_gain_config_is_checked(field, value):
    from test_train_gradients import config

    with pytest.raises(ValueError, match=f"optim.{field}"):
        config(f"optim.{field}={value}")


def test_loop_gain_limit_projects_the_strengths_onto_the_limit(data):
    net = Network(data)
    with torch.no_grad():  # a stable rest (gain about 0.5) whose loops are strong
        net.syn_strength.mul_(6.0)
    rest = steady_state(net, 2.0, 0.02)
    g = float(loop_gain(net, rest, tol=1e-9, max_restarts=300).value)
    assert 0.4 < g < 0.9
    before = net.syn_strength.detach().clone()
    loose = LoopGainLimit(limit=g + 0.05, every=2, t_pre=2.0, dt=0.02)
    loose.after_step(net)
    assert torch.equal(net.syn_strength.detach(), before) and loose.projections == 0
    assert loose.last == pytest.approx(g, abs=1e-3)
    limit = LoopGainLimit(limit=0.8 * g, every=2, t_pre=2.0, dt=0.02)
    limit.after_step(net)
    assert limit.projections == 1
    after = net.syn_strength.detach()
    share = before.double() * limit.gain.sensitivity
    # first order: the shares after the projection sum to the limit
    assert float(after.double() @ limit.gain.sensitivity) == pytest.approx(0.8 * g, rel=1e-5)
    # pairs outside the leading loop keep their strength; each loop pair moves by exp(-a c_p)
    outside = share == 0
    assert outside.any() and torch.equal(after[outside], before[outside])
    large = share.abs() > 1e-2 * float(share.abs().max())  # above float32 rounding
    assert int(large.sum()) >= 5
    alpha = -(after.double() / before.double())[large].log() / share[large]
    torch.testing.assert_close(alpha, alpha.mean().expand_as(alpha), rtol=1e-3, atol=0)
    # at its new rest the gain fell, and a few more steps (eigenvectors found again at each)
    # bring it to the limit
    def gain_now():
        return float(loop_gain(net, steady_state(net, 2.0, 0.02), tol=1e-9,
                               max_restarts=300).value)
    assert 0.8 * g < gain_now() < g - 0.5 * (0.2 * g)
    again = LoopGainLimit(limit=0.8 * g, every=1, t_pre=2.0, dt=0.02)
    for _ in range(6):
        again.after_step(net)
    assert gain_now() == pytest.approx(0.8 * g, rel=0.01)
    assert limit.state_dict()["projections"] == 1


def test_training_with_the_loop_gain_limit_resumes_bit_for_bit(tmp_path, data):
    from test_train_gradients import config

    cfg = config("optim.n_iters=6", "optim.max_gain=0.1", "optim.gain_every=2",
                 "optim.net_rate_scale.syn_strength=10.0")
    hooks = build_constraints(cfg.optim, Network(data), cfg.data.dt)
    (limit,) = [h for h in hooks if isinstance(h, LoopGainLimit)]
    assert limit.limit == 0.1 and limit.every == 2 and limit.t_pre == cfg.optim.t_pre
    for frozen in ("optim.train_network=false", 'optim.train_params=["bias", "time_const"]'):
        # the strengths do not learn: no limit (it would change a network that stays fixed)
        other = cfg.with_overrides([frozen])
        hooks = build_constraints(other.optim, Network(data), other.data.dt)
        assert not any(isinstance(h, LoopGainLimit) for h in hooks)
    whole, hooks, gains = resumed_and_free(cfg, "optim.max_gain=0.0", tmp_path, data)
    assert hooks[0]["calls"] == 3 and hooks[0]["projections"] == 3
    (done,) = [h for h in whole.constraints if isinstance(h, LoopGainLimit)]
    assert done.projections == 6
    assert gains[1] < gains[0] - 0.02, gains
