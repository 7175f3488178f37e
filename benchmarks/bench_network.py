"""Simulation, training, ensemble and load benchmarks of flygnn's Network (flyvis side by side).

Every job runs in a fresh subprocess (so the peak resident memory,
``resource.getrusage(RUSAGE_SELF).ru_maxrss``, is that of one job, network construction
included). Timings are the minimum over repeats, with the compared variants interleaved in one
process (ratios are meaningful on a busy machine even when absolute times are not).

* ``sim``: ms per Euler step of ``simulate`` without gradients (random movie, all 45,669 nodes
  recorded, as flyvis returns them), batch 1, 4, 16, 64 (up to 256 on CUDA); beside it torch's
  own CSR x dense product of the same graph (built from the edge list by torch, int64 indices,
  dense operand ``(N, B)``), one product per step; and synapse updates per second
  (``edges * batch / step time``).
* ``train``: one training step: batch 4, 50 frames, forward with gradients from a grey steady
  state, mean-square loss on all nodes, backward to all parameters; seconds and peak memory,
  and the job's peak before its first step (imports, network, initial state).
* ``ensemble``: 8 networks (one graph, different parameters) at batch 4 in one pass
  (:mod:`flygnn.stacked`) against one network at batch 4, per step (65 central cells recorded);
  beside it the floor of any layout that shares the graph's structure across the models: torch's
  CSR product of the graph with 8 x 4 columns against 4 (one weight per edge for all models).
* ``load``: simulation at batch 4 at the library's defaults (no environment variable, no thread
  setting) on the machine as it is, then beside a CPU-bound process this script starts.

With ``--flyvis PYTHON`` (default ``/tmp/peer/venv/bin/python``, built by
``../shared/tools/peer_env.sh``) the sim, train and load jobs also run with flyvis 1.2.0's
``Network`` and the ratios are reported. A markdown table (machine, threads, whether the
machine was quiet) and a JSON file are written to ``--out`` (default ``$OUT`` if set).

Usage::

    python benchmarks/bench_network.py [--repeats 5] [--threads 2] [--device cpu|cuda]
        [--flyvis PATH] [--no-flyvis] [--no-load] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLYVIS_PYTHON = "/tmp/peer/venv/bin/python"
SIM_STEPS = 20
TRAIN_STEPS = 50
N_MODELS = 8

COMMON = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.filterwarnings("ignore")
    import torch
    device = torch.device({device!r})
    if {threads}:
        torch.set_num_threads({threads})

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def best(fns, repeats):  # interleaved, minimum over repeats (after one warm-up)
        times = {{k: [] for k in fns}}
        for r in range(repeats + 1):
            for k, f in fns.items():
                sync(); t0 = time.perf_counter(); f(); sync()
                if r:
                    times[k].append(time.perf_counter() - t0)
        return {{k: min(v) for k, v in times.items()}}

    def peak_mb():
        if device.type == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
""")

OURS = COMMON + textwrap.dedent("""
    import flygnn
    if {threads}:
        flygnn.set_num_threads({threads})  # a fixed count: the measurement states it
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import flatten
    from flygnn.network import Network
    from flygnn.simulate import simulate, steady_state

    graph = flatten(FlyVisConnectome(extent=15)[0])
    net = Network(graph).to(device)
    job, repeats, T = {job!r}, {repeats}, {steps}
    gen = torch.Generator().manual_seed(0)
    out = {{}}
    if job == "sim":
        ctx = net.prepare()
        n, w = graph.num_nodes, ctx.edge_weight().detach()
        edges = torch.stack([graph.target, graph.source]).to(device)
        csr = torch.sparse_coo_tensor(edges, w, (n, n)).coalesce().to_sparse_csr()
        for batch in {batches}:
            movie = torch.rand(batch, T, net.n_hexals, generator=gen).to(device)
            x = torch.rand(n, batch, generator=gen).to(device)
            with torch.no_grad():
                start = steady_state(net, 0.1, 0.02, batch_size=batch)
                t = best({{"step": lambda: simulate(net, movie, 0.02, initial_state=start),
                          "csr": lambda: [torch.sparse.mm(csr, x) for _ in range(T)]}}, repeats)
            out[batch] = {{"step_ms": 1e3 * t["step"] / T, "csr_ms": 1e3 * t["csr"] / T,
                          "syn_per_s": w.numel() * batch * T / t["step"]}}
    elif job == "train":
        movie = torch.rand(4, T, net.n_hexals, generator=gen).to(device)
        with torch.no_grad():
            start = steady_state(net, 0.5, 0.02, batch_size=4)
        build = peak_mb()  # network built, initial state made: the peak before training
        def train():
            loss = simulate(net, movie, 0.02, initial_state=start).square().mean()
            loss.backward()
            net.zero_grad()
        out = {{"seconds": best({{"train": train}}, repeats)["train"], "build_peak_mb": build}}
    elif job == "ensemble":
        from flygnn.stacked import StackedNetworks, steady_state_stacked
        nets = [Network(graph, seed=s).to(device) for s in range({n_models})]
        with torch.no_grad():
            for k, m in enumerate(nets):
                m.syn_strength.mul_(1 + 0.05 * k)
        stack = StackedNetworks(nets)
        movie = torch.rand(4, T, net.n_hexals, generator=gen).to(device)
        # the floor of any layout that shares the graph's structure: torch's CSR product of
        # the graph with all models' columns at once (as if they shared their weights too)
        n, w = graph.num_nodes, nets[0].prepare().edge_weight().detach()
        edges = torch.stack([graph.target, graph.source]).to(device)
        csr = torch.sparse_coo_tensor(edges, w, (n, n)).coalesce().to_sparse_csr()
        x1 = torch.rand(n, 4, generator=gen).to(device)
        xk = torch.rand(n, 4 * {n_models}, generator=gen).to(device)
        with torch.no_grad():
            one = steady_state(nets[0], 0.1, 0.02, batch_size=4)
            many = steady_state_stacked(stack, 0.1, 0.02, batch_size=4)
            t = best({{"one": lambda: simulate(nets[0], movie, 0.02, initial_state=one,
                                              record="central"),
                      "stack": lambda: simulate(stack, movie, 0.02, initial_state=many,
                                                record="central"),
                      "csr_one": lambda: [torch.sparse.mm(csr, x1) for _ in range(T)],
                      "csr_all": lambda: [torch.sparse.mm(csr, xk) for _ in range(T)]}}, repeats)
        out = {{"one_ms": 1e3 * t["one"] / T, "stack_ms": 1e3 * t["stack"] / T,
               "csr_one_ms": 1e3 * t["csr_one"] / T, "csr_all_ms": 1e3 * t["csr_all"] / T}}
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))
""")

FLYVIS = COMMON + textwrap.dedent("""
    from flyvis import Network
    net = Network().to(device)
    job, repeats, T = {job!r}, {repeats}, {steps}
    gen = torch.Generator().manual_seed(0)
    out = {{}}
    if job == "sim":
        for batch in {batches}:
            movie = torch.rand(batch, T, 1, 721, generator=gen).to(device)
            with torch.no_grad():
                start = net.steady_state(0.1, 0.02, batch)
                t = best({{"step": lambda: net.simulate(movie, 0.02, initial_state=start)}}, repeats)
            out[batch] = {{"step_ms": 1e3 * t["step"] / T}}
    elif job == "train":
        movie = torch.rand(4, T, 1, 721, generator=gen).to(device)
        with torch.no_grad():
            start = net.steady_state(0.5, 0.02, 4)
        build = peak_mb()
        def train():
            net.stimulus.zero(4, T)
            net.stimulus.add_input(movie)
            loss = net(net.stimulus(), 0.02, state=start).square().mean()
            loss.backward()
            net.zero_grad()
        out = {{"seconds": best({{"train": train}}, repeats)["train"], "build_peak_mb": build}}
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))
""")

# the load test: the library at its defaults (no thread setting, no environment variable)
LOAD = textwrap.dedent("""
    import json, sys, time, warnings
    warnings.filterwarnings("ignore")
    import torch
    flyvis = {flyvis}
    if flyvis:
        from flyvis import Network
        net = Network()
        movie = torch.rand(4, {steps}, 1, 721)
        with torch.no_grad():
            start = net.steady_state(0.1, 0.02, 4)
        run = lambda: net.simulate(movie, 0.02, initial_state=start)
    else:
        from flygnn.datasets import FlyVisConnectome
        from flygnn.network import Network
        from flygnn.simulate import simulate, steady_state
        net = Network(FlyVisConnectome(extent=15)[0])
        movie = torch.rand(4, {steps}, net.n_hexals)
        with torch.no_grad():
            start = steady_state(net, 0.1, 0.02, batch_size=4)
        run = lambda: simulate(net, movie, 0.02, initial_state=start)
    with torch.no_grad():
        run()
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()  # the parent starts (or not) the CPU-bound process
        times = []
        for _ in range({repeats}):
            t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
    print(json.dumps({{"step_ms": 1e3 * sorted(times)[len(times) // 2] / {steps},
                      "threads": torch.get_num_threads() if flyvis
                      else __import__("flygnn.threads").threads.last_applied()}}))
""")

HOG = "import time\nwhile True:\n    pass\n"


def _env(threads: int | None, defaults: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not (defaults and k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                                      "FLYGNN_NUM_THREADS"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if threads and not defaults:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def run_job(python: str, template: str, threads: int, **fields) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON line."""
    code = template.format(threads=threads, **fields)
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=_env(threads),
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{python} job {fields.get('job')} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_test(python: str, flyvis: bool, repeats: int) -> dict:
    """Median step at batch 4 at the defaults, quiet and beside a CPU-bound process."""
    out = {}
    for loaded in (False, True):
        code = LOAD.format(flyvis=flyvis, steps=SIM_STEPS, repeats=repeats)
        proc = subprocess.Popen([python, "-c", code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env(None, defaults=True))
        hog = None
        try:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"load job failed:\n{proc.stderr.read()[-3000:]}")
            if loaded:
                hog = subprocess.Popen([sys.executable, "-c", HOG])
                time.sleep(0.5)
            result, err = proc.communicate("go\n")
            if proc.returncode != 0:
                raise RuntimeError(f"load job failed:\n{err[-3000:]}")
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        out["loaded" if loaded else "as_is"] = json.loads(result.strip().splitlines()[-1])
    out["ratio"] = out["loaded"]["step_ms"] / out["as_is"]["step_ms"]
    return out


def flyvis_available(python: str) -> bool:
    if not os.path.exists(python):
        return False
    return subprocess.run([python, "-c", "import flyvis"], capture_output=True,
                          check=False).returncode == 0


def machine(device: str, threads: int) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": cores, "torch": torch.__version__, "threads": threads,
            "device": device, "load_1min": round(load, 2), "quiet": load < 0.5}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores" + (f", GPU {m['gpu']}" if "gpu" in m else "")
             + f"; torch {m['torch']}; {m['threads']} torch threads; device {m['device']}; "
             f"1-min load {m['load_1min']} at start ({'quiet' if m['quiet'] else 'NOT quiet'}).",
             "", "| measurement | flyvis 1.2.0 | flygnn | ratio |", "|---|---|---|---|"]
    ours, theirs = res["flygnn"], res.get("flyvis", {})
    for batch, r in ours["sim"].items():
        fv = theirs.get("sim", {}).get(batch)
        ratio = f"{fv['step_ms'] / r['step_ms']:.1f}x" if fv else ""
        lines.append(f"| simulate, batch {batch}, ms per step | {fv['step_ms']:.2f} |" if fv else
                     f"| simulate, batch {batch}, ms per step | — |")
        lines[-1] += f" {r['step_ms']:.3f} | {ratio} |"
    for batch, r in ours["sim"].items():
        lines.append(f"| batch {batch}: step / torch CSR product (int64) | | "
                     f"{r['step_ms']:.3f} / {r['csr_ms']:.3f} ms | {r['step_ms'] / r['csr_ms']:.2f} |")
    for batch, r in ours["sim"].items():
        lines.append(f"| batch {batch}: synapse updates per second | | {r['syn_per_s']:.3g} | |")
    tr, ftr = ours["train"], theirs.get("train")
    lines.append(f"| training step (batch 4, {TRAIN_STEPS} steps, fwd + bwd), s | "
                 f"{ftr['seconds']:.3f} | {tr['seconds']:.3f} | {ftr['seconds'] / tr['seconds']:.1f}x |"
                 if ftr else f"| training step (batch 4, {TRAIN_STEPS} steps), s | — | "
                 f"{tr['seconds']:.3f} | |")
    lines.append(f"| peak memory of the training job, MB | {ftr['peak_mb']:.0f} | {tr['peak_mb']:.0f} "
                 f"| {tr['peak_mb'] / ftr['peak_mb']:.2f} |" if ftr else
                 f"| peak memory of the training job, MB | — | {tr['peak_mb']:.0f} | |")
    if "build_peak_mb" in tr:  # the same job's peak before its first training step
        fb, ob = (ftr or {}).get("build_peak_mb"), tr["build_peak_mb"]
        lines.append("| of which before training (imports, network, initial state), MB | "
                     + (f"{fb:.0f} | {ob:.0f} | {ob / fb:.2f} |" if fb else f"— | {ob:.0f} | |"))
    e = ours.get("ensemble")
    if e:
        lines.append(f"| {N_MODELS} models at batch 4 in one pass / one model, ms per step | | "
                     f"{e['stack_ms']:.2f} / {e['one_ms']:.2f} | {e['stack_ms'] / e['one_ms']:.2f} |")
        if "csr_all_ms" in e:  # what sharing the structure could reach at best
            lines.append(f"| floor: torch's CSR product of the graph with {N_MODELS} x 4 columns / "
                         f"with 4, ms | | {e['csr_all_ms']:.2f} / {e['csr_one_ms']:.2f} | "
                         f"{e['csr_all_ms'] / e['csr_one_ms']:.2f} |")
    for name, lt in (("flygnn", ours.get("load")), ("flyvis", theirs.get("load"))):
        if lt:
            lines.append(f"| {name} at defaults, batch 4, beside a CPU-bound process / as is, "
                         f"ms per step | | {lt['loaded']['step_ms']:.2f} / {lt['as_is']['step_ms']:.2f} "
                         f"({lt['loaded']['threads']} threads) | {lt['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--flyvis", default=FLYVIS_PYTHON, help="python with flyvis installed")
    parser.add_argument("--no-flyvis", action="store_true")
    parser.add_argument("--no-load", action="store_true", help="skip the load test")
    parser.add_argument("--out", default=os.environ.get("OUT"), help="folder for the results")
    args = parser.parse_args(argv)
    batches = args.batches or ([1, 4, 16, 64, 256] if args.device == "cuda" else [1, 4, 16, 64])
    res = {"machine": machine(args.device, args.threads)}
    common = {"threads": args.threads, "device": args.device, "batches": batches,
              "n_models": N_MODELS}
    py = sys.executable
    ours = {"sim": run_job(py, OURS, job="sim", repeats=args.repeats, steps=SIM_STEPS, **common),
            "train": run_job(py, OURS, job="train", repeats=max(1, args.repeats // 2),
                             steps=TRAIN_STEPS, **common),
            "ensemble": run_job(py, OURS, job="ensemble", repeats=args.repeats, steps=SIM_STEPS,
                                **common)}
    ours["sim"] = {int(k): v for k, v in ours["sim"].items() if k != "peak_mb"}
    if not args.no_load and args.device == "cpu":
        ours["load"] = load_test(py, False, args.repeats)
    res["flygnn"] = ours
    if not args.no_flyvis and args.device == "cpu" and flyvis_available(args.flyvis):
        fcommon = dict(common, batches=[b for b in batches if b <= 16])
        theirs = {"sim": run_job(args.flyvis, FLYVIS, job="sim", repeats=args.repeats,
                                 steps=SIM_STEPS, **fcommon),
                  "train": run_job(args.flyvis, FLYVIS, job="train",
                                   repeats=max(1, args.repeats // 2), steps=TRAIN_STEPS, **fcommon)}
        theirs["sim"] = {int(k): v for k, v in theirs["sim"].items() if k != "peak_mb"}
        if not args.no_load:
            theirs["load"] = load_test(args.flyvis, True, max(3, args.repeats // 2))
        res["flyvis"] = theirs
    table = markdown(res)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"bench_network_{args.device}.md").write_text(table)
        (out / f"bench_network_{args.device}.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
