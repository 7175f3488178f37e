"""Simulation and training speed of flygnn's Network (and flyvis's, when available).

Every measurement runs in a fresh subprocess, so the peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is that of one job alone, network
construction included. Reported:

* ``sim``: ms per Euler step without gradients (``simulate`` of a random movie from a
  given initial state, all 45,669 nodes recorded, as flyvis returns them), batch 1, 4, 16;
* ``train``: seconds for one training step: batch 4, 50 frames, forward with gradients
  from a (precomputed, no-grad) grey steady state, a scalar loss (mean square) on the
  activity of all nodes, backward to all parameters; and the job's peak RSS.

If ``--flyvis PYTHON`` (default ``/tmp/peer/venv/bin/python``) exists and imports flyvis,
the same jobs run with flyvis's ``Network`` in that interpreter and the ratios are printed.
Timings are the minimum over repeats (the machine is shared; the minimum is the least
disturbed run).

Usage::

    python benchmarks/bench_network.py [--repeats 5] [--threads 2] [--flyvis PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

FLYVIS_PYTHON = "/tmp/peer/venv/bin/python"
BATCHES = (1, 4, 16)
SIM_STEPS = 50
TRAIN_STEPS = 50

OURS = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    torch.set_num_threads({threads})
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import flatten
    from flygnn.network import Network
    from flygnn.simulate import simulate, steady_state

    net = Network(flatten(FlyVisConnectome(extent=15)[0]))
    gen = torch.Generator().manual_seed(0)
    job, batch, steps, repeats = {job!r}, {batch}, {steps}, {repeats}
    movie = torch.rand(batch, steps, net.n_hexals, generator=gen)
    with torch.no_grad():
        start = steady_state(net, 0.5, 0.02, batch_size=batch)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        if job == "sim":
            with torch.no_grad():
                simulate(net, movie, 0.02, initial_state=start)
        else:
            out = simulate(net, movie, 0.02, initial_state=start)
            loss = out.square().mean()
            loss.backward()
            net.zero_grad()
        times.append(time.perf_counter() - t0)
    best = min(times[1:])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"seconds": best, "per_step_ms": 1e3 * best / steps, "rss_mb": rss}}))
""")

FLYVIS = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    torch.set_num_threads({threads})
    from flyvis import Network

    net = Network()
    job, batch, steps, repeats = {job!r}, {batch}, {steps}, {repeats}
    gen = torch.Generator().manual_seed(0)
    movie = torch.rand(batch, steps, 1, 721, generator=gen)
    with torch.no_grad():
        start = net.steady_state(0.5, 0.02, batch)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        if job == "sim":
            with torch.no_grad():
                net.simulate(movie, 0.02, initial_state=start)
        else:
            net.stimulus.zero(batch, steps)
            net.stimulus.add_input(movie)
            out = net(net.stimulus(), 0.02, state=start)
            loss = out.square().mean()
            loss.backward()
            net.zero_grad()
        times.append(time.perf_counter() - t0)
    best = min(times[1:])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"seconds": best, "per_step_ms": 1e3 * best / steps, "rss_mb": rss}}))
""")


def run_job(python: str, template: str, **fields) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON line."""
    code = template.format(**fields)
    env = dict(os.environ, OMP_NUM_THREADS=str(fields["threads"]))
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} job {fields} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flyvis_available(python: str) -> bool:
    if not os.path.exists(python):
        return False
    probe = subprocess.run([python, "-c", "import flyvis"], capture_output=True)
    return probe.returncode == 0


def measure(python: str, template: str, repeats: int, threads: int) -> dict:
    results = {}
    for batch in BATCHES:
        results[f"sim_b{batch}"] = run_job(python, template, job="sim", batch=batch,
                                           steps=SIM_STEPS, repeats=repeats, threads=threads)
    results["train_b4"] = run_job(python, template, job="train", batch=4, steps=TRAIN_STEPS,
                                  repeats=max(1, repeats // 2), threads=threads)
    return results


def report(name: str, results: dict) -> None:
    print(f"{name}:")
    for batch in BATCHES:
        r = results[f"sim_b{batch}"]
        print(f"  simulate, batch {batch:2d}: {r['per_step_ms']:7.2f} ms per Euler step")
    r = results["train_b4"]
    print(f"  training step (batch 4, {TRAIN_STEPS} steps, fwd + bwd): {r['seconds']:.3f} s, "
          f"peak RSS {r['rss_mb']:.0f} MB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flyvis", default=FLYVIS_PYTHON, help="python with flyvis installed")
    args = parser.parse_args(argv)

    ours = measure(sys.executable, OURS, args.repeats, args.threads)
    report("flygnn", ours)
    if not flyvis_available(args.flyvis):
        print(f"flyvis: not measured ({args.flyvis} missing or without flyvis); reference "
              "numbers on this machine: 8.4 ms/step (batch 1), 20.5 ms/step (batch 4), "
              "training step 3.2 s, peak 2.75 GB")
        return
    theirs = measure(args.flyvis, FLYVIS, args.repeats, args.threads)
    report("flyvis", theirs)
    print("speed-up (flyvis time / flygnn time):")
    for key in ours:
        print(f"  {key}: {theirs[key]['seconds'] / ours[key]['seconds']:.1f}x")
    print(f"  train_b4 memory: {ours['train_b4']['rss_mb'] / theirs['train_b4']['rss_mb']:.2f} "
          "of flyvis's peak RSS")


if __name__ == "__main__":
    main()
