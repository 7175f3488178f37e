"""Old spellings of renamed arguments, config fields and JSON keys, kept for one release.

Each old name still works and gives the same result, with a ``DeprecationWarning`` that names
the new one; giving both names with different values is a ``ValueError``.

- :func:`renamed_argument`: a keyword argument of a function or class (the old keyword is a
  keyword-only ``None`` default in the signature, as ``n_ommatidia`` is for ``extent``).
- :func:`renamed_fields`: a class decorator for a config dataclass: the old name is accepted
  by the constructor and readable as an attribute; :func:`canonical_dict` and
  :func:`canonical_key` rewrite old keys of (nested) JSON dicts and dotted override keys.

The renames (old -> new):

- ``DecoderConfig.baseline``, ``FlowDecoder(baseline=)`` -> ``input_reference``
- ``PenaltyConfig.baseline``, ``activity_penalty(baseline=)`` -> ``target``
- ``DataConfig.n_frames`` (the crop), ``Augment(n_frames=)``, ``SintelFlow(n_frames=)``
  -> ``n_clip_frames``
- ``OpticFlowMovies(n_frames=)`` (frames rendered per movie) -> ``n_source_frames``
- ``flygnn.task.zero_flow_baseline`` -> ``zero_flow_error``
- ``input_ablation``'s column ``baseline`` -> ``intact`` (the old column stays one release,
  without a warning: a column read cannot warn)
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from dataclasses import fields, is_dataclass
from typing import Any

__all__ = ["NOT_GIVEN", "canonical_dict", "canonical_key", "renamed_argument", "renamed_fields",
           "warn_renamed"]

_UNSET = object()


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


#: default of a deprecated keyword for which None is a meaningful value
NOT_GIVEN = _NotGiven()


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside flygnn, seen from :func:`warn_renamed`: the
    warning points at the user's line (and Python's default filters show it there)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def warn_renamed(where: str, old: str, new: str) -> None:
    """Emit the ``DeprecationWarning`` for ``old`` renamed to ``new`` (in ``where``), attributed
    to the first caller outside flygnn."""
    warnings.warn(f"{where}: {old!r} is deprecated and will be removed in the next release; "
                  f"use {new!r}", DeprecationWarning, stacklevel=_caller_level())


def renamed_argument(where: str, old: str, new: str, old_value: Any, new_value: Any,
                     default: Any = _UNSET, missing: Any = None) -> Any:
    """The value of the argument ``new``, or of its deprecated spelling ``old`` (with a warning).

    Args:
        where: the function or class, for the messages.
        old, new: the old and the new argument name.
        old_value: what the caller passed as ``old`` (``missing``: not passed).
        new_value: what the caller passed as ``new`` (or its default).
        default: ``new``'s default; ``new_value`` other than it and ``old_value`` is a
            contradiction. Unset: any ``new_value`` other than ``old_value`` and None is.
        missing: the old keyword's default (None; :data:`NOT_GIVEN` where None is a value).

    Raises:
        ValueError: both names given with different values.
    """
    if old_value is missing:
        return new_value
    warn_renamed(where, old, new)
    passed = new_value is not None if default is _UNSET else new_value != default
    if passed and new_value != old_value:
        raise ValueError(f"{where}: {old}={old_value!r} contradicts {new}={new_value!r} "
                         f"(give {new} only)")
    return old_value


def renamed_fields(**renames: str):
    """Class decorator for a dataclass whose fields ``old=new`` were renamed.

    The constructor accepts ``old=`` and reading ``obj.old``
    gives ``obj.new``, both with a ``DeprecationWarning``; the mapping is kept as the class
    attribute ``__renamed__`` for :func:`canonical_dict`.
    """

    def wrap(cls):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(renames.values()) - names)
        if unknown:  # pragma: no cover - a programming error
            raise TypeError(f"{cls.__name__}: renamed_fields targets {unknown} are no fields")
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    warn_renamed(cls.__name__, old, new)
                    value = kwargs.pop(old)
                    if new in kwargs and kwargs[new] != value:
                        raise ValueError(f"{cls.__name__}: {old}={value!r} contradicts "
                                         f"{new}={kwargs[new]!r} (give {new} only)")
                    kwargs[new] = value
            init(self, *args, **kwargs)

        def alias(old: str, new: str) -> property:
            def get(self):
                warn_renamed(cls.__name__, old, new)
                return getattr(self, new)

            return property(get, doc=f"Deprecated spelling of ``{new}``.")

        cls.__init__ = __init__
        for old, new in renames.items():
            setattr(cls, old, alias(old, new))
        cls.__renamed__ = dict(renames)
        return cls

    return wrap


def _field_types(cls) -> dict:
    import typing

    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if not is_dataclass(tp) and len(args) == 1 and is_dataclass(args[0]):
            tp = args[0]  # Optional[Section]
        out[f.name] = tp if is_dataclass(tp) else None
    return out


def canonical_dict(cls, d: Any, prefix: str = "") -> Any:
    """``d`` (a dict for dataclass ``cls``, nested) with the deprecated keys renamed, each with
    a warning naming the dotted field; other keys and non-dicts are returned as they are.

    Raises:
        ValueError: an old and a new key both present with different values.
    """
    if not isinstance(d, dict):
        return d
    renames = getattr(cls, "__renamed__", {})
    out = {}
    for key, value in d.items():
        if key in renames:
            new = renames[key]
            dotted_old = f"{prefix}.{key}" if prefix else key
            dotted_new = f"{prefix}.{new}" if prefix else new
            warn_renamed("config", dotted_old, dotted_new)
            if new in d and d[new] != value:
                raise ValueError(f"config field {dotted_new!r}: contradicts its deprecated "
                                 f"spelling {dotted_old!r} ({d[new]!r} vs {value!r}); give "
                                 f"{dotted_new!r} only")
            key = new
        out[key] = value
    sections = _field_types(cls)
    for key, value in out.items():
        if sections.get(key) is not None:
            out[key] = canonical_dict(sections[key], value, f"{prefix}.{key}" if prefix else key)
    return out


def canonical_key(cls, dotted: str) -> str:
    """A dotted config key (``decoder.baseline``) with deprecated parts renamed (with a
    warning); unknown parts are kept for the config's own error."""
    parts, out, node = dotted.split("."), [], cls
    for part in parts:
        if node is not None:
            new = getattr(node, "__renamed__", {}).get(part)
            if new is not None:
                warn_renamed("config", ".".join(out + [part]), ".".join(out + [new]))
                part = new
            node = _field_types(node).get(part)
        out.append(part)
    return ".".join(out)
