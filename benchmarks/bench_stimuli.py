"""Time the stimulus builders: default MovingEdges / MovingBars and BoxEye on a video.

Run: ``python benchmarks/bench_stimuli.py``.
"""

from __future__ import annotations

import time

import torch

from flygnn.stimuli import BoxEye, MovingBars, MovingEdges
from flygnn.stimuli.render import hex_masks


def _timed(label: str, fn):
    t0 = time.perf_counter()
    out = fn()
    print(f"{label:<55s} {time.perf_counter() - t0:8.2f} s")
    return out


def main() -> None:
    _timed("HexEye masks (721 hexagons, float16 test)", lambda: hex_masks(721, 25))
    edges = MovingEdges(height=80)
    _timed("MovingEdges positions (24 x 21 frames)", lambda: edges.positions)
    _timed("MovingEdges 144 items at dt=1/200", edges.stack)
    bars = MovingBars(post_pad_mode="continue")
    _timed("MovingBars positions (72 x 21 frames)", lambda: bars.positions)
    _timed("MovingBars 432 items at dt=1/200", bars.stack)
    video = torch.rand(4, 20, 436, 417, generator=torch.Generator().manual_seed(0))
    eye = BoxEye()
    _timed("BoxEye mean, (4, 20, 436, 417)", lambda: eye(video))
    _timed("BoxEye sum, (4, 20, 436, 417)", lambda: BoxEye(mode="sum")(video))


if __name__ == "__main__":
    main()
