"""flygnn: the fruit-fly visual system connectome as a graph neural network.

Simulate the shipped trained models on your own movies, score them against the flies' known
cell-type tuning, and train new models and ensembles. Run "flygnn COMMAND --help" for the
options of a command.
"""

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

__all__ = ["main", "build_parser"]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and appends "(default: X)" to options that have one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) \
                or action.default == [] or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _command(sub, name: str, summary: str, details: str = ""):
    """A subcommand whose one-line ``summary`` is listed by ``flygnn --help``."""
    return sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:]
                          + "." + (f"\n\n{details}" if details else ""),
                          formatter_class=_HelpFormatter)


def _progress(args) -> bool:
    """Progress bars only on a terminal, and never with --no-progress."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _summary(args) -> int:
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import edges_frame, nodes_frame

    data = FlyVisConnectome(root=args.root, extent=args.extent)[0]
    nodes, edges = nodes_frame(data), edges_frame(data)
    per_type = nodes.groupby("type", sort=False).agg(role=("role", "first"), neurons=("u", "size"))
    per_type["in_synapses"] = edges.groupby("target_type", sort=False)["n_syn"].sum()
    per_type["out_synapses"] = edges.groupby("source_type", sort=False)["n_syn"].sum()
    cols = ["in_synapses", "out_synapses"]
    per_type[cols] = per_type[cols].astype(float).fillna(0.0).round(1)
    print(f"flygnn connectome (extent {data.extent}): {len(per_type)} cell types, "
          f"{len(nodes):,} neurons, {len(edges):,} synapse edges in {len(data.edge_types)} "
          "type pairs, "
          f"{edges['n_syn'].astype(float).sum():,.1f} synapses")
    with __import__("pandas").option_context("display.max_rows", 100, "display.width", 120):
        print(per_type.to_string())
    return 0


def _add_connectome(sub) -> None:
    p = _command(sub, "connectome", "build the connectome and print a summary per cell type",
                 "Neurons, role and synapses in and out per cell type, on a hexagonal lattice "
                 "of\n3 * extent * (extent + 1) + 1 columns (721 at extent 15).")
    p.add_argument("--extent", type=int, default=15, help="lattice radius in columns")
    p.add_argument("--root", default=None,
                   help="cache folder (default: $FLYGNN_CACHE/connectome or "
                        "~/.cache/flygnn/connectome)")
    p.set_defaults(func=_summary)


def _demo(args) -> int:
    from flygnn.demo import run_demo

    speeds = _parse_speeds(args.speeds) if args.speeds else None
    kwargs = {"speeds": speeds} if speeds else {}
    run_demo(out=args.out, extent=args.extent, model=args.model, root=args.root,
             progress=_progress(args), **kwargs)
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
    p = _command(sub, "demo", "score the shipped model against the flies' known tuning",
                 "Simulates flashes and moving edges with the shipped trained model and the\n"
                 "untrained network, and writes a report folder: flash response (FRI) and\n"
                 "direction selectivity (DSI) indices per cell type, preferred directions,\n"
                 "their agreement with the known data, tables (CSV) and figures (PNG).\n"
                 "A few minutes on one CPU core; responses are cached, so a rerun is faster.")
    p.add_argument("--extent", type=int, default=15,
                   help="lattice radius in columns (the shipped models are trained at 15)")
    p.add_argument("--root", default=None, help="connectome cache folder (default: "
                   "$FLYGNN_CACHE/connectome or ~/.cache/flygnn/connectome)")
    p.add_argument("--out", default=None, help="report folder; a fresh sibling if it exists "
                   "(default: $FLYGNN_CACHE/demo or ~/.cache/flygnn/demo)")
    p.add_argument("--model", default=None, help="shipped model or ensemble name, training "
                   "run folder, or a folder of them (an ensemble: its best model by validation "
                   "EPE; default: the shipped ensemble flow_cpu, else flow_cpu_threshold)")
    p.add_argument("--speeds", default=None, help="comma-separated edge speeds in columns per "
                   "second (default: 2.4,4.8,9.7,13,19,25, as flyvis)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they appear only on a terminal anyway)")
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
    p = _command(sub, "train", "train a network and flow decoder on optic flow: a whole recipe "
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
    p.add_argument("--until", type=int, default=None,
                   help="stop (with a checkpoint) at this iteration (--config only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _simulate(args) -> int:
    from flygnn.pretrained import simulate_file

    result = simulate_file(args.model, args.movie, args.dt, args.out, record=args.record,
                           t_pre=args.t_pre, check_range=not args.any_range)
    print(f"responses {result['responses'].shape} written to {args.out}")
    return 0


def _add_simulate(sub) -> None:
    p = _command(sub, "simulate", "responses of a model to a movie file (.npy or .npz)",
                 "The movie holds luminance in [0, 1] (0 black, 0.5 grey, 1 white), one value per\n"
                 "column of the hexagonal eye: shape (T, n_hexals) or (B, T, n_hexals), with\n"
                 "n_hexals = 721 at extent 15. A movie with values outside [0, 1] (for example\n"
                 "8-bit 0-255 frames) is refused: divide it by 255 first. Writes responses\n"
                 "(B, T, K), node_index, node_type, dt and t_pre (and the decoded flow for a\n"
                 "model with a decoder) to OUT.")
    p.add_argument("--model", required=True,
                   help="shipped model name, run folder, Network.save file or flyvis checkpoint")
    p.add_argument("--movie", required=True, help=".npy, or .npz with a 'movie' array, of "
                   "luminance in [0, 1]")
    p.add_argument("--dt", type=float, default=0.02, help="seconds per frame")
    p.add_argument("--t-pre", type=float, default=1.0,
                   help="seconds of grey (0.5) before the movie, to reach the steady state")
    p.add_argument("--record", default=None,
                   help="'central', 'output' or a cell type (default: every neuron)")
    p.add_argument("--any-range", action="store_true",
                   help="simulate a movie with values outside [0, 1] anyway")
    p.add_argument("--out", required=True, help="output .npz file")
    p.set_defaults(func=_simulate)


def _validate(args) -> int:
    import json

    from flygnn.pretrained import validate_run

    run = args.run_option or args.run
    if run is None:
        raise ValueError("name a run folder or a shipped model, e.g. flygnn validate "
                         "flow_cpu_threshold")
    result = validate_run(run, args.out, batch_size=args.batch_size, t_pre=args.t_pre,
                          progress=_progress(args))
    print(json.dumps(result, indent=2))
    return 0


def _add_validate(sub) -> None:
    p = _command(sub, "validate", "validation l2norm and EPE of a run or shipped model, as JSON",
                 "Renders the run's validation movies and scores its network and decoder with\n"
                 "the run's own validation settings (optim.val_t_pre, optim.val_batch_size), so\n"
                 "the numbers equal the val_l2norm and val_epe of its metrics.json (shown as\n"
                 "'recorded'). About a minute at extent 15.")
    p.add_argument("run", nargs="?", default=None,
                   help="run folder or shipped model name (e.g. flow_cpu_threshold)")
    p.add_argument("--run", dest="run_option", default=None, metavar="RUN",
                   help="the same, as an option")
    p.add_argument("--out", default=None, help="JSON file to write (default: RUN/validation.json "
                   "for a run folder, none for a shipped model)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="movies per batch (default: the run's optim.val_batch_size)")
    p.add_argument("--t-pre", type=float, default=None, help="seconds of grey before each movie "
                   "(default: the run's optim.val_t_pre)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it appears only on a terminal anyway)")
    p.set_defaults(func=_validate)


def _score(args) -> int:
    from flygnn.analysis.score_report import run_score

    options = _runner_options(args.set, {"flashes", "edges"})
    run_score(args.dirs, args.names, [(g[0], g[1:]) for g in args.ensemble], args.out,
              args.extent, args.criteria, options.get("flashes"), options.get("edges"),
              progress=_progress(args))
    return 0


def _add_score(sub) -> None:
    p = _command(sub, "score", "score models and ensembles against the known tuning and "
                 "their recipe's criteria", "Simulates flyvis's protocols here (no Ray; one "
                 "pass per graph) and writes per model\ntraining time, EPE vs zero flow, "
                 "FRI/DSI correlations, wrong-sign types, T4/T5 DSI and\nangle errors and "
                 "the criteria check; per ensemble medians and the task-error relation.")
    p.add_argument("dirs", nargs="*", metavar="DIR", help="model folders (together one "
                   "ensemble) or ensemble folders (one ensemble each)")
    p.add_argument("--names", nargs="+", default=None, help="names of the ensembles of DIR")
    p.add_argument("--ensemble", nargs="+", action="append", default=[],
                   metavar=("NAME", "DIR"), help="an ensemble of these model or ensemble "
                   "folders (repeatable: e.g. --ensemble true runs/cpu_seed* --ensemble "
                   "rewired runs/rewired_seed*)")
    p.add_argument("--out", default=None, help="report folder; a fresh sibling if it exists "
                   "(default: $FLYGNN_CACHE/score or ~/.cache/flygnn/score)")
    p.add_argument("--extent", type=int, default=None, help="lattice extent of the scoring "
                   "(default: each model's own)")
    p.add_argument("--criteria", default=None, metavar="RECIPE_OR_FILE", help="criteria for "
                   "every model: a recipe name (e.g. cpu) or JSON file (default: those of each "
                   "model's recipe.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="replace a protocol setting, e.g. edges.speeds=[19,25] or flashes.dt="
                        "0.01 (repeatable)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they appear only on a terminal anyway)")
    p.set_defaults(func=_score)


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
                              resume=args.resume, progress=_progress(args))
    rows = [{"name": m["name"], "seed": m["seed"], "status": m["status"],
             "attempts": m["attempts"], "best_val_epe": (m["metrics"] or {}).get("best_val_epe"),
             "error": m["error"]} for m in manifest["members"]]
    print(json.dumps(rows, indent=2))
    return 0 if all(m["status"] == "done" for m in manifest["members"]) else 1


def _add_train_ensemble(sub) -> None:
    p = _command(sub, "train-ensemble", "train several models in parallel on Ray "
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


def _runner_options(sets: list[str], allowed: set[str]) -> dict:
    """``--set flashes.dt=0.01`` ... as ``{"flashes": {"dt": 0.01}}``; keys among ``allowed``."""
    from flygnn.config import apply_overrides

    options = apply_overrides({}, sets)
    unknown = sorted(set(options) - allowed)
    if unknown or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError(f"--set keys must start with {', '.join(sorted(allowed))} followed by "
                         f"a dot, got {sets}")
    return options


def _evaluate_ensemble(args) -> int:
    from pathlib import Path

    from flygnn.distributed import evaluate_ensemble

    options = _runner_options(args.set, {"flashes", "edges", "cluster"})
    result = evaluate_ensemble(args.dir, address=args.address, stimuli=args.stimuli,
                               flashes=options.get("flashes"), edges=options.get("edges"),
                               cluster_types=args.cluster_types, cluster=options.get("cluster"),
                               num_cpus_per_member=args.cpus_per_member, num_cpus=args.num_cpus)
    folder = Path(args.dir) / "evaluation"
    if "fri" in result and "dsi" in result:  # prediction quality vs task error (Fig. 2)
        from flygnn.analysis.score_report import write_evaluation

        print(write_evaluation(result, args.dir).summary.round(3).to_string())
    print(f"evaluated {len(result['names'])} members; results in {folder}")
    return 0


def _add_evaluate_ensemble(sub) -> None:
    p = _command(sub, "evaluate-ensemble", "responses, tuning indices and clustering of a "
                 "trained ensemble, on Ray (pip install 'flygnn[ray]')")
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
    parser = argparse.ArgumentParser(prog="flygnn", description=__doc__,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="COMMAND")
    for add in (_add_demo, _add_connectome, _add_train, _add_simulate, _add_validate,
                _add_score, _add_train_ensemble, _add_evaluate_ensemble):
        add(sub)
    for p in sub.choices.values():  # --debug also after the command
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
    return parser


#: output paths checked before a command runs: command -> (attribute, option, "file"/"folder")
OUTPUTS = {"simulate": ("out", "--out", "file"), "validate": ("out", "--out", "file"),
           "demo": ("out", "--out", "folder"), "train": ("out", "--out", "folder"),
           "score": ("out", "--out", "folder"),
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
