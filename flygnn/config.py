"""Training configuration: plain dataclasses, validated, with a JSON round trip.

``TrainConfig`` nests four sections (``network``, ``data``, ``decoder``, ``optim``). Every
field is checked when a ``TrainConfig`` is constructed (type and range; the sections are
checked as parts of it) and a bad value raises ``ValueError`` naming the dotted field, e.g.
``optim.batch_size``; ``from_dict`` rejects unknown keys, missing keys take the defaults below
(flyvis's training config, reference 9.1, where it applies; the data: offline optic-flow movies).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from flygnn._checks import read_json
from flygnn._deprecation import canonical_key, renamed_fields
from flygnn.configio import apply_overrides, build_dataclass, validate_dataclass
from flygnn.configio import fail as _fail

__all__ = ["NetworkConfig", "DataConfig", "DecoderConfig", "Schedule", "PenaltyConfig",
           "RateScale", "OptimConfig", "TrainConfig", "apply_overrides", "canonical_overrides"]


@dataclass(frozen=True)
class NetworkConfig:
    """The network: lattice ``extent``, an optional starting checkpoint (``init``:
    a flygnn ``Network.save`` file, from any extent, or a flyvis checkpoint when
    ``init_flyvis``) and the ``connectome``'s transforms (null models, knockouts: specs
    ``{"transform": NAME, **arguments}`` of :func:`flygnn.transforms.make_transforms`,
    applied in order to flyvis's graph at every extent; one spec may stand for a list)."""

    extent: int = 15
    init: str | None = None
    init_flyvis: bool = False
    connectome: tuple[dict, ...] = ()

    def check(self, prefix: str) -> None:
        if self.extent < 1:
            _fail(f"{prefix}.extent", f"must be >= 1, got {self.extent}")
        if self.connectome:
            from flygnn.transforms import make_transforms

            try:
                make_transforms(self.connectome, f"{prefix}.connectome")
            except ValueError as err:  # names the entry: network.connectome[0]
                raise ValueError(f"config field {err}") from None


@renamed_fields(n_frames="n_clip_frames")
@dataclass(frozen=True)
class DataConfig:
    """Offline optic-flow movies and their augmentation.

    ``n_train`` / ``n_val`` movies of ``n_source_frames`` frames (24 fps, ``height`` x ``width``
    pixels, seed ``seed``); validation takes items ``val_start ..`` (default ``n_train``) and
    training the first ``n_train`` others; each item is cropped to a clip of ``n_clip_frames``
    source frames (random start when augmenting, the first frames for validation), resampled
    to ``dt`` (``n_frames``, the old name of ``n_clip_frames``, is deprecated).
    ``speed`` / ``object_speed`` (maximum camera and object speeds, pixels per source frame)
    and ``texture_contrast`` (range of the textures' standard deviation) set the movies'
    :class:`~flygnn.stimuli.scenes.MotionPrior`; rendered movies are cached under ``cache``
    (None: the per-user cache, "" none).
    """

    n_train: int = 64
    n_val: int = 16
    val_start: int | None = None
    n_source_frames: int = 25
    n_clip_frames: int = 19
    dt: float = 0.02
    height: int = 436
    width: int = 417
    seed: int = 0
    n_objects: tuple[int, int] = (1, 4)
    ego_motion: bool = True
    speed: float = 4.0
    object_speed: float = 6.0
    texture_contrast: tuple[float, float] = (0.1, 0.3)
    augment: bool = True
    p_rot: float = 0.5
    p_flip: float = 0.5
    flip_axes: tuple[int, ...] = (0, 1, 2, 3)
    contrast_std: float = 0.2
    brightness_std: float = 0.1
    noise_std: float = 0.08
    cache: str | None = None

    def check(self, prefix: str) -> None:
        for name in ("n_train", "n_val", "n_source_frames", "n_clip_frames", "height", "width"):
            if getattr(self, name) < 1:
                _fail(f"{prefix}.{name}", f"must be >= 1, got {getattr(self, name)}")
        if self.val_start is not None and self.val_start < 0:
            _fail(f"{prefix}.val_start", f"must be >= 0 or null, got {self.val_start}")
        if self.n_clip_frames > self.n_source_frames:
            _fail(f"{prefix}.n_clip_frames", f"must be <= n_source_frames "
                                             f"({self.n_source_frames}), got {self.n_clip_frames}")
        if not 0 < self.dt <= 1:
            _fail(f"{prefix}.dt", f"must be in (0, 1] seconds, got {self.dt}")
        if self.seed < 0:
            _fail(f"{prefix}.seed", f"must be >= 0, got {self.seed}")
        if len(self.n_objects) != 2 or not 0 <= self.n_objects[0] <= self.n_objects[1]:
            _fail(f"{prefix}.n_objects",
                  f"must be [lo, hi] with 0 <= lo <= hi, got {list(self.n_objects)}")
        for name in ("speed", "object_speed"):
            if not 0 <= getattr(self, name) < math.inf:
                _fail(f"{prefix}.{name}", f"must be a finite speed >= 0 (pixels per source frame), "
                                          f"got {getattr(self, name)}")
        lo_hi = self.texture_contrast
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
            _fail(f"{prefix}.texture_contrast",
                  f"must be [lo, hi] with 0 <= lo <= hi, got {list(lo_hi)}")
        for name in ("p_rot", "p_flip"):
            if not 0 <= getattr(self, name) <= 1:
                _fail(f"{prefix}.{name}", f"must be in [0, 1], got {getattr(self, name)}")
        if any(a not in (0, 1, 2, 3) for a in self.flip_axes):
            _fail(f"{prefix}.flip_axes",
                  f"entries must be 0, 1, 2 or 3, got {list(self.flip_axes)}")
        for name in ("contrast_std", "brightness_std", "noise_std"):
            if getattr(self, name) < 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")


@renamed_fields(baseline="input_reference")
@dataclass(frozen=True)
class DecoderConfig:
    """:class:`~flygnn.task.FlowDecoder` hyper-parameters (flyvis ``DecoderGAVP``;
    ``input_reference``, ``input_norm``, ``type_dropout`` and ``pathway_dropout`` are flygnn's,
    off by default) and optional starting weights ``init`` (a ``decoder.pt`` or a training
    checkpoint, any extent). ``baseline``, the old name of ``input_reference``, is deprecated."""

    hidden: int = 8
    kernel_size: int = 5
    const_weight: float | None = 0.001
    p_dropout: float = 0.5
    input_reference: str = "none"
    input_norm: str = "none"
    norm_momentum: float = 0.01
    type_dropout: float = 0.0
    type_dropout_groups: str = "types"
    pathway_dropout: float = 0.0
    init: str | None = None

    def check(self, prefix: str) -> None:
        if self.hidden < 1:
            _fail(f"{prefix}.hidden", f"must be >= 1, got {self.hidden}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            _fail(f"{prefix}.kernel_size",
                  f"must be a positive odd integer, got {self.kernel_size}")
        for name in ("p_dropout", "type_dropout", "pathway_dropout"):
            if not 0 <= getattr(self, name) < 1:
                _fail(f"{prefix}.{name}", f"must be in [0, 1), got {getattr(self, name)}")
        if self.type_dropout_groups not in ("types", "directions"):
            _fail(f"{prefix}.type_dropout_groups", f"must be 'types' or 'directions', got "
                                                   f"{self.type_dropout_groups!r}")
        if self.input_reference not in ("none", "rest", "rest_positive"):
            _fail(f"{prefix}.input_reference", f"must be none, rest or rest_positive: "
                                               f"{self.input_reference!r}")
        if self.input_norm not in ("none", "rms"):
            _fail(f"{prefix}.input_norm",
                  f"must be 'none' (flyvis) or 'rms', got {self.input_norm!r}")
        if not 0 < self.norm_momentum <= 1:
            _fail(f"{prefix}.norm_momentum", f"must be in (0, 1], got {self.norm_momentum}")


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
    cells of ``rest_types`` added to the loss (:func:`flygnn.task.rest_cost`; it needs the
    rest's gradient, ``optim.rest_grad_steps`` > 0)."""

    target: float = 5.0
    weight: float = 0.1
    below: float = 1.0
    above: float = 0.1
    stop_iter: int = 150_000
    rest_weight: float = 0.0
    rest_types: tuple[str, ...] = ()
    rest_target: float = 0.0

    def check(self, prefix: str) -> None:
        for name in ("weight", "below", "above", "stop_iter", "rest_weight"):
            if getattr(self, name) < 0:
                _fail(f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")
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
    initial value and kept there."""

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
        for name in ("rest_grad_steps", "net_warmup"):
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
        if not 0 <= self.strength_floor <= 1:
            _fail(f"{prefix}.strength_floor", f"must be in [0, 1], got {self.strength_floor}")

    def lr_pen_schedule(self) -> Schedule:
        return self.lr_pen if self.lr_pen is not None else self.lr_net


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; ``seed`` seeds the data order, augmentation
    and dropout generators; ``device`` is a torch device string."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    data: DataConfig = field(default_factory=DataConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        validate_dataclass(self, "")
        if self.optim.batch_size > self.data.n_train:
            _fail("optim.batch_size", f"must be <= data.n_train ({self.data.n_train}), "
                                      f"got {self.optim.batch_size}")
        if self.seed < 0:
            _fail("seed", f"must be >= 0, got {self.seed}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The config as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a (partial) dict; unknown keys or bad values raise ``ValueError``."""
        return build_dataclass(cls, d, "")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> TrainConfig:
        return cls.from_dict(read_json(path, "config file"))

    def with_overrides(self, overrides: list[str]) -> TrainConfig:
        """Apply ``key=value`` strings (dotted keys, JSON values), see :func:`apply_overrides`;
        deprecated keys are renamed with a warning."""
        return self.from_dict(apply_overrides(self.to_dict(), canonical_overrides(overrides)))


def canonical_overrides(overrides: list[str]) -> list[str]:
    """``key=value`` strings with deprecated dotted keys of a :class:`TrainConfig` renamed
    (with a ``DeprecationWarning``); malformed items are kept for :func:`apply_overrides`."""
    out = []
    for item in overrides:
        key, sep, text = item.partition("=")
        out.append(f"{canonical_key(TrainConfig, key)}={text}" if sep and key else item)
    return out
