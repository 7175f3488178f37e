"""Move chosen cell types' grey rest to a target by shifting their resting potentials.

A starting point for a run with ``optim.penalty.rest_weight`` (configs/README.md, Session
13): Adam moves a resting potential by about its rate per step, so a rest of 2 would take
tens of thousands of steps to reach the threshold; this shifts ``bias`` of the given types
at once (a damped fixed-point iteration, since the types feed back onto each other) and
leaves every other parameter as trained. Writes ``network.pt`` (and copies ``decoder.pt`` and
``config.json``) into a new folder, loadable with ``flygnn.load_model``.

Usage::

    python training/rest_shift.py training/flow_cpu_protected_nodrop_then_drop \
        runs/shifted --types T5a T5b T5c T5d [--target 0.0]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from flygnn.datasets import FlyVisConnectome
from flygnn.pretrained import load_model
from flygnn.simulate import steady_state


def grey_rest(net, types, t_pre: float = 4.0, dt: float = 0.02) -> torch.Tensor:
    """Activity of the central cells of ``types`` after ``t_pre`` s of grey."""
    graph = net.graph
    index = graph.central_index[[graph.cell_types.index(t) for t in types]]
    with torch.no_grad():
        return net.dynamics.activity(steady_state(net, t_pre, dt))[0, index]


def shift_rest(net, types, target: float = 0.0, damping: float = 0.5, steps: int = 30,
               tol: float = 1e-3) -> torch.Tensor:
    """Shift the resting potentials of ``types`` until their grey rest is within ``tol`` of
    ``target``; returns the final rests. Raises if the iteration does not get there."""
    for _ in range(steps):
        rest = grey_rest(net, types)
        if (rest - target).abs().max() < tol:
            return rest
        table = net.param_table("bias")
        table.loc[types] = table.loc[types].to_numpy() - damping * (rest.numpy() - target)
        net.set_param_table("bias", table.loc[types])
    raise RuntimeError(f"rests of {types} did not reach {target} in {steps} steps: {rest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model/run folder (network.pt, decoder.pt)")
    parser.add_argument("out", help="new folder for the shifted network")
    parser.add_argument("--types", nargs="+", required=True)
    parser.add_argument("--target", type=float, default=0.0)
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new folder")
    net = load_model(args.model, FlyVisConnectome(extent=5)[0]).network
    before = grey_rest(net, args.types)
    after = shift_rest(net, args.types, args.target)
    out.mkdir(parents=True)
    net.save(out / "network.pt")
    for name in ("decoder.pt", "config.json"):  # the decoder's architecture is in the config
        if (Path(args.model) / name).exists():
            shutil.copy(Path(args.model) / name, out / name)
    for t, b, a in zip(args.types, before.tolist(), after.tolist()):
        print(f"{t}: rest {b:.3f} -> {a:.3f}")


if __name__ == "__main__":
    main()
