"""The ``flygnn`` command line: ``flygnn demo``, ``flygnn connectome``, and the commands that
later modules register (train, simulate, validate, train-ensemble)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path

from flygnn import threads

__all__ = ["main"]


def _summary(args) -> int:
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import edges_frame, nodes_frame

    data = FlyVisConnectome(root=args.root, extent=args.extent)[0]
    nodes, edges = nodes_frame(data), edges_frame(data)
    per_type = nodes.groupby("type", sort=False).agg(role=("role", "first"), neurons=("u", "size"))
    per_type["in_synapses"] = edges.groupby("target_type", sort=False)["n_syn"].sum()
    per_type["out_synapses"] = edges.groupby("source_type", sort=False)["n_syn"].sum()
    per_type[["in_synapses", "out_synapses"]] = per_type[["in_synapses", "out_synapses"]].astype(float).fillna(0.0).round(1)
    print(f"flygnn connectome (extent {data.extent}): {len(per_type)} cell types, "
          f"{len(nodes):,} neurons, {len(edges):,} synapse edges in {len(data.edge_types)} type pairs, "
          f"{edges['n_syn'].astype(float).sum():,.1f} synapses")
    with __import__("pandas").option_context("display.max_rows", 100, "display.width", 120):
        print(per_type.to_string())
    return 0


def _add_connectome(sub) -> None:
    p = sub.add_parser("connectome", help="build the connectome and print a summary per cell type")
    p.add_argument("--extent", type=int, default=15)
    p.add_argument("--root", default=None, help="cache folder (default: per-user cache)")
    p.set_defaults(func=_summary)


def _demo(args) -> int:
    from flygnn.demo import run_demo

    speeds = _parse_speeds(args.speeds) if args.speeds else None
    kwargs = {"speeds": speeds} if speeds else {}
    run_demo(out=args.out, extent=args.extent, model=args.model, root=args.root,
             progress=not args.no_progress, **kwargs)
    return 0


def _parse_speeds(text: str) -> tuple[float, ...]:
    try:
        speeds = tuple(float(s) for s in text.split(","))
    except ValueError:
        speeds = ()
    if not speeds or not all(math.isfinite(s) and s > 0 for s in speeds):
        raise ValueError(f"--speeds: expected comma-separated positive numbers (e.g. 13,25), "
                         f"got {text!r}")
    return speeds


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: flash and moving-edge responses of the shipped "
                                    "model and a report with FRI and DSI against the known tables")
    p.add_argument("--extent", type=int, default=15)
    p.add_argument("--root", default=None, help="connectome cache folder (default: per-user cache)")
    p.add_argument("--out", default="flygnn-demo", help="report folder (a fresh one if it exists)")
    p.add_argument("--model", default=None, help="shipped model name or training run folder")
    p.add_argument("--speeds", default=None, help="comma-separated edge speeds (default: flyvis's six)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_demo)


def _plot_log(folder):
    """Write ``loss.png`` of a run or model folder from its ``log.csv``."""
    from pathlib import Path

    import pandas as pd

    from flygnn.plotting import loss_curve

    folder = Path(folder)
    if (folder / "log.csv").is_file():
        log = pd.read_csv(folder / "log.csv")
        if len(log):
            log = log.assign(iteration=range(1, len(log) + 1)) if "stage" in log else log
            loss_curve(log, path=folder / "loss.png")
            __import__("matplotlib.pyplot").pyplot.close("all")


def _train(args) -> int:
    import json
    from pathlib import Path

    if args.recipe is not None and args.config is not None:
        raise ValueError("give --recipe or --config, not both")
    recipe_run = args.recipe is not None or (args.config is None and args.resume
                                             and (Path(args.out) / "recipe.json").exists())
    try:
        if recipe_run:
            from flygnn.recipes import run_recipe

            if args.until is not None:
                raise ValueError("--until applies to a single stage (--config); a recipe "
                                 "stops with Ctrl-C and continues with --resume")
            metrics = run_recipe(args.recipe, args.out, seed=args.seed, overrides=args.set,
                                 resume=args.resume, progress=not args.no_progress,
                                 device=args.device)
        else:
            from flygnn.train import run_training

            overrides = list(args.set)
            if args.seed is not None:
                overrides.append(f"seed={args.seed}")
            if args.device is not None:
                overrides.append(f"device={args.device}")
            metrics = run_training(args.config, args.out, overrides, resume=args.resume,
                                   progress=not args.no_progress, until=args.until,
                                   on_validation=lambda trainer: _plot_log(trainer.out))
    except KeyboardInterrupt:
        print(f"\nflygnn train: interrupted; continue with: flygnn train --out {args.out} "
              "--resume", file=sys.stderr)
        return 130
    _plot_log(args.out)
    print(json.dumps(metrics, indent=2))
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a network and flow decoder on optic flow: a whole "
                                     "recipe (--recipe) or a single stage (--config)")
    p.add_argument("--recipe", default=None,
                   help="recipe name (tiny, cpu, flyvis) or JSON file: all its stages")
    p.add_argument("--config", default=None, help="TrainConfig JSON of a single stage "
                                                  "(optional with --resume)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (of every stage of a recipe), e.g. "
                        "optim.n_iters=1000 (repeatable)")
    p.add_argument("--seed", type=int, default=None, help="seed of the data order, "
                   "augmentation and dropout (default: the recipe's or config's)")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (may change on "
                                                  "--resume)")
    p.add_argument("--out", required=True, help="run folder (a model folder once finished)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--until", type=int, default=None,
                   help="stop (with a checkpoint) at this iteration (--config only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _simulate(args) -> int:
    from flygnn.pretrained import simulate_file

    result = simulate_file(args.model, args.movie, args.dt, args.out, record=args.record,
                           t_pre=args.t_pre)
    print(f"responses {result['responses'].shape} written to {args.out}")
    return 0


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="responses of a model to a movie file (.npy/.npz)")
    p.add_argument("--model", required=True, help="shipped model name, run folder or network file")
    p.add_argument("--movie", required=True, help=".npy/.npz of shape (T, n_hexals) or (B, T, n_hexals)")
    p.add_argument("--dt", type=float, default=0.02, help="seconds per frame")
    p.add_argument("--t-pre", type=float, default=1.0, help="seconds of grey before the movie")
    p.add_argument("--record", default=None, help="'central', 'output' or a cell type (default: all)")
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=_simulate)


def _validate(args) -> int:
    import json

    from flygnn.pretrained import validate_run

    result = validate_run(args.run, args.out, batch_size=args.batch_size, t_pre=args.t_pre)
    print(json.dumps(result, indent=2))
    return 0


def _add_validate(sub) -> None:
    p = sub.add_parser("validate", help="validation l2norm and EPE of a training run, as JSON")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--out", default=None, help="JSON file (default RUN/validation.json)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--t-pre", type=float, default=0.5, help="seconds of grey before each movie")
    p.set_defaults(func=_validate)


def _train_ensemble(args) -> int:
    import json

    from flygnn.config import TrainConfig
    from flygnn.distributed import train_ensemble

    config = None
    if args.config is not None or args.set:
        config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
        config = config.with_overrides(args.set)
    elif not args.resume:
        raise ValueError("--config is required unless --resume continues an ensemble")
    manifest = train_ensemble(config, args.out, n_members=args.members, seeds=args.seeds,
                              address=args.address, max_retries=args.max_retries,
                              num_cpus_per_member=args.cpus_per_member,
                              num_gpus_per_member=args.gpus_per_member, num_cpus=args.num_cpus,
                              resume=args.resume, progress=not args.no_progress)
    rows = [{"name": m["name"], "seed": m["seed"], "status": m["status"],
             "attempts": m["attempts"], "best_val_epe": (m["metrics"] or {}).get("best_val_epe"),
             "error": m["error"]} for m in manifest["members"]]
    print(json.dumps(rows, indent=2))
    return 0 if all(m["status"] == "done" for m in manifest["members"]) else 1


def _add_train_ensemble(sub) -> None:
    p = sub.add_parser("train-ensemble", help="train N models in parallel on Ray (flygnn[ray])")
    p.add_argument("--config", default=None, help="TrainConfig JSON (optional with --resume)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. optim.n_iters=1000 (repeatable)")
    p.add_argument("--members", type=int, default=None, help="number of members (seeds "
                   "config.seed + i)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="one seed per member")
    p.add_argument("--out", required=True, help="ensemble folder")
    p.add_argument("--address", default=None, help="Ray cluster: <head>:6379, auto or "
                   "ray://<head>:10001 (default: a local Ray on this machine)")
    p.add_argument("--resume", action="store_true", help="continue the ensemble in --out")
    p.add_argument("--max-retries", type=int, default=2, help="retries of a failed member")
    p.add_argument("--cpus-per-member", type=int, default=1, help="CPUs (torch threads) per member")
    p.add_argument("--gpus-per-member", type=float, default=0, help="GPUs per member")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_ensemble)


def _evaluate_ensemble(args) -> int:
    from pathlib import Path

    from flygnn.config import apply_overrides
    from flygnn.distributed import evaluate_ensemble

    options = apply_overrides({}, args.set)
    unknown = sorted(set(options) - {"flashes", "edges", "cluster"})
    if unknown or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"--set keys must start with flashes., edges. or cluster., got {args.set}")
    result = evaluate_ensemble(args.dir, address=args.address, stimuli=args.stimuli,
                               flashes=options.get("flashes"), edges=options.get("edges"),
                               cluster_types=args.cluster_types, cluster=options.get("cluster"),
                               num_cpus_per_member=args.cpus_per_member, num_cpus=args.num_cpus)
    folder = Path(args.dir) / "evaluation"
    if "fri" in result and "dsi" in result:  # prediction quality vs task error (Fig. 2)
        from flygnn import plotting
        from flygnn.analysis.ensemble_report import EnsembleAnalysis

        analysis = EnsembleAnalysis.from_indices(result["fri"], result["dsi"],
                                                 result["validation_loss"],
                                                 result.get("preferred_direction"))
        analysis.save(folder)
        plotting.prediction_quality(analysis.table, path=folder / "prediction_quality.png")
        print(analysis.summary.round(3).to_string())
    print(f"evaluated {len(result['names'])} members; results in {folder}")
    return 0


def _add_evaluate_ensemble(sub) -> None:
    p = sub.add_parser("evaluate-ensemble", help="responses, indices and clustering of an "
                       "ensemble, in parallel on Ray (flygnn[ray])")
    p.add_argument("dir", help="ensemble folder (written by train-ensemble)")
    p.add_argument("--address", default=None, help="Ray cluster address, as for train-ensemble")
    p.add_argument("--stimuli", nargs="+", default=["flashes", "edges"],
                   choices=["flashes", "edges"], help="stimuli to simulate")
    p.add_argument("--cluster-types", nargs="*", default=["T4c", "T5c"],
                   help="cell types whose members are clustered (none: no clustering)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="runner options, e.g. flashes.dt=0.01, edges.speeds=[19,25], "
                        "cluster.n_init=10 (repeatable)")
    p.add_argument("--cpus-per-member", type=int, default=1, help="CPUs (torch threads) per member")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default all)")
    p.set_defaults(func=_evaluate_ensemble)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flygnn", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_connectome, _add_train, _add_simulate, _add_validate,
                _add_train_ensemble, _add_evaluate_ensemble):
        add(sub)
    for p in sub.choices.values():  # --debug also after the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
    return parser


#: output paths checked before a command runs: command -> (attribute, option, "file"/"folder")
OUTPUTS = {"simulate": ("out", "--out", "file"), "validate": ("out", "--out", "file"),
           "demo": ("out", "--out", "folder"), "train": ("out", "--out", "folder"),
           "train-ensemble": ("out", "--out", "folder")}


def check_output(path: str | os.PathLike, option: str, kind: str) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Raises:
        ValueError: ``path`` is a folder where a file is expected (or the reverse), lies under
            a file, or its nearest existing folder is not writable; naming ``option``.
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder; expected a file name")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a file; expected a folder")
    parent = path if kind == "folder" else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file")
    folder = path if path.is_dir() else parent
    try:  # a real probe: permissions, read-only file systems, /proc, ...
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"{option} {str(path)!r}: cannot write in {str(folder)!r} "
                         f"({err.strerror or err})") from None


def _one_line(err: BaseException) -> str:
    """An exception as one line: its message (OSErrors: reason and file), never a traceback."""
    if isinstance(err, OSError) and err.strerror:
        names = [str(n) for n in (err.filename, err.filename2) if n is not None]
        text = f"{err.strerror}: {' -> '.join(repr(n) for n in names)}" if names else err.strerror
    else:
        text = str(err) or type(err).__name__
    text = " ".join(line.strip() for line in text.strip().splitlines())
    known = (ValueError, OSError, ImportError, KeyError)
    return text if isinstance(err, known) else f"{type(err).__name__}: {text}"


def main(argv=None) -> int:
    """Run the command line; errors print one line (``--debug``: the traceback) and return 2
    (1 for an unexpected error, 130 when interrupted)."""
    threads.configure_process()  # before torch starts: idle OpenMP threads sleep
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command in OUTPUTS:
            attr, option, kind = OUTPUTS[args.command]
            if getattr(args, attr, None) is not None:
                check_output(getattr(args, attr), option, kind)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"flygnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error becomes one line (see --debug)
        if args.debug:
            traceback.print_exc()
        expected = isinstance(err, (ValueError, OSError, ImportError))
        hint = "" if expected or args.debug else " (an unexpected error: rerun with --debug)"
        print(f"flygnn {args.command}: error: {_one_line(err)}{hint}", file=sys.stderr)
        return 2 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
