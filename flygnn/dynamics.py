"""Former home of the neuron models, kept so that old imports keep working.

The models now live in :mod:`flygnn.neurons` (a model returns ``d state / dt``; the
integrators of :mod:`flygnn.integrators` advance it), the per-forward
:class:`~flygnn.context.Context` in :mod:`flygnn.context` and the synaptic layer in
:mod:`flygnn.synapses`. The old names (``Dynamics``, ``GradedDynamics``, ``SynapticFilterDynamics``,
``DYNAMICS``, ``register_dynamics``, ``make_dynamics``) still work for one release and warn.
"""

from __future__ import annotations

import warnings

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

__all__ = ["ACTIVATIONS", "Context", "broadcast_state", "node_major"]

#: old name -> the new object; reading an old name warns (DeprecationWarning)
_RENAMED = {
    "Dynamics": ("flygnn.neurons.NeuronModel", NeuronModel),
    "GradedDynamics": ("flygnn.neurons.Graded", Graded),
    "SynapticFilterDynamics": ("flygnn.neurons.SynapticFilter", SynapticFilter),
    "DYNAMICS": ("flygnn.neurons.MODELS", MODELS),
    "register_dynamics": ("flygnn.neurons.register_model", register_model),
    "make_dynamics": ("flygnn.neurons.make_model", make_model),
}


def __getattr__(name: str):
    if name in _RENAMED:
        new, value = _RENAMED[name]
        warnings.warn(f"flygnn.dynamics.{name} is deprecated and will be removed; use {new}",
                      DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module 'flygnn.dynamics' has no attribute {name!r}")
