"""Building blocks of the ``flygnn`` command line (:mod:`flygnn.cli`): the help formatter,
the constructor of a subcommand's parser, the progress-bar switch and the parser of
``--set`` runner options. Standard library only, so that ``flygnn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["HelpFormatter", "add_command", "runner_options", "show_progress"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and appends "(default: X)" to options that have one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) \
                or action.default == [] or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def add_command(sub, name: str, summary: str, details: str = ""):
    """A subcommand whose one-line ``summary`` is listed by ``flygnn --help``."""
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:]
                          + "." + (f"\n\n{details}" if details else ""),
                          formatter_class=HelpFormatter)


def show_progress(args) -> bool:
    """Progress bars only on a terminal, and never with --no-progress."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def runner_options(sets: list[str], allowed: set[str]) -> dict:
    """``--set flashes.dt=0.01`` ... as ``{"flashes": {"dt": 0.01}}``; keys among ``allowed``."""
    from flygnn.config import apply_overrides

    options = apply_overrides({}, sets)
    unknown = sorted(set(options) - allowed)
    if unknown or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"--set keys must start with {', '.join(sorted(allowed))} followed by "
                         f"a dot, got {sets}")
    return options
