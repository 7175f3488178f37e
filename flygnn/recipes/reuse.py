"""Start a recipe run from the finished stages of another run (``flygnn train --reuse RUN``).

A variant of a recipe (a later stage changed, a knockout in the last stage) repeats the
stages before its first change. Those stages train the same thing from the same start, so
a run may take them from an earlier run instead: :func:`reusable_stages` counts the leading
stages of the earlier run that are finished and whose config, as that run started it,
equals the new run's (seed and overrides included). Where the movie cache lives, the device,
and the ``init`` files that point to the earlier run's own previous stage do not count: they
do not change what trains. :func:`copy_stages` copies those stages' folders into the new
run; the stages after them then train as in a fresh run, so the result equals a fresh run,
bit for bit on one machine. Each copied stage's ``metrics.json`` says where it came from
(``reused_from``), and its ``train_time_s`` counts in the new model's time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from flygnn.checkpoint import atomic_write_text
from flygnn.config import TrainConfig
from flygnn.configio import dict_diff
from flygnn.rundir import RunDir

__all__ = ["copy_stages", "reusable_stages"]

_SKIP = {"checkpoint.pt", "best.pt"}  # a finished stage has written its model


def _source_stages(source: Path) -> list[Path]:
    """The stage folders of the recipe run ``source``, in order."""
    saved = source / "recipe.json"
    if not source.is_dir() or not saved.is_file():
        raise ValueError(f"--reuse {str(source)!r}: not a recipe run folder (no recipe.json)")
    try:
        names = [s["name"] for s in json.loads(saved.read_text())["recipe"]["stages"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"--reuse {str(saved)!r}: unreadable recipe ({err})") from None
    return [source / "stages" / f"{k}_{name}" for k, name in enumerate(names)]


def _comparable(config: TrainConfig, previous: Path | None) -> dict:
    """``config`` as a dict without what does not change training: the device, the movie
    cache, and ``init`` files in the run's own previous stage folder (``previous``)."""
    d = config.to_dict()
    d["device"] = None
    d["data"] = dict(d["data"], cache=None)
    for section in ("network", "decoder"):
        init = d[section].get("init")
        if init is not None and previous is not None \
                and Path(init).parent.name == previous.name \
                and Path(init).parent.parent.name == "stages":
            d[section] = dict(d[section], init="<previous stage>")
    return d


def reusable_stages(source: str | os.PathLike, configs: list[TrainConfig],
                    stage_dirs: list[Path]) -> tuple[int, list]:
    """How many leading stages of the run ``source`` a new run with stage ``configs`` (in
    ``stage_dirs``) can take over, and the first differences that stopped it (``[]`` when
    every stage matched or the next one is unfinished).

    Raises:
        ValueError: ``source`` is not a recipe run folder.
    """
    stages = _source_stages(Path(source))
    n, diff = 0, []
    for k, config in enumerate(configs):
        if k >= len(stages) or not RunDir(stages[k], resume=True).finished():
            break
        try:
            started = TrainConfig.from_json(stages[k] / "config.json")
        except (OSError, ValueError) as err:
            raise ValueError(f"--reuse: stage {stages[k].name}: unreadable config.json "
                             f"({err})") from None
        previous_source = stages[k - 1] if k else None
        previous_new = stage_dirs[k - 1] if k else None
        diff = dict_diff(_comparable(started, previous_source), _comparable(config, previous_new))
        if diff:
            break
        n += 1
    return n, diff


def copy_stages(source: str | os.PathLike, configs: list[TrainConfig],
                stage_dirs: list[Path], n: int) -> None:
    """Copy the first ``n`` finished stages of ``source`` into ``stage_dirs`` (without
    checkpoints); each copy's ``config.json`` is the new run's (its ``init`` files in the new
    run) and its ``metrics.json`` names the folder it came from."""
    stages = _source_stages(Path(source))
    for k in range(n):
        src, dest = stages[k], stage_dirs[k]
        shutil.copytree(src, dest, ignore=lambda _, names: [f for f in names if f in _SKIP])
        atomic_write_text(dest / "config.json", configs[k].to_json())
        metrics = json.loads((dest / "metrics.json").read_text())
        metrics["reused_from"] = str(src.resolve())
        atomic_write_text(dest / "metrics.json", json.dumps(metrics, indent=2) + "\n")
