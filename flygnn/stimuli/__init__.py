"""Stimuli: eye models, temporal helpers and the standard stimulus datasets."""

from flygnn.stimuli.augment import Augment, interpolate, symmetry
from flygnn.stimuli.base import StimulusDataset
from flygnn.stimuli.custom import CustomMovie
from flygnn.stimuli.flashes import Flashes
from flygnn.stimuli.gratings import Gratings
from flygnn.stimuli.impulses import CentralImpulses, Dots, SpatialImpulses
from flygnn.stimuli.loaders import collate, make_loader, temporal_graph_frames
from flygnn.stimuli.moving import MovingBars, MovingEdges
from flygnn.stimuli.opticflow import OpticFlowMovies
from flygnn.stimuli.render import BoxEye, HexEye
from flygnn.stimuli.scenes import MotionPrior, render_movie
from flygnn.stimuli.sintel import SintelFlow
from flygnn.stimuli.temporal import pad, resample

__all__ = [
    "StimulusDataset", "BoxEye", "HexEye", "pad", "resample",
    "Flashes", "MovingEdges", "MovingBars", "Gratings", "Dots", "CentralImpulses",
    "SpatialImpulses",
    "CustomMovie", "OpticFlowMovies", "MotionPrior", "render_movie", "SintelFlow",
    "Augment", "interpolate", "symmetry", "collate", "make_loader", "temporal_graph_frames",
]
