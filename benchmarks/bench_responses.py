"""Time the standard response suites on the extent-15 network (untrained parameters).

* the full default moving-edge suite (144 items at dt = 1/200: 12 directions x ON/OFF x 6
  speeds, height 80), rendering included; goal on 2 CPU cores: <= 5 minutes;
* the default flashes (4 items x 600 frames).

Usage: python benchmarks/bench_responses.py [--threads 2] [--batch-size 8]
"""

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from flygnn.analysis.runners import flash_responses, moving_edge_responses
    from flygnn.datasets import FlyVisConnectome
    from flygnn.network import Network

    net = Network(FlyVisConnectome(extent=15)[0])
    t0 = time.perf_counter()
    edges = moving_edge_responses(net, batch_size=args.batch_size)
    t2 = time.perf_counter()
    flashes = flash_responses(net)
    t3 = time.perf_counter()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"moving edges: {edges.responses.shape[1]} items x {edges.responses.shape[2]} frames: "
          f"render + simulate {t2 - t0:.1f} s (goal <= 300 s)")
    print(f"flashes: {flashes.responses.shape[1]} items x {flashes.responses.shape[2]} frames: "
          f"{t3 - t2:.1f} s")


if __name__ == "__main__":
    main()
