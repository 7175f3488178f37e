"""The training commands of the ``flygnn`` command line (:mod:`flygnn.cli`): ``flygnn train``
(a recipe or a single stage, with its loss curve) and ``flygnn train-ensemble`` (several
models on Ray). Each ``add_*`` function adds one subcommand to the parser; flygnn's modules
are imported only when a command runs.
"""

from __future__ import annotations

import sys

from flygnn.cli_common import add_command, show_progress

__all__ = ["add_train", "add_train_ensemble"]


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
                                 device=args.device, reuse=args.reuse)
        else:
            from flygnn.train import run_training

            if args.reuse is not None:
                raise ValueError("--reuse takes stages from a recipe run (--recipe)")
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


def add_train(sub) -> None:
    """Add ``flygnn train`` to the subparsers ``sub``."""
    p = add_command(sub, "train", "train a network and flow decoder on optic flow: a whole recipe "
                               "(--recipe) or a single stage (--config)")
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
    p.add_argument("--reuse", default=None, metavar="RUN",
                   help="copy the leading finished stages of the recipe run RUN whose configs "
                        "(seed and overrides included) equal this recipe's, then train the "
                        "rest (--recipe only)")
    p.add_argument("--until", type=int, default=None,
                   help="stop (with a checkpoint) at this iteration (--config only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


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
                              resume=args.resume, progress=show_progress(args))
    rows = [{"name": m["name"], "seed": m["seed"], "status": m["status"],
             "attempts": m["attempts"], "best_val_epe": (m["metrics"] or {}).get("best_val_epe"),
             "error": m["error"]} for m in manifest["members"]]
    print(json.dumps(rows, indent=2))
    return 0 if all(m["status"] == "done" for m in manifest["members"]) else 1


def add_train_ensemble(sub) -> None:
    """Add ``flygnn train-ensemble`` to the subparsers ``sub``."""
    p = add_command(sub, "train-ensemble", "train several models in parallel on Ray "
                 "(pip install 'flygnn[ray]')")
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
