"""Why a T4/T5 type is or is not direction selective: its inputs, and what training pruned.

Two reports on a trained model:

* ``inputs``: for the central cell of each T4 (ON edges) and T5 (OFF edges) type, the
  synaptic current from every presynaptic type, ``sum_e w_e relu(V_source(t))``, at rest
  and its largest rise/fall from rest for an edge moving in the flies' preferred (PD) and
  null (ND) direction (13 columns/s, extent 5). A selective cell gets some input that
  differs between PD and ND; an input that is equal in both drives it unselectively.
* ``pruned``: synapse strengths that training drove below ``--ratio`` times flyvis's
  initial value (pathways the network no longer uses; the clamp at 0 keeps them there once
  the gradient pushes down), and the cell types whose time constant fell below the training
  step, where ``max(tau, dt)`` passes no gradient back.

Usage::

    python training/circuit.py data/models/flow_cpu [--types T5a T4a] [--pairs L3]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from dsi import edge_responses, load_network  # training/dsi.py, beside this script
from flygnn.analysis.known import preferred_directions
from flygnn.datasets import FlyVisConnectome

TYPES = ("T4a", "T4b", "T4c", "T4d", "T5a", "T5b", "T5c", "T5d")


def input_currents(net, cell_type: str, resp) -> pd.DataFrame:
    """Per presynaptic type: current at rest and its largest rise/fall for PD and ND edges
    (``resp``: every cell's responses to edges at one speed, ``edge_responses(record=None)``)."""
    intensity = 1 if cell_type.startswith("T4") else 0
    pd_deg = float(preferred_directions()[cell_type])
    r, params, g = resp.responses[0], resp.params.reset_index(drop=True), net.graph
    node = int(g.central_index[g.cell_types.index(cell_type)])
    with torch.no_grad():
        weight = net.prepare().edge_weight().cpu().numpy()
    edges = np.flatnonzero(g.target.numpy() == node)
    source, source_type = g.source.numpy()[edges], g.node_type.numpy()[g.source.numpy()[edges]]
    rows = {}
    for label, angle in (("PD", pd_deg % 360), ("ND", (pd_deg + 180) % 360)):
        item = params.index[np.isclose(params.angle, angle) & (params.intensity == intensity)][0]
        rate = np.maximum(r[item], 0)
        for t in np.unique(source_type):
            mask = source_type == t
            current = rate[:, source[mask]] @ weight[edges[mask]]
            row = rows.setdefault(g.cell_types[t], {"rest": current[0]})
            row[f"{label} rise"] = current.max() - current[0]
            row[f"{label} fall"] = current.min() - current[0]
        v = r[item, :, node]
        row = rows.setdefault(f"= {cell_type} voltage", {"rest": v[0]})
        row[f"{label} rise"], row[f"{label} fall"] = v.max() - v[0], v.min() - v[0]
    return pd.DataFrame.from_dict(rows, orient="index")


def pruned(net, untrained, ratio: float, dt: float = 0.02) -> tuple[pd.DataFrame, pd.Series]:
    """Pairs whose strength fell below ``ratio`` x the initial one; time constants below dt."""
    s0, s1 = untrained.param_table("syn_strength"), net.param_table("syn_strength")
    table = pd.DataFrame({"initial": s0, "trained": s1, "ratio": s1 / s0})
    tau = net.param_table("time_const")
    return table[table.ratio < ratio].sort_values("ratio"), tau[tau < dt]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model/run folder")
    parser.add_argument("--types", nargs="+", default=list(TYPES))
    parser.add_argument("--ratio", type=float, default=0.05, help="pruned: trained/initial below")
    parser.add_argument("--pairs", nargs="*", default=None,
                        help="list the pruned pairs into these target types (all when empty)")
    args = parser.parse_args()
    data = FlyVisConnectome(extent=5)[0]
    net = load_network(args.model, data)
    pd.set_option("display.width", 120)
    resp = edge_responses(net, speeds=(13.0,), extent=5, record=None)
    for cell_type in args.types:
        print(f"{cell_type}: synaptic current by presynaptic type (PD/ND edge, 13 columns/s)")
        print(input_currents(net, cell_type, resp).round(3).to_string(), "\n")
    table, tau = pruned(net, load_network("untrained", data), args.ratio)
    print(f"{len(table)} of {net.syn_strength.numel()} pairs below {args.ratio} x their initial "
          f"strength; {len(tau)} of 65 time constants below dt = 20 ms: {', '.join(tau.index)}")
    if args.pairs is not None:
        targets = table.index.get_level_values("target_type")
        shown = table if not args.pairs else table[targets.isin(args.pairs)]
        print(shown.round(5).to_string())


if __name__ == "__main__":
    main()
