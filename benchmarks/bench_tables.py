"""Time and memory of a connectome from neuron-level tables, at the size of the optic lobes.

A synthetic graph of a chosen size stands in for the real exports (which are not shipped):
columnar types with one neuron per column of a hexagonal lattice, sparse types with a few
neurons at random columns, every source type projecting onto ``--partners`` random target
types, each edge reaching a neuron within hex distance 2 of its source's column (a random
neuron for sparse types), counts ``1 + Geometric(0.25)``. Measured, in one process:

* ``tables``: writing the three tables; ``dataset``: ``TableConnectome`` (validation and
  build, no cache); ``network``: ``Network(data)``;
* ``sim``: ms per Euler step without gradients (batch 1 and 4, all neurons recorded);
* ``train``: seconds for one step with gradients (batch 4, 20 frames, mean-square loss on
  all activity, backward to all parameters);
* ``peak RSS`` after each phase (``ru_maxrss``, so it only grows).

Presets (neurons, cell types, edges, lattice extent):

* ``small`` (default, seconds): 3,000 neurons, 40 types, 60k edges, extent 5;
* ``flywire``: 45,000 neurons, 230 types, 2M edges, extent 16 (FlyWire right optic lobe:
  about 45k neurons and ~230 intrinsic types; the edge count is an assumption);
* ``male``: 53,000 neurons, 732 types, 3M edges, extent 17 (male optic lobe: about 53k
  neurons in 732 types; the edge count is an assumption).

Usage::

    python benchmarks/bench_tables.py [--preset small|flywire|male] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from flygnn import Network, hexgrid, simulate
from flygnn.datasets import TableConnectome
from flygnn.optic_lobe import write_tables

PRESETS = {"small": (3_000, 40, 60_000, 5), "flywire": (45_000, 230, 2_000_000, 16),
           "male": (53_000, 732, 3_000_000, 17)}


def synthetic_tables(n_neurons, n_types, n_edges, extent, partners=30, seed=0):
    """Three tables of about the given size (see the module docstring)."""
    rng = np.random.default_rng(seed)
    u, v = hexgrid.disk(extent)
    n_col = len(u)
    n_columnar = max(2, min(n_types - 1, int(0.8 * n_neurons) // n_col))
    per_sparse = max(1, (n_neurons - n_columnar * n_col) // max(1, n_types - n_columnar))
    types, cols = [], []
    for k in range(n_types):
        m = n_col if k < n_columnar else per_sparse
        types += [k] * m
        cols += list(range(n_col)) if k < n_columnar else list(rng.integers(0, n_col, m))
    types, cols = np.array(types), np.array(cols)
    neurons = pd.DataFrame({"id": np.arange(len(types)), "type": [f"T{k}" for k in types],
                            "u": u[cols], "v": v[cols]})
    lookup = {(a, b): i for i, (a, b) in enumerate(zip(u.tolist(), v.tolist()))}
    grid = np.full((2 * extent + 1, 2 * extent + 1), -1)
    for (a, b), i in lookup.items():
        grid[a + extent, b + extent] = i
    start = np.concatenate([[0], np.cumsum(np.bincount(types, minlength=n_types))])
    partner = rng.integers(0, n_types, (n_types, partners))
    pre = rng.integers(0, len(types), int(n_edges * 1.3))
    tt = partner[types[pre], rng.integers(0, partners, len(pre))]
    du, dv = rng.integers(-2, 3, len(pre)), rng.integers(-2, 3, len(pre))
    near = np.abs(du + dv) <= 2
    tu, tv = u[cols[pre]] + du, v[cols[pre]] + dv
    inside = near & (np.abs(tu) <= extent) & (np.abs(tv) <= extent) & (np.abs(tu + tv) <= extent)
    col = np.where(inside, grid[np.clip(tu + extent, 0, 2 * extent),
                                np.clip(tv + extent, 0, 2 * extent)], -1)
    columnar = tt < n_columnar
    post = np.where(columnar, start[tt] + col,
                    start[tt] + rng.integers(0, per_sparse, len(pre)) % np.maximum(
                        start[tt + 1] - start[tt], 1))
    ok = ~columnar | (col >= 0)
    syn = pd.DataFrame({"pre": pre[ok], "post": post[ok]})
    syn = syn[syn.pre != syn.post].drop_duplicates().head(n_edges)
    syn["n_syn"] = 1 + rng.geometric(0.25, len(syn))
    types_table = pd.DataFrame({"type": [f"T{k}" for k in range(n_types)],
                                "sign": rng.choice([-1, 1], n_types),
                                "role": ["input"] + ["hidden"] * (n_types - 2) + ["output"]})
    return neurons, syn.reset_index(drop=True), types_table


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--partners", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n, k, e, extent = PRESETS[args.preset]
    out = {"preset": args.preset}
    tables = synthetic_tables(n, k, e, extent, args.partners)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = write_tables(tables, f"{tmp}/t", format="csv")
        out["tables_s"] = time.perf_counter() - t
        t = time.perf_counter()
        data = TableConnectome(root=f"{tmp}/cache", **paths)[0]
        out["dataset_s"], out["rss_dataset_mb"] = time.perf_counter() - t, peak_mb()
    t = time.perf_counter()
    net = Network(data)
    out["network_s"], out["rss_network_mb"] = time.perf_counter() - t, peak_mb()
    g = net.graph
    out.update(neurons=g.num_nodes, edges=g.num_edges, types=len(g.cell_types),
               pairs=len(g.pairs), count_groups=len(g.offsets), n_hexals=net.n_hexals)
    for batch in (1, 4):
        movie = torch.rand(batch, 30, net.n_hexals)
        with torch.no_grad():
            simulate(net, movie[:, :3], dt=0.02)
            t = time.perf_counter()
            simulate(net, movie, dt=0.02)
        out[f"sim_ms_per_step_b{batch}"] = (time.perf_counter() - t) / 30 * 1e3
    out["rss_sim_mb"] = peak_mb()
    movie = torch.rand(4, 20, net.n_hexals)
    t = time.perf_counter()
    loss = simulate(net, movie, dt=0.02).pow(2).mean()
    loss.backward()
    out["train_step_s"], out["rss_train_mb"] = time.perf_counter() - t, peak_mb()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()},
                     indent=1))
    return out


if __name__ == "__main__":
    main()
