"""Validate three neuron-level tables and build a connectome ``HeteroData`` from them.

Holds :func:`tables_to_graph`, its row-by-row checks (each ``ValueError`` names the file, row
and column) and :data:`TRANSMITTER_SIGNS`, the transmitter-to-sign table of a types table
without a ``sign`` column. The tables' format and the graph's schema are described in
:mod:`flygnn.tables`, whose :class:`~flygnn.tables.TableConnectome` reads the files, calls
:func:`tables_to_graph` and caches the result; it re-exports both names.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData

from flygnn import hexgrid

__all__ = ["TRANSMITTER_SIGNS", "tables_to_graph"]

log = logging.getLogger(__name__)

#: transmitter name (lower case) -> sign. Acetylcholine excites; GABA and glutamate (GluCl)
#: inhibit; histamine (photoreceptors) hyperpolarises its targets. The monoamines are
#: modulatory and have no fast sign: they map to +1 here, an assumption to override.
TRANSMITTER_SIGNS = {
    "acetylcholine": 1, "ach": 1, "gaba": -1, "glutamate": -1, "glut": -1,
    "histamine": -1, "his": -1, "serotonin": 1, "ser": 1, "dopamine": 1, "da": 1,
    "octopamine": 1, "oct": 1, "tyramine": 1,
}
ROLES = {"input": "input", "hidden": "intermediate", "intermediate": "intermediate",
         "output": "output"}


def _fail(file, row, column, problem):
    raise ValueError(f"{file}: row {row}, column '{column}': {problem}")


def _integers(frame, column, file, allow_missing=False) -> np.ndarray:
    """Column as float64 values that are integers (NaN where allowed); rows count from 0."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, copy=True)
    raw = frame[column].to_numpy()
    bad = ~np.isfinite(values) if not allow_missing else (np.isinf(values) | (
        np.isnan(values) & pd.notna(raw)))
    bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(file, i, column, f"expected an integer, got {raw[i]!r}")
    return values


def _types(types: pd.DataFrame, file, transmitter_signs) -> tuple[list, dict, dict]:
    names = types["type"].to_numpy()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            _fail(file, i, "type", f"expected a non-empty name, got {name!r}")
    dup = pd.Series(names).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        _fail(file, i, "type", f"duplicate cell type {names[i]!r}")
    roles = {}
    for i, (name, role) in enumerate(zip(names, types["role"])):
        if not isinstance(role, str) or role.lower() not in ROLES:
            _fail(file, i, "role", f"unknown role {role!r}; expected input, hidden or output")
        roles[name] = ROLES[role.lower()]
    signs = {}
    if "sign" in types.columns:
        for i, (name, sign) in enumerate(zip(names, types["sign"])):
            if isinstance(sign, bool) or sign not in (1, -1):
                _fail(file, i, "sign", f"expected +1 or -1, got {sign!r}")
            signs[name] = int(sign)
    elif "transmitter" in types.columns:
        merged = {**TRANSMITTER_SIGNS, **(transmitter_signs or {})}
        table = {k.lower(): v for k, v in merged.items()}
        for i, (name, nt) in enumerate(zip(names, types["transmitter"])):
            key = nt.lower() if isinstance(nt, str) else nt
            if key not in table:
                _fail(file, i, "transmitter", f"no sign for transmitter {nt!r}; known: "
                      f"{sorted(table)} (pass transmitter_signs to add one)")
            signs[name] = int(table[key])
    else:
        raise ValueError(f"{file}: column 'sign' missing from the types table (or give "
                         "a 'transmitter' column)")
    return list(names), roles, signs


def tables_to_graph(neurons: pd.DataFrame, synapses: pd.DataFrame, types: pd.DataFrame,
                    extent: int | None = None, uncolumned: str = "drop",
                    transmitter_signs: dict | None = None, files=("neurons", "synapses", "types"),
                    ) -> HeteroData:
    """Validate the three tables and build the graph (format: :mod:`flygnn.tables`).

    Args:
        neurons, synapses, types: the tables as ``DataFrame``.
        extent: crop the lattice to this radius; None: the smallest hexagon holding all columns.
        uncolumned: ``"drop"`` or ``"center"``: what happens to neurons without a column.
        transmitter_signs: extra or changed ``{transmitter: sign}`` entries.
        files: names used in error messages (the paths).

    Returns:
        the ``HeteroData``. Shapes: per cell type ``u, v`` ``(N_t,)``; per type pair
        ``edge_index`` ``(2, E_p)`` (local indices) and ``n_syn``, ``n_syn_certainty``,
        ``sign``, ``du``, ``dv`` ``(E_p,)``.

    Raises:
        ValueError: naming the file, row (data rows count from 0) and column.
    """
    f_neu, f_syn, f_typ = files
    for frame, cols, file, name in ((neurons, ("id", "type", "u", "v"), f_neu, "neurons"),
                                    (synapses, ("pre", "post", "n_syn"), f_syn, "synapses"),
                                    (types, ("type", "role"), f_typ, "types")):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ValueError(f"{file}: column {missing[0]!r} missing from the {name} table")
    if uncolumned not in ("drop", "center"):
        raise ValueError(f"uncolumned must be 'drop' or 'center', got {uncolumned!r}")
    names, roles, signs = _types(types, f_typ, transmitter_signs)
    type_index = {n: k for k, n in enumerate(names)}

    ids = _integers(neurons, "id", f_neu).astype(np.int64)
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        _fail(f_neu, i, "id", f"duplicate neuron id {ids[i]}")
    ntype = neurons["type"].map(type_index).to_numpy(np.float64)
    if np.isnan(ntype).any():
        i = int(np.flatnonzero(np.isnan(ntype))[0])
        _fail(f_neu, i, "type", f"unknown cell type {neurons['type'].iloc[i]!r} (not in {f_typ})")
    ntype = ntype.astype(np.int64)
    u, v = (_integers(neurons, c, f_neu, allow_missing=True) for c in ("u", "v"))
    half = np.isnan(u) != np.isnan(v)
    if half.any():
        i = int(np.flatnonzero(half)[0])
        _fail(f_neu, i, "u" if np.isnan(u[i]) else "v", "u and v must both be given or both empty")
    keep = np.ones(len(ids), bool)
    nocol = np.isnan(u)
    if nocol.any():
        per_type = np.bincount(ntype, minlength=len(names))
        single = nocol & (per_type[ntype] == 1)
        placed = nocol if uncolumned == "center" else single
        u[placed], v[placed] = 0, 0
        keep &= ~(nocol & ~placed)
        if (~keep).any():
            log.warning("dropping %d neurons without a column (types: %s)", int((~keep).sum()),
                        sorted({names[k] for k in ntype[~keep]})[:10])
    dist = (np.abs(u) + np.abs(v) + np.abs(u + v)) / 2
    if extent is None:
        extent = int(np.nanmax(dist[keep])) if keep.any() else 0
    if isinstance(extent, bool) or not isinstance(extent, int) or extent < 1:
        raise ValueError(f"extent must be an integer >= 1, got {extent!r}")
    outside = keep & (dist > extent)
    if outside.any():
        log.info("dropping %d neurons outside the lattice of extent %d", int(outside.sum()), extent)
        keep &= ~outside

    present = np.bincount(ntype, minlength=len(names))
    if (present == 0).any():
        k = int(np.flatnonzero(present == 0)[0])
        _fail(f_typ, k, "type", f"cell type {names[k]!r} has no neurons in {f_neu}")
    alive = np.bincount(ntype[keep], minlength=len(names)) > 0
    if not alive.all():  # every neuron dropped (no column, or outside the lattice)
        gone = [names[k] for k in np.flatnonzero(~alive)]
        if any(roles[t] == "input" for t in gone):
            raise ValueError(f"{f_neu}: input types {[t for t in gone if roles[t] == 'input']} "
                             f"have no neurons with a column in the lattice of extent {extent}")
        log.warning("dropping %d cell types without neurons in the lattice: %s", len(gone),
                    gone[:10])
        ntype = np.cumsum(alive)[ntype] - 1
        names = [t for t in names if t not in set(gone)]
    # node order: type, then (u, v), then file order
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, v[rows], u[rows], ntype[rows]))]
    counts = np.bincount(ntype[order], minlength=len(names))
    ptr = np.concatenate([[0], np.cumsum(counts)])
    local = np.full(len(ids), -1, np.int64)
    local[order] = np.arange(len(order)) - ptr[ntype[order]]
    hu, hv = hexgrid.disk(extent)
    for k, name in enumerate(names):
        if roles[name] != "input":
            continue
        block = order[ptr[k]:ptr[k + 1]]
        if len(block) != len(hu) or not (np.array_equal(u[block], hu)
                                         and np.array_equal(v[block], hv)):
            have = set(zip(u[block].astype(int).tolist(), v[block].astype(int).tolist()))
            gap = [c for c in zip(hu.tolist(), hv.tolist()) if c not in have]
            problem = f"is missing column {gap[0]}" if gap else "has two neurons in a column"
            raise ValueError(f"{f_neu}: input type {name!r} {problem}; every input type needs "
                             f"one neuron per column of the extent-{extent} lattice "
                             f"({len(hu)} columns)")

    # synapses
    pos = pd.Series(np.arange(len(ids)), index=ids)
    pre_id, post_id = (_integers(synapses, c, f_syn).astype(np.int64) for c in ("pre", "post"))
    pre, post = (pos.reindex(x).to_numpy() for x in (pre_id, post_id))
    for col, idx in (("pre", pre), ("post", post)):
        if np.isnan(idx).any():
            i = int(np.flatnonzero(np.isnan(idx))[0])
            _fail(f_syn, i, col, f"unknown neuron id {synapses[col].iloc[i]!r} (not in {f_neu})")
    pre, post = pre.astype(np.int64), post.astype(np.int64)
    n_syn = pd.to_numeric(synapses["n_syn"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(n_syn) | (n_syn <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        _fail(f_syn, i, "n_syn", f"expected a positive finite count, got "
              f"{synapses['n_syn'].iloc[i]!r}")
    dup = pd.DataFrame({"a": pre_id, "b": post_id}).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        _fail(f_syn, i, "pre/post", f"duplicate connection {pre_id[i]} -> {post_id[i]}; "
              "sum the counts first")
    sign = np.array([signs[t] for t in names], np.float64)[ntype[pre]]
    if "sign" in synapses.columns:
        given = pd.to_numeric(synapses["sign"], errors="coerce").to_numpy(np.float64)
        bad = ~(np.isnan(given) | np.isin(given, (1.0, -1.0)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _fail(f_syn, i, "sign", f"expected +1, -1 or empty, got {synapses['sign'].iloc[i]!r}")
        sign = np.where(np.isnan(given), sign, given)
    certainty = np.ones(len(pre))
    if "n_syn_certainty" in synapses.columns:
        certainty = pd.to_numeric(synapses["n_syn_certainty"], errors="coerce").to_numpy(np.float64)
        if not np.isfinite(certainty).all():
            i = int(np.flatnonzero(~np.isfinite(certainty))[0])
            _fail(f_syn, i, "n_syn_certainty", "expected a finite number")
    live = keep[pre] & keep[post]
    pair = ntype[pre] * len(names) + ntype[post]
    sel = np.flatnonzero(live)
    _, first, inverse = np.unique(pair[sel], return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))  # first-appearance order
    grouped = sel[np.argsort(rank[inverse.reshape(-1)], kind="stable")]
    group_sizes = np.bincount(rank[inverse.reshape(-1)], minlength=len(first))

    data = HeteroData()
    for k, name in enumerate(names):
        block = order[ptr[k]:ptr[k + 1]]
        store = data[name]
        store.u = torch.from_numpy(u[block].astype(np.int64))
        store.v = torch.from_numpy(v[block].astype(np.int64))
        store.role = roles[name]
        store.num_nodes = int(counts[k])
    for rows_p in np.split(grouped, np.cumsum(group_sizes)[:-1]) if len(sel) else []:
        p = pair[rows_p[0]]
        s_name, t_name = names[p // len(names)], names[p % len(names)]
        if sign[rows_p].min() != sign[rows_p].max():
            i = int(rows_p[np.flatnonzero(sign[rows_p] != sign[rows_p][0])[0]])
            _fail(f_syn, i, "sign", f"signs differ within the type pair {s_name} -> {t_name}")
        a, b = pre[rows_p], post[rows_p]
        store = data[s_name, "chem", t_name]
        store.edge_index = torch.from_numpy(np.stack([local[a], local[b]]))
        store.n_syn = torch.from_numpy(n_syn[rows_p].astype(np.float32))
        store.n_syn_certainty = torch.from_numpy(certainty[rows_p].astype(np.float32))
        store.sign = torch.from_numpy(sign[rows_p].astype(np.float32))
        store.du = torch.from_numpy((u[b] - u[a]).astype(np.int64))
        store.dv = torch.from_numpy((v[b] - v[a]).astype(np.int64))
    data.cell_types = list(names)
    data.input_types = [n for n in names if roles[n] == "input"]
    data.output_types = [n for n in names if roles[n] == "output"]
    if not data.input_types:
        raise ValueError(f"{f_typ}: no cell type has role 'input'")
    data.extent = int(extent)
    return data
