"""Time the standard response suites on the extent-15 network (untrained parameters).

* the full default moving-edge suite (144 items at dt = 1/200: 12 directions x ON/OFF x 6
  speeds, height 80), rendering included; goal on 2 CPU cores: <= 5 minutes;
* the default flashes (4 items x 600 frames);
* with ``--ensemble K``: the default moving-edge suite (rendered once, outside the timing) for
  ``K`` networks (one graph, different parameters) in one pass (:mod:`flygnn.stacked`, what
  the runners do with a list) against ``K`` separate runs; the responses are compared.

Usage: python benchmarks/bench_responses.py [--threads 2] [--batch-size 8] [--device cuda]
    [--ensemble 8] [--out DIR]
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ensemble", type=int, default=0, help="also time K models: one pass "
                        "against K separate runs")
    parser.add_argument("--speeds", type=float, nargs="+", default=[2.4, 4.8, 9.7, 13, 19, 25],
                        help="edge speeds of the ensemble timing (default: the six of flyvis)")
    parser.add_argument("--skip-single", action="store_true", help="only the ensemble timing")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for a JSON result")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import flygnn
    from flygnn.analysis.runners import flash_responses, moving_edge_responses, stimulus_responses
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import flatten
    from flygnn.network import Network
    from flygnn.stimuli import MovingEdges

    if args.threads:
        flygnn.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    graph = flatten(FlyVisConnectome(extent=15)[0])
    net = Network(graph).to(device)
    result = {"device": args.device, "torch_threads": torch.get_num_threads(),
              "batch_size": args.batch_size}
    print(f"torch threads: {torch.get_num_threads()}, device {device}")
    if not args.skip_single:
        t0 = time.perf_counter()
        edges = moving_edge_responses(net, batch_size=args.batch_size)
        sync()
        t2 = time.perf_counter()
        flashes = flash_responses(net)
        sync()
        t3 = time.perf_counter()
        result.update(edges_s=t2 - t0, flashes_s=t3 - t2)
        print(f"moving edges: {edges.responses.shape[1]} items x {edges.responses.shape[2]} "
              f"frames: render + simulate {t2 - t0:.1f} s (goal <= 300 s)")
        print(f"flashes: {flashes.responses.shape[1]} items x {flashes.responses.shape[2]} "
              f"frames: {t3 - t2:.1f} s")
    if args.ensemble:
        nets = [Network(graph, seed=s).to(device) for s in range(args.ensemble)]
        with torch.no_grad():
            for k, m in enumerate(nets):
                m.syn_strength.mul_(1 + 0.05 * k)
        data = MovingEdges(offsets=(-10, 11), intensities=(0, 1), height=80,
                           speeds=tuple(args.speeds), post_pad_mode="continue",
                           dt=1 / 200, t_pre=1.0, t_post=1.0)  # the runner's defaults
        data[0]  # render once, outside the timings
        sync()
        t0 = time.perf_counter()
        together = stimulus_responses(nets, data, 1.0, args.batch_size).responses
        sync()
        t1 = time.perf_counter()
        separate = np.concatenate([stimulus_responses(m, data, 1.0, args.batch_size).responses
                                   for m in nets])
        sync()
        t2 = time.perf_counter()
        diff = float(np.nanmax(np.abs(together - separate)))
        result.update(ensemble=args.ensemble, one_pass_s=t1 - t0, separate_s=t2 - t1,
                      max_abs_difference=diff)
        print(f"moving edges, {args.ensemble} models: one pass {t1 - t0:.1f} s, "
              f"{args.ensemble} separate runs {t2 - t1:.1f} s ({(t2 - t1) / (t1 - t0):.2f}x); "
              f"max |difference| {diff:.2e}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"bench_responses_{args.device}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
