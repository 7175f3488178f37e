"""The connectome as a PyG dataset: a ``HeteroData`` with one node type per cell type.

Each cell type's filters are laid over the hexagonal lattice (``flygnn.hexgrid``): a
neuron of type S at ``(u, v)`` connects to the neuron of type T at ``(u + du, v + dv)``
for every offset of the S->T filter, when that neuron exists. Offsets that leave the
lattice, or land on a missing strided position, are dropped: rim neurons simply have
fewer inputs (no padding, no wrap-around). This is flyvis's ``ConnectomeFromAvgFilters``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import HeteroData, InMemoryDataset

from flygnn import hexgrid
from flygnn._paths import cache_dir, default_connectome_file
from flygnn.checkpoint import load_file
from flygnn.connectome import ConnectomeSpec, file_hash, fill_filter, read_connectome
from flygnn.tables import TableConnectome, to_tables

__all__ = ["FlyVisConnectome", "TableConnectome", "build_graph", "to_tables"]

MAX_EXTENT = 25
log = logging.getLogger(__name__)


def _roles(spec: ConnectomeSpec) -> dict[str, str]:
    inputs, outputs = set(spec.input_types), set(spec.output_types)
    return {
        name: "input" if name in inputs else "output" if name in outputs else "intermediate"
        for name in spec.names
    }


def build_graph(spec: ConnectomeSpec, extent: int = 15, n_syn_fill: float = 1.0) -> HeteroData:
    """Compile a connectome specification into a neuron-level ``HeteroData``.

    Args:
        spec: the parsed file (:func:`flygnn.connectome.read_connectome`).
        extent: lattice radius (721 columns at 15).
        n_syn_fill: count given to filter gaps inside the hull of the offsets.

    Returns:
        ``HeteroData`` whose node types are the cell types in file order (attributes ``u``,
        ``v`` as int64, ``role``) and whose edge types ``(source, relation, target)`` are the
        connected pairs in file order (``edge_index`` with local indices, ``n_syn``,
        ``n_syn_certainty``, ``sign`` as float32, ``du``, ``dv`` as int64). Within a pair,
        edges are grouped by offset (filled order), then by ascending source index.
    """
    if not isinstance(extent, int) or not 1 <= extent <= MAX_EXTENT:
        raise ValueError(f"extent must be an integer in [1, {MAX_EXTENT}], got {extent!r}")
    data = HeteroData()
    roles = _roles(spec)
    size = 2 * extent + 1
    lookup = {}  # cell type -> (2E+1, 2E+1) grid of local indices, -1 where absent
    coords = {}
    for cell in spec.cell_types:
        u, v = hexgrid.disk(0 if cell.single else extent, (1, 1) if cell.single else cell.stride)
        grid = np.full((size, size), -1, dtype=np.int64)
        grid[u + extent, v + extent] = np.arange(len(u))
        lookup[cell.name], coords[cell.name] = grid, (u, v)
        store = data[cell.name]
        store.u = torch.from_numpy(u)
        store.v = torch.from_numpy(v)
        store.role = roles[cell.name]
        store.num_nodes = len(u)

    for filt in spec.filters:
        su, sv = coords[filt.source]
        grid = lookup[filt.target]
        try:
            offsets, counts = fill_filter(filt.offsets, filt.n_syn, n_syn_fill)
        except ValueError as err:
            raise ValueError(f"{spec.path}: edges ({filt.source}->{filt.target}): {err}") from None
        parts = []
        for (du, dv), count in zip(offsets, counts):
            tu, tv = su + du, sv + dv
            inside = (np.abs(tu) <= extent) & (np.abs(tv) <= extent)
            tgt = np.full(len(su), -1, dtype=np.int64)
            tgt[inside] = grid[tu[inside] + extent, tv[inside] + extent]
            src = np.flatnonzero(tgt >= 0)
            if len(src):
                parts.append((src, tgt[src], du, dv, count))
        if not parts:
            continue
        sizes = [len(p[0]) for p in parts]
        store = data[filt.source, filt.relation, filt.target]
        store.edge_index = torch.from_numpy(
            np.stack([np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])])
        )
        n_syn = np.array([p[4] for p in parts], np.float32)
        store.n_syn = torch.from_numpy(np.repeat(n_syn, sizes))
        n = sum(sizes)
        store.n_syn_certainty = torch.full((n,), filt.n_syn_certainty, dtype=torch.float32)
        store.sign = torch.full((n,), float(filt.sign), dtype=torch.float32)
        store.du = torch.from_numpy(np.repeat(np.array([p[2] for p in parts], np.int64), sizes))
        store.dv = torch.from_numpy(np.repeat(np.array([p[3] for p in parts], np.int64), sizes))

    data.cell_types = spec.names
    data.input_types = list(spec.input_types)
    data.output_types = list(spec.output_types)
    data.extent = extent
    return data


def _read_processed(path: str) -> tuple[HeteroData, dict]:
    out = load_file(path, "connectome cache")
    if not (isinstance(out, tuple) and len(out) == 3 and isinstance(out[0], dict)):
        raise ValueError(f"connectome cache {path!r} is not a saved graph")
    return HeteroData.from_dict(out[0]), out[1]


class FlyVisConnectome(InMemoryDataset):
    r"""The fly visual-system connectome on a hexagonal lattice, as one ``HeteroData``.

    ``dataset[0]`` has 65 node types (cell types) and, at extent 15, 45,669 neurons and
    1,513,231 edges in 604 edge types. The graph is flyvis's exactly: node order
    type-major in file order, then canonical ``(u, v)``; edge order per type pair as in
    flyvis (see :func:`build_graph`). Use :func:`flygnn.flat.nodes_frame` /
    :func:`flygnn.flat.edges_frame` for pandas views in that flat order.

    The processed graph is cached under ``root/processed``, keyed by the connectome
    file's SHA-256 and the extent; ``root/raw`` holds a copy of the file.

    Args:
        root: cache folder; ``None`` uses ``$FLYGNN_CACHE`` or ``~/.cache/flygnn/connectome``.
        extent: lattice radius in ``[1, 25]``.
        file: a connectome JSON in the same schema; ``None`` uses the shipped
            ``fib25-fib19_v2.2.json``.
        force_reload: rebuild even if a cached graph exists.
        transform, pre_transform: as in :class:`torch_geometric.data.InMemoryDataset`.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        extent: int = 15,
        file: str | os.PathLike | None = None,
        force_reload: bool = False,
        transform: Callable | None = None,
        pre_transform: Callable | None = None,
        n_syn_fill: float = 1.0,
    ):
        if isinstance(extent, bool) or not isinstance(extent, int) or not 1 <= extent <= MAX_EXTENT:
            raise ValueError(f"extent must be an integer in [1, {MAX_EXTENT}], got {extent!r}")
        self.file = Path(file) if file is not None else default_connectome_file()
        if not self.file.is_file():
            raise ValueError(f"{self.file}: connectome file not found")
        self.extent = extent
        self.n_syn_fill = float(n_syn_fill)
        self.file_hash = file_hash(self.file)
        root = Path(root) if root is not None else cache_dir() / "connectome"
        super().__init__(str(root), transform, pre_transform, force_reload=force_reload)
        self._load_cache()

    def _process(self) -> None:
        # PyG's own version unpickles pre_transform.pt with weights_only=False: not here
        if self.force_reload or not Path(self.processed_paths[0]).is_file():
            Path(self.processed_dir).mkdir(parents=True, exist_ok=True)
            self.process()

    def _load_cache(self) -> None:
        """Load the processed graph (``weights_only=True``); a truncated or foreign cache file
        is rebuilt with a warning, so no code in it ever runs."""
        path = self.processed_paths[0]
        try:
            self.data, self.slices = _read_processed(path)
        except ValueError as err:
            log.warning("%s; rebuilding it", err)
            self.process()
            self.data, self.slices = _read_processed(path)

    @property
    def raw_file_names(self) -> list[str]:
        return [f"{self.file.stem}-{self.file_hash[:16]}.json"]

    @property
    def processed_file_names(self) -> list[str]:
        fill = "" if self.n_syn_fill == 1.0 else f"_fill{self.n_syn_fill:g}"
        return [f"{self.file.stem}-{self.file_hash[:16]}_extent{self.extent}{fill}.pt"]

    def download(self) -> None:
        shutil.copyfile(self.file, self.raw_paths[0])

    def process(self) -> None:
        spec = read_connectome(self.file)  # the caller's file, named in errors (same bytes)
        data = build_graph(spec, self.extent, self.n_syn_fill)
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.save([data], self.processed_paths[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(extent={self.extent}, file={self.file.name})"
