"""Figures: hex activity maps, response traces, index bar plots, polar tuning, connectivity.

The only module of flygnn that uses matplotlib. It is imported lazily inside each function, and
figures are built with ``matplotlib.figure.Figure`` on an Agg canvas, so neither pyplot's global
state nor the backend is touched. Every function returns the Figure and, given ``path``, also
saves it as an image (PNG by the file suffix).
"""

from __future__ import annotations

from flygnn.plotting._common import POLARITY_COLORS
from flygnn.plotting.ensembles import ensemble_comparison
from flygnn.plotting.maps import connectivity_matrix, hex_map, traces
from flygnn.plotting.training import loss_curve, prediction_quality
from flygnn.plotting.tuning import (
    direction_arrows,
    dsi_bars,
    index_bars,
    polar_tuning,
    preferred_direction_panels,
)

__all__ = [
    "POLARITY_COLORS",
    "hex_map",
    "traces",
    "index_bars",
    "dsi_bars",
    "polar_tuning",
    "direction_arrows",
    "preferred_direction_panels",
    "connectivity_matrix",
    "loss_curve",
    "prediction_quality",
    "ensemble_comparison",
]
