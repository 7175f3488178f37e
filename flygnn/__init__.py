"""flygnn: the fruit-fly visual system connectome as PyTorch Geometric networks.

Data flow: connectome JSON -> :class:`~flygnn.datasets.FlyVisConnectome` (``HeteroData``) ->
:func:`~flygnn.flat.flatten` (flyvis-order tensors) -> network and dynamics -> simulation ->
stimuli, training and analysis. Importing flygnn has no side effects.
"""

from flygnn import analysis, graph, hexgrid, stimuli
from flygnn.datasets import FlyVisConnectome, TableConnectome
from flygnn.dynamics import Dynamics, GradedDynamics, SynapticFilterDynamics
from flygnn.integrators import INTEGRATORS
from flygnn.neurons import Graded, NeuronModel, SynapticFilter, register_model
from flygnn.spiking import LIF
from flygnn.synapses import Synapses
from flygnn.flat import FlatGraph, central_index, edges_frame, flatten, nodes_frame
from flygnn.network import Network
from flygnn.pretrained import available_models, load_ensemble, load_model, load_pretrained
from flygnn.simulate import fade_in_state, simulate, steady_state

__version__ = "0.1.0"

__all__ = [
    "FlyVisConnectome",
    "TableConnectome",
    "FlatGraph",
    "flatten",
    "nodes_frame",
    "edges_frame",
    "central_index",
    "Network",
    "NeuronModel",
    "Graded",
    "SynapticFilter",
    "LIF",
    "Synapses",
    "register_model",
    "INTEGRATORS",
    "Dynamics",
    "GradedDynamics",
    "SynapticFilterDynamics",
    "simulate",
    "steady_state",
    "fade_in_state",
    "load_pretrained",
    "load_model",
    "load_ensemble",
    "available_models",
    "graph",
    "hexgrid",
    "stimuli",
    "analysis",
]
