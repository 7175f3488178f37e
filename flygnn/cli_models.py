"""The commands of the ``flygnn`` command line (:mod:`flygnn.cli`) that run trained models:
``flygnn simulate`` (responses to a movie file), ``flygnn validate`` (validation error),
``flygnn score`` (tuning against the known data) and ``flygnn evaluate-ensemble`` (on Ray).
Each ``add_*`` function adds one subcommand to the parser; flygnn's modules are imported only
when a command runs.
"""

from __future__ import annotations

from flygnn.cli_common import add_command, runner_options, show_progress

__all__ = ["add_evaluate_ensemble", "add_score", "add_simulate", "add_validate"]


def _simulate(args) -> int:
    from flygnn.pretrained import simulate_file

    result = simulate_file(args.model, args.movie, args.dt, args.out, record=args.record,
                           t_pre=args.t_pre, check_range=not args.any_range)
    print(f"responses {result['responses'].shape} written to {args.out}")
    return 0


def add_simulate(sub) -> None:
    """Add ``flygnn simulate`` to the subparsers ``sub``."""
    p = add_command(sub, "simulate", "responses of a model to a movie file (.npy or .npz)",
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
                          progress=show_progress(args), val_start=args.val_start,
                          n_val=args.n_val)
    print(json.dumps(result, indent=2))
    return 0


def add_validate(sub) -> None:
    """Add ``flygnn validate`` to the subparsers ``sub``."""
    p = add_command(sub, "validate", "validation l2norm and EPE of a run or shipped model, as JSON",
                 "Renders the run's validation movies and scores its network and decoder with\n"
                 "the run's own validation settings (optim.val_t_pre, optim.val_batch_size), so\n"
                 "the numbers equal the val_l2norm and val_epe of its metrics.json (shown as\n"
                 "'recorded'). About a minute at extent 15. --val-start/--n-val score another\n"
                 "block of the same movie set, e.g. held-out movies no stage trained on.")
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
    p.add_argument("--val-start", type=int, default=None, metavar="ITEM",
                   help="first movie to score (default: the run's data.val_start)")
    p.add_argument("--n-val", type=int, default=None, metavar="N",
                   help="how many movies (default: the run's data.n_val)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it appears only on a terminal anyway)")
    p.set_defaults(func=_validate)


def _score(args) -> int:
    from flygnn.analysis.score_report import run_score

    options = runner_options(args.set, {"flashes", "edges"})
    run_score(args.dirs, args.names, [(g[0], g[1:]) for g in args.ensemble], args.out,
              args.extent, args.criteria, options.get("flashes"), options.get("edges"),
              progress=show_progress(args))
    return 0


def add_score(sub) -> None:
    """Add ``flygnn score`` to the subparsers ``sub``."""
    p = add_command(sub, "score", "score models and ensembles against the known tuning and "
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


def _evaluate_ensemble(args) -> int:
    from pathlib import Path

    from flygnn.distributed import evaluate_ensemble

    options = runner_options(args.set, {"flashes", "edges", "cluster"})
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


def add_evaluate_ensemble(sub) -> None:
    """Add ``flygnn evaluate-ensemble`` to the subparsers ``sub``."""
    p = add_command(sub, "evaluate-ensemble", "responses, tuning indices and clustering of a "
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
