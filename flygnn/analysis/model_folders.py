"""Model folders: which ones make an ensemble, and what their training recorded.

A model folder holds ``network.pt`` (``data/models/README.md`` lists the rest); an ensemble
folder holds model folders. :func:`training_record` reads a model's training time and task
error from ``metrics.json`` (and ``log.csv``), as :mod:`flygnn.analysis.scores` reports them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from flygnn._checks import read_json

__all__ = ["ensemble_groups", "model_names", "training_record"]


def _is_model(path: Path) -> bool:
    return (path / "network.pt").is_file()


def _members(folder: str | os.PathLike) -> list[Path]:
    """A model folder as ``[folder]``, an ensemble folder as its model sub-folders."""
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"{str(path)!r}: no such folder")
    if _is_model(path):
        return [path]
    members = sorted(p for p in path.iterdir() if p.is_dir() and _is_model(p))
    if members:
        return members
    if (path / "recipe.json").is_file():
        raise ValueError(f"{str(path)!r} is a recipe run that has not finished (no network.pt);"
                         f" continue it with: flygnn train --out {path} --resume")
    raise ValueError(f"{str(path)!r} is neither a model folder (with network.pt) nor an "
                     "ensemble folder (sub-folders with network.pt)")


def ensemble_groups(dirs: Sequence = (), names: Sequence[str] | None = None,
                    groups: Sequence[tuple[str, Sequence]] = ()) -> dict[str, list[Path]]:
    """The ensembles to score, as ``{name: model folders}``.

    Args:
        dirs: model folders (together one ensemble, named by their common parent folder) or
            ensemble folders (one ensemble each, named by the folder), not both.
        names: names of the ensembles of ``dirs`` (one per ensemble).
        groups: ``(name, folders)`` pairs, each one ensemble of the models of these model or
            ensemble folders.

    Raises:
        ValueError: a folder holds no model, model and ensemble folders are mixed in
            ``dirs``, a model is given twice in one ensemble, names do not fit, or nothing
            is given.
    """
    out: dict[str, list[Path]] = {}
    dirs = [Path(d) for d in dirs]
    if dirs:
        is_model = [_is_model(d) for d in dirs]
        members = [_members(d) for d in dirs]  # named errors for folders without models
        if all(is_model):
            parents = {d.resolve().parent.name for d in dirs}
            found = {(parents.pop() if len(parents) == 1 else "") or "models": dirs}
        elif not any(is_model):
            found = dict(zip([d.resolve().name for d in dirs], members))
            if len(found) < len(dirs):
                found = {str(d): m for d, m in zip(dirs, members)}
        else:
            raise ValueError("give either model folders (one ensemble) or ensemble folders (one "
                             "ensemble each), not both; group model folders with --ensemble "
                             "NAME DIR ...")
        if names:
            if len(names) != len(found) or len(set(names)) != len(names):
                raise ValueError(f"--names: {len(names)} names for {len(found)} ensembles "
                                 f"({list(found)}); one unique name each")
            found = dict(zip(names, found.values()))
        out.update(found)
    elif names:
        raise ValueError("--names names the ensembles of the folders given; none were given")
    for name, folders in groups:
        if not folders:
            raise ValueError(f"ensemble {name!r}: no folders (--ensemble NAME DIR [DIR ...]: "
                             "a name and at least one folder)")
        if name in out:
            raise ValueError(f"ensemble name {name!r} is given twice")
        out[name] = [p for d in folders for p in _members(d)]
    if not out:
        raise ValueError("no models to score: give model or ensemble folders")
    for name, paths in out.items():
        resolved = [p.resolve() for p in paths]
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"ensemble {name!r}: a model folder is given twice "
                             f"({[str(p) for p in paths]})")
    return out


def model_names(paths: Sequence[Path]) -> list[str]:
    """The members' names: their folder names, or their paths where those repeat."""
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _number(value, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} is not a number: {value!r}")
    return float(value)


def _log_time(path: Path) -> float:
    """Seconds of training in a ``log.csv`` (the last ``time`` of each stage, summed)."""
    if not path.is_file():
        return math.nan
    try:
        log = pd.read_csv(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"log file {str(path)!r} is not readable: {err}") from None
    if "time" not in log or not len(log):
        return math.nan
    time = pd.to_numeric(log["time"], errors="coerce")
    if "stage" in log:
        return float(time.groupby(log["stage"], sort=False).last().sum())
    return float(time.iloc[-1])


def training_record(folder: str | os.PathLike) -> dict[str, float]:
    """A model folder's training time and task error (see the module docstring).

    Returns:
        ``train_time_h``, ``task_error``, ``zero_flow_epe``, ``epe_over_zero_flow`` (NaN
        where not recorded).

    Raises:
        ValueError: ``metrics.json`` is unreadable or holds a non-number there.
    """
    folder = Path(folder)
    file = folder / "metrics.json"
    metrics = read_json(file, "metrics file") if file.is_file() else {}
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics file {str(file)!r}: expected a JSON object")
    where = f"metrics file {str(file)!r}: field"
    epe = _number(metrics.get("best_val_epe", metrics.get("val_epe")), f"{where} 'best_val_epe'")
    zero = metrics.get("zero_flow", metrics.get("zero_flow_val_epe"))
    zero = zero.get("epe") if isinstance(zero, dict) else zero
    zero = _number(zero, f"{where} 'zero_flow'")
    seconds = _number(metrics.get("train_time_s"), f"{where} 'train_time_s'")
    if math.isnan(seconds):
        seconds = _log_time(folder / "log.csv")
    return {"train_time_h": seconds / 3600, "task_error": epe, "zero_flow_epe": zero,
            "epe_over_zero_flow": epe / zero if zero > 0 else math.nan}
