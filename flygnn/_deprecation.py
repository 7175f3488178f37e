"""Old spellings of renamed arguments, config fields and JSON keys, kept for one release.

Each old name still works and gives the same result, with a ``DeprecationWarning`` that names
the new one; giving both names with different values is a ``ValueError``.

- :func:`renamed_argument`: a keyword argument of a function or class (the old keyword is a
  keyword-only ``None`` default in the signature, as ``n_ommatidia`` is for ``extent``).
- :func:`renamed_fields`: a class decorator for a config dataclass whose fields were renamed
  or moved into a section: the old name is accepted by the constructor and readable as an
  attribute; :func:`canonical_dict` and :func:`canonical_key` rewrite old keys of (nested)
  JSON dicts and dotted override keys.

The renames (old -> new):

- ``DecoderConfig.baseline``, ``FlowDecoder(baseline=)`` -> ``input_reference``
- ``PenaltyConfig.baseline``, ``activity_penalty(baseline=)`` -> ``target``
- ``DataConfig.n_frames`` (the crop) -> ``data.augment.n_clip_frames``; ``Augment(n_frames=)``,
  ``SintelFlow(n_frames=)`` -> ``n_clip_frames``
- the flat keys of ``DataConfig`` moved into its sections: ``data.augment`` (the flag) ->
  ``data.augment.enabled``; ``n_clip_frames``, ``p_rot``, ``p_flip``, ``flip_axes``,
  ``contrast_std``, ``brightness_std``, ``noise_std`` -> ``data.augment.*``;
  ``n_source_frames``, ``height``, ``width``, ``seed``, ``n_objects``, ``ego_motion`` ->
  ``data.movies.*``; ``speed``, ``object_speed`` -> ``data.movies.prior.*``;
  ``texture_contrast`` -> ``data.movies.prior.contrast``
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
from dataclasses import MISSING, fields, is_dataclass, replace
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
    """Class decorator for a dataclass whose fields ``old=new`` were renamed or moved.

    ``new`` is a field of the class or a dotted path into its sections (a field moved into a
    section: ``speed="movies.prior.speed"``). The constructor accepts ``old=`` and reading
    ``obj.old`` gives the new field, both with a ``DeprecationWarning``; a moved value
    replaces that field of the section given, or of the field's default section. An old
    name that is now a section's own name (``augment``, once a flag, now the section that
    holds ``augment.enabled``) is old where its value is not a section (an object), and has no
    attribute alias. The mapping is kept as the class attribute ``__renamed__`` for
    :func:`canonical_dict` and :func:`canonical_key`.
    """

    def wrap(cls):
        for new in renames.values():
            *path, leaf = new.split(".")
            section = _walk(cls, path)
            if section is None or leaf not in _field_names(section):  # pragma: no cover
                raise TypeError(f"{cls.__name__}: renamed_fields target {new!r} is no field")
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, *args, **kwargs):
            init(self, *args, **_canonical_kwargs(cls, kwargs))

        def alias(old: str, new: str) -> property:
            def get(self):
                warn_renamed(cls.__name__, old, new)
                value = self
                for part in new.split("."):
                    value = getattr(value, part)
                return value

            return property(get, doc=f"Deprecated spelling of ``{new}``.")

        cls.__init__ = __init__
        cls.__renamed__ = dict(renames)
        for old, new in renames.items():
            if old not in _field_names(cls):
                setattr(cls, old, alias(old, new))
        return cls

    return wrap


def _field_names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


def _field_types(cls) -> dict:
    """Each field's section type (a dataclass; also of an ``Optional`` section), else None."""
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


def _walk(cls, parts: list[str]):
    """The section type at the dotted ``parts`` below ``cls`` (``cls`` for none), else None."""
    for part in parts:
        cls = _field_types(cls).get(part) if cls is not None else None
    return cls


def _is_old(cls, key: str, value: Any) -> bool:
    """Whether ``key=value`` uses an old name of ``cls`` (see :func:`renamed_fields`)."""
    if key not in getattr(cls, "__renamed__", {}):
        return False
    section = _field_types(cls).get(key) if key in _field_names(cls) else None
    return key not in _field_names(cls) or (
        section is not None and not isinstance(value, (dict, section)))


def _contradiction(new: str, old: str, new_value: Any, old_value: Any) -> ValueError:
    return ValueError(f"config field {new!r}: contradicts its deprecated spelling {old!r} "
                      f"({new_value!r} vs {old_value!r}); give {new!r} only")


def _canonical_kwargs(cls, kwargs: dict) -> dict:
    """Constructor keywords with the old names of ``cls`` renamed or moved (with warnings)."""
    renames, name = getattr(cls, "__renamed__", {}), cls.__name__
    out = {k: v for k, v in kwargs.items() if not _is_old(cls, k, v)}
    given, moved = set(out), {}
    for old, value in kwargs.items():
        if not _is_old(cls, old, value):
            continue
        new = renames[old]
        warn_renamed(name, old, new)
        for seen in (moved, out):  # two old names, or the old and the new one, disagree
            if new in seen and seen[new] != value:
                raise ValueError(f"{name}: {old}={value!r} contradicts {new}={seen[new]!r} "
                                 f"(give {new} only)")
        moved[new] = value
    for new, value in moved.items():
        head, *rest = new.split(".")
        if not rest:
            out[head] = value
            continue
        section = out[head] if head in out else _default(cls, head)
        out[head] = _replaced(section, rest, value, head in given, f"{name}: {new}")
    return out


def _default(cls, name: str):
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _replaced(section, parts: list[str], value: Any, given: bool, where: str):
    """``section`` with the field at ``parts`` set to ``value``; a section ``given``
    explicitly must not hold another value there."""
    head, *rest = parts
    current = getattr(section, head)
    if rest:
        return replace(section, **{head: _replaced(current, rest, value, given, where)})
    if given and current != value:
        raise ValueError(f"{where}: the deprecated keyword's {value!r} contradicts the "
                         f"section's {current!r} (give the section only)")
    return replace(section, **{head: value})


def canonical_dict(cls, d: Any, prefix: str = "") -> Any:
    """``d`` (a dict for dataclass ``cls``, nested) with the deprecated keys renamed or moved
    into their sections, each with a warning naming the dotted fields; other keys and
    non-dicts are returned as they are (``d`` itself is not changed).

    Raises:
        ValueError: an old and a new key both present with different values.
    """
    if not isinstance(d, dict):
        return d

    def dotted(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    renames = getattr(cls, "__renamed__", {})
    out = {k: v for k, v in d.items() if not _is_old(cls, k, v)}
    for key, value in d.items():
        if not _is_old(cls, key, value):
            continue
        new = renames[key]
        warn_renamed("config", dotted(key), dotted(new))
        *path, leaf = new.split(".")
        node = out
        for k, part in enumerate(path):
            child = node.get(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"config field {dotted('.'.join(path[:k + 1]))!r}: expected an "
                                 f"object, got {child!r}")
            node[part] = dict(child)  # a copy: ``d`` stays as it is
            node = node[part]
        if leaf in node and node[leaf] != value:
            raise _contradiction(dotted(new), dotted(key), node[leaf], value)
        node[leaf] = value
    sections = _field_types(cls)
    for key, value in out.items():
        if sections.get(key) is not None:
            out[key] = canonical_dict(sections[key], value, dotted(key))
    return out


def canonical_key(cls, dotted: str, value: Any = _UNSET) -> str:
    """A dotted config key (``decoder.baseline``, ``data.speed``) with deprecated parts renamed
    or moved (with a warning); ``value``, the value set there, tells an old flag from a
    section of the same name (``data.augment=false`` vs ``data.augment={...}``). Unknown
    parts are kept for the config's own error."""
    parts, out, node = dotted.split("."), [], cls
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if node is not None and _is_old(node, part, value if last else {}):
            new = node.__renamed__[part].split(".")
            warn_renamed("config", ".".join(out + [part]), ".".join(out + new))
            out += new
            node = _walk(node, new)
            continue
        node = _walk(node, [part])
        out.append(part)
    return ".".join(out)
