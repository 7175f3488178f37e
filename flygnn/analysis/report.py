"""Prediction report of a model or an ensemble: polarity and direction selectivity per cell type.

:func:`write_report` takes index results computed by :mod:`flygnn.analysis.tuning` (FRI, DSI and
optionally preferred directions), compares them with the known tables of
:mod:`flygnn.analysis.known` the way flyvis does, and writes into one folder:

* ``polarity.csv``: FRI per type (ensemble mean, std), predicted polarity ``sign(mean FRI)``,
  known polarity, agreement;
* ``direction_selectivity.csv``: DSI for ON and OFF edges (mean, std), their maximum, known
  direction selectivity, the flygnn prediction ``max DSI >= dsi_threshold``, preferred directions;
* ``correlations.csv``: per model, ``fri_correlation_to_known``, ``dsi_correlation_to_known`` and
  (given preferred directions) the T4/T5 angular distances to the known directions;
* ``unknown_predictions.csv``: the predictions for the types whose polarity or direction
  selectivity is not known;
* ``fri.png``, ``dsi.png`` (and ``preferred_directions.png``) figures, ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas

from flygnn.analysis import known
from flygnn.analysis.comparison import (
    angular_distance_to_known,
    dsi_correlation_to_known,
    fri_correlation_to_known,
)
from flygnn.analysis.tuning import _split_models

__all__ = ["write_report"]

REPORT_FILES = (
    "polarity.csv",
    "direction_selectivity.csv",
    "correlations.csv",
    "unknown_predictions.csv",
    "fri.png",
    "dsi.png",
    "summary.md",
)


def _fri_table(fri) -> pandas.DataFrame:
    if isinstance(fri, pandas.Series):
        index = pandas.Index(["model"], name="model")
        return pandas.DataFrame([fri.to_numpy()], columns=fri.index, index=index)
    if isinstance(fri, pandas.DataFrame):
        return fri
    raise ValueError(f"fri must be a pandas Series or DataFrame, got {type(fri).__name__}")


def _stack_models(table, name: str) -> tuple[np.ndarray, list, pandas.Index]:
    """cell_type x intensity (or x (model, intensity)) -> (n_models, n_cells, 2) for [OFF, ON]."""
    models, _ = _split_models(table, name)
    arrays = []
    for model, t in models.items():
        t = t.rename(columns={0: "OFF", 1: "ON"})
        if not {"OFF", "ON"} <= set(t.columns):
            raise ValueError(f"{name} of model {model} lacks the intensity columns 'OFF' and "
                             f"'ON' (columns: {list(t.columns)})")
        arrays.append(t[["OFF", "ON"]].to_numpy(dtype=np.float64))
    index = next(iter(models.values())).index
    return np.stack(arrays), list(models), index


def _one_model(table: pandas.DataFrame) -> pandas.DataFrame:
    """A one-model DSI or direction table with columns ``"OFF"``, ``"ON"``."""
    _, single = _split_models(table, "reference")
    if not single:
        raise ValueError("reference tables must hold one model, got columns "
                         f"{list(table.columns)}")
    return table.rename(columns={0: "OFF", 1: "ON"})


def _fri_series(fri) -> pandas.Series:
    table = _fri_table(fri)
    if len(table) != 1:
        raise ValueError(f"reference fri must hold one model, got {len(table)}")
    return table.iloc[0]


def _reference(reference: dict | None) -> dict | None:
    if reference is None:
        return None
    missing = {"name", "fri", "dsi"} - set(reference)
    if missing:
        raise ValueError(f"reference lacks the keys {sorted(missing)}; expected name, fri, dsi "
                         "and optionally pd")
    return {"pd": None, **reference, "name": str(reference["name"])}


def _known_ds(cell_type: str, ds: pandas.DataFrame) -> str:
    if cell_type not in ds.index:
        return "unknown"
    row = ds.loc[cell_type]
    if row.on_direction_selective:
        return "ON"
    if row.off_direction_selective:
        return "OFF"
    return "not" if row.not_direction_selective else "unknown"


def _markdown(frame: pandas.DataFrame, floatfmt: str = "{:.3f}") -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join([frame.index.name or ""] + cols) + " |"]
    lines.append("|" + "---|" * (len(cols) + 1))
    for idx, *row in frame.itertuples():
        cells = [floatfmt.format(x) if isinstance(x, (float, np.floating)) else str(x) for x in row]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)


def write_report(
    fri: pandas.Series | pandas.DataFrame,
    dsi: pandas.DataFrame,
    pd: pandas.DataFrame | None = None,
    *,
    out_dir: str | Path,
    title: str = "flygnn prediction report",
    dsi_threshold: float = 0.2,
    overwrite: bool = False,
    model_name: str | None = None,
    reference: dict | None = None,
) -> Path:
    """Write CSV tables, PNG figures and a Markdown summary of polarity and DSI predictions.

    The tables and figures describe one model, or an ensemble (the mean over its models, with
    their standard deviation as error bars; figures say "ensemble of N models"). A reference
    model (e.g. the untrained network) is drawn beside it as black markers and thin grey
    arrows and gets its own row in ``correlations.csv``; it never enters the means.

    Args:
        fri: :func:`~flygnn.analysis.tuning.flash_response_index` result (one model or models x
            types).
        dsi: :func:`~flygnn.analysis.tuning.direction_selectivity_index` result, same models.
        pd: optional :func:`~flygnn.analysis.tuning.preferred_direction` result (radians).
        out_dir: folder to write; created if missing.
        title: heading of ``summary.md``.
        dsi_threshold: a type is predicted direction selective if its mean max-over-intensity
            DSI reaches this value (a flygnn convention; flyvis only reports DSI values).
        overwrite: allow writing into an existing non-empty folder (files are replaced).
        model_name: name of a single model in titles (default: its name in the tables, else
            "model").
        reference: optional ``{"name": str, "fri": Series, "dsi": DataFrame, "pd": DataFrame
            or None}`` of one reference model, in the layouts of one model.

    Returns:
        the folder.

    Raises:
        ValueError: if ``out_dir`` exists and is not empty (without ``overwrite``), or the tables
            have inconsistent models or lack the known cell types.
    """
    from flygnn import plotting

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"out_dir {out} is not empty; pass overwrite=True to write into it")

    fri_t = _fri_table(fri)
    dsi_arr, dsi_models, dsi_types = _stack_models(dsi, "dsi")
    if len(dsi_models) != len(fri_t):
        raise ValueError(f"fri has {len(fri_t)} models but dsi has {len(dsi_models)}")
    polarity = known.polarity()
    ds_known = known.direction_selectivity()
    dsi_types_known = set(known.known_dsi_types())

    # ---- polarity
    pol = pandas.DataFrame(index=pandas.Index(fri_t.columns, name="cell_type"))
    pol["fri_mean"] = fri_t.mean(axis=0)
    pol["fri_std"] = fri_t.std(axis=0, ddof=0)
    pol["fraction_models_on"] = (fri_t > 0).mean(axis=0)
    pol["predicted_polarity"] = np.sign(pol["fri_mean"].fillna(0)).astype(int)
    pol["known_polarity"] = polarity.reindex(pol.index).fillna(0).astype(int)
    pol["agrees"] = np.where(
        pol.known_polarity != 0, (pol.known_polarity == pol.predicted_polarity).astype(str), ""
    )

    # ---- direction selectivity
    ds = pandas.DataFrame(index=pandas.Index(dsi_types, name="cell_type"))
    ds["dsi_on_mean"] = dsi_arr[:, :, 1].mean(axis=0)
    ds["dsi_off_mean"] = dsi_arr[:, :, 0].mean(axis=0)
    ds["dsi_on_std"] = dsi_arr[:, :, 1].std(axis=0)
    ds["dsi_off_std"] = dsi_arr[:, :, 0].std(axis=0)
    ds["dsi_max_mean"] = dsi_arr.max(axis=2).mean(axis=0)
    ds["rank"] = ds["dsi_max_mean"].rank(ascending=False, method="min").astype(int)
    ds["predicted_direction_selective"] = ds["dsi_max_mean"] >= dsi_threshold
    ds["known_direction_selective"] = [_known_ds(t, ds_known) for t in ds.index]
    corr = pandas.DataFrame(index=pandas.Index([str(m) for m in fri_t.index], name="model"))
    corr["fri_correlation"] = np.atleast_1d(fri_correlation_to_known(fri_t))
    corr["dsi_correlation"] = np.atleast_1d(dsi_correlation_to_known(dsi))
    if pd is not None:
        pd_arr, pd_models, _ = _stack_models(pd, "preferred direction")
        if len(pd_models) != len(dsi_models):
            raise ValueError(f"pd has {len(pd_models)} models but dsi has {len(dsi_models)}")
        mean_dir = np.angle(np.exp(1j * pd_arr).sum(axis=0))  # circular mean over models
        ds["pd_on_deg"] = np.degrees(mean_dir[:, 1])
        ds["pd_off_deg"] = np.degrees(mean_dir[:, 0])
        dist = angular_distance_to_known(pd)
        dist = dist.to_frame().T if isinstance(dist, pandas.Series) else dist
        for cell_type in dist.columns:
            corr[f"angular_distance_{cell_type}_deg"] = np.degrees(dist[cell_type].to_numpy())

    all_types = pol.index.union(ds.index, sort=False)
    unknown = pandas.DataFrame(index=pandas.Index(all_types, name="cell_type"))
    unknown["polarity_known"] = pol.known_polarity.reindex(unknown.index).fillna(0) != 0
    unknown["direction_selectivity_known"] = [t in dsi_types_known for t in unknown.index]
    unknown = unknown[~(unknown.polarity_known & unknown.direction_selectivity_known)]
    unknown["predicted_polarity"] = pol.predicted_polarity.reindex(unknown.index)
    unknown["fri_mean"] = pol.fri_mean.reindex(unknown.index)
    for col in ("dsi_on_mean", "dsi_off_mean", "predicted_direction_selective"):
        unknown[col] = ds[col].reindex(unknown.index)

    out.mkdir(parents=True, exist_ok=True)
    pol.to_csv(out / "polarity.csv")
    ds.to_csv(out / "direction_selectivity.csv")
    unknown.to_csv(out / "unknown_predictions.csv")
    n = len(fri_t)
    if n == 1 and model_name is not None:
        corr.index = pandas.Index([model_name], name="model")
    ref = _reference(reference)
    if ref is not None:
        corr.loc[ref["name"], "fri_correlation"] = fri_correlation_to_known(ref["fri"])
        corr.loc[ref["name"], "dsi_correlation"] = dsi_correlation_to_known(ref["dsi"])
        if pd is not None and ref["pd"] is not None:
            dist = angular_distance_to_known(ref["pd"])
            for cell_type in dist.index:
                corr.loc[ref["name"], f"angular_distance_{cell_type}_deg"] = np.degrees(
                    dist[cell_type])
    corr.to_csv(out / "correlations.csv")
    if n > 1:
        who = f"ensemble of {n} models"
        what = f"{who}: mean {{}} ± std"
    else:
        who = model_name or (str(fri_t.index[0]) if fri_t.index[0] != "model" else "model")
        what = f"{who}: {{}}"
    ref_kw = {} if ref is None else {"reference_label": ref["name"]}
    plotting.index_bars(
        pol.fri_mean, polarity, errors=pol.fri_std if n > 1 else None,
        reference=None if ref is None else _fri_series(ref["fri"]).reindex(pol.index),
        title=what.format("flash response index (radius-6 flashes)"), path=out / "fri.png",
        error_label=f"std over {n} models", **ref_kw,
    )
    contrast = ["dsi_off_mean", "dsi_on_mean"]
    plotting.dsi_bars(
        ds[contrast].set_axis(["OFF", "ON"], axis=1),
        errors=ds[["dsi_off_std", "dsi_on_std"]].set_axis(["OFF", "ON"], axis=1) if n > 1 else None,
        reference=None if ref is None else _one_model(ref["dsi"]).reindex(ds.index),
        title=what.format("direction selectivity index (moving edges)"), path=out / "dsi.png",
        error_label=f"std over {n} models", **ref_kw,
    )
    if pd is not None:
        known_dirs = known.preferred_directions(radians=True)
        t4 = [t for t in known_dirs.index if t.startswith("T4") and t in ds.index]
        t5 = [t for t in known_dirs.index if t.startswith("T5") and t in ds.index]
        angles = pandas.concat([np.radians(ds.loc[t4, "pd_on_deg"]),
                                np.radians(ds.loc[t5, "pd_off_deg"])])
        lengths = pandas.concat([ds.loc[t4, "dsi_on_mean"], ds.loc[t5, "dsi_off_mean"]])
        other = other_len = None
        if ref is not None and ref["pd"] is not None:
            rpd, rdsi = _one_model(ref["pd"]), _one_model(ref["dsi"])
            other = pandas.concat([rpd.loc[t4, "ON"], rpd.loc[t5, "OFF"]])
            other_len = pandas.concat([rdsi.loc[t4, "ON"], rdsi.loc[t5, "OFF"]])
        plotting.preferred_direction_panels(
            angles, lengths, known_dirs, {"T4 at ON edges": t4, "T5 at OFF edges": t5},
            title=what.format("preferred directions (arrow length = DSI; dashed: the flies')"),
            other=other, other_lengths=other_len,
            other_label=ref["name"] if ref is not None else "untrained network",
            path=out / "preferred_directions.png",
        )

    described = (f"An ensemble of {n} models: every value is the mean over the models "
                 "(figures: error bars are the standard deviation)." if n > 1
                 else f"One model: {who}.")
    lines = [f"# {title}", "", described, ""]
    if ref is not None:
        note = (f"Reference: {ref['name']}, drawn beside the model in the figures (black "
                "markers, grey arrows) and listed in the last row of the correlations; it is "
                "not part of any other number.")
        lines += [note, ""]
    lines += ["## Agreement with known data", "", _markdown(corr), ""]
    known_pol = pol[pol.known_polarity != 0]
    lines += [
        f"Predicted polarity (sign of the FRI) agrees with the known polarity for "
        f"{int((known_pol.agrees == 'True').sum())} of {len(known_pol)} types.",
        "",
        "## Predictions for types of unknown polarity or direction selectivity",
        "",
        _markdown(unknown[["predicted_polarity", "fri_mean", "dsi_on_mean", "dsi_off_mean"]]),
        "",
        f"Predicted direction selective (max DSI >= {dsi_threshold}): "
        + (", ".join(ds.index[ds.predicted_direction_selective]) or "none") + ".",
        "",
        "Files: " + ", ".join(sorted(p.name for p in out.iterdir()) + ["summary.md"]) + ".",
        "",
    ]
    (out / "summary.md").write_text("\n".join(lines))
    return out
