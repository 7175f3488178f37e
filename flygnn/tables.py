"""Bring your own connectome: three neuron-level tables in, a flygnn ``HeteroData`` out.

The tables (CSV, Parquet or Feather, chosen by the file's extension; ``.csv.gz`` works):

* **neurons**: ``id`` (integer, unique), ``type``, ``u``, ``v`` (the hexagonal column, axial
  coordinates as in :mod:`flygnn.hexgrid`; both empty for a neuron without a column);
* **synapses**: ``pre``, ``post`` (neuron ids), ``n_syn`` (a positive, finite count; need not
  be translation-invariant). Optional: ``sign`` (+1/-1, overrides the type's sign, constant
  within a type pair) and ``n_syn_certainty`` (default 1.0);
* **types**: ``type``, ``role`` (``input``, ``hidden`` or ``output``; ``intermediate`` is a
  synonym of ``hidden``) and ``sign`` (+1 or -1). A ``transmitter`` column may stand in for
  ``sign``: names map through :data:`TRANSMITTER_SIGNS` (case-insensitive; pass
  ``transmitter_signs`` to change or extend it).

**The graph** has the schema of :class:`flygnn.datasets.FlyVisConnectome`: node types are
the cell types in the types table's order, each block sorted by ``(u, v)`` (ties in file
order), with ``u``, ``v`` (int64) and ``role``; edge types ``(pre_type, "chem", post_type)``
in order of first appearance in the synapses table, edges in file order, with
``edge_index``, ``n_syn``, ``n_syn_certainty``, ``sign`` (float32) and ``du = u_post -
u_pre``, ``dv`` (int64). Parameters stay per cell type and type pair (:mod:`flygnn.params`).

**Rows without a column** (``uncolumned``): ``"drop"`` (default) removes those neurons and
their synapses (counts are logged), except a type whose only neuron has no column, which sits
at ``(0, 0)`` like flyvis's ``single`` cells; ``"center"`` places every such neuron at
``(0, 0)`` (wide-field cells kept, their offsets then mean little). A cell type left without
neurons is dropped (logged); an input type so emptied is an error.

**The lattice**: the extent is the smallest hexagon holding every column, or ``extent``,
beyond which neurons are dropped with their synapses. Every input type must have exactly
one neuron in every column of that hexagon (the stimulus is one value per column).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.data import HeteroData, InMemoryDataset

from flygnn import hexgrid
from flygnn._paths import cache_dir
from flygnn.connectome import file_hash
from flygnn.tableio import read_table, suffix, to_tables

__all__ = ["TRANSMITTER_SIGNS", "TableConnectome", "pack", "read_table", "tables_to_graph",
           "to_tables", "unpack"]

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
    """Validate the three tables and build the graph (see the module docstring).

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


class TableConnectome(InMemoryDataset):
    r"""A connectome from three neuron-level tables, as one ``HeteroData`` (module docstring).

    ``dataset[0]`` has the schema of :class:`~flygnn.datasets.FlyVisConnectome`, so
    :class:`~flygnn.network.Network`, :func:`~flygnn.simulate.simulate` and the analyses use
    it unchanged. The graph is cached under ``root/processed``, keyed by the three files'
    SHA-256 and the options, as a few concatenated tensors (:func:`pack`: fast to save and
    to load with ``weights_only=True`` even with tens of thousands of type pairs);
    ``root/raw`` holds copies of the files.

    Args:
        root: cache folder; ``None`` uses ``$FLYGNN_CACHE/tables`` (or ``~/.cache/flygnn``).
        neurons, synapses, types: the table files.
        force_reload: rebuild even if a cached graph exists.
        transform, pre_transform: as in :class:`torch_geometric.data.InMemoryDataset`.
        extent, uncolumned, transmitter_signs: see :func:`tables_to_graph`.
    """

    def __init__(self, root: str | os.PathLike | None = None,
                 neurons: str | os.PathLike | None = None,
                 synapses: str | os.PathLike | None = None, types: str | os.PathLike | None = None,
                 force_reload: bool = False, transform: Callable | None = None,
                 pre_transform: Callable | None = None, *, extent: int | None = None,
                 uncolumned: str = "drop", transmitter_signs: dict | None = None):
        self.files = {}
        for name, path in (("neurons", neurons), ("synapses", synapses), ("types", types)):
            if path is None:
                raise ValueError(f"TableConnectome needs the {name} table (argument {name}=)")
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: {name} file not found")
            suffix(path)
            self.files[name] = path
        self.options = {"extent": extent, "uncolumned": uncolumned,
                        "transmitter_signs": dict(sorted((transmitter_signs or {}).items()))}
        hashes = [file_hash(p) for p in self.files.values()]
        self.key = hashlib.sha256(("|".join(hashes) + repr(self.options)).encode()).hexdigest()[:16]
        self.hashes = hashes
        root = Path(root) if root is not None else cache_dir() / "tables"
        super().__init__(str(root), transform, pre_transform, force_reload=force_reload)
        self._data, self.slices = unpack(_load(self.processed_paths[0])), None

    @property
    def raw_file_names(self) -> list[str]:
        return [f"{name}-{h[:16]}{suffix(p)}"
                for (name, p), h in zip(self.files.items(), self.hashes)]

    @property
    def processed_file_names(self) -> list[str]:
        return [f"tables-{self.key}.pt"]

    def download(self) -> None:
        for path, raw in zip(self.files.values(), self.raw_paths):
            shutil.copyfile(path, raw)

    def process(self) -> None:
        frames = {name: read_table(raw, name=name)
                  for name, raw in zip(self.files, self.raw_paths)}
        data = tables_to_graph(frames["neurons"], frames["synapses"], frames["types"],
                               files=tuple(str(p) for p in self.files.values()),
                               **self.options)
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        torch.save(pack(data), self.processed_paths[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(neurons={self.files['neurons'].name}, extent=" \
               f"{self.options['extent']})"


NODE_ATTRS = ("u", "v")
EDGE_ATTRS = ("n_syn", "n_syn_certainty", "sign", "du", "dv")
FORMAT = "flygnn.tables"


def pack(data: HeteroData) -> dict:
    """A connectome graph as a dict of a few concatenated tensors, lists and numbers.

    Raises:
        ValueError: if a store holds an attribute outside the connectome schema.
    """
    types = list(data.cell_types)
    keys = [k for k in data.edge_types if "edge_index" in data[k]]
    for store, allowed in [(data[t], {*NODE_ATTRS, "role", "num_nodes"}) for t in types] + \
            [(data[k], {*EDGE_ATTRS, "edge_index"}) for k in keys]:
        extra = set(store.keys()) - allowed
        if extra:
            raise ValueError(f"cannot cache attributes {sorted(extra)} of {store._key}: only "
                             "the connectome schema is cached (use transform=, not "
                             "pre_transform=, to add attributes)")
    blob = {"format": FORMAT, "cell_types": types, "roles": [data[t].role for t in types],
            "input_types": list(data.input_types), "output_types": list(data.output_types),
            "extent": int(data.extent), "edge_types": [list(k) for k in keys],
            "num_nodes": torch.tensor([data[t].num_nodes for t in types]),
            "num_edges": torch.tensor([data[k].edge_index.shape[1] for k in keys],
                                      dtype=torch.long)}
    for name in NODE_ATTRS:
        blob[name] = torch.cat([data[t][name] for t in types])
    blob["edge_index"] = torch.cat([data[k].edge_index for k in keys], 1) if keys else \
        torch.zeros(2, 0, dtype=torch.long)
    for name in EDGE_ATTRS:
        blob[name] = torch.cat([data[k][name] for k in keys]) if keys else torch.zeros(0)
    return blob


def unpack(blob: dict) -> HeteroData:
    """The graph of :func:`pack`."""
    data = HeteroData()
    nodes = {name: blob[name].split(blob["num_nodes"].tolist()) for name in NODE_ATTRS}
    for k, (name, role) in enumerate(zip(blob["cell_types"], blob["roles"])):
        store = data[name]
        for attr in NODE_ATTRS:
            store[attr] = nodes[attr][k]
        store.role = role
        store.num_nodes = int(blob["num_nodes"][k])
    sizes = blob["num_edges"].tolist()
    edges = {name: blob[name].split(sizes) for name in EDGE_ATTRS}
    index = blob["edge_index"].split(sizes, dim=1)
    for k, key in enumerate(blob["edge_types"]):
        store = data[tuple(key)]
        store.edge_index = index[k]
        for attr in EDGE_ATTRS:
            store[attr] = edges[attr][k]
    for name in ("cell_types", "input_types", "output_types", "extent"):
        setattr(data, name, blob[name])
    return data


def _load(path) -> dict:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a flygnn tables cache; delete it or use force_reload=True")
    return blob
