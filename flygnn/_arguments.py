"""Argument checks shared by a constructor and the configuration section that feeds it.

A class whose keyword arguments a :class:`~flygnn.config.TrainConfig` section sets checks
them in one function beside it (e.g. :func:`flygnn.task.check_decoder_arguments`). The
constructor calls it, and so does the section when a config is built, so each value is
checked in one place and a bad config still fails before anything is built. The function
raises :class:`ArgumentError`, whose message names the argument (``hidden must be >= 1, got
0``); the config re-raises it naming the dotted field (``config field 'decoder.hidden': must
be >= 1, got 0``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["ArgumentError", "require", "is_int", "is_number", "is_range"]


class ArgumentError(ValueError):
    """A bad keyword argument: ``str(err)`` is ``"<argument> <reason>"``.

    Attributes:
        argument: the argument's name.
        reason: what was expected and what was given (``must be >= 1, got 0``).
    """

    def __init__(self, argument: str, reason: str) -> None:
        super().__init__(f"{argument} {reason}")
        self.argument, self.reason = argument, reason


def require(ok: bool, argument: str, reason: str) -> None:
    """Raise ``ArgumentError(argument, reason)`` unless ``ok``."""
    if not ok:
        raise ArgumentError(argument, reason)


def is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def is_int(value: Any) -> bool:
    """An integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_range(value: Any, low: float = 0.0) -> bool:
    """A pair ``(lo, hi)`` (a sequence of two) of finite numbers with ``low <= lo <= hi``."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__") or len(value) != 2:
        return False
    lo, hi = value
    return is_number(lo) and is_number(hi) and low <= lo <= hi
