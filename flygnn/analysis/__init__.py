"""Analyses of network responses: recorded responses, tuning indices, known data, reports."""

from flygnn.analysis import known
from flygnn.analysis.responses import (
    Responses,
    flash_responses,
    moving_edge_responses,
    stimulus_responses,
)
from flygnn.analysis.tuning import (
    angular_distance_to_known,
    correlation_to_known_tuning_curves,
    direction_selectivity_index,
    dsi_correlation_to_known,
    flash_response_index,
    fri_correlation_to_known,
    peak_responses,
    preferred_direction,
    time_mask,
)

__all__ = [
    "known",
    "Responses",
    "stimulus_responses",
    "flash_responses",
    "moving_edge_responses",
    "flash_response_index",
    "peak_responses",
    "time_mask",
    "direction_selectivity_index",
    "preferred_direction",
    "fri_correlation_to_known",
    "dsi_correlation_to_known",
    "correlation_to_known_tuning_curves",
    "angular_distance_to_known",
]
