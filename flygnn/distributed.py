"""Ensembles beyond one machine: train and evaluate many models as Ray tasks.

The paper's findings rest on an ensemble of 50 networks. :func:`train_ensemble` trains N
members (different seeds and/or configs) in parallel, one `Ray <https://www.ray.io>`_ task
per member, on the local machine (default) or on a running Ray cluster (``address``);
:func:`evaluate_ensemble` computes every member's responses and tuning indices as Ray tasks,
then clusters the members per cell type (one task per type). Ray is an optional extra::

    pip install "flygnn[ray]"

*Why Ray tasks.* A member is an independent, long, checkpointed job: exactly a Ray task.
``max_retries`` re-runs a task whose worker or node died, and each attempt resumes the
member from its own ``checkpoint.pt`` (:class:`~flygnn.train.Trainer` with ``resume=True``),
so a lost worker costs at most ``optim.checkpoint_every`` iterations. The same code runs on
a laptop and on a cluster; nothing needs a shared launcher or a fixed world size, unlike a
``torch.distributed`` process group, which suits one model split over many GPUs instead.

From Python (``address=None`` starts a private local Ray on this machine instead)::

    from flygnn.distributed import evaluate_ensemble, train_ensemble

    manifest = train_ensemble("cfg.json", "ens", n_members=50, address="auto")
    result = evaluate_ensemble("ens", address="auto")   # result["fri"], result["clustering"]

Ensemble folder (readable by :meth:`flygnn.analysis.ensembles.Ensemble.from_dir`)::

    <out>/ensemble.json            members: name, seed, config, status, attempts, metrics
    <out>/000/, <out>/001/, ...    run folders of flygnn.train (network.pt, metrics.json, ...)
    <out>/<member>/attempts.jsonl  one line per attempt: pid, host, node, start iteration
    <out>/evaluation/              written by evaluate_ensemble (see there)

Running on a real cluster
-------------------------
All machines need the same Python environment with ``flygnn[ray]`` and, for the results, one
shared file system holding ``<out>`` (NFS, Lustre, ...). On the head node::

    ray start --head --port=6379

on every worker node::

    ray start --address=<head>:6379

then, on any node of the cluster::

    flygnn train-ensemble --config cfg.json --members 50 --out /shared/ens --address <head>:6379
    flygnn evaluate-ensemble /shared/ens --address <head>:6379

``--address auto`` joins the cluster the current machine belongs to; ``ray://<head>:10001``
uses Ray Client from outside the cluster. Recent Ray versions turn on token authentication:
give every node and the driver the head's token (copy ``~/.ray/auth_token``, or set
``RAY_AUTH_TOKEN``); see https://docs.ray.io/en/latest/ray-security/token-auth.html.
Members with ``device="cuda"`` should be given ``num_gpus_per_member=1``
(``--gpus-per-member 1``). Rerunning with ``resume=True``
(``--resume``) skips finished members and resumes the others from their checkpoints, e.g.
after the driver itself was stopped. ``ray stop`` on every node ends the cluster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from flygnn.checkpoint import atomic_write_text
from flygnn.config import TrainConfig

__all__ = ["INSTALL_HINT", "train_ensemble", "evaluate_ensemble", "read_manifest",
           "load_responses"]

log = logging.getLogger(__name__)

INSTALL_HINT = 'install the optional Ray extra: pip install "flygnn[ray]"'
MANIFEST = "ensemble.json"
FORMAT = "flygnn.Ensemble"
STIMULI = ("flashes", "edges")


def _require_ray():
    """Import Ray or raise an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"distributed ensembles need Ray, which is not installed; "
                          f"{INSTALL_HINT}") from err
    return ray


@contextlib.contextmanager
def _session(address: str | None, num_cpus: int | None, init_kwargs: dict | None):
    """Use a running Ray connection, or start one (and stop it on exit).

    ``address=None`` starts a new local Ray instance (``address="local"``, so a cluster that
    happens to run on this machine is not joined by accident); otherwise ``ray.init(address)``.
    """
    ray = _require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"log_to_driver": False, **(init_kwargs or {})}
    if address is None:
        kwargs = {"include_dashboard": False, **kwargs}
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    else:
        ray.init(address=str(address), **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _options(ray, fn, num_cpus: float, num_gpus: float, **extra):
    return ray.remote(fn).options(num_cpus=num_cpus, num_gpus=num_gpus, **extra)


def _threads(num_cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(num_cpus)))


def _check_retries(max_retries: int, num_cpus_per_member: int) -> None:
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if num_cpus_per_member < 1:
        raise ValueError(f"num_cpus_per_member must be >= 1, got {num_cpus_per_member}")


def _where() -> dict:
    import ray

    return {"pid": os.getpid(), "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id()}


# --------------------------------------------------------------------------- training


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
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a flygnn ensemble manifest")
    return manifest


def _write_manifest(out: Path, members: list[dict]) -> None:
    done = sum(m["status"] == "done" for m in members)
    manifest = {"format": FORMAT, "version": 1, "n_members": len(members), "n_done": done,
                "members": members, "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _finished(folder: Path) -> dict | None:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if (folder / "network.pt").is_file() and path.is_file() \
        else None


def _prepare(configs: list[TrainConfig]) -> None:
    """Build the connectome and render cached movies once, before members read them."""
    from flygnn.datasets import FlyVisConnectome
    from flygnn.train import build_datasets

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

    _threads(num_cpus)
    try:
        trainer = Trainer(TrainConfig.from_dict(config), folder, resume=True)
    except ValueError as err:  # a bad config fails the same way on every attempt
        return {"status": "failed", "error": f"ValueError: {err}", **_where()}
    attempt = {**_where(), "start_iteration": trainer.iteration, "time": time.time()}
    with open(Path(folder) / "attempts.jsonl", "a") as f:
        f.write(json.dumps(attempt) + "\n")
    if setup is not None:
        setup(trainer, Path(folder).name)
    try:
        metrics = trainer.train()
    except FloatingPointError as err:  # diverged: resuming would diverge again
        return {"status": "failed", "error": f"FloatingPointError: {err}", **_where()}
    return {"status": "done", "metrics": metrics, **_where()}


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
    _check_retries(max_retries, num_cpus_per_member)
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
        metrics = _finished(folder)
        entries.append({"name": folder.name, "seed": cfg.seed, "config": cfg.to_dict(),
                        "status": "done" if metrics else "pending", "attempts": 0,
                        "metrics": metrics, "error": None})
    ray = _require_ray()
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, entries)
    todo = [i for i, e in enumerate(entries) if e["status"] != "done"]
    if not todo:
        return read_manifest(out)
    if prepare:
        _prepare([members[i] for i in todo])
    with _session(address, num_cpus, ray_init_kwargs):
        task = _options(ray, _train_member, num_cpus_per_member, num_gpus_per_member,
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
                         metrics=_finished(folder) or result.get("metrics"),
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


def _members(out: Path) -> tuple[list[str], list[float]]:
    """Members with a ``network.pt`` (sorted, like ``Ensemble.from_dir``) and their
    ``best_val_epe`` (NaN when unknown)."""
    if not out.is_dir():
        raise ValueError(f"ensemble folder {str(out)!r} not found")
    folders = sorted(p for p in out.iterdir() if (p / "network.pt").is_file())
    if not folders:
        raise ValueError(f"ensemble folder {str(out)!r} has no member folder with a network.pt")
    errors = [(_finished(f) or {}).get("best_val_epe") for f in folders]
    return [f.name for f in folders], [math.nan if e is None else float(e) for e in errors]


def _evaluate_member(folder: str, name: str, stimuli: dict, num_cpus: float) -> dict:
    """Ray task: one member's responses and tuning indices for each stimulus."""
    from flygnn.analysis import tuning
    from flygnn.analysis import flash_responses, moving_edge_responses
    from flygnn.network import Network

    _threads(num_cpus)
    net = Network.load(Path(folder) / "network.pt").eval()
    e = net.graph.extent
    result = {}
    if "flashes" in stimuli:
        r = flash_responses(net, model_names=[name], **{"extent": e, **stimuli["flashes"]})
        result.update(flashes=r, fri=tuning.flash_response_index(r))
    if "edges" in stimuli:
        edges = {"n_ommatidia": 3 * e * (e + 1) + 1, **stimuli["edges"]}
        r = moving_edge_responses(net, model_names=[name], **edges)
        result.update(edges=r, dsi=tuning.direction_selectivity_index(r),
                      preferred_direction=tuning.preferred_direction(r))
    return result


def _cluster_type(responses, cell_type: str, task_error, kwargs: dict) -> dict:
    """Ray task: cluster the members by their central responses of one cell type."""
    import numpy as np

    from flygnn.analysis.ensembles import cluster_models, response_features

    c = cluster_models(response_features(responses, cell_type), task_error=task_error,
                       names=responses.model_names, **kwargs)
    embedding = [[None if not np.isfinite(x) else float(x) for x in row] for row in c.embedding]
    return {"n_clusters": int(c.n_clusters), "labels": c.labels.tolist(),
            "valid": c.valid.tolist(), "embedding": embedding,
            "bic": {str(k): float(v) for k, v in c.bic.items()}, "names": list(c.names)}


def _stack(parts: list):
    """Concatenate one-model Responses along the model axis."""
    import numpy as np

    from flygnn.analysis import Responses

    first = parts[0]
    return Responses(np.concatenate([p.responses for p in parts]), first.params, first.dt,
                     first.t_pre, first.cell_types, [p.model_names[0] for p in parts],
                     dict(first.attrs))


def _save_responses(folder: Path, stimulus: str, r) -> None:
    import numpy as np

    np.savez(folder / f"{stimulus}_responses.npz", responses=r.responses, dt=r.dt, t_pre=r.t_pre,
             cell_types=np.asarray(r.cell_types), model_names=np.asarray(r.model_names))
    r.params.to_csv(folder / f"{stimulus}_params.csv")
    atomic_write_text(folder / f"{stimulus}_attrs.json", json.dumps(r.attrs, indent=2) + "\n")


def load_responses(out_dir: str | os.PathLike, stimulus: str = "flashes"):
    """Read the :class:`~flygnn.analysis.Responses` that :func:`evaluate_ensemble`
    wrote for ``stimulus`` (``"flashes"`` or ``"edges"``).

    **Shapes:** ``(n_members, n_samples, n_frames, 65)``.
    """
    import numpy as np
    import pandas as pd

    from flygnn.analysis import Responses

    folder = Path(out_dir) / "evaluation"
    path = folder / f"{stimulus}_responses.npz"
    if not path.is_file():
        raise ValueError(f"{str(path)!r} not found; run evaluate_ensemble with {stimulus!r}")
    attrs = json.loads((folder / f"{stimulus}_attrs.json").read_text())
    with np.load(path, allow_pickle=False) as z:
        params = pd.read_csv(folder / f"{stimulus}_params.csv", index_col=0)
        return Responses(z["responses"], params, float(z["dt"]), float(z["t_pre"]),
                         z["cell_types"].tolist(), z["model_names"].tolist(),
                         {k: tuple(v) if isinstance(v, list) else v for k, v in attrs.items()})


def _direction_table(dsi, direction):
    """Long table ``model, cell_type, intensity, dsi, preferred_direction`` of the wide
    cell types x (model, intensity) frames."""
    table = dsi.melt(ignore_index=False, value_name="dsi").reset_index()
    table["preferred_direction"] = direction.melt(ignore_index=False)["value"].to_numpy()
    return table[["model", "cell_type", "intensity", "dsi", "preferred_direction"]]


def evaluate_ensemble(out_dir: str | os.PathLike, address: str | None = None,
                      stimuli: Sequence[str] = STIMULI, flashes: dict | None = None,
                      edges: dict | None = None, cluster_types: Sequence[str] = ("T4c", "T5c"),
                      cluster_on: str | None = None, cluster: dict | None = None,
                      num_cpus_per_member: int = 1, num_cpus: int | None = None,
                      max_retries: int = 2, ray_init_kwargs: dict | None = None) -> dict:
    """Responses, tuning indices and clustering of a trained ensemble, in parallel on Ray.

    One task per member (every member folder with a ``network.pt``) computes its responses
    (:func:`~flygnn.analysis.flash_responses` and/or
    :func:`~flygnn.analysis.moving_edge_responses`, stimuli at the network's
    extent) and indices (FRI; DSI and preferred direction); then one task per cell type in
    ``cluster_types`` runs :func:`~flygnn.analysis.ensembles.cluster_models` on the central
    responses to ``cluster_on`` (task error: each member's ``best_val_epe``).

    Writes into ``out_dir/evaluation/``: ``<stimulus>_responses.npz`` (+ ``_params.csv``,
    ``_attrs.json``; read with :func:`load_responses`), ``fri.csv`` (members x cell types),
    ``direction.csv`` (long: model, cell_type, intensity, dsi, preferred_direction),
    ``clustering.json`` (per cell type: labels, embedding, valid, n_clusters, bic) and
    ``evaluation.json`` (the settings).

    Args:
        out_dir: the ensemble folder.
        address: Ray address as in :func:`train_ensemble`.
        stimuli: any of ``"flashes"``, ``"edges"``.
        flashes, edges: keyword arguments of the runners (e.g. ``dt``, ``speeds``).
        cluster_types: cell types to cluster (empty: none; needs >= 2 members and
            scikit-learn, ``pip install "flygnn[cluster]"``).
        cluster_on: the stimulus whose responses are clustered (default ``stimuli[0]``).
        cluster: keyword arguments of ``cluster_models`` (e.g. ``n_init``).
        num_cpus_per_member, num_cpus, max_retries, ray_init_kwargs: as in :func:`train_ensemble`.

    Returns:
        ``{"names", "validation_loss", "responses": {stimulus: Responses}, "fri", "dsi",
        "preferred_direction", "clustering": {cell_type: dict}}``; ``fri`` is members x cell
        types, ``dsi``/``preferred_direction`` cell types x (model, intensity) as in
        :mod:`flygnn.analysis.tuning`.

    **Shapes:** responses ``(n_members, n_samples, n_frames, 65)``.
    """
    import pandas as pd

    out = Path(out_dir)
    names, errors = _members(out)
    stimuli = tuple(stimuli)
    if not stimuli or any(s not in STIMULI for s in stimuli):
        raise ValueError(f"stimuli must be a non-empty selection of {STIMULI}, got {stimuli}")
    cluster_on = cluster_on or stimuli[0]
    if cluster_on not in stimuli:
        raise ValueError(f"cluster_on {cluster_on!r} is not among stimuli {stimuli}")
    settings = {s: dict({"flashes": flashes, "edges": edges}[s] or {}) for s in stimuli}
    from flygnn.analysis import known

    cluster_types = [str(c) for c in cluster_types] if len(names) >= 2 else []
    missing = [c for c in cluster_types if c not in known.cell_types()]
    if missing:
        raise ValueError(f"cluster_types {missing} are not cell types; known: {known.cell_types()}")
    if cluster_types and importlib.util.find_spec("sklearn") is None:
        raise ImportError('clustering needs scikit-learn: pip install "flygnn[cluster]" '
                          "(or pass cluster_types=() / --cluster-types with no names)")
    _check_retries(max_retries, num_cpus_per_member)
    ray = _require_ray()
    with _session(address, num_cpus, ray_init_kwargs):
        task = _options(ray, _evaluate_member, num_cpus_per_member, 0, max_retries=max_retries,
                        retry_exceptions=True)
        parts = ray.get([task.remote(str(out / n), n, settings, num_cpus_per_member)
                         for n in names])
        responses = {s: _stack([p[s] for p in parts]) for s in stimuli}
        task_error = None if all(math.isnan(e) for e in errors) else errors
        ref = ray.put(responses[cluster_on])
        ctask = _options(ray, _cluster_type, 1, 0, max_retries=max_retries)
        clustering = dict(zip(cluster_types, ray.get(
            [ctask.remote(ref, c, task_error, dict(cluster or {})) for c in cluster_types])))
    folder = out / "evaluation"
    folder.mkdir(exist_ok=True)
    loss = pd.Series(errors, index=names, name="best_val_epe")
    result = {"names": names, "validation_loss": loss, "responses": responses,
              "clustering": clustering}
    for s in stimuli:
        _save_responses(folder, s, responses[s])
    if "flashes" in stimuli:
        result["fri"] = pd.DataFrame([p["fri"] for p in parts], index=pd.Index(names, name="model"))
        result["fri"].columns.name = "cell_type"
        result["fri"].to_csv(folder / "fri.csv")
    if "edges" in stimuli:
        for key in ("dsi", "preferred_direction"):
            result[key] = pd.concat({n: p[key] for n, p in zip(names, parts)}, axis=1,
                                    names=["model"])
        _direction_table(result["dsi"], result["preferred_direction"]).to_csv(
            folder / "direction.csv", index=False)
    atomic_write_text(folder / "clustering.json", json.dumps(clustering, indent=2) + "\n")
    summary = {"members": names, "best_val_epe": [None if math.isnan(e) else e for e in errors],
               "stimuli": settings, "cluster_on": cluster_on, "cluster_types": cluster_types,
               "cluster": dict(cluster or {}), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(folder / "evaluation.json", json.dumps(summary, indent=2) + "\n")
    return result
