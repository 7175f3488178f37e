"""Stimuli: eye models, temporal helpers and the standard stimulus datasets."""

from flygnn.stimuli.render import BoxEye
from flygnn.stimuli.temporal import pad, resample
