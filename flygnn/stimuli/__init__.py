"""Stimuli: eye models, temporal helpers and the standard stimulus datasets."""

from flygnn.stimuli.base import StimulusDataset
from flygnn.stimuli.custom import CustomMovie
from flygnn.stimuli.flashes import Flashes
from flygnn.stimuli.gratings import Gratings
from flygnn.stimuli.impulses import CentralImpulses, Dots, SpatialImpulses
from flygnn.stimuli.moving import MovingBars, MovingEdges
from flygnn.stimuli.render import BoxEye, HexEye
from flygnn.stimuli.temporal import pad, resample
