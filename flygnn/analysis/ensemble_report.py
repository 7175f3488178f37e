"""Prediction quality across an ensemble, and how it relates to task error.

The argument of Lappalainen et al. (2024, Fig. 2): among networks trained on the same
connectome, those that solve the optic-flow task better (lower validation error) also
predict the known tuning better. This module turns an ensemble's tuning indices and task
errors into

* a per-model table (:func:`prediction_table`): task error, the FRI correlation with the
  32 known polarities (:func:`~flygnn.analysis.comparison.fri_correlation_to_known`) and the
  number of types of the wrong sign, the DSI correlation with the 18 types of known
  direction selectivity (:func:`~flygnn.analysis.comparison.dsi_correlation_to_known`), the
  DSI of T4a-d at ON and T5a-d at OFF edges (their known contrast) and, given preferred
  directions, their angle to the flies' (degrees);
* an ensemble summary (:func:`ensemble_summary`): the median over models of every column,
  and the correlations of the ensemble's median indices (median FRI per type, median DSI
  per type and contrast);
* the relation of task error to prediction quality (:func:`task_error_relation`): Pearson
  and Spearman correlation over models (a negative value: lower error, better prediction).

:func:`analyze_ensemble` computes the indices of an :class:`~flygnn.analysis.ensembles.Ensemble`
first (flyvis's protocols: flashes of radius 6, moving edges at dt 1/200);
:func:`compare_ensembles` stacks several analyses (e.g. the true and a rewired connectome).
The figure is :func:`flygnn.plotting.prediction_quality`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn.analysis import known
from flygnn.analysis.comparison import (
    _pearson,
    angular_distance_to_known,
    dsi_correlation_to_known,
    fri_correlation_to_known,
)
from flygnn.analysis.tuning import _split_models

__all__ = ["EnsembleAnalysis", "QUALITY", "analyze_ensemble", "compare_ensembles",
           "ensemble_summary", "prediction_table", "task_error_relation"]

T4T5 = ("T4a", "T4b", "T4c", "T4d", "T5a", "T5b", "T5c", "T5d")
#: the prediction-quality columns related to task error by default
QUALITY = ("fri_correlation", "dsi_correlation")


def _contrast(cell_type: str) -> str:
    """The edge contrast at which a T4/T5 type is known to be selective (T4 ``"ON"``, T5
    ``"OFF"``)."""
    return "ON" if cell_type.startswith("T4") else "OFF"


def _fri_frame(fri) -> pd.DataFrame:
    if isinstance(fri, pd.Series):
        return fri.to_frame("model").T
    if not isinstance(fri, pd.DataFrame):
        raise ValueError(f"fri must be a pandas Series or DataFrame, got {type(fri).__name__}")
    return fri


def prediction_table(fri: pd.Series | pd.DataFrame, dsi: pd.DataFrame,
                     task_error: pd.Series | None = None,
                     preferred_direction: pd.DataFrame | None = None) -> pd.DataFrame:
    """Prediction quality of each model (see the module docstring).

    Args:
        fri: :func:`~flygnn.analysis.tuning.flash_response_index` (models x cell types, or a
            Series of one model).
        dsi: :func:`~flygnn.analysis.tuning.direction_selectivity_index` of the same models
            (cell types x (model, intensity)).
        task_error: per model (e.g. ``Ensemble.validation_loss``, ``best_val_epe``), indexed
            by model name; None or missing names give NaN.
        preferred_direction: optional :func:`~flygnn.analysis.tuning.preferred_direction`.

    Returns:
        one row per model (index ``model``): ``task_error``, ``fri_correlation``,
        ``n_wrong_polarity``, ``dsi_correlation``, ``dsi_<T4/T5 type>`` and, with preferred
        directions, ``angle_error_<T4/T5 type>`` (degrees).

    Raises:
        ValueError: the tables do not hold the same models.
    """
    fri = _fri_frame(fri)
    models, single = _split_models(dsi, "dsi")
    names = [str(m) for m in fri.index]
    if not single and sorted(str(m) for m in models) != sorted(names):
        raise ValueError(f"fri and dsi hold different models: {names} vs {list(models)}")
    if single and len(names) != 1:
        raise ValueError(f"fri has {len(names)} models but dsi has one")
    dsi_of = {name: models[None] for name in names} if single else \
        {str(m): t for m, t in models.items()}
    table = pd.DataFrame(index=pd.Index(names, name="model"))
    errors = pd.Series(dtype=float) if task_error is None else pd.Series(task_error)
    table["task_error"] = [float(errors.get(n, np.nan)) for n in names]
    table["fri_correlation"] = np.atleast_1d(fri_correlation_to_known(fri)).astype(float)
    polarity = known.known_polarity()
    signs = np.sign(fri[list(polarity.index)].to_numpy(dtype=float))
    table["n_wrong_polarity"] = (signs != polarity.to_numpy()[None]).sum(axis=1)
    dsi_corr = dsi_correlation_to_known(dsi)
    table["dsi_correlation"] = [float(dsi_corr) if single else float(dsi_corr[m])
                                for m in (names if single else _keys(models, names))]
    for cell_type in T4T5:
        table[f"dsi_{cell_type}"] = [float(dsi_of[n].loc[cell_type, _contrast(cell_type)])
                                     for n in names]
    if preferred_direction is not None:
        angles = angular_distance_to_known(preferred_direction)
        angles = angles.to_frame(names[0]).T if isinstance(angles, pd.Series) else angles
        angles.index = [str(m) for m in angles.index]
        for cell_type in T4T5:
            table[f"angle_error_{cell_type}"] = np.degrees(
                angles.loc[names, cell_type].to_numpy(dtype=float))
    return table


def _keys(models: dict, names: list[str]) -> list:
    """The dsi model keys in the order of ``names`` (keys may be ints or strings)."""
    by_name = {str(m): m for m in models}
    return [by_name[n] for n in names]


def ensemble_summary(table: pd.DataFrame, fri: pd.Series | pd.DataFrame,
                     dsi: pd.DataFrame) -> pd.DataFrame:
    """The ensemble at a glance: row ``median`` (the median over models of each column of
    :func:`prediction_table`) and row ``median_indices`` (the correlations of the ensemble's
    median FRI per type and median DSI per type and contrast with the known data).

    **Shapes:** ``table`` ``(n_models, n_columns)`` -> ``(2, n_columns)``.
    """
    fri = _fri_frame(fri)
    models, _ = _split_models(dsi, "dsi")
    median_dsi = pd.concat(list(models.values())).groupby(level=0).median()
    median_dsi = median_dsi.reindex(next(iter(models.values())).index)
    summary = pd.DataFrame([table.median(axis=0, numeric_only=True)], index=["median"])
    row = {"fri_correlation": fri_correlation_to_known(fri.median(axis=0)),
           "dsi_correlation": dsi_correlation_to_known(median_dsi)}
    row["n_wrong_polarity"] = int((np.sign(fri.median(axis=0)[known.known_polarity().index])
                                   != known.known_polarity()).sum())
    for cell_type in T4T5:
        row[f"dsi_{cell_type}"] = float(median_dsi.loc[cell_type, _contrast(cell_type)])
    summary.loc["median_indices"] = pd.Series(row)
    summary.index.name = "statistic"
    return summary


def _ranks(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy()


def task_error_relation(table: pd.DataFrame, quality=QUALITY,
                        error: str = "task_error") -> pd.DataFrame:
    """Pearson and Spearman correlation of task error with each quality column, over models.

    Models where either value is NaN are left out of that column's correlations (NaN with
    fewer than three models or a constant column). Spearman's rho is Pearson's r of the
    ranks (ties get their average rank).

    Returns:
        index ``quality``; columns ``n_models``, ``pearson``, ``spearman``.
    """
    missing = [c for c in (error, *quality) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; it has {list(table.columns)}")
    rows = {}
    for column in quality:
        pair = table[[error, column]].astype(float).dropna()
        x, y = pair[error].to_numpy(), pair[column].to_numpy()
        enough = len(pair) >= 3
        rows[column] = {"n_models": len(pair),
                        "pearson": float(_pearson(x, y)) if enough else np.nan,
                        "spearman": float(_pearson(_ranks(x), _ranks(y))) if enough else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("quality")


@dataclass
class EnsembleAnalysis:
    """:func:`analyze_ensemble`'s result: ``table`` (:func:`prediction_table`), ``summary``
    (:func:`ensemble_summary`), ``relation`` (:func:`task_error_relation`) and the indices
    (``fri``, ``dsi``, ``preferred_direction``) they came from."""

    table: pd.DataFrame
    summary: pd.DataFrame
    relation: pd.DataFrame
    fri: pd.DataFrame | None = None
    dsi: pd.DataFrame | None = None
    preferred_direction: pd.DataFrame | None = None

    @classmethod
    def from_indices(cls, fri, dsi, task_error=None, preferred_direction=None):
        """The analysis of given indices (e.g. those of ``flygnn evaluate-ensemble``)."""
        table = prediction_table(fri, dsi, task_error, preferred_direction)
        return cls(table, ensemble_summary(table, fri, dsi), task_error_relation(table),
                   _fri_frame(fri), dsi, preferred_direction)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``prediction_quality.csv`` (the table), ``prediction_summary.csv`` and
        ``task_error_relation.csv`` into ``folder`` (created)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(folder / "prediction_quality.csv")
        self.summary.to_csv(folder / "prediction_summary.csv")
        self.relation.to_csv(folder / "task_error_relation.csv")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> EnsembleAnalysis:
        """Read what :meth:`save` wrote (the tables; the indices are not saved).

        Raises:
            FileNotFoundError: naming the missing file.
        """
        folder = Path(folder)
        frames = []
        for name, index in (("prediction_quality", "model"), ("prediction_summary", "statistic"),
                            ("task_error_relation", "quality")):
            path = folder / f"{name}.csv"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found (written by EnsembleAnalysis.save "
                                        "or flygnn evaluate-ensemble)")
            frames.append(pd.read_csv(path, index_col=index, dtype={index: str}))
        return cls(*frames)


def analyze_ensemble(ensemble, flashes: dict | None = None, edges: dict | None = None,
                     progress: bool = False) -> EnsembleAnalysis:
    """Tuning indices of every member and their :class:`EnsembleAnalysis`.

    Args:
        ensemble: an :class:`~flygnn.analysis.ensembles.Ensemble` (``flygnn.load_ensemble``);
            its ``validation_loss`` is the task error.
        flashes, edges: keyword arguments of
            :func:`~flygnn.analysis.runners.flash_responses` and
            :func:`~flygnn.analysis.runners.moving_edge_responses` (default: flyvis's
            protocols, dt 1/200, six speeds, on the first member's lattice extent); the FRI
            is read at radius 6.
        progress: progress bars.
    """
    import torch

    from flygnn.analysis.runners import flash_responses, moving_edge_responses
    from flygnn.analysis.tuning import (
        direction_selectivity_index,
        flash_response_index,
        preferred_direction,
    )

    extent = {"extent": int(ensemble.networks[0].graph.extent)}  # stimuli on the lattice
    with torch.no_grad():
        flash = ensemble.responses(flash_responses, progress=progress,
                                   **{**extent, **(flashes or {})})
        moving = ensemble.responses(moving_edge_responses, progress=progress,
                                    **{**extent, **(edges or {})})
    fri = _fri_frame(flash_response_index(flash, radius=6))
    if len(ensemble) == 1:
        fri.index = ensemble.names
    return EnsembleAnalysis.from_indices(fri, direction_selectivity_index(moving),
                                         ensemble.validation_loss,
                                         preferred_direction(moving))


def compare_ensembles(analyses: dict[str, EnsembleAnalysis]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Several ensembles side by side (e.g. ``{"true": a, "rewired": b}``).

    Returns:
        ``(table, summary)``: every model's row with an ``ensemble`` column, and per
        ensemble its ``median`` and ``median_indices`` rows (index ``(ensemble, statistic)``).
    """
    if not analyses:
        raise ValueError("analyses is empty")
    table = pd.concat({k: a.table for k, a in analyses.items()}, names=["ensemble"])
    summary = pd.concat({k: a.summary for k, a in analyses.items()}, names=["ensemble"])
    return table.reset_index(level=0), summary
