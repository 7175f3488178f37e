"""Time building the extent-15 connectome from the JSON and loading it from the processed cache.

Usage: python benchmarks/bench_connectome.py [--repeats 5]
Each measurement runs in a fresh subprocess (cold Python, torch and PyG already imported before
the clock starts), so caches in memory do not help.
"""

import argparse
import json
import subprocess
import sys
import tempfile

SNIPPET = r"""
import json, sys, time
from flygnn.datasets import FlyVisConnectome
from flygnn.flat import flatten
root, force = sys.argv[1], sys.argv[2] == "1"
t0 = time.perf_counter()
data = FlyVisConnectome(root=root, extent=15, force_reload=force)[0]
t1 = time.perf_counter()
flat = flatten(data)
t2 = time.perf_counter()
print(json.dumps({"dataset": t1 - t0, "flatten": t2 - t1, "nodes": flat.num_nodes, "edges": flat.num_edges}))
"""


def run(root: str, force: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", SNIPPET, root, "1" if force else "0"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        builds = [run(root, force=True) for _ in range(args.repeats)]
        loads = [run(root, force=False) for _ in range(args.repeats)]
    best = lambda rows, key: min(r[key] for r in rows)  # noqa: E731
    print(f"graph: {builds[0]['nodes']:,} nodes, {builds[0]['edges']:,} edges")
    print(f"build from JSON (extent 15): best {best(builds, 'dataset'):.3f} s of {args.repeats} (goal <= 3 s)")
    print(f"load from processed cache:   best {best(loads, 'dataset'):.3f} s of {args.repeats} (goal <= 0.5 s)")
    print(f"flatten to flyvis order:     best {best(loads, 'flatten'):.3f} s")


if __name__ == "__main__":
    main()
