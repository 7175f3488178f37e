"""Direction selectivity of T4 (ON edges) and T5 (OFF edges) in trained models.

Moving ON/OFF edges in 12 directions at 13 and 25 columns/s on a small lattice (extent 5 by
default: the parameters are per cell type, so a model of any extent runs there), central
cells recorded. Two indices per cell type (``flygnn.analysis.direction_selectivity_index``):

* ``flyvis``: flyvis's DSI of the rectified peak response, resting activity included;
* ``change``: the same on the change from the grey rest (each response minus its first
  frame), which a network with small responses around a large rest needs to show anything;

a breakdown of what keeps flyvis's DSI low (``breakdown``: the rectified rest as a share of the
peak, the peaks at the opposite contrast against those at the cell's own -- flyvis's ON and OFF
DSIs share the larger denominator -- and the share of peaks in the last fifth of the window,
i.e. late responses after the edge has passed), and, offset- and scale-free, the correlation
of each type's tuning curve (peak responses over the 12 directions) with the flies' (Maisak
et al. 2013; ``correlation_to_known_tuning_curves``, best speed), comparable with flyvis's
models (model 000 at extent 15, speed 19: T4a-d 0.94/0.72/0.54/0.86, T5a-d
0.84/0.90/0.95/0.90; reference 14.3).

Usage::

    python training/dsi.py untrained data/models/flow_cpu runs/my_run [--extent 5] [--json f]
    python training/dsi.py data/models/flow_cpu_protected --extent 15 --offsets -10 11 \
        --speeds 13 19 25 --dt 0.005      # flyvis's protocol on the full lattice
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from flygnn.analysis.comparison import correlation_to_known_tuning_curves
from flygnn.analysis.known import preferred_directions
from flygnn.analysis.runners import moving_edge_responses
from flygnn.analysis.tuning import (
    direction_selectivity_index,
    peak_responses,
    preferred_direction,
    time_mask,
)
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.pretrained import load_model

TYPES = {"T4": (["T4a", "T4b", "T4c", "T4d"], 1), "T5": (["T5a", "T5b", "T5c", "T5d"], 0)}


def load_network(name: str, data) -> Network:
    """The network of a model/run folder on ``data``'s lattice, or flyvis's initialisation."""
    return Network(data) if name == "untrained" else load_model(name, data).network


def edge_responses(net, speeds=(13, 25), extent: int = 5, record="central", offsets=None,
                   dt: float = 1 / 100):
    """Responses to ON/OFF edges in 12 directions crossing a lattice of ``extent`` (central
    cells by default, every cell with ``record=None``); the edges travel ``offsets`` (LED
    positions from the centre, default ``(-extent, extent + 1)``; flyvis's protocol at extent
    15: ``(-10, 11)`` with ``dt = 1/200``)."""
    n_hexals = 3 * extent * (extent + 1) + 1
    offsets = (-extent, extent + 1) if offsets is None else tuple(offsets)
    return moving_edge_responses(net, dt=dt, speeds=speeds, offsets=offsets,
                                 n_ommatidia=n_hexals, record=record)


def breakdown(resp) -> dict:
    """Per T4 (ON) / T5 (OFF) type: ``rest`` = rectified rest / mean peak at its own contrast,
    ``cross`` = summed peaks at the opposite contrast / at its own, ``late`` = share of its
    own-contrast peaks that fall in the last fifth of the stimulus window."""
    peak = peak_responses(resp)[0]  # (samples, cells)
    mask = time_mask(resp)
    r = np.where(mask[:, :, None], resp.responses[0], -np.inf)
    when = r.argmax(axis=1)  # (samples, cells): frame of the peak
    first, last = mask.argmax(axis=1), mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
    late = when >= (first + 0.8 * (last - first))[:, None]
    intensity = resp.params["intensity"].to_numpy()
    out = {}
    for types, own in TYPES.values():
        for t in types:
            k = resp.cell_types.index(t)
            mine, other = intensity == own, intensity != own
            rest = max(float(resp.responses[0, 0, 0, k]), 0.0)
            out[t] = {"rest": round(float(rest / (peak[mine, k].mean() + 1e-15)), 3),
                      "cross": round(float(peak[other, k].sum()
                                           / (peak[mine, k].sum() + 1e-15)), 3),
                      "late": round(float(late[mine, k].mean()), 3)}
    return out


def measure(net, extent: int, **edges) -> dict:
    resp = edge_responses(net, extent=extent, **edges)
    change = resp.change_from_rest()
    known = preferred_directions()
    out = {}
    for name, r in (("flyvis", resp), ("change", change)):
        dsi, angle = direction_selectivity_index(r), preferred_direction(r)
        for group, (types, intensity) in TYPES.items():
            column = "ON" if intensity == 1 else "OFF"
            out[f"{name}_{group}_mean"] = float(dsi.loc[types, column].mean())
            out[f"{name}_{group}"] = {t: round(float(dsi.loc[t, column]), 4) for t in types}
            out[f"{name}_{group}_pd_deg"] = {
                t: round(float(np.degrees(angle.loc[t, column])), 1) for t in types}
    out["tuning_corr"] = {t: round(float(v), 4)
                          for t, v in correlation_to_known_tuning_curves(resp).items()}
    out["breakdown"] = breakdown(resp)
    out["known_pd_deg"] = {t: float(known[t]) for types, _ in TYPES.values() for t in types}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model/run folders, or 'untrained'")
    parser.add_argument("--extent", type=int, default=5)
    parser.add_argument("--offsets", type=int, nargs=2, metavar=("START", "END"),
                        help="edge travel in LED positions (default: -extent extent+1)")
    parser.add_argument("--speeds", type=float, nargs="+", default=[13, 25])
    parser.add_argument("--dt", type=float, default=1 / 100)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    edges = dict(offsets=args.offsets, speeds=tuple(args.speeds), dt=args.dt)
    data = FlyVisConnectome(extent=args.extent)[0]
    results = {}
    for name in args.models:
        r = results[name] = measure(load_network(name, data), args.extent, **edges)
        print(name)
        for kind in ("flyvis", "change"):
            print(f"  {kind:6s} DSI: T4 (ON) {r[f'{kind}_T4_mean']:.3f} {r[f'{kind}_T4']}  "
                  f"T5 (OFF) {r[f'{kind}_T5_mean']:.3f} {r[f'{kind}_T5']}")
        print(f"  tuning-curve correlation with the flies': {r['tuning_corr']}")
        print(f"  flyvis DSI breakdown (rest share, opposite contrast, late peaks): "
              f"{r['breakdown']}")
        print(f"  preferred directions (change, deg): T4 {r['change_T4_pd_deg']} "
              f"T5 {r['change_T5_pd_deg']}; known {r['known_pd_deg']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
