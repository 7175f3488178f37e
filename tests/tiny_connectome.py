"""A hand-made three-type connectome (R1 -> L1 -> T1, with L1 -> L1) for fast bad-input tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

RAW = {
    "nodes": [{"name": "R1", "pattern": ["stride", [1, 1]]},
              {"name": "L1", "pattern": ["stride", [1, 1]]},
              {"name": "T1", "pattern": ["stride", [1, 1]]}],
    "edges": [
        {"src": "R1", "tar": "L1", "alpha": 1, "lambda_mult": 1.0, "edge_type": "chem",
         "offsets": [[[0, 0], 4.0], [[1, 0], 1.0], [[0, 1], 1.0]]},
        {"src": "L1", "tar": "T1", "alpha": -1, "lambda_mult": 1.0, "edge_type": "chem",
         "offsets": [[[0, 0], 2.0]]},
        {"src": "L1", "tar": "L1", "alpha": 1, "lambda_mult": 1.0, "edge_type": "chem",
         "offsets": [[[-1, 0], 0.5], [[1, 0], 0.5]]},
    ],
    "input_units": ["R1"],
    "output_units": ["T1"],
    "receptors": [],
}


def raw() -> dict:
    """A fresh, editable copy of the connectome's JSON object."""
    return copy.deepcopy(RAW)


def write(folder: Path, obj=None, name: str = "tiny.json") -> Path:
    """Write ``obj`` (default: the valid connectome) as JSON and return its path."""
    path = Path(folder) / name
    path.write_text(json.dumps(raw() if obj is None else obj))
    return path
