"""Adapters from the public optic-lobe exports to the three tables of :mod:`flygnn.tables`.

**FlyWire right optic lobe** (Matsliah et al., Nature 2024; FlyWire Codex, release 783). Files
and the columns used (as read by the authors' OpticLobe.jl from the Codex downloads):

* ``connections_princeton_no_threshold.csv.gz`` (or another connections file):
  ``pre_root_id, post_root_id, syn_count`` (one row per neuropil: counts are summed);
* ``neurons.csv.gz``: ``root_id, nt_type`` (``ACH``, ``GABA``, ``GLUT``, ``SER``, ``DA``,
  ``OCT``; the type's transmitter is its most common one);
* ``consolidated_cell_types.csv.gz``: ``root_id, primary_type`` (or
  ``visual_neuron_types.csv.gz``: ``root_id, type``);
* ``column_assignment.csv.gz``: ``root_id, hemisphere, p, q`` (rows of ``hemisphere ==
  "right"`` are used).

**Male optic lobe** (Nern et al., Nature 2025; neuPrint ``optic-lobe:v1.0``, or the male CNS):

* connections as neuprint-python returns them: ``bodyId_pre, bodyId_post, weight`` (an
  ``roi`` column splits them: summed);
* neurons: ``bodyId, type`` and a transmitter column (``predictedNt`` by default;
  ``consensusNt`` or ``celltypePredictedNt`` also exist), values such as
  ``acetylcholine``, ``gaba``, ``glutamate``;
* columns: ``bodyId, hex1_id, hex2_id`` (long), the wide ``ME_columnar-cells_location``
  table (``hex1_id, hex2_id`` and one column of body ids per cell type), or the neuron
  properties ``assignedOlHex1, assignedOlHex2`` of the male CNS.

**Coordinates.** Both ``(p, q)`` and ``(hex1_id, hex2_id)`` are axial coordinates whose axes
are 120 degrees apart: the six neighbours of a column are ``(+-1, 0), (0, +-1), +-(1, 1)``.
flygnn's axes are 60 degrees apart (neighbours ``(+-1, 0), (0, +-1), +-(1, -1)``), so a column
maps to ``(u, v) = (a - a0, -(b - b0))`` around the centre column ``(a0, b0)``. This keeps
neighbourhoods and distances; the eye's orientation relative to flyvis's may differ by a
lattice rotation or mirror (:func:`flygnn.hexgrid.rotate` / :func:`flygnn.hexgrid.flip`).

**Expected sizes.** FlyWire's right optic lobe: about 45k typed neurons with column
assignments in about 230 intrinsic types on about 800 columns; the male optic lobe: about
53k neurons in 732 types on 892 medulla columns. A hexagon of extent 16 holds 817 columns,
17 holds 919. ``benchmarks/bench_tables.py --preset flywire|male`` times a synthetic graph of
that size (edge counts there are assumptions: 2M and 3M connections).

**What the adapters decide** (all arguments): which types are inputs (the stimulus enters
them) and outputs; the centre and extent of the lattice; whether missing input neurons are
filled with unconnected placeholders (real eyes have gaps); the sign of each transmitter
(:data:`flygnn.tablegraph.TRANSMITTER_SIGNS`, overridable; ``default_sign`` for types without a
known transmitter). Neurons without a type are left out; autapses are dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from flygnn import hexgrid
from flygnn.tableio import read_table, write_table
from flygnn.tables import TRANSMITTER_SIGNS

__all__ = ["flywire_tables", "hex_to_axial", "neuprint_tables", "write_tables"]

log = logging.getLogger(__name__)
Table = str | os.PathLike | pd.DataFrame


def _frame(table: Table, columns: Sequence[str], name: str) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{name}: column {missing[0]!r} missing (columns: "
                             f"{list(table.columns)})")
        return table
    return read_table(table, columns, name)


def hex_to_axial(a, b, center: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Axial coordinates with 120-degree axes (FlyWire ``p, q``; neuPrint ``hex1, hex2``) to
    flygnn's ``(u, v)`` around ``center``: ``u = a - a0``, ``v = -(b - b0)``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a - center[0], -(b - center[1])


def _assemble(ids, types, a, b, pre, post, count, nt, inputs, outputs, center, extent,
              fill_inputs, transmitter_signs, default_sign):
    """The three tables from neuron ids/types/columns, connections and per-neuron transmitters."""
    neurons = pd.DataFrame({"id": ids, "type": types, "a": a, "b": b}).dropna(subset=["type"])
    neurons = neurons.drop_duplicates("id").copy()
    unknown = [t for t in [*inputs, *outputs] if t not in set(neurons.type)]
    if unknown:
        raise ValueError(f"inputs/outputs: cell types {unknown} have no neurons")
    if center is None:  # the column nearest to the mean column of the first input type
        cols = neurons[neurons.type == inputs[0]][["a", "b"]].dropna().to_numpy()
        if not len(cols):
            raise ValueError(f"input type {inputs[0]!r} has no neuron with a column")
        center = tuple(int(x) for x in cols[np.argmin(((cols - cols.mean(0)) ** 2).sum(1))])
    neurons["u"], neurons["v"] = hex_to_axial(neurons.a, neurons.b, center)
    if extent is not None:
        dist = hexgrid.hex_distance(neurons.u, neurons.v)
        neurons = neurons[~(dist > extent)].copy()  # keeps neurons without a column
    if fill_inputs:
        radius = extent if extent is not None else int(
            hexgrid.hex_distance(neurons.u, neurons.v).max())
        hu, hv = hexgrid.disk(radius)
        extra, next_id = [], min(int(neurons.id.min()), 0) - 1
        for t in inputs:
            have = set(zip(neurons[neurons.type == t].u, neurons[neurons.type == t].v))
            for u, v in zip(hu.tolist(), hv.tolist()):
                if (float(u), float(v)) not in have:
                    extra.append((next_id, t, u, v))
                    next_id -= 1
        if extra:
            log.warning("added %d unconnected placeholder input neurons", len(extra))
            neurons = pd.concat([neurons, pd.DataFrame(extra, columns=["id", "type", "u", "v"])])
    syn = pd.DataFrame({"pre": pre, "post": post, "n_syn": count})
    syn = syn[(syn.pre != syn.post) & syn.pre.isin(neurons.id) & syn.post.isin(neurons.id)]
    syn = syn.groupby(["pre", "post"], sort=False, as_index=False)["n_syn"].sum()
    syn = syn[syn.n_syn > 0]
    # types: file order of first appearance, inputs first (the network expects them together)
    order = list(dict.fromkeys([*inputs, *neurons.type]))
    per_neuron = pd.Series(nt, index=ids).dropna()
    per_neuron = per_neuron[~per_neuron.index.duplicated()]
    nt_of = neurons.set_index("id").type.to_frame().join(per_neuron.rename("nt")).groupby(
        "type")["nt"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else None)
    mapping = {k.lower(): v for k, v in {**TRANSMITTER_SIGNS, **(transmitter_signs or {})}.items()}
    transmitter = [nt_of.get(t) for t in order]
    signs = [mapping.get(str(x).lower(), default_sign) if x is not None else default_sign
             for x in transmitter]
    roles = ["input" if t in inputs else "output" if t in outputs else "hidden" for t in order]
    types_table = pd.DataFrame({"type": order, "sign": signs, "role": roles,
                                "transmitter": transmitter})
    neurons_table = neurons[["id", "type", "u", "v"]].reset_index(drop=True)
    neurons_table["id"] = neurons_table["id"].astype(np.int64)
    return neurons_table, syn.reset_index(drop=True), types_table


def flywire_tables(connections: Table, neurons: Table, cell_types: Table, columns: Table, *,
                   inputs: Sequence[str], outputs: Sequence[str] = (),
                   center: tuple[int, int] | None = None, extent: int | None = None,
                   fill_inputs: bool = False, transmitter_signs: Mapping[str, int] | None = None,
                   default_sign: int = 1, hemisphere: str = "right"):
    """FlyWire Codex exports (module docstring) to ``(neurons, synapses, types)`` tables.

    Args:
        connections, neurons, cell_types, columns: file paths or ``DataFrame``.
        inputs: the cell types that receive the stimulus (e.g. ``["R7", "R8"]``, or the
            lamina monopolar cells when photoreceptors are missing).
        outputs: cell types read out by a decoder.
        center: ``(p, q)`` of the centre column; None: the column nearest the mean column of
            the first input type.
        extent: crop to this lattice radius (None: keep all columns).
        fill_inputs: add unconnected placeholder neurons (negative ids) where an input type
            lacks a neuron in a column of the lattice.
        transmitter_signs: changes to :data:`~flygnn.tablegraph.TRANSMITTER_SIGNS`.
        default_sign: sign of types without a known transmitter.
        hemisphere: rows of the column file to use.

    Returns:
        three ``DataFrame`` for :func:`write_tables` / :class:`~flygnn.tables.TableConnectome`.
    """
    conn = _frame(connections, ["pre_root_id", "post_root_id", "syn_count"], "connections")
    cells = _frame(neurons, ["root_id", "nt_type"], "neurons")
    typed = _frame(cell_types, ["root_id"], "cell_types")
    kind = "primary_type" if "primary_type" in typed.columns else "type"
    if kind not in typed.columns:
        raise ValueError("cell_types: column 'primary_type' (or 'type') missing")
    cols = _frame(columns, ["root_id", "p", "q"], "columns")
    if "hemisphere" in cols.columns:
        cols = cols[cols.hemisphere == hemisphere]
    typed = typed.drop_duplicates("root_id").set_index("root_id")[kind]
    cols = cols.drop_duplicates("root_id").set_index("root_id")
    ids = typed.index.to_numpy()
    nt = cells.drop_duplicates("root_id").set_index("root_id").nt_type.reindex(ids).to_numpy()
    return _assemble(ids, typed.to_numpy(), cols.p.reindex(ids).to_numpy(),
                     cols.q.reindex(ids).to_numpy(), conn.pre_root_id.to_numpy(),
                     conn.post_root_id.to_numpy(), conn.syn_count.to_numpy(), nt,
                     list(inputs), list(outputs), center, extent, fill_inputs,
                     transmitter_signs, default_sign)


def _long_columns(cols: pd.DataFrame) -> pd.DataFrame:
    """``bodyId, hex1_id, hex2_id`` from a long or a wide (one column per type) table."""
    if "bodyId" in cols.columns:
        return cols[["bodyId", "hex1_id", "hex2_id"]]
    wide = cols.melt(id_vars=["hex1_id", "hex2_id"], value_name="bodyId").dropna(subset=["bodyId"])
    return wide[["bodyId", "hex1_id", "hex2_id"]].astype({"bodyId": np.int64})


def neuprint_tables(connections: Table, neurons: Table, columns: Table | None = None, *,
                    inputs: Sequence[str], outputs: Sequence[str] = (),
                    nt_column: str = "predictedNt", center: tuple[int, int] | None = None,
                    extent: int | None = None, fill_inputs: bool = False,
                    transmitter_signs: Mapping[str, int] | None = None, default_sign: int = 1):
    """neuPrint exports of the male optic lobe (module docstring) to the three tables.

    Args:
        connections: ``bodyId_pre, bodyId_post, weight``.
        neurons: ``bodyId, type`` and ``nt_column``; with ``columns=None`` also
            ``assignedOlHex1, assignedOlHex2``.
        columns: long (``bodyId, hex1_id, hex2_id``) or wide column table, or None.
        nt_column: the transmitter column of ``neurons``.
        inputs, outputs, center, extent, fill_inputs, transmitter_signs, default_sign: as in
            :func:`flywire_tables` (``center`` in ``(hex1, hex2)``).
    """
    conn = _frame(connections, ["bodyId_pre", "bodyId_post", "weight"], "connections")
    cells = _frame(neurons, ["bodyId", "type", nt_column], "neurons")
    cells = cells.drop_duplicates("bodyId").set_index("bodyId")
    if columns is None:
        missing = [c for c in ("assignedOlHex1", "assignedOlHex2") if c not in cells.columns]
        if missing:
            raise ValueError(f"neurons: column {missing[0]!r} missing (or pass columns=)")
        hex1, hex2 = cells.assignedOlHex1, cells.assignedOlHex2
    else:
        cols = columns if isinstance(columns, pd.DataFrame) else read_table(
            columns, ["hex1_id", "hex2_id"], "columns")
        cols = _long_columns(_frame(cols, ["hex1_id", "hex2_id"], "columns"))
        cols = cols.drop_duplicates("bodyId").set_index("bodyId")
        hex1, hex2 = cols.hex1_id, cols.hex2_id
    ids = cells.index.to_numpy()
    return _assemble(ids, cells.type.to_numpy(), hex1.reindex(ids).to_numpy(),
                     hex2.reindex(ids).to_numpy(), conn.bodyId_pre.to_numpy(),
                     conn.bodyId_post.to_numpy(), conn.weight.to_numpy(),
                     cells[nt_column].to_numpy(), list(inputs), list(outputs), center, extent,
                     fill_inputs, transmitter_signs, default_sign)


def write_tables(tables, folder: str | os.PathLike, format: str = "csv") -> dict[str, Path]:
    """Write ``(neurons, synapses, types)`` as ``folder/{name}.{format}``; returns the paths
    (keyword arguments for :class:`~flygnn.tables.TableConnectome`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in zip(("neurons", "synapses", "types"), tables):
        paths[name] = folder / f"{name}.{format}"
        write_table(frame, paths[name])
    return paths
