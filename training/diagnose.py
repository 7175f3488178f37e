"""Why a training run cannot start: two measurements behind ``configs/README.md``.

1. *Signal*: how strongly the network's cells respond to the run's movies -- the temporal
   standard deviation of each listed type's activity against its mean, after a grey steady
   state (the network of ``network.init``, or flyvis's initialisation).
2. *Readout*: whether the flow decoder can learn from perfect features of a given size --
   T4a and T4b set to ``rest + eps * flow_x`` and ``rest + eps * flow_y`` (all other cells at
   ``rest``), 200 Adam steps on 16 training movies, then the EPE (eval mode) against zero
   flow, for flyvis's decoder, the decoder of the change from rest (``baseline="rest"``), and
   that decoder with the running-RMS input normalisation (``input_norm="rms"``).

Usage (a few minutes at extent 8 on one idle thread)::

    python training/diagnose.py --config configs/flow_cpu.json --extent 8
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from flygnn.config import TrainConfig
from flygnn.simulate import simulate, steady_state
from flygnn.task import FlowDecoder, batch_of, epe, l2norm
from flygnn.build import build_datasets, build_network

TYPES = ("R1", "L1", "L2", "Mi1", "Tm3", "Mi4", "Mi9", "T4a", "T5a", "Tm9", "TmY3")


def signal(config: TrainConfig, n_movies: int = 2) -> None:
    net = build_network(config)
    _, val = build_datasets(config)
    lum, _ = batch_of([val[i] for i in range(n_movies)])
    with torch.no_grad():
        state = steady_state(net, 1.0, config.data.dt, n_movies)
        r = simulate(net, lum, config.data.dt, initial_state=state)
    g = net.graph
    print("type   mean activity   temporal std   std / |mean|")
    for t in TYPES:
        x = r[:, r.shape[1] // 4:, g.nodes_of([t])]
        mean, std = float(x.mean()), float(x.std(1).mean())
        print(f"{t:6s} {mean:14.3f} {std:14.2e} {std / max(abs(mean), 1e-12):14.2e}")


def readout(config: TrainConfig, rest: float = 0.3, steps: int = 200) -> None:
    graph = build_network(config).graph
    train, _ = build_datasets(config.with_overrides(["data.augment=false"]))
    _, flow = batch_of([train[i] for i in range(min(16, len(train)))])
    B, T = flow.shape[:2]
    zero = float(epe(torch.zeros_like(flow), flow))
    print(f"zero-flow EPE {zero:.3f}; decoder EPE after {steps} steps:")
    variants = {"flyvis": ("none", "none"), "rest": ("rest", "none"), "rest+rms": ("rest", "rms")}
    print("eps      " + "".join(f"{name:>12s}" for name in variants))
    for eps in (1e-1, 1e-2, 1e-3):
        responses = torch.full((B, T, graph.num_nodes), rest)
        responses[..., graph.nodes_of(["T4a"])] += eps * flow[:, :, 0]
        responses[..., graph.nodes_of(["T4b"])] += eps * flow[:, :, 1]
        resting = torch.full((1, graph.num_nodes), rest)
        row = []
        for baseline, norm in variants.values():
            torch.manual_seed(0)
            d = dataclasses.replace(config.decoder, baseline=baseline, input_norm=norm)
            dec = FlowDecoder.from_config(graph, d)
            opt = torch.optim.Adam(dec.parameters(), 1e-2)
            for _ in range(steps):
                loss = l2norm(dec(responses, resting), flow)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                row.append(float(epe(dec.eval()(responses, resting), flow)))
        print(f"{eps:<8.0e} " + "".join(f"{x:12.3f}" for x in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/flow_cpu.json")
    parser.add_argument("--extent", type=int, default=8)
    args = parser.parse_args()
    config = TrainConfig.from_json(args.config).with_overrides([f"network.extent={args.extent}"])
    signal(config)
    print()
    readout(config)


if __name__ == "__main__":
    main()
