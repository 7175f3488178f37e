"""Copy a finished training run into ``data/models/`` as a shipped model folder.

Usage::

    python tools/ship_model.py RUN_DIR DEST_DIR [--every 10]

Copies ``network.pt``, ``decoder.pt``, ``metrics.json``, ``recipe.json`` and ``loss.png``;
writes ``config.json`` in the current configuration keys (so the model loads without
deprecation warnings; the values are unchanged, checked by loading both, except that a
``network.init``/``decoder.init`` inside the run folder is written relative to it, e.g.
``stages/3_refine/network.pt``: the machine's paths do not ship); and thins
``log.csv`` to every ``--every``-th iteration, every row with a validation score and each
stage's last row (the shipped folders stay small; the run folder keeps the full log). A
model on a null-model connectome (``network.connectome`` transforms: seeded, rebuilt from the
config) ships its network without the graph's tables (``Network.save(graph_tables=False)``),
checked to load back equal. The
stages' intermediate weights (``stages/``) are not shipped: the recipe and the seed
reproduce them. Refuses to write into a non-empty ``DEST_DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import warnings
from pathlib import Path

REQUIRED = ("network.pt", "decoder.pt", "config.json", "metrics.json", "log.csv")
OPTIONAL = ("recipe.json", "loss.png")


def thin_log(source: Path, dest: Path, every: int) -> tuple[int, int]:
    """Write the kept rows of ``source`` to ``dest``; returns (rows read, rows kept)."""
    with open(source, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{source}: empty log")
    fields = list(rows[0])
    keep = []
    for i, row in enumerate(rows):
        last_of_stage = i + 1 == len(rows) or rows[i + 1].get("stage") != row.get("stage")
        validated = row.get("val_epe", "") not in ("", "nan")
        if int(row["iteration"]) % every == 0 or validated or last_of_stage:
            keep.append(row)
    with open(dest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(keep)
    return len(rows), len(keep)


def relative_inits(config, run: Path):
    """``config`` with its ``network.init``/``decoder.init`` written relative to ``run`` where
    they lie inside it (a recipe's stages start from the previous stage's files)."""
    root = run.resolve()
    overrides = []
    for key, value in (("network.init", config.network.init),
                       ("decoder.init", config.decoder.init)):
        if value is None:
            continue
        path = Path(value).resolve()
        if path.is_relative_to(root):
            overrides.append(f"{key}={json.dumps(path.relative_to(root).as_posix())}")
    return config.with_overrides(overrides) if overrides else config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args(argv)
    missing = [name for name in REQUIRED if not (args.run / name).is_file()]
    if missing:
        raise SystemExit(f"{args.run}: not a finished run (missing {missing})")
    if args.dest.exists() and any(args.dest.iterdir()):
        raise SystemExit(f"{args.dest}: exists and is not empty; remove it first")
    from flygnn.config import TrainConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config = TrainConfig.from_json(args.run / "config.json")
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in ("network.pt", "decoder.pt", "metrics.json", *OPTIONAL):
        if (args.run / name).is_file():
            shutil.copyfile(args.run / name, args.dest / name)
    config = relative_inits(config, args.run)
    config.to_json(args.dest / "config.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        again = TrainConfig.from_json(args.dest / "config.json")
    if again != config:
        raise SystemExit("config.json did not round-trip")
    if config.network.connectome:  # a seeded null model: its graph is rebuilt, not stored
        import torch

        from flygnn.pretrained import load_model

        run_net = load_model(args.run).network
        run_net.save(args.dest / "network.pt", graph_tables=False)
        shipped = load_model(args.dest).network.state_dict()
        if any(not torch.equal(v, shipped[k]) for k, v in run_net.state_dict().items()):
            raise SystemExit("the rebuilt graph does not give the run's network back")
    read, kept = thin_log(args.run / "log.csv", args.dest / "log.csv", args.every)
    metrics = json.loads((args.dest / "metrics.json").read_text())
    print(f"{args.dest}: best_val_epe {metrics.get('best_val_epe')}, log {kept} of {read} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
