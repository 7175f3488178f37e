"""Constraints and regularisers that act around each optimiser step of training.

A :class:`Constraint` sees the network before and after every optimiser step and may change
its parameters in place (a projection, a reparametrisation of the step); a
:class:`Regulariser` adds a term to the task loss. The trainer only calls the hooks, so a new
rule is one small class here and one entry in :func:`build_constraints` (or
:func:`build_regularisers`) -- no edit to the loop.

The built-in ones, each fed by one field of :class:`~flygnn.config.OptimConfig`:

* :class:`LogSpaceSteps` (``log_steps``): Adam's step ``d`` on a positive table becomes the
  relative step ``x <- x * exp(d)``.
* :class:`StrengthFloor` (``strength_floor``): ``syn_strength >= f * 0.01 / <n_syn>`` per pair.
* :class:`NonNegativeStrengths` (always, unless a floor is set): ``syn_strength >= 0``
  (flyvis's ``non_negative`` clamp, reference 4.3).
* :class:`FixedStrengths` (``fixed_strengths``): listed type pairs held at their initial
  strength.
* :class:`RestCost` (``penalty.rest_weight``): ``w * mean_k relu(rest_k - target)^2`` over the
  central cells of some cell types, and ``w * mean_k relu(floor - rest_k)^2`` with a floor
  (:func:`flygnn.task.rest_cost`).
* :class:`LoopGainLimit` (``max_gain``): after every step, the strengths of the pairs in the
  network's leading loop shrink, each in proportion to its share of the loop gain, until the
  gain at the grey rest is at most ``max_gain`` (:func:`flygnn.stability.loop_gain`).
* :class:`LoopGainCost` (``penalty.gain_weight``): ``w * relu(g - limit)^2`` on the loop gain
  ``g`` of the network at its grey rest (:func:`flygnn.stability.loop_gain`), which keeps the
  rest away from the edge of stability.
"""

from __future__ import annotations

import torch

from flygnn import params
from flygnn.simulate import steady_state
from flygnn.stability import LoopGain, loop_gain
from flygnn.task import rest_cost

__all__ = [
    "Constraint",
    "FixedStrengths",
    "LogSpaceSteps",
    "LoopGainCost",
    "LoopGainLimit",
    "NonNegativeStrengths",
    "Regulariser",
    "RestCost",
    "StrengthFloor",
    "build_constraints",
    "build_regularisers",
]


class Constraint:
    """A rule applied around each optimiser step (no-ops by default).

    A constraint that carries state between steps returns it from :meth:`state_dict`; the
    trainer stores it in its checkpoints, so a resumed run continues bit for bit."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s result."""

    def start(self, network) -> None:
        """Apply once to the starting network (before the first step)."""

    def before_step(self, network) -> None:
        """Called after ``backward``, before ``optimizer.step()``."""

    def after_step(self, network) -> None:
        """Called after ``optimizer.step()`` (and the activity penalty's step)."""


class Regulariser:
    """A term added to the task loss while the network learns.

    A regulariser that carries state between steps returns it from :meth:`state_dict`
    (tensors and plain values); the trainer stores it in its checkpoints, so a resumed run
    continues bit for bit."""

    def __call__(self, rest: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        """The term. Shapes: ``rest (B, N)`` activity at the start state, ``responses
        (B, T, N)``."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s result."""


class LogSpaceSteps(Constraint):
    """Adam moves the tables ``names`` in log space: ``x <- x * exp(x_adam - x)``.

    A relative rate for positive tables (``time_const``, ``syn_strength``); entries stay
    positive. Tables without a gradient this step are left alone.
    """

    def __init__(self, names) -> None:
        self.names = tuple(names)
        self._before: list[tuple[torch.Tensor, torch.Tensor]] = []

    def before_step(self, network) -> None:
        tables = (getattr(network, n) for n in self.names)
        self._before = [(p, p.detach().clone()) for p in tables if p.grad is not None]

    @torch.no_grad()
    def after_step(self, network) -> None:
        for p, old in self._before:
            p.copy_(old * torch.exp(p - old))
        self._before = []


class NonNegativeStrengths(Constraint):
    """``syn_strength >= 0`` after every step (flyvis's clamp)."""

    def start(self, network) -> None:
        params.project_(network.syn_strength)

    def after_step(self, network) -> None:
        params.project_(network.syn_strength)


class StrengthFloor(Constraint):
    """Strengths stay at or above ``fraction`` of their initial value ``0.01 / <n_syn>``.

    Args:
        fraction: in ``(0, 1]``.
        network: the network (its pair statistics give the initial strengths).
    """

    def __init__(self, fraction: float, network) -> None:
        init = params.init_syn_strength(network.graph.pair_mean_n_syn)
        self.floor = (fraction * init).to(network.syn_strength.device)

    def start(self, network) -> None:
        params.project_(network.syn_strength.data, self.floor)

    def after_step(self, network) -> None:
        params.project_(network.syn_strength, self.floor)


class FixedStrengths(Constraint):
    """Type pairs ``"source->target"`` held at their initial strength.

    Raises:
        ValueError: a pair without synapses in the network (named, with the config field).
    """

    def __init__(self, pairs, network) -> None:
        try:
            positions = params.pair_positions(network.graph, pairs)
        except ValueError as err:
            raise ValueError(f"config field 'optim.fixed_strengths': {err}") from None
        device = network.syn_strength.device
        self.positions = torch.tensor(positions, device=device)
        init = params.init_syn_strength(network.graph.pair_mean_n_syn).to(device)
        self.values = init[self.positions]

    @torch.no_grad()
    def start(self, network) -> None:
        network.syn_strength.index_put_((self.positions,), self.values)

    def after_step(self, network) -> None:
        self.start(network)


class RestCost(Regulariser):
    """``weight * mean_k relu(rest_k - target)^2`` over the central cells of ``cell_types``,
    plus ``weight * mean_k relu(floor - rest_k)^2`` when ``floor`` is not None.

    Raises:
        ValueError: an unknown cell type (named, with the config field).
    """

    def __init__(self, network, cell_types, weight: float, target: float,
                 floor: float | None = None) -> None:
        known = list(network.graph.cell_types)
        unknown = [t for t in cell_types if t not in known]
        if unknown:
            raise ValueError(f"config field 'optim.penalty.rest_types': unknown cell types "
                             f"{unknown}; known: {known}")
        central = network.graph.central_index.to(network.bias.device)
        self.index = central[[known.index(t) for t in cell_types]]
        self.weight, self.target, self.floor = weight, target, floor

    def __call__(self, rest: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        return rest_cost(rest, self.index, self.weight, self.target, self.floor)


class LoopGainCost(Regulariser):
    """``weight * relu(g - limit)^2`` on the loop gain ``g`` at the grey rest.

    The eigenvectors are found again every ``every`` calls, warm-started from the last ones
    (:func:`~flygnn.stability.loop_gain`); in between, ``g`` is its first-order value for the
    current strengths (``strength . sensitivity``), which is exact in the strengths that
    moved since and leaves out only the change of the eigenvectors. The term's gradient
    lowers the strengths of the loops that feed the leading mode.

    Raises:
        ValueError: a neuron model without a transfer function (named).
    """

    def __init__(self, network, weight: float, limit: float, every: int = 10) -> None:
        self.network, self.weight, self.limit, self.every = network, weight, limit, every
        self.calls = 0
        self.gain: LoopGain | None = None
        self.last = float("nan")  # the last value of g (for the log and tests)

    def __call__(self, rest: torch.Tensor, responses: torch.Tensor) -> torch.Tensor:
        net = self.network
        ctx = net.prepare()
        if self.gain is None or self.calls % self.every == 0:
            self.gain = loop_gain(net, rest.detach(), warm=self.gain, ctx=ctx)
        self.calls += 1
        sensitivity = self.gain.sensitivity.to(ctx.strength.device, ctx.strength.dtype)
        g = (ctx.strength * sensitivity).sum()
        self.last = float(g.detach())
        return self.weight * torch.relu(g - self.limit) ** 2

    def state_dict(self) -> dict:
        return _gain_state(self.calls, self.gain)

    def load_state_dict(self, state: dict) -> None:
        self.calls, self.gain = _gain_from_state(state)


def _gain_state(calls: int, gain: LoopGain | None) -> dict:
    vectors = {} if gain is None else {
        "eigenvalue": gain.eigenvalue, "right": gain.right, "left": gain.left,
        "sensitivity": gain.sensitivity, "converged": gain.converged, "active": gain.active}
    return {"calls": calls, **vectors}


def _gain_from_state(state: dict) -> tuple[int, LoopGain | None]:
    if "sensitivity" not in state:
        return int(state.get("calls", 0)), None
    return int(state["calls"]), LoopGain(
        value=torch.tensor(float("nan")), eigenvalue=state["eigenvalue"], right=state["right"],
        left=state["left"], sensitivity=state["sensitivity"],
        converged=bool(state["converged"]), active=int(state["active"]))


class LoopGainLimit(Constraint):
    """The loop gain at the grey rest held at or below ``limit`` after every step.

    The gain is homogeneous of degree one in the strengths: ``g = sum_p c_p`` with
    ``c_p = s_p * dg/ds_p`` the share of pair ``p`` (zero outside the leading loop). When
    ``g > limit``, every strength is multiplied by ``exp(-alpha * c_p)`` with ``alpha``
    solved (Newton, on the first-order model) so that the gain becomes ``limit``: pairs
    shrink in proportion to their share, inhibitory pairs in the loop (``c_p < 0``) grow,
    and pairs outside it keep their value. A projection after the step, not a loss term, so
    Adam's moments never see it (a loss term's gradient spikes near the limit and then damps
    every later step through Adam's second moment).

    The eigenvectors are found again at a fresh grey rest (``t_pre`` seconds at ``dt``)
    every ``every`` steps, warm-started; in between the gain is the first-order value
    ``strength . sensitivity``, and when that is above the limit they are found again before
    the projection.

    Raises:
        ValueError: a neuron model without a transfer function (named).
    """

    def __init__(self, limit: float, every: int, t_pre: float, dt: float) -> None:
        self.limit, self.every, self.t_pre, self.dt = limit, every, t_pre, dt
        self.calls = 0
        self.gain: LoopGain | None = None
        self.last = float("nan")  # the gain before the last projection
        self.projections = 0

    def _find(self, network) -> bool:
        """The eigenvectors at the network's grey rest now; False if the rest is not finite."""
        rest = steady_state(network, self.t_pre, self.dt)
        if not torch.isfinite(network.dynamics.activity(rest)).all():
            return False
        self.gain = loop_gain(network, rest, warm=self.gain)
        return True

    def _shares(self, strength: torch.Tensor) -> torch.Tensor:
        """Each pair's share of the gain, ``c_p = s_p dg/ds_p`` (first order in the strengths)."""
        return strength.double().clamp_min(0) * self.gain.sensitivity.to(strength.device)

    @torch.no_grad()
    def after_step(self, network) -> None:
        found = (self.gain is None or self.calls % self.every == 0) and self._find(network)
        if self.gain is None:  # nothing to project with yet: try again next step
            return
        self.calls += 1
        strength = network.syn_strength
        share = self._shares(strength)
        if float(share.sum()) > self.limit and not found and self._find(network):
            share = self._shares(strength)  # over, to first order: use the eigenvectors of now
        self.last = float(share.sum())
        if not self.last > self.limit:
            return
        alpha = 0.0
        for _ in range(20):  # sum_p c_p exp(-alpha c_p) = limit
            scaled = share * torch.exp(-alpha * share)
            excess = float(scaled.sum()) - self.limit
            slope = float((share * scaled).sum())
            if abs(excess) <= 1e-9 or slope <= 0:
                break
            alpha += excess / slope
        strength.mul_(torch.exp(-alpha * share).to(strength.dtype))
        self.projections += 1

    def state_dict(self) -> dict:
        return {**_gain_state(self.calls, self.gain), "projections": self.projections}

    def load_state_dict(self, state: dict) -> None:
        self.calls, self.gain = _gain_from_state(state)
        self.projections = int(state.get("projections", 0))


def build_constraints(optim, network, dt: float = 0.02) -> list[Constraint]:
    """The constraints an :class:`~flygnn.config.OptimConfig` asks for, in the order applied
    after a step (log-space steps, the loop-gain limit, then the floor or the clamp, then
    fixed pairs); ``dt`` is the simulation step of the loop gain's grey rest."""
    out: list[Constraint] = []
    if optim.log_steps:
        out.append(LogSpaceSteps(optim.log_steps))
    if optim.max_gain and optim.train_network and "syn_strength" in optim.train_params:
        # only while the strengths learn: a stage that trains the decoder alone (perhaps at
        # another extent, where the gain differs slightly) keeps the network it was given
        out.append(LoopGainLimit(optim.max_gain, optim.gain_every, optim.t_pre, dt))
    if optim.strength_floor:
        out.append(StrengthFloor(optim.strength_floor, network))
    else:
        out.append(NonNegativeStrengths())
    if optim.fixed_strengths:
        out.append(FixedStrengths(optim.fixed_strengths, network))
    return out


def build_regularisers(optim, network) -> list[Regulariser]:
    """The loss terms an :class:`~flygnn.config.OptimConfig` asks for (the rest cost, the
    loop-gain cost)."""
    p, out = optim.penalty, []
    if p.rest_weight:
        out.append(RestCost(network, p.rest_types, p.rest_weight, p.rest_target,
                            p.rest_floor))
    if p.gain_weight:
        out.append(LoopGainCost(network, p.gain_weight, p.gain_limit, optim.gain_every))
    return out
