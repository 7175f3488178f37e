"""The ``flygnn`` command line: ``flygnn demo``, ``flygnn connectome``, and the commands that
later modules register (train, simulate, validate, train-ensemble)."""

from __future__ import annotations

import argparse
import logging
import sys

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


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: connectome summary, responses and a report")
    p.add_argument("--extent", type=int, default=15)
    p.add_argument("--root", default=None, help="cache folder (default: per-user cache)")
    p.add_argument("--out", default="flygnn-demo", help="report folder")
    p.set_defaults(func=_summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flygnn", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_connectome):
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"flygnn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
