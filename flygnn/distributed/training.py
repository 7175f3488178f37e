"""Training an ensemble: one resumable Ray task per member, tracked in ``ensemble.json``."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from flygnn._checks import read_json
from flygnn.checkpoint import atomic_write_text
from flygnn.config import TrainConfig
from flygnn.distributed.ray_session import (
    check_retries,
    require_ray,
    session,
    set_threads,
    task_options,
    where,
)

__all__ = ["MANIFEST", "FORMAT", "train_ensemble", "read_manifest", "finished_metrics"]

log = logging.getLogger(__name__)

MANIFEST = "ensemble.json"
FORMAT = "flygnn.Ensemble"


def _as_config(value, name: str) -> TrainConfig:
    if isinstance(value, TrainConfig):
        return value
    if isinstance(value, dict):
        return TrainConfig.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return TrainConfig.from_json(value)
    raise ValueError(f"{name} must be a TrainConfig, a dict or a JSON file, got "
                     f"{type(value).__name__}")


def _member_configs(config, n_members, seeds, configs) -> list[TrainConfig]:
    """One config per member: ``configs`` (seeds replaced when given), else ``config`` with
    ``seeds`` (default ``config.seed + i`` for ``i < n_members``)."""
    if configs is not None:
        members = [_as_config(c, f"configs[{i}]") for i, c in enumerate(configs)]
        if not members:
            raise ValueError("configs is empty")
    elif config is None:
        raise ValueError("config is required (or configs, or resume=True with an ensemble.json)")
    else:
        base = _as_config(config, "config")
        if seeds is None:
            if n_members is None:
                raise ValueError("give n_members, seeds or configs")
            if int(n_members) < 1:
                raise ValueError(f"n_members must be >= 1, got {n_members}")
            seeds = [base.seed + i for i in range(int(n_members))]
        members = [base] * len(seeds)
    if seeds is not None:
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(members) or not seeds:
            raise ValueError(f"seeds has {len(seeds)} entries for {len(members)} configs")
        members = [c.with_overrides([f"seed={s}"]) for c, s in zip(members, seeds)]
    if n_members is not None and int(n_members) != len(members):
        raise ValueError(f"n_members={n_members} but seeds/configs give {len(members)} members")
    return members


def read_manifest(out_dir: str | os.PathLike) -> dict:
    """The ``ensemble.json`` of an ensemble folder.

    Raises:
        ValueError: missing, not JSON, or not an ensemble manifest.
    """
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{str(path)!r} not found: not an ensemble folder")
    manifest = read_json(path, "ensemble manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a flygnn ensemble manifest")
    return manifest


def _write_manifest(out: Path, members: list[dict]) -> None:
    done = sum(m["status"] == "done" for m in members)
    manifest = {"format": FORMAT, "version": 1, "n_members": len(members), "n_done": done,
                "members": members, "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def finished_metrics(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    if not ((folder / "network.pt").is_file() and path.is_file()):
        return None
    metrics = read_json(path, "member metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"member metrics {str(path)!r}: expected a JSON object, got "
                         f"{type(metrics).__name__}")
    return metrics


def _prepare(configs: list[TrainConfig]) -> None:
    """Build the connectome and render cached movies once, before members read them."""
    from flygnn.build import build_datasets
    from flygnn.datasets import FlyVisConnectome

    for extent in sorted({c.network.extent for c in configs}):
        FlyVisConnectome(extent=extent)
    seen = set()
    for c in configs:
        key = json.dumps([asdict(c.data), c.network.extent], sort_keys=True)
        if c.data.cache == "" or key in seen:
            continue
        seen.add(key)
        for dataset in build_datasets(c):
            for i in range(len(dataset)):
                dataset.sequence(i)


def _train_member(folder: str, config: dict, num_cpus: float, setup=None) -> dict:
    """Ray task: train (or resume) one member in ``folder``; returns its metrics."""
    from flygnn.train import Trainer

    set_threads(num_cpus)
    try:
        trainer = Trainer(TrainConfig.from_dict(config), folder, resume=True)
    except ValueError as err:  # a bad config fails the same way on every attempt
        return {"status": "failed", "error": f"ValueError: {err}", **where()}
    attempt = {**where(), "start_iteration": trainer.iteration, "time": time.time()}
    with open(Path(folder) / "attempts.jsonl", "a") as f:
        f.write(json.dumps(attempt) + "\n")
    if setup is not None:
        setup(trainer, Path(folder).name)
    try:
        metrics = trainer.train()
    except FloatingPointError as err:  # diverged: resuming would diverge again
        return {"status": "failed", "error": f"FloatingPointError: {err}", **where()}
    return {"status": "done", "metrics": metrics, **where()}


def train_ensemble(config: TrainConfig | dict | str | os.PathLike | None,
                   out_dir: str | os.PathLike, n_members: int | None = None,
                   seeds: Sequence[int] | None = None, configs: Sequence | None = None,
                   address: str | None = None, max_retries: int = 2,
                   num_cpus_per_member: int = 1, num_gpus_per_member: float = 0,
                   num_cpus: int | None = None, resume: bool = False, prepare: bool = True,
                   setup: Callable | None = None, ray_init_kwargs: dict | None = None,
                   progress: bool = False) -> dict:
    """Train an ensemble, one Ray task per member, into ``out_dir/<member:03d>/``.

    Every member is a :class:`~flygnn.train.Trainer` run with ``resume=True``: a task that is
    retried (its worker or node died, or it raised) continues from the member's last
    checkpoint. A ``ValueError`` (bad config) or a diverged loss is not retried.
    ``ensemble.json`` is rewritten atomically whenever a member finishes.

    Args:
        config: the base :class:`~flygnn.config.TrainConfig` (or dict, or JSON file); None
            with ``configs``, or with ``resume=True`` to continue the manifest's members.
        out_dir: ensemble folder; must be missing or empty unless ``resume``.
        n_members: number of members (seeds ``config.seed + i``).
        seeds: one seed per member (replaces ``config.seed``, or each config's seed).
        configs: one config per member (e.g. a hyper-parameter sweep).
        address: None starts a local Ray with ``num_cpus`` CPUs; ``"auto"``, ``"<head>:6379"``
            or ``"ray://<head>:10001"`` joins a cluster. A running Ray connection is reused.
        max_retries: attempts after the first for a member whose task fails.
        num_cpus_per_member: CPUs reserved per task, also ``torch.set_num_threads``.
        num_gpus_per_member: GPUs reserved per task (for ``device="cuda"`` configs).
        num_cpus: CPUs of a local Ray (None: all).
        resume: continue an existing ensemble folder; finished members are skipped.
        prepare: build the connectome and render cached movies on the driver first, so that
            members on this machine do not write the same cache files at once.
        setup: ``setup(trainer, name)`` called in the task before training (must pickle).
        ray_init_kwargs: extra ``ray.init`` arguments (e.g. ``runtime_env``).
        progress: a progress bar over members.

    Returns:
        the manifest (as written to ``ensemble.json``); members with ``status`` ``"done"``
        or ``"failed"`` (with ``error``).

    Raises:
        ImportError: Ray is not installed (the message says ``pip install "flygnn[ray]"``).
        ValueError: bad arguments, a non-empty ``out_dir`` without ``resume``, or a member
            folder whose saved config differs from the requested one.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file")
    check_retries(max_retries, num_cpus_per_member)
    if num_gpus_per_member < 0:
        raise ValueError(f"num_gpus_per_member must be >= 0, got {num_gpus_per_member}")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ValueError(f"out_dir {str(out)!r} is not empty; pass resume=True (--resume) to "
                         "continue the ensemble there, or choose a new folder")
    if config is None and configs is None and seeds is None and resume:
        configs = [m["config"] for m in read_manifest(out)["members"]]
    members = _member_configs(config, n_members, seeds, configs)
    entries = []
    for i, cfg in enumerate(members):
        folder = out / f"{i:03d}"
        saved = folder / "config.json"
        if saved.is_file() and TrainConfig.from_json(saved).to_dict() != cfg.to_dict():
            raise ValueError(f"member {folder.name}: config differs from {str(saved)!r}")
        metrics = finished_metrics(folder)
        entries.append({"name": folder.name, "seed": cfg.seed, "config": cfg.to_dict(),
                        "status": "done" if metrics else "pending", "attempts": 0,
                        "metrics": metrics, "error": None})
    ray = require_ray()
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, entries)
    todo = [i for i, e in enumerate(entries) if e["status"] != "done"]
    if not todo:
        return read_manifest(out)
    if prepare:
        _prepare([members[i] for i in todo])
    with session(address, num_cpus, ray_init_kwargs):
        task = task_options(ray, _train_member, num_cpus_per_member, num_gpus_per_member,
                        max_retries=max_retries, retry_exceptions=True)
        running = {task.remote(str(out / entries[i]["name"]), entries[i]["config"],
                               num_cpus_per_member, setup): i for i in todo}
        for i in todo:
            entries[i]["status"] = "running"
        _write_manifest(out, entries)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(todo), desc="members", unit="model")
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            entry = entries[running.pop(ref)]
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as err:  # retries exhausted
                result = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            folder = out / entry["name"]
            entry.update(status=result["status"], error=result.get("error"),
                         metrics=finished_metrics(folder) or result.get("metrics"),
                         host=result.get("host"), node=result.get("node"))
            attempts = folder / "attempts.jsonl"
            entry["attempts"] = len(attempts.read_text().splitlines()) if attempts.exists() else 0
            if entry["status"] == "failed":
                log.error("member %s failed: %s", entry["name"], entry["error"])
            _write_manifest(out, entries)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return read_manifest(out)


# --------------------------------------------------------------------------- evaluation
