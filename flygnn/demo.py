"""The main job, ``flygnn demo``: connectome summary, flash and moving-edge responses of the
shipped trained model and of the untrained network, and a report against the known tables.

Writes ``<out>/`` (default ``~/.cache/flygnn/demo``, see :func:`default_out`) with
``summary.md``, CSV tables (FRI, DSI, preferred directions, correlations) and PNG figures of the
trained model, with the untrained network drawn beside it as a reference; never writes into an
existing non-empty folder (a fresh ``<out>-N`` is chosen).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

__all__ = ["run_demo", "fresh_folder", "default_out", "DEFAULT_ENSEMBLE", "DEFAULT_MODEL"]

log = logging.getLogger(__name__)

DEFAULT_ENSEMBLE = "flow_cpu"  # the cpu recipe's seeds; the demo takes its best member
DEFAULT_MODEL = "flow_cpu_threshold"  # used when the ensemble is not installed or not complete
ENSEMBLE_SIZE = 4  # the default ensemble stands for the recipe from this many seeds on
T4T5 = ["T4a", "T4b", "T4c", "T4d", "T5a", "T5b", "T5c", "T5d"]


def fresh_folder(out: str | Path) -> Path:
    """``out`` if it is missing or empty, else the first missing or empty ``out-1``,
    ``out-2``, ..."""
    out = Path(out)
    candidate, k = out, 0
    while candidate.exists() and any(candidate.iterdir()):
        k += 1
        candidate = out.with_name(f"{out.name}-{k}")
    return candidate


def _say(message: str) -> None:
    print(message, flush=True)


def _choose(model: str | None) -> tuple[str | Path | None, str, str]:
    """What the demo reads: ``(source, label, why)``, the model folder or shipped name, its
    name in the report, and a sentence saying which and why. An ensemble (a shipped name, or
    a folder of model folders) stands for its best member by validation EPE; None means the
    shipped ensemble :data:`DEFAULT_ENSEMBLE` once it holds :data:`ENSEMBLE_SIZE` models, else
    the shipped model :data:`DEFAULT_MODEL`."""
    from flygnn.pretrained import (
        available_ensembles,
        available_models,
        best_member,
        ensemble_members,
    )

    why_not = f" (the ensemble {DEFAULT_ENSEMBLE!r} is not installed)"
    if model is None and DEFAULT_ENSEMBLE in available_ensembles():
        n = len(ensemble_members(DEFAULT_ENSEMBLE))
        if n >= ENSEMBLE_SIZE:
            model = DEFAULT_ENSEMBLE
        else:
            why_not = (f" (the ensemble {DEFAULT_ENSEMBLE!r} holds {n} of the "
                       f"{ENSEMBLE_SIZE} seeds it needs)")
    folder = Path(model) if model is not None else None
    is_run = folder is not None and any(
        (folder / f).is_file() for f in ("network.pt", "best.pt", "checkpoint.pt"))
    if model is not None and not is_run and (
            model in available_ensembles() or (folder.is_dir() and model not in
                                               available_models())):
        path, error, n = best_member(model)
        label = f"{folder.name}/{path.name}"
        return path, label, (f"{label}, the best of the {n} models of the ensemble "
                             f"{folder.name!r} by validation EPE ({error:.4g})")
    if is_run:
        return folder, folder.name, f"{folder.name}, the model folder {model}"
    name = model or DEFAULT_MODEL
    if name in available_models():
        why = why_not if model is None else ""
        return name, name, f"{name}, the shipped model{why}"
    return None, "", (f"the trained model {DEFAULT_MODEL!r} is not installed with this copy "
                      "of flygnn; the report shows the untrained network only")


def _models(data, model: str | None):
    from flygnn.network import Network
    from flygnn.pretrained import load_model, load_pretrained

    untrained = Network(data)
    source, label, why = _choose(model)
    _say(f"model: {why}")
    if source is None:
        return {"untrained": untrained}, {}
    if isinstance(source, Path):
        trained = load_model(source, data=data)
    else:
        trained = load_pretrained(source, data=data)
    return {label: trained.network, "untrained": untrained}, trained.metrics


def default_out() -> Path:
    """The default report folder: ``demo/`` in the flygnn cache folder (``$FLYGNN_CACHE``, else
    ``~/.cache/flygnn``), outside any source tree."""
    from flygnn._paths import cache_dir

    return cache_dir() / "demo"


def run_demo(out: str | Path | None = None, extent: int = 15, model: str | None = None,
             root: str | Path | None = None, speeds=(2.4, 4.8, 9.7, 13, 19, 25),
             progress: bool = True) -> Path:
    """Run the demo and return the report folder.

    Args:
        out: report folder (a fresh sibling is used if it exists and is not empty); None uses
            :func:`default_out`.
        extent: lattice extent of the connectome (the shipped model needs 15).
        model: a shipped model or ensemble name, a training run folder, or a folder of model
            folders (an ensemble: its best member by validation EPE is shown); None uses the
            shipped ensemble's best member (:data:`DEFAULT_ENSEMBLE`), else
            :data:`DEFAULT_MODEL`.
        root: connectome cache folder (None: the per-user cache).
        speeds: moving-edge speeds (columns per second; flyvis's six by default).
        progress: show progress bars.
    """
    import torch

    from flygnn.analysis import known
    from flygnn.analysis.comparison import dsi_correlation_to_known, fri_correlation_to_known
    from flygnn.analysis.report import write_report
    from flygnn.analysis.runners import flash_responses, moving_edge_responses
    from flygnn.analysis.tuning import (
        direction_selectivity_index,
        flash_response_index,
        preferred_direction,
    )
    from flygnn.datasets import FlyVisConnectome
    from flygnn.flat import edges_frame

    start = time.perf_counter()
    if model is not None:
        from flygnn.pretrained import available_ensembles, available_models

        shipped = available_models() + available_ensembles()
        if not Path(model).exists() and model not in shipped:
            raise ValueError(f"no model {model!r}: shipped models are {shipped or 'none'}, "
                             "or pass a training run folder or a folder of them")
    folder = fresh_folder(default_out() if out is None else out)
    data = FlyVisConnectome(root=root, extent=extent)[0]
    edges = edges_frame(data)
    _say(f"connectome: {len(data.cell_types)} cell types, {data.num_nodes:,} neurons, "
         f"{len(edges):,} edges in {len(data.edge_types)} type pairs, "
         f"{edges['n_syn'].astype(float).sum():,.0f} synapses (extent {extent})")
    nets, metrics = _models(data, model)
    names = list(nets)
    _say(f"models: {', '.join(names)}")
    with torch.no_grad():
        _say("simulating flashes (4 stimuli x 600 steps per model) ...")
        flashes = flash_responses(list(nets.values()), model_names=names, progress=progress)
        _say(f"simulating moving edges ({12 * 2 * len(speeds)} stimuli per model) ...")
        moving = moving_edge_responses(list(nets.values()), speeds=tuple(speeds), model_names=names,
                                       progress=progress)
    fri = flash_response_index(flashes, radius=6)
    dsi = direction_selectivity_index(moving)
    pdir = preferred_direction(moving)
    if isinstance(fri, pd.Series):
        fri = fri.to_frame(names[0]).T
    # the report shows the first model alone; the untrained network is its reference
    main = names[0]
    reference = None
    if len(names) > 1:
        reference = {"name": "untrained network", "fri": fri.loc[names[1]],
                     "dsi": _dsi_table(dsi, names[1], 1, len(names)),
                     "pd": _dsi_table(pdir, names[1], 1, len(names))}
    heading = f"flygnn demo: {main}" + (" (untrained network as reference)" if reference else "")
    folder = write_report(fri.loc[main].rename(main), _dsi_table(dsi, main, 0, len(names)),
                          _dsi_table(pdir, main, 0, len(names)), out_dir=folder, title=heading,
                          overwrite=False, model_name=main, reference=reference)

    fri_corr = fri_correlation_to_known(fri)
    dsi_corr = dsi_correlation_to_known(dsi)
    lines = ["", "| model | FRI corr. with known polarity | DSI corr. with known | "
             + " | ".join(T4T5) + " |", "|---" * (3 + len(T4T5)) + "|"]
    polarity = known.polarity()
    contrast = {t: "ON" if polarity[t] > 0 else "OFF" for t in T4T5}  # T4 ON, T5 OFF edges
    for m, name in enumerate(names):
        table = _dsi_table(dsi, name, m, len(names))
        t4t5 = [table.loc[t, contrast[t]] for t in T4T5]
        lines.append(f"| {name} | {_value(fri_corr, name, m):.3f} | "
                     f"{_value(dsi_corr, name, m):.3f} | "
                     + " | ".join(f"{v:.3f}" for v in t4t5) + " |")
    lines.append("")
    lines.append("DSI of T4 at ON edges and T5 at OFF edges (their known contrast preference).")
    # flyvis's DSI rectifies the response including its rest: small responses on a large rest
    # read as unselective, so the same index of the change from rest is shown too
    change = direction_selectivity_index(moving.change_from_rest())
    lines += ["", "| model | DSI of the change from rest: " + " | ".join(T4T5) + " |",
              "|---" * (1 + len(T4T5)) + "|"]
    for m, name in enumerate(names):
        table = _dsi_table(change, name, m, len(names))
        lines.append(f"| {name} | " + " | ".join(
            f"{table.loc[t, contrast[t]]:.3f}" for t in T4T5) + " |")
    if metrics:
        lines.append("")
        lines.append("Trained model metrics: " + ", ".join(
            f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in metrics.items()
            if isinstance(v, (int, float))))
    elapsed = time.perf_counter() - start
    lines.append(f"\nRun time: {elapsed:.0f} s.")
    with open(folder / "summary.md", "a") as fh:
        fh.write("\n## Models compared\n" + "\n".join(lines) + "\n")
    _say("\n".join(lines))
    _say(f"report written to {folder.resolve()}")
    return folder


def _value(corr, name: str, m: int) -> float:
    if isinstance(corr, pd.Series):
        return float(corr[name]) if name in corr.index else float(corr.iloc[m])
    return float(corr)


def _dsi_table(dsi: pd.DataFrame, name: str, m: int, n_models: int) -> pd.DataFrame:
    if isinstance(dsi.columns, pd.MultiIndex):
        level0 = dsi.columns.get_level_values(0)
        key = name if name in set(level0) else sorted(set(level0), key=list(level0).index)[m]
        return dsi[key]
    return dsi
