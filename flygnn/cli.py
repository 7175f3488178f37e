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
from flygnn.cli_common import HelpFormatter, add_command, show_progress
from flygnn.cli_models import add_evaluate_ensemble, add_score, add_simulate, add_validate
from flygnn.cli_train import add_train, add_train_ensemble

__all__ = ["main", "build_parser"]


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
    p = add_command(sub, "connectome", "build the connectome and print a summary per cell type",
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
             progress=show_progress(args), **kwargs)
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
    p = add_command(sub, "demo", "score the shipped model against the flies' known tuning",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flygnn", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True, title="commands",
                                metavar="COMMAND")
    for add in (_add_demo, _add_connectome, add_train, add_simulate, add_validate, add_score,
                add_train_ensemble, add_evaluate_ensemble):
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
