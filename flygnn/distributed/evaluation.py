"""Evaluating an ensemble: responses and tuning indices per member, clustering per cell
type, as Ray tasks; results under ``<ensemble>/evaluation/``."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

from flygnn.analysis.ensembles import _read_metric
from flygnn.checkpoint import atomic_write_text
from flygnn.distributed.ray_session import (
    check_retries,
    require_ray,
    session,
    set_threads,
    task_options,
)

__all__ = ["STIMULI", "evaluate_ensemble", "load_responses"]

STIMULI = ("flashes", "edges")


def _members(out: Path) -> tuple[list[str], list[float]]:
    """Members with a ``network.pt`` (sorted, like ``Ensemble.from_dir``) and their
    ``best_val_epe`` (NaN when unknown)."""
    if not out.is_dir():
        raise ValueError(f"ensemble folder {str(out)!r} not found")
    folders = sorted(p for p in out.iterdir() if (p / "network.pt").is_file())
    if not folders:
        raise ValueError(f"ensemble folder {str(out)!r} has no member folder with a network.pt")
    return [f.name for f in folders], [_read_metric(f / "metrics.json", "best_val_epe")
                                       for f in folders]


def _evaluate_member(folder: str, name: str, stimuli: dict, num_cpus: float) -> dict:
    """Ray task: one member's responses and tuning indices for each stimulus."""
    from flygnn.analysis import flash_responses, moving_edge_responses, tuning
    from flygnn.pretrained import load_model

    set_threads(num_cpus)
    net = load_model(folder).network  # on its own (maybe transformed) connectome
    e = net.graph.extent
    result = {}
    if "flashes" in stimuli:
        r = flash_responses(net, model_names=[name], **{"extent": e, **stimuli["flashes"]})
        result.update(flashes=r, fri=tuning.flash_response_index(r))
    if "edges" in stimuli:
        edges = {"extent": e, **stimuli["edges"]}
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
    ``direction.csv`` (long: model, cell_type, intensity (``OFF``/``ON``), dsi,
    preferred_direction),
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
    check_retries(max_retries, num_cpus_per_member)
    ray = require_ray()
    with session(address, num_cpus, ray_init_kwargs):
        task = task_options(ray, _evaluate_member, num_cpus_per_member, 0, max_retries=max_retries,
                        retry_exceptions=True)
        parts = ray.get([task.remote(str(out / n), n, settings, num_cpus_per_member)
                         for n in names])
        responses = {s: _stack([p[s] for p in parts]) for s in stimuli}
        task_error = None if all(math.isnan(e) for e in errors) else errors
        ref = ray.put(responses[cluster_on])
        ctask = task_options(ray, _cluster_type, 1, 0, max_retries=max_retries)
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
