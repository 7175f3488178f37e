"""Ensembles of trained networks: loading, ranking, joint responses and clustering (section 11).

An :class:`Ensemble` is an ordered list of networks with names and (optionally) a task
error each -- built from networks in memory or from a folder of run folders
``<dir>/<member>/network.pt`` (:meth:`flygnn.network.Network.save`) with the task error in
``<dir>/<member>/metrics.json`` (``best_val_epe``, as written by :mod:`flygnn.train`).

Clustering follows flyvis's ``compute_umap_and_clustering`` (section 11.2) with a PCA
embedding as the default (no extra dependency): per model, the central responses of one
cell type to every stimulus frame form a feature row; rows with (near) zero standard
deviation are dropped; the rows are embedded in 2-D (PCA of the z-scored rows, the linear
analogue of UMAP's correlation metric; or UMAP if ``umap-learn`` is installed), the
embedding is min-max scaled to [0, 1] per dimension, and Gaussian mixtures with
``k`` in ``range_n_clusters`` are fitted (scikit-learn, the optional extra
``flygnn[cluster]``); the ``k`` of minimal BIC (first occurrence) is refitted and its labels
are renumbered by mean task error (lowest -> 0).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from flygnn._checks import read_json

__all__ = ["Ensemble", "Clustering", "response_features", "pca_embedding", "umap_embedding",
           "cluster_models"]

INVALID = -99999


class Ensemble:
    """Several networks evaluated together.

    Args:
        networks: :class:`~flygnn.network.Network` objects (shared graph recommended).
        names: one name per network (default ``"000"``, ``"001"``, ...).
        validation_loss: task error per network (lower is better; NaN = unknown).

    Attributes:
        networks, names: the members in the ensemble's current order.
        validation_loss: ``Series`` of task errors indexed by name.
    """

    def __init__(self, networks: Sequence[torch.nn.Module], names: Sequence[str] | None = None,
                 validation_loss: Sequence[float] | None = None):
        self.networks = list(networks)
        if not self.networks:
            raise ValueError("networks is empty")
        if not all(isinstance(n, torch.nn.Module) for n in self.networks):
            raise ValueError("networks must be flygnn Network modules")
        names = [f"{i:03d}" for i in range(len(self.networks))] if names is None else list(names)
        if len(names) != len(self.networks) or len(set(names)) != len(names):
            raise ValueError(f"names must be {len(self.networks)} unique names, got {names}")
        self.names = [str(n) for n in names]
        loss = [math.nan] * len(names) if validation_loss is None else list(validation_loss)
        if len(loss) != len(names):
            raise ValueError(f"validation_loss has {len(loss)} entries for {len(names)} networks")
        self.validation_loss = pd.Series(np.asarray(loss, dtype=float), index=self.names,
                                         name="validation_loss")

    @classmethod
    def from_dir(cls, path: str | os.PathLike, data=None, checkpoint: str = "network.pt",
                 metrics: str = "metrics.json", metric: str = "best_val_epe") -> Ensemble:
        """Load every ``<path>/<member>/<checkpoint>`` (members sorted by name).

        Args:
            path: the ensemble folder.
            data: connectome for the networks (None: the first checkpoint's extent; the
                other members share its graph).
            checkpoint: file name of the :meth:`Network.save` checkpoint in each member.
            metrics: JSON file in each member holding the task error (missing: NaN).
            metric: key of the task error in ``metrics``.

        Raises:
            ValueError: no member folder holds ``checkpoint``, or a metrics file is unreadable.
        """
        from flygnn.network import Network

        root = Path(path)
        if not root.is_dir():
            raise ValueError(f"{root}: not a directory")
        members = sorted(p for p in root.iterdir() if (p / checkpoint).is_file())
        if not members:
            raise ValueError(f"{root}: no member folder contains {checkpoint!r}")
        networks, losses = [], []
        for member in members:
            net = Network.load(member / checkpoint, data=data)
            data = net.graph if data is None else data
            networks.append(net)
            losses.append(_read_metric(member / metrics, metric))
        return cls(networks, [m.name for m in members], losses)

    # ------------------------------------------------------------------ container
    def __len__(self) -> int:
        return len(self.networks)

    def __iter__(self):
        return iter(self.networks)

    def __getitem__(self, key):
        """A member by position or name; a slice or list of them gives an ``Ensemble``."""
        if isinstance(key, slice):
            key = list(range(len(self)))[key]
        if isinstance(key, (list, tuple, np.ndarray)):
            idx = [self._position(k) for k in key]
            return Ensemble([self.networks[i] for i in idx], [self.names[i] for i in idx],
                            self.validation_loss.to_numpy()[idx])
        return self.networks[self._position(key)]

    def _position(self, key) -> int:
        if isinstance(key, str):
            if key not in self.names:
                raise ValueError(f"no member named {key!r}; members: {self.names}")
            return self.names.index(key)
        if not -len(self) <= int(key) < len(self):
            raise ValueError(f"member index {key} out of range for {len(self)} members")
        return int(key) % len(self)

    def __repr__(self) -> str:
        more = "..." if len(self) > 5 else ""
        return f"Ensemble(n_models={len(self)}, names={self.names[:5]}{more})"

    # ------------------------------------------------------------------ ranking
    def ranked(self) -> Ensemble:
        """Members sorted by validation loss, ascending (stable; unknown losses last)."""
        loss = self.validation_loss.to_numpy()
        order = np.argsort(np.where(np.isnan(loss), np.inf, loss), kind="stable")
        return self[order.tolist()]

    def best(self, fraction: float = 0.2) -> Ensemble:
        """The best ``int(fraction * n)`` members (at least one) after ranking."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        return self.ranked()[: max(1, int(fraction * len(self)))]

    # ------------------------------------------------------------------ evaluation
    def responses(self, runner: Callable | None = None, **kwargs):
        """Responses of all members stacked on the model axis.

        ``runner(self.networks, model_names=self.names, **kwargs)`` with a runner of
        :mod:`flygnn.analysis.responses` (default ``flash_responses``).

        **Shapes:** :class:`~flygnn.analysis.responses.Responses` of
        ``(n_models, n_samples, n_frames, n_cells)``.
        """
        if runner is None:
            from flygnn.analysis.runners import flash_responses as runner
        return runner(self.networks, model_names=self.names, **kwargs)

    def cluster(self, cell_type: str, responses=None, runner: Callable | None = None,
                runner_kwargs: dict | None = None, **kwargs) -> Clustering:
        """Cluster the members by their central responses of ``cell_type``.

        Args:
            cell_type: the cell type.
            responses: precomputed :class:`Responses` of this ensemble (same model order);
                None runs :meth:`responses` with ``runner`` and ``runner_kwargs``.
            **kwargs: passed to :func:`cluster_models` (the task error is the ensemble's
                validation loss).
        """
        if responses is None:
            responses = self.responses(runner, **(runner_kwargs or {}))
        if list(responses.model_names) != self.names:
            raise ValueError("responses: model names differ from the ensemble's members "
                             f"({list(responses.model_names)[:5]} vs {self.names[:5]})")
        task_error = self.validation_loss.to_numpy()
        if np.isnan(task_error).all():
            task_error = None
        return cluster_models(response_features(responses, cell_type), task_error=task_error,
                              names=self.names, **kwargs)


def _read_metric(path: Path, metric: str) -> float:
    """``metric`` from a member's metrics JSON (NaN when the file or the key is missing).

    Raises:
        ValueError: the file is not a JSON object or the value is not a number (naming both).
    """
    if not path.is_file():
        return math.nan
    values = read_json(path, "metrics file")
    if not isinstance(values, dict):
        raise ValueError(f"metrics file {str(path)!r}: expected a JSON object, got "
                         f"{type(values).__name__}")
    value = values.get(metric)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metrics file {str(path)!r}: field {metric!r} is not a number: "
                         f"{value!r}")
    return float(value)


# --------------------------------------------------------------------------- clustering


def response_features(responses, cell_type: str) -> np.ndarray:
    """Central responses of one type as one row per model (sample-major, then frame).

    Frames that are NaN for any model (e.g. padding after a moving edge) are dropped.

    **Shapes:** ``(n_models, n_samples, n_frames, n_cells)`` -> ``(n_models, n_features)``.
    """
    r = responses.sel(cell_type=cell_type).responses[..., 0]
    features = r.reshape(r.shape[0], -1).astype(np.float64)
    return features[:, np.isfinite(features).all(axis=0)]


def pca_embedding(features: np.ndarray, n_components: int = 2,
                  standardize: bool = True) -> np.ndarray:
    """Project rows onto their first principal components (SVD in float64).

    With ``standardize`` each row is z-scored first (so distances follow correlation, like
    UMAP's ``metric="correlation"``); columns are then centred. Each component's sign is
    fixed so that its largest-magnitude loading is positive.

    **Shapes:** ``(n_models, n_features)`` -> ``(n_models, n_components)``.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be (n_models >= 2, n_features), got {tuple(x.shape)}")
    if standardize:
        std = x.std(dim=1, keepdim=True)
        x = (x - x.mean(dim=1, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    x = x - x.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    vh = vh[:n_components]
    flip = torch.sign(vh.gather(1, vh.abs().argmax(dim=1, keepdim=True)))
    scores = x @ (vh * flip).T
    if scores.shape[1] < n_components:  # fewer models than components
        pad = scores.new_zeros(len(scores), n_components - scores.shape[1])
        scores = torch.cat([scores, pad], 1)
    return scores.numpy()


def umap_embedding(features: np.ndarray, n_components: int = 2, seed: int = 42,
                   **umap_kwargs) -> np.ndarray:
    """UMAP embedding with flyvis's settings (``n_neighbors=5, min_dist=0.105, spread=9,
    metric="correlation", n_epochs=1500``; override by keyword). Needs ``umap-learn``."""
    try:
        import umap
    except ImportError as err:
        raise ImportError('the UMAP embedding needs umap-learn: pip install umap-learn '
                          '(or use embedding="pca")') from err
    settings = dict(n_neighbors=5, min_dist=0.105, spread=9.0, metric="correlation",
                    n_epochs=1500)
    settings.update(umap_kwargs)
    settings["n_neighbors"] = min(settings["n_neighbors"], len(features) - 1)
    reducer = umap.UMAP(n_components=n_components, random_state=seed, **settings)
    return np.asarray(reducer.fit_transform(np.asarray(features, dtype=np.float64)))


def _gaussian_mixture():
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as err:
        raise ImportError('clustering needs scikit-learn: pip install "flygnn[cluster]"') from err
    return GaussianMixture


def _min_max(points: np.ndarray, isotropic: bool) -> np.ndarray:
    """Shift to 0 and scale to [0, 1]: per dimension, or by the largest range (isotropic)."""
    low, span = points.min(axis=0), np.ptp(points, axis=0)
    if isotropic:
        span = np.full_like(span, span.max())
    return (points - low) / np.where(span > 0, span, 1.0)


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - shipped with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


@dataclass
class Clustering:
    """Result of :func:`cluster_models`.

    Attributes:
        embedding: min-max scaled 2-D embedding ``(n_models, 2)`` (NaN for invalid models).
        labels: cluster id per model ``(n_models,)``; ``-99999`` for invalid models.
        n_clusters: the selected number of components.
        bic: BIC per candidate number of components (``Series`` indexed by k).
        valid: models that entered the embedding ``(n_models,)`` bool.
        names: model names.
        mixture: the fitted ``GaussianMixture`` (None without valid models).
    """

    embedding: np.ndarray
    labels: np.ndarray
    n_clusters: int
    bic: pd.Series
    valid: np.ndarray
    names: list[str]
    mixture: object = None

    def indices(self) -> dict[int, list[int]]:
        """``{cluster id: model positions}`` (valid models only)."""
        return {int(k): np.flatnonzero(self.labels == k).tolist()
                for k in np.unique(self.labels[self.valid])}


def cluster_models(features: np.ndarray, task_error: Sequence[float] | None = None,
                   names: Sequence[str] | None = None, embedding: str = "pca",
                   range_n_clusters: Sequence[int] = (2, 3, 4, 5), n_init: int = 100,
                   max_iter: int = 1000, tol: float = 1e-3, covariance_type: str = "full",
                   seed: int = 42, scaling: str | None = None, **embedding_kwargs) -> Clustering:
    """Embed models by their responses and cluster them with BIC-selected Gaussian mixtures.

    Args:
        features: one row per model (:func:`response_features`).
        task_error: per model; clusters are renumbered by mean task error (lowest -> 0).
        names: model names.
        embedding: ``"pca"`` (:func:`pca_embedding`) or ``"umap"`` (:func:`umap_embedding`).
        range_n_clusters: candidate numbers of components (those above the number of valid
            models are skipped; duplicates evaluated once). flyvis's pipeline uses
            ``[2, 3, 3, 4, 5]``.
        n_init, max_iter, tol, covariance_type, seed: ``GaussianMixture`` settings
            (flyvis: 100, 1000, 1e-3, "full", 42).
        scaling: ``"per_dimension"`` min-max scaling (flyvis, the default for UMAP) or
            ``"isotropic"`` (the default for PCA: one factor, the largest range, for both
            axes, so a low-variance component is not stretched into spurious clusters).

    **Shapes:** ``(n_models, n_features)`` -> labels ``(n_models,)``, embedding ``(n_models, 2)``.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n_models, n_features), got {features.shape}")
    n_models = features.shape[0]
    names = [f"model_{i}" for i in range(n_models)] if names is None else list(names)
    if len(names) != n_models:
        raise ValueError(f"names has {len(names)} entries for {n_models} models")
    if task_error is not None and len(task_error) != n_models:
        raise ValueError(f"task_error has {len(task_error)} entries for {n_models} models")
    if embedding not in ("pca", "umap"):
        raise ValueError(f"embedding must be 'pca' or 'umap', got {embedding!r}")
    if scaling not in (None, "isotropic", "per_dimension"):
        raise ValueError(f"scaling must be None, 'isotropic' or 'per_dimension', got {scaling!r}")
    candidates = list(dict.fromkeys(int(k) for k in range_n_clusters))
    if not candidates or min(candidates) < 1:
        raise ValueError(f"range_n_clusters must hold positive integers, got {range_n_clusters}")
    GaussianMixture = _gaussian_mixture()
    valid = ~np.isclose(features.std(axis=1), 0) & np.isfinite(features).all(axis=1)
    emb = np.full((n_models, 2), np.nan)
    labels = np.full(n_models, INVALID, dtype=np.int64)
    if valid.sum() < 2:
        return Clustering(emb, labels, 0, pd.Series(dtype=float, name="bic"), valid, names)
    rows = features[valid]
    points = pca_embedding(rows, **embedding_kwargs) if embedding == "pca" \
        else umap_embedding(rows, seed=seed, **embedding_kwargs)
    points = _min_max(points, isotropic=(scaling == "isotropic") if scaling else embedding == "pca")
    emb[valid] = points

    def mixture(k):
        return GaussianMixture(n_components=k, n_init=n_init, max_iter=max_iter, tol=tol,
                               covariance_type=covariance_type, random_state=seed)

    if not any(k <= len(points) for k in candidates):
        raise ValueError(f"range_n_clusters {candidates} all exceed the {len(points)} valid models")
    with _single_thread():  # tiny problems: BLAS threads only add contention
        bic = {k: float(mixture(k).fit(points).bic(points)) for k in candidates
               if k <= len(points)}
        best = min(bic, key=bic.get)  # first occurrence of the minimum
        gmm = mixture(best)
        raw = gmm.fit_predict(points)
    if task_error is not None:
        err = np.asarray(task_error, dtype=float)[valid]
        means = [np.nanmean(err[raw == k]) if np.isfinite(err[raw == k]).any() else np.inf
                 for k in range(best)]
        rank = np.empty(best, dtype=np.int64)
        rank[np.argsort(means, kind="stable")] = np.arange(best)
        raw = rank[raw]
    labels[valid] = raw
    return Clustering(emb, labels, int(best), pd.Series(bic, name="bic"), valid, names, gmm)
