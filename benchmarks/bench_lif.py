"""Step time of the spiking model (``LIF``) on the full graph, next to the graded model.

Reported per model and batch size: ms per integration step without gradients
(``simulate`` of a grey movie, ``method="exponential_euler"``, all 45,669 nodes recorded),
and ms per step of a forward + backward pass (loss: mean activity) from rest. Timings are
the minimum over repeats (the machine may be shared).

Usage::

    python benchmarks/bench_lif.py [--steps 50] [--repeats 3] [--threads 1] [--extent 15]
"""

from __future__ import annotations

import argparse
import time

import torch

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import flatten
from flygnn.network import Network
from flygnn.neurons import Graded
from flygnn.simulate import simulate
from flygnn.spiking import LIF


def best_ms(fn, steps: int, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times[1:]) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extent", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    graph = flatten(FlyVisConnectome(extent=args.extent)[0])
    print(f"extent {args.extent}: {graph.num_nodes} nodes, {graph.num_edges} edges, "
          f"{args.threads} thread(s), {args.steps} steps of 2 ms")
    for label, model in (("graded", Graded()), ("lif", LIF())):
        net = Network(graph, model)
        for batch in (1, 4):
            movie = torch.full((batch, args.steps, net.n_hexals), 0.5)

            def sim(net=net, movie=movie):
                with torch.no_grad():
                    simulate(net, movie, 0.002, t_pre=0, method="exponential_euler")

            def train(net=net, movie=movie):
                net.zero_grad()
                simulate(net, movie, 0.002, t_pre=0, method="exponential_euler").mean().backward()

            print(f"{label:7s} batch {batch}: {best_ms(sim, args.steps, args.repeats):6.2f} ms/step "
                  f"(no grad), {best_ms(train, args.steps, args.repeats):6.2f} ms/step "
                  "(forward + backward)")


if __name__ == "__main__":
    main()
