"""Former home of the neuron models, kept so that old imports keep working.

The models now live in :mod:`flygnn.neurons` (a model returns ``d state / dt``; the
integrators of :mod:`flygnn.integrators` advance it), the per-forward
:class:`~flygnn.context.Context` in :mod:`flygnn.context` and the synaptic layer in
:mod:`flygnn.synapses`. The names below are aliases of the new ones.
"""

from __future__ import annotations

from flygnn.context import Context
from flygnn.neurons import (
    ACTIVATIONS,
    MODELS,
    Graded,
    NeuronModel,
    SynapticFilter,
    broadcast_state,
    make_model,
    node_major,
    register_model,
)

__all__ = [
    "ACTIVATIONS",
    "DYNAMICS",
    "Context",
    "Dynamics",
    "GradedDynamics",
    "SynapticFilterDynamics",
    "broadcast_state",
    "make_dynamics",
    "node_major",
    "register_dynamics",
]

Dynamics = NeuronModel
GradedDynamics = Graded
SynapticFilterDynamics = SynapticFilter
DYNAMICS = MODELS
register_dynamics = register_model
make_dynamics = make_model
