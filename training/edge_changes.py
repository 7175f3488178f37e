"""Signed responses of T4 (ON edges) and T5 (OFF edges) in each of 12 directions.

For every direction of a moving edge (13 columns/s, extent 5, central cells) the resting
activity and the largest rise and fall from it: a type that rises for one direction and
falls for the opposite codes a whole motion axis on its own; a type that rises for all
directions is not direction selective however large its response.

Usage::

    python training/edge_changes.py untrained data/models/flow_cpu [--speed 13]
"""

from __future__ import annotations

import argparse

from dsi import edge_responses, load_network  # training/dsi.py, beside this script
from flygnn.datasets import FlyVisConnectome

GROUPS = (("T4", 1), ("T5", 0))  # (types, edge intensity: 1 ON, 0 OFF)


def edge_changes(net, speed: float, extent: int = 5) -> dict[str, list[tuple]]:
    """``{type: [(angle, rest, largest rise, largest fall), ...]}`` sorted by angle."""
    resp = edge_responses(net, speeds=(speed,), extent=extent)
    params = resp.params.reset_index(drop=True)
    out = {}
    for group, intensity in GROUPS:
        for cell_type in (f"{group}{s}" for s in "abcd"):
            trace = resp.sel(cell_type).responses[0, :, :, 0]
            rows = [(float(row.angle), float(trace[i, 0]), float(trace[i].max() - trace[i, 0]),
                     float(trace[i].min() - trace[i, 0]))
                    for i, row in params.iterrows() if int(row.intensity) == intensity]
            out[cell_type] = sorted(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model/run folders, or 'untrained'")
    parser.add_argument("--speed", type=float, default=13.0, help="columns per second")
    args = parser.parse_args()
    data = FlyVisConnectome(extent=5)[0]
    for name in args.models:
        net = load_network(name, data)
        print(name, "(angle: rise/fall from rest)")
        for cell_type, rows in edge_changes(net, args.speed).items():
            cells = " ".join(f"{a:.0f}:{up:+.2f}/{down:+.2f}" for a, _, up, down in rows)
            print(f"  {cell_type} rest {rows[0][1]:.3f}  {cells}")


if __name__ == "__main__":
    main()
