"""flygnn: the fruit-fly visual system connectome as PyTorch Geometric networks.

Data flow: connectome JSON -> :class:`~flygnn.datasets.FlyVisConnectome` (``HeteroData``) ->
:func:`~flygnn.flat.flatten` (flyvis-order tensors) -> network and dynamics -> simulation ->
stimuli, training and analysis. Importing flygnn has no side effects.
"""

from flygnn import graph, hexgrid
from flygnn.datasets import FlyVisConnectome
from flygnn.flat import FlatGraph, central_index, edges_frame, flatten, nodes_frame

__version__ = "0.1.0"

__all__ = [
    "FlyVisConnectome",
    "FlatGraph",
    "flatten",
    "nodes_frame",
    "edges_frame",
    "central_index",
    "graph",
    "hexgrid",
]
