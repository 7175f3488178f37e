"""Known (literature) response properties of the 65 cell types, as pandas objects.

The tables live in ``data/known/`` (see the README there for sources): polarity (ON = 1, OFF = -1,
unknown = 0), direction selectivity, motion tuning, pathways, preferred directions and the T4/T5
tuning curves of Maisak et al. 2013. Every loader returns a fresh copy.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn._paths import data_dir

__all__ = [
    "known_dir",
    "cell_types",
    "polarity",
    "known_polarity",
    "direction_selectivity",
    "motion_tuning",
    "known_dsi_types",
    "known_dsi",
    "pathways",
    "preferred_directions",
    "tuning_curves",
]


def known_dir() -> Path:
    """Folder of the known-property tables (``data/known``)."""
    return data_dir() / "known"


@functools.cache
def _read(name: str) -> pd.DataFrame:
    path = known_dir() / name
    if not path.exists():
        raise ValueError(f"known-property table {path} is missing")
    return pd.read_csv(path, keep_default_na=False, na_values=[""], comment="#")


def cell_types() -> list[str]:
    """The 65 cell types in the connectome's (JSON) type order."""
    return _read("polarity.csv")["cell_type"].tolist()


def polarity(with_reference: bool = False) -> pd.Series | pd.DataFrame:
    """Polarity of all 65 types (1 ON, -1 OFF, 0 unknown), indexed by cell type in type order.

    Args:
        with_reference: return the whole table (``polarity``, ``reference`` columns) instead.
    """
    table = _read("polarity.csv").set_index("cell_type")
    return table.copy() if with_reference else table["polarity"].astype(int).copy()


def known_polarity() -> pd.Series:
    """The 32 types with known polarity (non-zero), in type order."""
    p = polarity()
    return p[p != 0]


def direction_selectivity() -> pd.DataFrame:
    """Per type (65 rows): on/off/not direction selective flags, asymmetric input, input class."""
    return _read("direction_selectivity.csv").set_index("cell_type").copy()


def motion_tuning() -> pd.DataFrame:
    """The 18 types with known motion tuning, in flyvis's ``known_dsi_types`` order.

    Columns ``motion_tuning`` (1 for T4/T5, 0 otherwise), ``edge_polarity`` ("on", "off" or NaN).
    """
    return _read("motion_tuning.csv").set_index("cell_type").copy()


def known_dsi_types() -> list[str]:
    """``no_motion_tuning`` followed by ``motion_tuning`` (18 types)."""
    return motion_tuning().index.tolist()


def known_dsi() -> pd.Series:
    """Ground-truth DSI used for the DSI correlation: 1.0 for T4a-d/T5a-d, 0.0 for the others."""
    return motion_tuning()["motion_tuning"].astype(float)


def pathways() -> dict[str, list[str]]:
    """``{"on": [...], "off": [...]}`` pathway members in flyvis order."""
    table = _read("pathways.csv")
    return {p: table.loc[table.pathway == p, "cell_type"].tolist() for p in ("on", "off")}


def preferred_directions(radians: bool = False) -> pd.Series:
    """Preferred directions of T4a-d and T5a-d (degrees, or radians if ``radians``)."""
    s = _read("preferred_directions.csv").set_index("cell_type")["preferred_direction_deg"]
    s = s.astype(float)
    return np.radians(s) if radians else s.copy()


def tuning_curves() -> pd.DataFrame:
    """Maisak et al. 2013 tuning curves: index ``angle_deg`` (0..330), columns T4a..T5d."""
    return _read("tuning_curves.csv").drop(columns="reference").set_index("angle_deg").copy()
