"""Analyses of network responses: recorded responses, tuning indices, known data, reports."""

from flygnn.analysis import circuits, ensembles, known, optimal
from flygnn.analysis.circuits import (
    Knockout,
    field_map,
    input_ablation,
    knockout,
    paths,
    projective_field,
    receptive_field,
    weighted_type_graph,
)
from flygnn.analysis.comparison import (
    angular_distance_to_known,
    correlation_to_known_tuning_curves,
    dsi_correlation_to_known,
    fri_correlation_to_known,
)
from flygnn.analysis.ensembles import (
    Clustering,
    Ensemble,
    cluster_models,
    pca_embedding,
    response_features,
)
from flygnn.analysis.optimal import (
    OptimalStimulus,
    artificial_stimulus,
    most_excitatory,
    regularized_stimulus,
)
from flygnn.analysis.responses import Responses
from flygnn.analysis.runners import (
    central_impulses_responses,
    flash_responses,
    moving_bar_responses,
    moving_edge_responses,
    naturalistic_responses,
    spatial_impulses_responses,
    stimulus_responses,
)
from flygnn.analysis.tuning import (
    direction_selectivity_index,
    flash_response_index,
    peak_responses,
    preferred_direction,
    time_mask,
)

__all__ = [
    "known", "circuits", "optimal", "ensembles",
    "weighted_type_graph", "paths", "receptive_field", "projective_field", "field_map",
    "Knockout", "knockout", "input_ablation",
    "OptimalStimulus", "most_excitatory", "regularized_stimulus", "artificial_stimulus",
    "Ensemble", "Clustering", "cluster_models", "response_features", "pca_embedding",
    "Responses",
    "stimulus_responses",
    "flash_responses",
    "moving_edge_responses",
    "moving_bar_responses",
    "central_impulses_responses",
    "spatial_impulses_responses",
    "naturalistic_responses",
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
