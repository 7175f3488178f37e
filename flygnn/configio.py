"""Plain dataclasses from and to JSON dicts, checked field by field.

:func:`build_dataclass` coerces a (partial) dict to a nested dataclass and rejects unknown
keys; :func:`validate_dataclass` type-checks an instance and runs each section's ``check``;
:func:`check_arguments` runs a constructor's argument check on a section. Every error is a
``ValueError`` naming the dotted field (``optim.batch_size``).
:func:`apply_overrides` sets dotted keys from ``key=value`` strings and :func:`dict_diff` lists
where two nested dicts differ. The training configuration itself is in :mod:`flygnn.config`.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import MISSING, asdict, fields, is_dataclass

from flygnn._arguments import ArgumentError
from flygnn._deprecation import canonical_dict

__all__ = ["apply_overrides", "build_dataclass", "check_arguments", "dict_diff", "fail",
           "validate_dataclass"]


def fail(name: str, message: str) -> None:
    """Raise the ``ValueError`` that names a config field."""
    raise ValueError(f"config field {name!r}: {message}")


def check_arguments(prefix: str, check, section) -> None:
    """``check(**arguments)`` with the fields of ``section`` that ``check`` takes (a
    constructor's argument check, e.g. :func:`flygnn.task.check_decoder_arguments`); its
    :class:`~flygnn._arguments.ArgumentError` is re-raised naming the dotted field."""
    names = inspect.signature(check).parameters
    try:
        check(**{name: getattr(section, name) for name in names})
    except ArgumentError as err:
        fail(f"{prefix}.{err.argument}" if prefix else err.argument, err.reason)


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Set dotted keys, e.g. ``optim.lr_net.start=1e-3``; the value is parsed as JSON and
    kept as a string when that fails. Returns a new dict."""
    d = json.loads(json.dumps(d))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node, parts = d, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return d


def build_dataclass(cls, d, prefix: str):
    """``cls(**d)``, nested, with every value coerced and checked; deprecated keys are
    renamed with a warning (:func:`flygnn._deprecation.canonical_dict`). A partial dict for a
    section updates the field's default section (which may differ from the section class's
    defaults, e.g. ``DataConfig.movies``)."""
    where = prefix or "config"
    if not isinstance(d, dict):
        raise ValueError(f"config field {where!r}: expected an object, got {type(d).__name__}")
    d = canonical_dict(cls, d, prefix)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"config field {where!r}: unknown keys {unknown}; known: {sorted(names)}")
    hints, kwargs = typing.get_type_hints(cls), {}
    defaults = {f.name: f for f in fields(cls)}
    for name, value in d.items():
        section = _default_section(defaults[name])
        if section is not None and isinstance(value, dict):  # the parent's default, updated
            value = _updated(json.loads(json.dumps(asdict(section))), value)
        kwargs[name] = _convert(hints[name], value, f"{prefix}.{name}" if prefix else name)
    try:
        return cls(**kwargs)
    except ArgumentError as err:  # a section that checks itself (e.g. a MotionPrior)
        fail(f"{prefix}.{err.argument}" if prefix else err.argument, err.reason)


def _default_section(f):
    """The default of field ``f`` when it is a dataclass instance (a section), else None."""
    value = f.default_factory() if f.default_factory is not MISSING else f.default
    return value if is_dataclass(value) else None


def _updated(base: dict, update: dict) -> dict:
    """``base`` with the keys of ``update`` set, nested dicts key by key."""
    out = dict(base)
    for key, value in update.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _updated(out[key], value) if both else value
    return out


def _convert(tp, value, name: str):
    """Coerce a JSON value to the annotated type or raise naming the field."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        return _convert(tp, value, name)
    if is_dataclass(tp):
        return build_dataclass(tp, value, name)
    if tp is dict:  # a JSON object kept as it is (checked by the section's ``check``)
        if not isinstance(value, dict):
            fail(name, f"expected an object, got {value!r}")
        return value
    if origin is tuple:
        if args[0] is dict and isinstance(value, dict):  # one object for a list of them
            value = [value]
        if not isinstance(value, (list, tuple)):
            fail(name, f"expected a list, got {value!r}")
        inner = args[0]
        if len(args) == 2 and args[1] is not Ellipsis and len(value) != 2:
            fail(name, f"expected 2 entries, got {list(value)}")
        return tuple(_convert(inner, v, name) for v in value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    scalars = {bool: (isinstance(value, bool), "true or false"),
               int: (number and isinstance(value, int), "an integer"),
               float: (number and math.isfinite(value), "a finite number"),
               str: (isinstance(value, str), "a string")}
    if tp in scalars:
        if not scalars[tp][0]:
            fail(name, f"expected {scalars[tp][1]}, got {value!r}")
        return float(value) if tp is float else value
    raise TypeError(f"unsupported config type {tp!r} for {name}")  # pragma: no cover


def validate_dataclass(obj, prefix: str) -> None:
    """Type-check every field (so direct construction is checked too) and run ``check``."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        name = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(obj, f.name)
        if is_dataclass(value):
            validate_dataclass(value, name)
            continue
        converted = _convert(hints[f.name], value, name)
        if converted is not value:
            object.__setattr__(obj, f.name, converted)
    if hasattr(obj, "check"):
        obj.check(prefix)


def dict_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts, as ``key (a -> b)``."""
    out = []
    for k in sorted(set(a) | set(b)):
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += dict_diff(a[k], b[k], name)
        elif a.get(k) != b.get(k):
            out.append(f"{name} ({a.get(k)!r} -> {b.get(k)!r})")
    return out
