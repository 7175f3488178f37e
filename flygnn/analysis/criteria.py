"""Criteria of a recipe for its models, and their check against a score table.

The criteria are data: an optional ``criteria`` block of a recipe
(:data:`flygnn.recipes.CRITERIA` lists the keys; ``flygnn/recipes/cpu.json`` sets them), stored
with every model the recipe trains (``recipe.json``), or a JSON file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn._checks import read_json
from flygnn.analysis.ensemble_report import T4T5

__all__ = ["criteria_columns", "model_criteria", "read_criteria"]


def read_criteria(source: str | os.PathLike) -> dict[str, float]:
    """Criteria (:data:`flygnn.recipes.CRITERIA`) from a shipped recipe's name (e.g.
    ``"cpu"``) or a JSON file: an object of criteria, a recipe with a ``criteria`` block, or
    a model folder's ``recipe.json``.

    Raises:
        ValueError: an unknown name or file, no criteria in it, or an unknown key or a bad
            value (naming the file and key).
    """
    from flygnn.recipes import check_criteria, load_recipe, recipe_names

    text = str(source)
    if text in recipe_names():
        recipe = load_recipe(text)
        if "criteria" not in recipe:
            raise ValueError(f"recipe {text!r} sets no criteria")
        return check_criteria(recipe["criteria"], f"recipe {text!r}: criteria")
    if not Path(text).is_file():
        raise ValueError(f"criteria {text!r}: neither a file nor a recipe ({recipe_names()})")
    data = read_json(text, "criteria file")
    if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
        data = data["recipe"]  # a model folder's recipe.json
    if isinstance(data, dict) and ("stages" in data or "criteria" in data):
        if not isinstance(data.get("criteria"), dict):
            raise ValueError(f"criteria file {text!r}: a recipe without a 'criteria' object")
        data = data["criteria"]
    return check_criteria(data, f"criteria file {text!r}")


def model_criteria(folder: str | os.PathLike) -> dict[str, float] | None:
    """The criteria of the recipe stored in a model folder (``recipe.json``), or None."""
    from flygnn.recipes import check_criteria

    file = Path(folder) / "recipe.json"
    if not file.is_file():
        return None
    stored = read_json(file, "recipe file")
    recipe = stored.get("recipe") if isinstance(stored, dict) else None
    if not isinstance(recipe, dict) or "criteria" not in recipe:
        return None
    return check_criteria(recipe["criteria"], f"recipe file {str(file)!r}: criteria")


def _check(row: pd.Series, criteria: Mapping[str, float] | None) -> dict:
    out = {"meets_epe": None, "meets_fri": None, "meets_dsi": None, "meets_angle": None}
    if not criteria:
        return {**out, "meets_all": None, "failures": ""}
    failures = []
    if "epe_over_zero_flow_max" in criteria:
        limit, value = criteria["epe_over_zero_flow_max"], row["epe_over_zero_flow"]
        out["meets_epe"] = bool(value <= limit)
        if not out["meets_epe"]:
            failures.append(f"EPE / zero flow {value:.3f} > {limit:g}")
    if "fri_correlation_min" in criteria:
        limit, value = criteria["fri_correlation_min"], row["fri_correlation"]
        out["meets_fri"] = bool(value >= limit)
        if not out["meets_fri"]:
            failures.append(f"FRI correlation {value:.3f} < {limit:g}")
    if "t4t5_dsi_min" in criteria:
        limit = criteria["t4t5_dsi_min"]
        low = {t: row[f"dsi_{t}"] for t in T4T5 if not row[f"dsi_{t}"] >= limit}
        out["meets_dsi"] = not low
        if low:
            failures.append(f"DSI < {limit:g}: "
                            + ", ".join(f"{t} {v:.2f}" for t, v in low.items()))
    if "t4t5_angle_max_deg" in criteria:
        limit = criteria["t4t5_angle_max_deg"]
        off = {t: row.get(f"angle_error_{t}", np.nan) for t in T4T5}
        off = {t: v for t, v in off.items() if not v <= limit}
        out["meets_angle"] = not off
        if off:
            failures.append(f"angle > {limit:g} deg: "
                            + ", ".join(f"{t} {v:.0f}" for t, v in off.items()))
    out["meets_all"] = all(v for v in out.values() if v is not None)
    return {**out, "failures": "; ".join(failures)}


def criteria_columns(table: pd.DataFrame,
                     criteria: Sequence[Mapping[str, float] | None]) -> pd.DataFrame:
    """The check of each model's criteria (one entry per row of ``table``; None: no check).

    A criterion holds when the value is at or within the limit (a NaN value fails it).

    Returns:
        ``meets_epe``, ``meets_fri``, ``meets_dsi``, ``meets_angle`` (None where not set),
        ``meets_all`` and ``failures`` (what failed, by how much), indexed like ``table``.
    """
    if len(criteria) != len(table):
        raise ValueError(f"criteria: {len(criteria)} entries for {len(table)} models")
    rows = [_check(row, c) for (_, row), c in zip(table.iterrows(), criteria)]
    return pd.DataFrame(rows, index=table.index, dtype=object)
