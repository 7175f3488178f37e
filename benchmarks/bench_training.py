"""Time and peak memory of one optic-flow training iteration of the shipped recipe.

The ``strengths`` stage of the ``cpu`` recipe (batch 4, 40 frames at dt 0.02, the
grey rest recomputed before every step, synapse strengths and time constants trained,
decoder) starting from the shipped model, at extents 5 and 15, with and without the
gradient through the rest (``optim.rest_grad_steps``). Each job runs in a fresh subprocess
with one torch thread; reported: seconds per iteration (mean after one warm-up iteration)
and the job's peak resident memory. The 8 training movies are rendered once into the cache.

Usage::

    python benchmarks/bench_training.py [--iterations 10] [--extents 5 15]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

JOB = textwrap.dedent("""
    import json, resource, tempfile, time
    import torch
    torch.set_num_threads(1)
    from flygnn.recipes import load_recipe, stage_configs
    from flygnn.train import Trainer
    models = "{root}/data/models/flow_cpu_threshold"
    cfg = stage_configs(load_recipe("cpu"))[1].with_overrides([
        "network.extent={extent}", f"network.init={{models}}/network.pt",
        f"decoder.init={{models}}/decoder.pt", "data.n_train=8", "data.n_val=1",
        "optim.rest_grad_steps={steps}"])
    trainer = Trainer(cfg, tempfile.mkdtemp() + "/run")
    trainer.train(until=1)
    t0 = time.perf_counter()
    trainer.train(until=1 + {iterations})
    print(json.dumps({{"s_per_it": (time.perf_counter() - t0) / {iterations},
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
""")


def run(extent: int, steps: int, iterations: int) -> dict:
    code = JOB.format(root=ROOT, extent=extent, steps=steps, iterations=iterations)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--extents", type=int, nargs="+", default=[5, 15])
    args = parser.parse_args()
    print(f"{'extent':>6} {'rest gradient':>14} {'s / iteration':>14} {'peak MiB':>9}")
    for extent in args.extents:
        for steps in (0, 200):
            r = run(extent, steps, args.iterations)
            label = "off" if steps == 0 else f"GMRES <= {steps}"
            print(f"{extent:>6} {label:>14} {r['s_per_it']:>14.3f} {r['peak_mib']:>9.0f}")


if __name__ == "__main__":
    main()
