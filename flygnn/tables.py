"""Bring your own connectome: three neuron-level tables in, a flygnn ``HeteroData`` out.

The tables (CSV, Parquet or Feather, chosen by the file's extension; ``.csv.gz`` works):

* **neurons**: ``id`` (integer, unique), ``type``, ``u``, ``v`` (the hexagonal column, axial
  coordinates as in :mod:`flygnn.hexgrid`; both empty for a neuron without a column);
* **synapses**: ``pre``, ``post`` (neuron ids), ``n_syn`` (a positive, finite count; need not
  be translation-invariant). Optional: ``sign`` (+1/-1, overrides the type's sign, constant
  within a type pair) and ``n_syn_certainty`` (default 1.0);
* **types**: ``type``, ``role`` (``input``, ``hidden`` or ``output``; ``intermediate`` is a
  synonym of ``hidden``) and ``sign`` (+1 or -1). A ``transmitter`` column may stand in for
  ``sign``: names map through :data:`~flygnn.tablegraph.TRANSMITTER_SIGNS`
  (case-insensitive; pass ``transmitter_signs`` to change or extend it).

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

The checks and the building (:func:`tables_to_graph`) are in :mod:`flygnn.tablegraph`; this
module reads the files and caches the graph (:class:`TableConnectome`, :func:`pack`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch_geometric.data import HeteroData, InMemoryDataset

from flygnn._paths import cache_dir
from flygnn.connectome import file_hash
from flygnn.tablegraph import TRANSMITTER_SIGNS, tables_to_graph
from flygnn.tableio import read_table, suffix, to_tables

__all__ = ["TRANSMITTER_SIGNS", "TableConnectome", "pack", "read_table", "tables_to_graph",
           "to_tables", "unpack"]


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
