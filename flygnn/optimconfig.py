"""The optimisation section of a training configuration: :class:`OptimConfig` and the
dataclasses it nests, the stepwise rate :class:`Schedule`, the activity :class:`PenaltyConfig`
and the per-table :class:`RateScale`. Each checks its own fields (``check``); they are part of
:class:`~flygnn.config.TrainConfig` and re-exported by :mod:`flygnn.config`, where the
configuration as a whole is described.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from flygnn._deprecation import renamed_fields
from flygnn.configio import fail as _fail

__all__ = ["OptimConfig", "PenaltyConfig", "RateScale", "Schedule"]


@dataclass(frozen=True)
class Schedule:
    """flyvis's stepwise schedule: ``linspace(start, stop, steps)[min(it // every, steps - 1)]``
    with ``every = max(n_iters // steps, 1)``, evaluated at the start of each epoch."""

    start: float = 5e-5
    stop: float = 5e-6
    steps: int = 10

    def check(self, prefix: str) -> None:
        for name in ("start", "stop"):
            if not getattr(self, name) >= 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.steps < 1:
            _fail(f"{prefix}.steps", f"must be >= 1, got {self.steps}")

    def value(self, iteration: int, n_iters: int) -> float:
        """The rate at ``iteration`` of an ``n_iters`` run."""
        if self.steps == 1:
            return float(self.start)
        k = min(iteration // max(n_iters // self.steps, 1), self.steps - 1)
        return float(np.linspace(self.start, self.stop, self.steps)[k])


@renamed_fields(baseline="target")
@dataclass(frozen=True)
class PenaltyConfig:
    """Activity penalty on the resting potentials (reference 9.5) towards the activity
    ``target`` (:func:`flygnn.task.activity_penalty`; ``baseline``, its old name, is
    deprecated); ``weight`` 0 disables it.
    Not in flyvis: ``rest_weight * mean_k relu(rest_k - rest_target)^2`` over the central
    cells of ``rest_types`` added to the loss, and with ``rest_floor`` not null also
    ``rest_weight * mean_k relu(rest_floor - rest_k)^2``, keeping their rest in the band
    ``[rest_floor, rest_target]`` (:func:`flygnn.task.rest_cost`; it needs the rest's
    gradient, ``optim.rest_grad_steps`` > 0). ``max_step`` bounds the penalty's SGD
    step per resting potential (flyvis's is unbounded: null); its steps are ~1e-4 in
    training, and the bound acts only when the penalty's gradient explodes near the edge of
    stability, where one unbounded step moved resting potentials to 1e12.
    Not in flyvis either: ``gain_weight * relu(g - gain_limit)^2`` on the loop gain ``g`` of
    the network at its grey rest (the largest real part of the eigenvalues of ``W D``,
    :func:`flygnn.stability.loop_gain`; with equal time constants the rest is stable while
    ``g < 1``), its eigenvectors found again every ``optim.gain_every`` steps
    (:class:`flygnn.constraints.LoopGainCost`)."""

    target: float = 5.0
    weight: float = 0.1
    below: float = 1.0
    above: float = 0.1
    stop_iter: int = 150_000
    rest_weight: float = 0.0
    rest_types: tuple[str, ...] = ()
    rest_target: float = 0.0
    rest_floor: float | None = None
    max_step: float | None = 1e-3
    gain_weight: float = 0.0
    gain_limit: float = 0.85

    def check(self, prefix: str) -> None:
        for name in ("weight", "below", "above", "stop_iter", "rest_weight", "gain_weight"):
            if not getattr(self, name) >= 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.max_step is not None and not 0 < self.max_step < math.inf:
            _fail(f"{prefix}.max_step", f"must be > 0 and finite, or null, got {self.max_step}")
        if not 0 < self.gain_limit < math.inf:
            _fail(f"{prefix}.gain_limit", f"must be > 0 and finite, got {self.gain_limit}")
        if self.rest_floor is not None and not -math.inf < self.rest_floor <= self.rest_target:
            _fail(f"{prefix}.rest_floor", f"must be finite and <= rest_target "
                  f"({self.rest_target}), or null, got {self.rest_floor}")
        if self.rest_weight and not self.rest_types:
            _fail(f"{prefix}.rest_types", "must name the cell types whose rest rest_weight costs")


@dataclass(frozen=True)
class RateScale:
    """Factors on the network's learning rate per parameter table (all 1 in flyvis).

    Adam moves every parameter by about its rate per step, whatever the parameter's size:
    at the initialisation synapse strengths are ~0.005, time constants ~0.05 and resting
    potentials ~0.5, so one rate is a hundred times larger, relatively, for strengths."""

    bias: float = 1.0
    time_const: float = 1.0
    syn_strength: float = 1.0

    def check(self, prefix: str) -> None:
        for name in ("bias", "time_const", "syn_strength"):
            if getattr(self, name) < 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation: Adam on (network, decoder) with stepwise rates, SGD for the penalty
    (``lr_pen`` None: follows ``lr_net``), grey steady state of ``t_pre`` seconds per epoch,
    validation every ``val_every`` and a checkpoint every ``checkpoint_every`` iterations.
    ``train_network = False`` trains the decoder alone (the reference run "decoder on the
    untrained network"); ``train_params``: the network's tables that learn (all three in
    flyvis); ``net_rate_scale``: the network's rate per table (:class:`RateScale`).
    Not in flyvis: ``net_warmup``, the network's (and penalty's) rate is 0 in epochs starting
    before this iteration, so the decoder first learns to read the initial network;
    ``fresh_state``, recompute the grey rest before every network step, not once per epoch
    (a stale state starts each movie with a transient that the decoder reads as signal);
    ``rest_grad_steps``, differentiate the start state and the decoder's rest implicitly,
    with up to that many adjoint iterations (:func:`~flygnn.simulate.relax_rest`; 0 treats
    the start state as a constant, as flyvis does); ``log_steps``, tables that Adam moves in
    log space (``x * exp(step)``: a relative rate, entries stay positive); ``strength_floor``,
    strengths stay >= that fraction of their initial value ``0.01 / <n_syn>`` (0: >= 0 only);
    ``fixed_strengths``, type pairs ``"source->target"`` whose strengths are set to that
    initial value and kept there; ``val_at_start``, validate the starting weights before the
    first step, so that they count as a candidate for the best weights (a stage that only
    makes the validation error worse hands on its starting network); ``skip_nonfinite``, a
    step whose loss is not finite (the simulation left the network's stable range) changes
    no weight and takes back the update before it, which led there (weights, decoder
    statistics, Adam's state); it is logged with its loss, and after this many such steps in
    a row training stops with an error (0: stop at the first); ``nonfinite_stall``, after
    this many non-finite steps without an update that lasted (one followed by a finite
    step), the network keeps returning to the edge of its stable range and its weights no
    longer move: the stage ends there, hands on its best validated weights and says so in
    its metrics (``stopped_early``) and log (0: never); ``max_rest``, a step whose grey
    start state holds a magnitude above this (:func:`~flygnn.simulate.state_size`) is treated
    like a non-finite one: the rest has run away although the loss is still finite (the
    decoder's input normalisation hides it), and the update that led there is taken back (0:
    never checked); ``nonfinite_backoff``, each update taken back multiplies the network's
    rate by this factor and each lasting one raises it again
    (:class:`~flygnn.stepguard.NonFiniteGuard`), so that a network at the edge of its stable
    range approaches it in shorter steps instead of crossing it at every other step (1:
    off); ``nonfinite_shrink``, each update
    taken back also scales the strengths by one minus this, lowering the network's loop gain
    (0: off); ``max_gain``, after every step the strengths of the loops are scaled down until
    the loop gain at the grey rest (:func:`flygnn.stability.loop_gain`; the rest is stable
    while it is below 1 with equal time constants) is at most this
    (:class:`~flygnn.constraints.LoopGainLimit`; 0: off); ``gain_every``, the loop gain's
    eigenvectors are found again every this many steps (for ``max_gain`` and
    ``penalty.gain_weight``), first order in between."""

    n_iters: int = 250_000
    batch_size: int = 4
    lr_net: Schedule = field(default_factory=Schedule)
    lr_dec: Schedule = field(default_factory=Schedule)
    lr_pen: Schedule | None = None
    penalty: PenaltyConfig = field(default_factory=PenaltyConfig)
    t_pre: float = 0.5
    val_t_pre: float = 0.5
    val_every: int = 500
    val_batch_size: int = 4
    checkpoint_every: int = 100
    train_network: bool = True
    net_warmup: int = 0
    fresh_state: bool = False
    train_params: tuple[str, ...] = ("bias", "time_const", "syn_strength")
    net_rate_scale: RateScale = field(default_factory=RateScale)
    rest_grad_steps: int = 0
    log_steps: tuple[str, ...] = ()
    strength_floor: float = 0.0
    fixed_strengths: tuple[str, ...] = ()
    val_at_start: bool = False
    skip_nonfinite: int = 10
    nonfinite_stall: int = 200
    max_rest: float = 0.0
    nonfinite_backoff: float = 1.0
    nonfinite_shrink: float = 0.0
    max_gain: float = 0.0
    gain_every: int = 10

    def check(self, prefix: str) -> None:
        for name in ("n_iters", "batch_size", "val_every", "val_batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                _fail(f"{prefix}.{name}", f"must be >= 1, got {getattr(self, name)}")
        known = ("bias", "time_const", "syn_strength")
        if any(p not in known for p in self.train_params):
            _fail(f"{prefix}.train_params", f"entries must be among {list(known)}, got "
                                            f"{list(self.train_params)}")
        if any(p not in ("time_const", "syn_strength") for p in self.log_steps):
            _fail(f"{prefix}.log_steps", f"entries must be among ['time_const', 'syn_strength'] "
                                         f"(positive tables), got {list(self.log_steps)}")
        for name in ("rest_grad_steps", "net_warmup", "skip_nonfinite", "nonfinite_stall"):
            if getattr(self, name) < 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")
        if self.penalty.rest_weight and not self.rest_grad_steps:
            _fail(f"{prefix}.penalty.rest_weight", "needs optim.rest_grad_steps > 0 (the cost "
                                                   "acts through the rest's gradient)")
        if self.rest_grad_steps and not self.fresh_state:
            _fail(f"{prefix}.rest_grad_steps", "needs optim.fresh_state = true (the implicit "
                                               "gradient holds at the current network's rest)")
        for name in ("t_pre", "val_t_pre"):
            if getattr(self, name) < 0:
                _fail(f"{prefix}.{name}", f"must be >= 0 seconds, got {getattr(self, name)}")
        if any(len(p.split("->")) != 2 for p in self.fixed_strengths):
            _fail(f"{prefix}.fixed_strengths", f"entries must look like 'Tm9->T5a', got "
                                               f"{list(self.fixed_strengths)}")
        if not 0 < self.nonfinite_backoff <= 1:
            _fail(f"{prefix}.nonfinite_backoff", f"must be in (0, 1], got {self.nonfinite_backoff}")
        if not 0 <= self.nonfinite_shrink < 1:
            _fail(f"{prefix}.nonfinite_shrink", f"must be in [0, 1), got {self.nonfinite_shrink}")
        if not 0 <= self.max_gain < math.inf:
            _fail(f"{prefix}.max_gain", f"must be >= 0 and finite, got {self.max_gain}")
        if self.gain_every < 1:
            _fail(f"{prefix}.gain_every", f"must be >= 1, got {self.gain_every}")
        if not 0 <= self.max_rest < math.inf:
            _fail(f"{prefix}.max_rest", f"must be >= 0 and finite, got {self.max_rest}")
        if not 0 <= self.strength_floor <= 1:
            _fail(f"{prefix}.strength_floor", f"must be in [0, 1], got {self.strength_floor}")

    def lr_pen_schedule(self) -> Schedule:
        return self.lr_pen if self.lr_pen is not None else self.lr_net
