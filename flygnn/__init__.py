"""flygnn: the fruit-fly visual system connectome as PyTorch Geometric networks.

Data flow: connectome JSON -> :class:`~flygnn.datasets.FlyVisConnectome` (``HeteroData``) ->
:func:`~flygnn.flat.flatten` (flyvis-order tensors) -> network and dynamics -> simulation ->
stimuli, training and analysis. Importing flygnn has no side effects.

The package is lazy (PEP 562): ``import flygnn`` imports neither torch nor a submodule; a
name such as ``flygnn.Network`` imports its module on first access. The ``flygnn`` command
relies on this to configure OpenMP before torch starts (:mod:`flygnn.threads`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "FlyVisConnectome": "flygnn.datasets", "TableConnectome": "flygnn.datasets",
    "FlatGraph": "flygnn.flat", "flatten": "flygnn.flat", "nodes_frame": "flygnn.flat",
    "edges_frame": "flygnn.flat", "central_index": "flygnn.flat",
    "Network": "flygnn.network",
    "NeuronModel": "flygnn.neurons", "Graded": "flygnn.neurons",
    "SynapticFilter": "flygnn.neurons", "register_model": "flygnn.neurons",
    "LIF": "flygnn.spiking", "Synapses": "flygnn.synapses", "INTEGRATORS": "flygnn.integrators",
    "Dynamics": "flygnn.dynamics", "GradedDynamics": "flygnn.dynamics",  # deprecated: warn
    "SynapticFilterDynamics": "flygnn.dynamics",
    "simulate": "flygnn.simulate", "steady_state": "flygnn.simulate",
    "fade_in_state": "flygnn.simulate",
    "load_pretrained": "flygnn.pretrained", "load_model": "flygnn.pretrained",
    "available_models": "flygnn.pretrained", "load_ensemble": "flygnn.pretrained",
    "StackedNetworks": "flygnn.stacked",
    "set_num_threads": "flygnn.threads", "get_num_threads": "flygnn.threads",
    "num_threads": "flygnn.threads",
}
_SUBMODULES = ("graph", "hexgrid", "stimuli", "analysis")

__all__ = [
    "FlyVisConnectome", "TableConnectome", "FlatGraph", "flatten", "nodes_frame", "edges_frame",
    "central_index", "Network", "NeuronModel", "Graded", "SynapticFilter", "LIF", "Synapses",
    "register_model", "INTEGRATORS",
    "simulate", "steady_state", "fade_in_state", "load_pretrained", "load_model",
    "load_ensemble", "available_models",
    "StackedNetworks", "set_num_threads", "get_num_threads", "num_threads",
    "graph", "hexgrid", "stimuli", "analysis",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"flygnn.{name}") is not None:
        value = importlib.import_module(f"flygnn.{name}")  # any submodule, on first access
    else:
        raise AttributeError(f"module 'flygnn' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


class _Package(types.ModuleType):
    """``flygnn.simulate`` stays the function when the import system binds the submodule of
    the same name (use ``importlib.import_module("flygnn.simulate")`` for the module)."""

    def __setattr__(self, name, value):
        if name == "simulate" and isinstance(value, types.ModuleType):
            value = value.simulate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
