"""``flygnn score``: score model and ensemble folders and write the tables and figures.

:func:`run_score` scores one or several ensembles in this process
(:func:`flygnn.analysis.scores.score_models`: flyvis's protocols, the recipe's criteria) and
writes, into a fresh folder (never into a non-empty one; see :func:`flygnn.demo.fresh_folder`),
what :func:`write_scores` writes. ``flygnn evaluate-ensemble`` (Ray) writes its prediction
quality with :func:`write_scores` too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from flygnn.analysis.ensemble_report import T4T5

__all__ = ["markdown_table", "model_markdown", "run_score", "write_evaluation", "write_scores"]


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec) if spec else str(value)


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A GitHub markdown table (``|`` in cells escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


def _criteria_cell(row: pd.Series) -> str:
    met = row.get("meets_all")
    if met is None or (isinstance(met, float) and math.isnan(met)):
        return "not set"
    return "all met" if bool(met) else f"not met: {row['failures']}"


#: per-model columns of the markdown: (column, header, format)
_MODEL_COLUMNS = [("extent", "extent", "d"), ("train_time_h", "time (h)", ".2f"),
                  ("task_error", "val. EPE", ".3f"), ("zero_flow_epe", "zero flow", ".3f"),
                  ("epe_over_zero_flow", "EPE / zero flow", ".3f"),
                  ("fri_correlation", "FRI corr.", ".3f"),
                  ("wrong_polarity", "wrong-sign types", ""),
                  ("dsi_correlation", "DSI corr.", ".3f")]


def model_markdown(table: pd.DataFrame) -> str:
    """The per-model table as markdown: the columns present among training time, EPE, zero
    flow and their ratio, FRI correlation, wrong-sign types, DSI correlation, then per T4/T5
    type its DSI / angle error (degrees) and the criteria check."""
    columns = [c for c in _MODEL_COLUMNS if c[0] in table]
    lead = ["ensemble"] if "ensemble" in table else []
    header = [*lead, "model", *(h for _, h, _ in columns), *T4T5, "criteria"]
    rows = []
    for name, row in table.iterrows():
        cells = [row[c] for c in lead] + [name]
        for column, _, spec in columns:
            value = row[column]
            cells.append(_fmt(int(value) if spec == "d" and pd.notna(value) else value, spec))
        for t in T4T5:
            angle = row.get(f"angle_error_{t}")
            cells.append(_fmt(row[f"dsi_{t}"], ".2f")
                         + ("" if angle is None or pd.isna(angle) else f" / {angle:.0f}°"))
        cells.append(_criteria_cell(row) if "meets_all" in table else "")
        rows.append(cells)
    return markdown_table(rows, header)


def _summary_markdown(summary: pd.DataFrame) -> str:
    keys = [("train_time_h", "time (h)", ".2f"), ("task_error", "val. EPE", ".3f"),
            ("epe_over_zero_flow", "EPE / zero flow", ".3f"),
            ("fri_correlation", "FRI corr.", ".3f"), ("n_wrong_polarity", "wrong sign (n)", ".1f"),
            ("dsi_correlation", "DSI corr.", ".3f"), *((f"dsi_{t}", t, ".2f") for t in T4T5)]
    keys = [k for k in keys if k[0] in summary]
    several = summary.index.nlevels > 1
    label = {"median": "median over models", "median_indices": "of the median indices"}
    rows = []
    for index, row in summary.iterrows():
        lead = list(index) if several else [index]
        lead[-1] = label.get(lead[-1], lead[-1])
        rows.append(lead + [_fmt(row[k], spec) for k, _, spec in keys])
    header = (["ensemble"] if several else []) + ["statistic", *(h for _, h, _ in keys)]
    return markdown_table(rows, header)


def _relation_markdown(relation: pd.DataFrame) -> str:
    several = relation.index.nlevels > 1
    rows = [(list(index) if several else [index])
            + [int(row.n_models), _fmt(row.pearson, ".3f"), _fmt(row.spearman, ".3f")]
            for index, row in relation.iterrows()]
    header = (["ensemble"] if several else []) + ["quality", "models", "Pearson r",
                                                  "Spearman rho"]
    return markdown_table(rows, header)


def _protocol_lines(protocol: Mapping) -> list[str]:
    if not protocol:
        return []
    fl, ed = protocol.get("flashes", {}), protocol.get("edges", {})
    lines = [f"Extent: {protocol.get('extent', '')}."]
    if fl:
        lines.append(f"Flashes: dt {fl['dt']:.4g} s, radii {tuple(fl['radius'])}, "
                     f"{fl['t_pre']:g} s grey then {fl['t_stim']:g} s flash; FRI at radius "
                     f"{protocol.get('fri_radius')}.")
    if ed:
        lines.append(f"Moving edges: dt {ed['dt']:.4g} s, intensities "
                     f"{tuple(ed['intensities'])}, speeds {tuple(ed['speeds'])} columns/s, "
                     f"offsets {tuple(ed['offsets'])}, height {ed['height']:g}; DSI of T4 at ON "
                     "and T5 at OFF edges.")
    if "criteria" in protocol:
        lines.append(f"Criteria: {protocol['criteria']}.")
    return lines


def write_scores(scores, folder: str | os.PathLike, title: str = "flygnn score") -> list[Path]:
    """Write a :class:`~flygnn.analysis.scores.Scores` into ``folder`` (created; files of
    the same names are replaced):

    * ``prediction_quality.csv`` / ``.md``: the per-model table;
    * ``prediction_summary.csv``: the ensembles' medians and median indices;
    * ``task_error_relation.csv``: task error against prediction quality across models;
    * ``prediction_quality.png``: that relation, one colour per ensemble;
    * ``ensemble_comparison.png`` (several ensembles): FRI/DSI correlation and task error
      side by side;
    * ``summary.md``: protocol, criteria and the three tables.

    :meth:`~flygnn.analysis.ensemble_report.EnsembleAnalysis.load` reads the CSVs of one
    ensemble back.

    Returns:
        the files written.
    """
    from flygnn import plotting

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table, files = scores.table, []
    for frame, name in ((table, "prediction_quality"), (scores.summary, "prediction_summary"),
                        (scores.relation, "task_error_relation")):
        frame.to_csv(folder / f"{name}.csv")
        files.append(folder / f"{name}.csv")
    models = model_markdown(table)
    (folder / "prediction_quality.md").write_text(f"# {title}: every model\n\n{models}")
    files.append(folder / "prediction_quality.md")
    several = "ensemble" in table
    figures = [folder / "prediction_quality.png"]
    plotting.prediction_quality(table, path=figures[0])
    if several:
        figures.append(folder / "ensemble_comparison.png")
        plotting.ensemble_comparison(table, scores.summary, path=figures[1])
    n_met = int((table["meets_all"] == True).sum()) if "meets_all" in table else 0  # noqa: E712
    n_set = int(table["meets_all"].notna().sum()) if "meets_all" in table else 0
    text = [f"# {title}", "", *_protocol_lines(scores.protocol), "",
            "## Every model", "",
            "Validation EPE: each model's own `best_val_epe` (the last stage's, on its "
            "validation movies), zero flow on the same movies. T4a-T5d: DSI / angle between "
            "the preferred direction and the flies' (degrees).", "", models,
            (f"{n_met} of {n_set} models with criteria meet every criterion." if n_set else
             "No model has criteria (`--criteria RECIPE_OR_FILE` sets them)."), "",
            "## Ensembles", "", _summary_markdown(scores.summary),
            "## Task error and prediction quality across models", "",
            "Negative: the models with lower task error predict the known tuning better.", "",
            _relation_markdown(scores.relation),
            "Figures: " + ", ".join(f"`{f.name}`" for f in figures) + "."]
    (folder / "summary.md").write_text("\n".join(text) + "\n")
    return files + figures + [folder / "summary.md"]


def write_evaluation(result: Mapping, ensemble_dir: str | os.PathLike):
    """The prediction quality of ``flygnn evaluate-ensemble``'s ``result`` (its ``fri``,
    ``dsi``, ``validation_loss`` and ``preferred_direction`` of the members of
    ``ensemble_dir``), written by :func:`write_scores` into ``ensemble_dir/evaluation``.

    Returns:
        the :class:`~flygnn.analysis.scores.Scores`.
    """
    from flygnn.analysis.ensemble_report import EnsembleAnalysis
    from flygnn.analysis.scores import scores_from_analyses

    root = Path(ensemble_dir)
    analysis = EnsembleAnalysis.from_indices(result["fri"], result["dsi"],
                                             result["validation_loss"],
                                             result.get("preferred_direction"))
    name = root.resolve().name
    scores = scores_from_analyses({name: analysis},
                                  {name: [root / m for m in analysis.table.index]})
    write_scores(scores, root / "evaluation", title=f"flygnn evaluate-ensemble: {name}")
    return scores


def default_out() -> Path:
    """``score/`` in the flygnn cache folder (``$FLYGNN_CACHE``, else ``~/.cache/flygnn``)."""
    from flygnn._paths import cache_dir

    return cache_dir() / "score"


def run_score(dirs: Sequence = (), names: Sequence[str] | None = None,
              groups: Sequence[tuple[str, Sequence]] = (), out: str | os.PathLike | None = None,
              extent: int | None = None, criteria: str | os.PathLike | None = None,
              flashes: Mapping | None = None, edges: Mapping | None = None,
              progress: bool = False, say=print) -> Path:
    """Score ensembles and write the report (``flygnn score``); returns its folder.

    Args:
        dirs, names, groups: the ensembles
            (:func:`flygnn.analysis.model_folders.ensemble_groups`).
        out: report folder; a fresh sibling ``OUT-1``, ... if it exists and is not empty
            (default :func:`default_out`).
        extent: lattice extent (None: each model's own).
        criteria: a recipe name or JSON file whose criteria apply to every model (None: each
            model's stored recipe's; :func:`flygnn.analysis.criteria.read_criteria`).
        flashes, edges: settings replacing flyvis's protocol
            (:func:`flygnn.analysis.scores.protocol`).
        say: prints progress lines.

    Raises:
        ValueError: bad folders, criteria or settings, before anything is simulated.
    """
    from flygnn.analysis.criteria import read_criteria
    from flygnn.analysis.model_folders import ensemble_groups
    from flygnn.analysis.scores import protocol, score_models
    from flygnn.demo import fresh_folder

    ensembles = ensemble_groups(dirs, names, groups)
    given = None if criteria is None else read_criteria(criteria)
    protocol(flashes, edges)  # bad settings fail before the work
    folder = fresh_folder(default_out() if out is None else out)
    n = sum(len(p) for p in ensembles.values())
    say(f"scoring {n} model(s): " + "; ".join(f"{k} ({len(v)})" for k, v in ensembles.items()))
    scores = score_models(ensembles, extent, given, flashes, edges, progress, say=say)
    scores.protocol["criteria"] = (f"{criteria} for every model: {given}" if given else
                                   "each model's recipe (recipe.json), where it sets them")
    write_scores(scores, folder, title="flygnn score: " + ", ".join(ensembles))
    say((folder / "prediction_quality.md").read_text().split("\n", 2)[2])
    say(f"report written to {folder.resolve()}")
    return folder
