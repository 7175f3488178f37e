"""Scores of trained models: task error, prediction quality and the criteria of their recipe.

For every model folder of one or several ensembles, :func:`score_models` reads its training
record (:func:`~flygnn.analysis.model_folders.training_record`), simulates flyvis's
protocols and builds the per-model table of
:func:`~flygnn.analysis.ensemble_report.prediction_table` with

* ``train_time_h``: the trainer's clock in hours (``train_time_s`` of ``metrics.json``, else
  the ``time`` column of ``log.csv``): iterations and validations, summed over a recipe's
  stages; time spent stopped between resumes does not count;
* ``task_error``: the model's own validation EPE, ``best_val_epe`` of its ``metrics.json``
  (for a recipe the last stage's, whose best validated weights are the model), on that
  stage's validation movies at that stage's extent; ``zero_flow_epe``: the EPE of predicting
  no flow on the same movies (``zero_flow.epe``) and ``epe_over_zero_flow`` their ratio;
* ``wrong_polarity``: the names of the known-polarity types whose FRI has the wrong sign;
* ``meets_epe``, ``meets_fri``, ``meets_dsi``, ``meets_angle``, ``meets_all`` and
  ``failures`` (which criterion failed, by how much): the check
  (:func:`~flygnn.analysis.criteria.criteria_columns`) of the criteria
  (:data:`flygnn.recipes.CRITERIA`) stored with the model's recipe (``recipe.json``), or
  given; empty where a criterion is not set.

The protocol (:func:`protocol`) is flyvis's: flashes of
:func:`~flygnn.analysis.runners.flash_responses` (dt 1/200, 1 s grey, 1 s flash, radii -1
and 6; the FRI at radius 6) and moving edges of
:func:`~flygnn.analysis.runners.moving_edge_responses` (dt 1/200, ON and OFF edges in 12
directions at flyvis's six speeds), DSI and preferred direction per contrast (T4 read at ON
edges, T5 at OFF edges), on each model's own lattice (its ``config.json``) or at a
given extent. Models on one graph are simulated in one pass.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn.analysis import known
from flygnn.analysis.criteria import criteria_columns, model_criteria
from flygnn.analysis.ensemble_report import EnsembleAnalysis, ensemble_summary, task_error_relation
from flygnn.analysis.model_folders import model_names, training_record

__all__ = ["FRI_RADIUS", "Scores", "protocol", "score_models", "scores_from_analyses",
           "wrong_polarity"]

#: the flash radius (hexals) at which the FRI is read, as flyvis's summary plots
FRI_RADIUS = 6
_RUNNER_ONLY = {"nets", "batch_size", "model_names", "record", "progress"}


def wrong_polarity(fri: pd.DataFrame) -> pd.Series:
    """Per model, the known-polarity types whose FRI has the other sign (comma-separated; the
    same count as ``n_wrong_polarity`` of the prediction table)."""
    polarity = known.known_polarity()
    signs = np.sign(fri[list(polarity.index)].to_numpy(dtype=float))
    wrong = signs != polarity.to_numpy()[None]
    return pd.Series([", ".join(polarity.index[w]) for w in wrong], index=fri.index,
                     name="wrong_polarity")


# --------------------------------------------------------------------------- tables


@dataclass
class Scores:
    """:func:`score_models`' result.

    Attributes:
        table: one row per model (index ``model``; an ``ensemble`` column with several
            ensembles): the prediction table's columns, the training record, the wrong-sign
            types, ``extent`` and the criteria check (see the module docstring).
        summary: per ensemble the ``median`` and ``median_indices`` rows of
            :func:`~flygnn.analysis.ensemble_report.ensemble_summary` (index ``statistic``,
            or ``(ensemble, statistic)``).
        relation: :func:`~flygnn.analysis.ensemble_report.task_error_relation` per ensemble
            (index ``quality``, or ``(ensemble, quality)``).
        analyses: each ensemble's :class:`EnsembleAnalysis` (with its indices).
        protocol: the stimuli's settings and extent.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    relation: pd.DataFrame
    analyses: dict[str, EnsembleAnalysis]
    protocol: dict = field(default_factory=dict)


_FIRST = ["extent", "train_time_h", "task_error", "zero_flow_epe", "epe_over_zero_flow",
          "fri_correlation", "n_wrong_polarity", "wrong_polarity"]


def scores_from_analyses(analyses: Mapping[str, EnsembleAnalysis],
                         folders: Mapping[str, Sequence[Path]],
                         criteria: Mapping[str, float] | None = None,
                         extents: Mapping[str, Sequence[int]] | None = None,
                         protocol: dict | None = None) -> Scores:
    """The scores of analysed ensembles whose members' folders are known.

    Args:
        analyses: ``{ensemble: analysis}``; each table's rows are its members in order.
        folders: ``{ensemble: member folders}`` in the same order.
        criteria: for every model; None: each model's own (:func:`model_criteria`).
        extents: ``{ensemble: extent per member}`` the indices were computed at.
        protocol: stored on the result.
    """
    tables, summaries, relations = {}, {}, {}
    for name, analysis in analyses.items():
        paths = [Path(p) for p in folders[name]]
        base = analysis.table
        if len(paths) != len(base):
            raise ValueError(f"ensemble {name!r}: {len(paths)} folders for {len(base)} models")
        records = pd.DataFrame([training_record(p) for p in paths], index=base.index)
        table = base.drop(columns="task_error").join(records)
        if extents is not None:
            table["extent"] = list(extents[name])
        if analysis.fri is not None:
            table["wrong_polarity"] = wrong_polarity(analysis.fri).reindex(base.index)
        first = [c for c in _FIRST if c in table]
        table = table[first + [c for c in table if c not in first]]
        summary = ensemble_summary(table, analysis.fri, analysis.dsi) \
            if analysis.fri is not None else analysis.summary
        relations[name] = task_error_relation(table)
        own = [criteria if criteria is not None else model_criteria(p) for p in paths]
        tables[name] = pd.concat([table, criteria_columns(table, own)], axis=1)
        summaries[name] = summary
    if len(tables) == 1:
        (name,) = tables
        return Scores(tables[name], summaries[name], relations[name], dict(analyses),
                      dict(protocol or {}))
    table = pd.concat(tables, names=["ensemble"]).reset_index(level=0)
    return Scores(table, pd.concat(summaries, names=["ensemble"]),
                  pd.concat(relations, names=["ensemble"]), dict(analyses),
                  dict(protocol or {}))


# --------------------------------------------------------------------------- simulation


def protocol(flashes: Mapping | None = None, edges: Mapping | None = None) -> dict:
    """The stimuli's settings: the runners' defaults (flyvis's protocols) updated by
    ``flashes`` and ``edges`` (keyword arguments of the runners or their stimulus sets).

    Raises:
        ValueError: an unknown key, or ``extent`` (the lattice is the models').
    """
    from flygnn import stimuli
    from flygnn.analysis.runners import flash_responses, moving_edge_responses

    out = {"fri_radius": FRI_RADIUS}
    for key, runner, stimulus, given in (("flashes", flash_responses, stimuli.Flashes, flashes),
                                         ("edges", moving_edge_responses, stimuli.MovingEdges,
                                          edges)):
        params = inspect.signature(runner).parameters
        defaults = {k: p.default for k, p in params.items()
                    if k not in _RUNNER_ONLY and p.default is not inspect.Parameter.empty}
        allowed = set(params) | set(inspect.signature(stimulus).parameters)
        unknown = sorted(set(given or {}) - (allowed - _RUNNER_ONLY - {"extent"}))
        if unknown:
            raise ValueError(f"{key}: unknown settings {unknown} (the lattice is the models': "
                             "set the extent separately)" if "extent" in unknown else
                             f"{key}: unknown settings {unknown}; known: "
                             f"{sorted(allowed - _RUNNER_ONLY - {'extent'})}")
        out[key] = {**defaults, **dict(given or {})}
    return out


def _load(paths: Sequence[Path], extent: int | None, graphs: dict) -> list[tuple]:
    """``(network, graph key)`` of each model folder at ``extent`` (None: its own); models
    trained on the same connectome share one graph per extent."""
    from flygnn.build import build_connectome
    from flygnn.config import TrainConfig
    from flygnn.datasets import FlyVisConnectome
    from flygnn.pretrained import load_model

    out = []
    for path in paths:
        config = TrainConfig.from_json(path / "config.json") \
            if (path / "config.json").is_file() else None
        if config is None:
            net = load_model(path).network
            key = ("[]", int(extent if extent is not None else net.graph.extent))
            if key[1] != net.graph.extent:
                if key not in graphs:
                    graphs[key] = FlyVisConnectome(extent=key[1])[0]
                net = net.transfer(graphs[key])
            out.append((net, key))
            continue
        target = int(config.network.extent if extent is None else extent)
        key = (json.dumps(config.to_dict()["network"]["connectome"], sort_keys=True), target)
        if key not in graphs:
            graphs[key] = build_connectome(config.network, extent=target)
        out.append((load_model(path, data=graphs[key]).network, key))
    return out


def _as_frame(fri, names: list[str]) -> pd.DataFrame:
    frame = fri.to_frame().T if isinstance(fri, pd.Series) else fri.copy()
    frame.index = pd.Index(names, name="model")
    return frame


def _per_model(table: pd.DataFrame, names: list[str]) -> dict[str, pd.DataFrame]:
    if isinstance(table.columns, pd.MultiIndex):
        return {str(m): table[m] for m in table.columns.get_level_values(0).unique()}
    return {names[0]: table}


def score_models(groups: Mapping[str, Sequence], extent: int | None = None,
                 criteria: Mapping[str, float] | None = None, flashes: Mapping | None = None,
                 edges: Mapping | None = None, progress: bool = False,
                 say: Callable[[str], None] | None = None) -> Scores:
    """Score every model of one or several ensembles (see the module docstring).

    Args:
        groups: ``{ensemble: model folders}`` (:func:`ensemble_groups`).
        extent: lattice extent of the stimuli and networks (None: each model's own).
        criteria: for every model (:func:`read_criteria`); None: each model's own.
        flashes, edges: settings that replace flyvis's (:func:`protocol`), e.g. shorter
            stimuli in tests.
        progress: progress bars.
        say: called with a line of progress per simulated group.

    Raises:
        ValueError: bad folders, settings or files (named).
    """
    import torch

    from flygnn.analysis.runners import flash_responses, moving_edge_responses
    from flygnn.analysis.tuning import (
        direction_selectivity_index,
        flash_response_index,
        preferred_direction,
    )

    settings = protocol(flashes, edges)
    members = [(name, Path(p)) for name, paths in groups.items() for p in paths]
    graphs: dict = {}
    loaded = _load([p for _, p in members], extent, graphs)
    ids = [f"m{i:03d}" for i in range(len(members))]
    by_key: dict = {}
    for i, (_, key) in enumerate(loaded):
        by_key.setdefault(key, []).append(i)
    fri, dsi, pdir = [], {}, {}
    for key, index in by_key.items():
        nets, names = [loaded[i][0] for i in index], [ids[i] for i in index]
        if say is not None:
            say(f"simulating {len(nets)} model(s) at extent {key[1]}: flashes, moving edges")
        with torch.no_grad():
            flash = flash_responses(nets, model_names=names, progress=progress,
                                    **{"extent": key[1], **(flashes or {})})
            moving = moving_edge_responses(nets, model_names=names, progress=progress,
                                           **{"extent": key[1], **(edges or {})})
        fri.append(_as_frame(flash_response_index(flash, radius=FRI_RADIUS), names))
        dsi.update(_per_model(direction_selectivity_index(moving), names))
        pdir.update(_per_model(preferred_direction(moving), names))
    fri = pd.concat(fri)
    analyses, folders, extents = {}, {}, {}
    for name in groups:
        rows = [i for i, (g, _) in enumerate(members) if g == name]
        members_ = model_names([members[i][1] for i in rows])
        rename = dict(zip([ids[i] for i in rows], members_))
        f = fri.loc[[ids[i] for i in rows]].rename(index=rename)
        d = pd.concat({rename[ids[i]]: dsi[ids[i]] for i in rows}, axis=1, names=["model"])
        p = pd.concat({rename[ids[i]]: pdir[ids[i]] for i in rows}, axis=1, names=["model"])
        errors = [training_record(members[i][1])["task_error"] for i in rows]
        analyses[name] = EnsembleAnalysis.from_indices(f, d, pd.Series(errors, index=members_),
                                                       p)
        folders[name] = [members[i][1] for i in rows]
        extents[name] = [loaded[i][1][1] for i in rows]
    settings["extent"] = "each model's own" if extent is None else int(extent)
    return scores_from_analyses(analyses, folders, criteria, extents, settings)
