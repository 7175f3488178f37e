"""Training configuration: plain dataclasses, validated, with a JSON round trip.

``TrainConfig`` nests four sections (``network``, ``data``, ``decoder``, ``optim``). A section
that feeds a constructor mirrors it: its fields are the constructor's keyword arguments, with
the same names and defaults, described there once (``decoder``:
:class:`~flygnn.task.FlowDecoder`; ``data.movies``: :class:`~flygnn.stimuli.opticflow.
OpticFlowMovies`, whose ``prior`` is the :class:`~flygnn.stimuli.scenes.MotionPrior` itself;
``data.augment``: :class:`~flygnn.stimuli.augment.Augment`). Each value is checked in one
place: a constructor's arguments by the function the constructor calls (e.g.
:func:`~flygnn.task.check_decoder_arguments`), which the section calls too; the trainer's own
fields by their section's ``check``. All run when a ``TrainConfig`` is constructed, and a
bad value raises ``ValueError`` naming the dotted field, e.g. ``config field
'decoder.hidden': must be >= 1, got 0``; ``from_dict`` rejects unknown keys, missing keys
take the defaults (flyvis's training config, reference 9.1, where it applies; the data:
offline optic-flow movies). The ``optim`` section's dataclasses are defined in
:mod:`flygnn.optimconfig` and re-exported here."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from flygnn._checks import read_json
from flygnn._deprecation import canonical_key, renamed_fields
from flygnn.configio import apply_overrides, build_dataclass, check_arguments, validate_dataclass
from flygnn.configio import fail as _fail
from flygnn.optimconfig import OptimConfig, PenaltyConfig, RateScale, Schedule
from flygnn.stimuli.augment import check_augment_arguments
from flygnn.stimuli.opticflow import check_movie_arguments
from flygnn.stimuli.scenes import MotionPrior
from flygnn.task import check_decoder_arguments

__all__ = ["NetworkConfig", "MoviesConfig", "AugmentConfig", "DataConfig", "DecoderConfig",
           "Schedule", "PenaltyConfig", "RateScale", "OptimConfig", "TrainConfig",
           "apply_overrides", "canonical_overrides"]


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


@dataclass(frozen=True)
class MoviesConfig:
    """The movies: the keyword arguments of :class:`~flygnn.stimuli.opticflow.OpticFlowMovies`
    (names, defaults and meaning there), but those :func:`~flygnn.build.build_datasets` sets
    from other fields (``n_sequences``, ``start``, ``extent``, ``dt``, ``transform``,
    ``root``, ``cache``). ``prior`` is the :class:`~flygnn.stimuli.scenes.MotionPrior`
    itself (``data.movies.prior.speed``, ...)."""

    n_source_frames: int = 19
    height: int = 436
    width: int = 417
    seed: int = 0
    n_objects: tuple[int, int] = (1, 4)
    ego_motion: bool = True
    prior: MotionPrior = field(default_factory=MotionPrior)
    kernel_size: int = 13

    def check(self, prefix: str) -> None:
        check_arguments(prefix, check_movie_arguments, self)


@dataclass(frozen=True)
class AugmentConfig:
    """The training movies' augmentation: the keyword arguments of
    :class:`~flygnn.stimuli.augment.Augment` (names, defaults and meaning there), but
    ``dt`` and ``source_fps`` (the movies resample) and ``seed`` (the trainer's generator
    draws). Validation clips are cropped the same way, never augmented."""

    n_clip_frames: int | None = None
    p_rot: float = 0.5
    p_flip: float = 0.5
    flip_axes: tuple[int, ...] = (0, 1, 2, 3)
    contrast_std: float | None = 0.2
    brightness_std: float = 0.1
    noise_std: float = 0.08
    gamma_std: float | None = None
    enabled: bool = True

    def check(self, prefix: str) -> None:
        check_arguments(prefix, check_augment_arguments, self)


def _training_movies() -> MoviesConfig:
    return MoviesConfig(n_source_frames=25)


def _training_augment() -> AugmentConfig:
    return AugmentConfig(n_clip_frames=19)


#: the flat keys of ``data`` before its sections (and ``n_frames``, the crop's older name)
_DATA_MOVES = {
    "n_frames": "augment.n_clip_frames", "n_clip_frames": "augment.n_clip_frames",
    "augment": "augment.enabled",
    **{k: f"augment.{k}" for k in ("p_rot", "p_flip", "flip_axes", "contrast_std",
                                   "brightness_std", "noise_std")},
    **{k: f"movies.{k}" for k in ("n_source_frames", "height", "width", "seed", "n_objects",
                                  "ego_motion")},
    "speed": "movies.prior.speed", "object_speed": "movies.prior.object_speed",
    "texture_contrast": "movies.prior.contrast",
}


@renamed_fields(**_DATA_MOVES)
@dataclass(frozen=True)
class DataConfig:
    """Offline optic-flow movies: ``movies`` (:class:`MoviesConfig`) and their ``augment``
    (:class:`AugmentConfig`), and what the trainer makes of them.

    ``n_train`` / ``n_val`` movies; validation takes items ``val_start ..`` (default
    ``n_train``) and training the first ``n_train`` others; each item is cropped to
    ``augment.n_clip_frames`` source frames (a random start when augmenting, the first
    frames for validation) and resampled to ``dt`` seconds, the simulation's time step.
    Rendered movies are cached under ``cache`` (None: the per-user cache, "" none).
    The training defaults of the two sections differ from their constructors' in one field
    each: 25 source frames (``movies.n_source_frames``) cropped to 19
    (``augment.n_clip_frames``), as flyvis crops Sintel; a partial dict keeps them.
    The flat keys of earlier releases (``data.speed``, ``data.p_rot``, ``data.augment =
    false``, ...) are read into the sections with a ``DeprecationWarning``.
    """

    n_train: int = 64
    n_val: int = 16
    val_start: int | None = None
    dt: float = 0.02
    cache: str | None = None
    movies: MoviesConfig = field(default_factory=_training_movies)
    augment: AugmentConfig = field(default_factory=_training_augment)

    def check(self, prefix: str) -> None:
        for name in ("n_train", "n_val"):
            if getattr(self, name) < 1:
                _fail(f"{prefix}.{name}", f"must be >= 1, got {getattr(self, name)}")
        if self.val_start is not None and self.val_start < 0:
            _fail(f"{prefix}.val_start", f"must be >= 0 or null, got {self.val_start}")
        if not 0 < self.dt <= 1:
            _fail(f"{prefix}.dt", f"must be in (0, 1] seconds, got {self.dt}")
        clip, n_source = self.augment.n_clip_frames, self.movies.n_source_frames
        if clip is not None and clip > n_source:
            _fail(f"{prefix}.augment.n_clip_frames", f"must be <= movies.n_source_frames "
                                                     f"({n_source}), got {clip}")


@renamed_fields(baseline="input_reference")
@dataclass(frozen=True)
class DecoderConfig:
    """The decoder: the keyword arguments of :class:`~flygnn.task.FlowDecoder` (names,
    defaults and meaning there; ``baseline``, the old name of ``input_reference``, is
    deprecated), and optional starting weights ``init`` (a ``decoder.pt`` or a training
    checkpoint, any extent)."""

    hidden: int = 8
    kernel_size: int = 5
    const_weight: float | None = 0.001
    p_dropout: float = 0.5
    input_reference: str = "none"
    input_norm: str = "none"
    norm_momentum: float = 0.01
    type_dropout: float = 0.0
    pathway_dropout: float = 0.0
    type_dropout_groups: str = "types"
    init: str | None = None

    def check(self, prefix: str) -> None:
        check_arguments(prefix, check_decoder_arguments, self)


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
        if not sep or not key:
            out.append(item)
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        out.append(f"{canonical_key(TrainConfig, key, value)}={text}")
    return out
