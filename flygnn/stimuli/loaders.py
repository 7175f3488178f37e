"""Streaming movies onto the photoreceptors: batching and per-frame graph views.

The graph is never copied per sample: a batch is just ``(B, T, n_hexals)`` movies and
``(B, T, 2, n_hexals)`` flow targets for ``flygnn.simulate`` / training, and the network
holds the one graph. For temporal-GNN tooling (torch_geometric_temporal style),
:func:`temporal_graph_frames` yields one light PyG object per frame whose ``x`` carries
the frame on the photoreceptor nodes and whose ``edge_index`` tensors ARE the base graph's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    RandomSampler,
    SubsetRandomSampler,
    get_worker_info,
)
from torch_geometric.data import Data, HeteroData

from flygnn.flat import FlatGraph
from flygnn.stimuli.augment import check_item

__all__ = ["collate", "make_loader", "temporal_graph_frames"]


def collate(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Stack items ``{"lum": (T, n), "flow": (T, 2, n)}`` into a batch.

    **Shapes:** ``B`` items -> ``{"lum": (B, T, n), "flow": (B, T, 2, n)}``.
    """
    if len(items) == 0:
        raise ValueError("cannot collate an empty list of items")
    for i, item in enumerate(items):
        check_item(item, name=f"items[{i}]")
    keys = items[0].keys()
    out = {}
    for key in keys:
        shapes = {tuple(item[key].shape) for item in items if key in item}
        if len(shapes) != 1 or any(key not in item for item in items):
            raise ValueError(f"items disagree on {key!r}: shapes {sorted(shapes)} (every item "
                             "needs the same keys and frame count; crop or resample first)")
        out[key] = torch.stack([item[key] for item in items])
    return out


def _seed_worker(worker_id: int) -> None:
    """Give each worker's ``Augment`` its own stream, derived from the loader's seed."""
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if transform is not None and isinstance(getattr(transform, "generator", None), torch.Generator):
        transform.generator.manual_seed(info.seed % 2**63)


def make_loader(dataset: Dataset, batch_size: int = 4, shuffle: bool = True,
                indices: Sequence[int] | None = None, drop_last: bool = True, seed: int = 0,
                num_workers: int = 0) -> DataLoader:
    """A ``DataLoader`` of :func:`collate`-d batches (flyvis: batch 4, random, drop_last).

    Args:
        dataset: map-style dataset of items (``OpticFlowMovies``, ``SintelFlow``).
        batch_size: items per batch.
        shuffle: random order (from ``seed``); else sequential.
        indices: restrict to these items (e.g. a fixed training split).
        drop_last: drop the last incomplete batch.
        seed: seed of the sampling order (and of the workers' augmentation streams).
        num_workers: loader processes.

    **Shapes:** batches ``{"lum": (B, T, n_hexals), "flow": (B, T, 2, n_hexals)}``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    if indices is not None:
        bad = [i for i in indices if not 0 <= i < len(dataset)]
        if bad:
            raise ValueError(f"indices {bad[:5]} out of range for a dataset of {len(dataset)} "
                             "items")
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if indices is not None:
        sampler = SubsetRandomSampler(list(indices), generator) if shuffle else list(indices)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      collate_fn=collate, num_workers=num_workers, generator=generator,
                      worker_init_fn=_seed_worker if num_workers > 0 else None)


def _resolve_graph(graph):
    """The HeteroData / FlatGraph / Data behind ``graph`` (or a module holding one)."""
    for candidate in (graph, getattr(graph, "graph", None), getattr(graph, "data", None)):
        if isinstance(candidate, (HeteroData, FlatGraph, Data)):
            return candidate
    raise ValueError(f"expected a HeteroData, FlatGraph, Data or an object with a .graph of those, "
                     f"got {type(graph).__name__}")


def _frames(movie: torch.Tensor, targets: torch.Tensor | None, n_hexals: int):
    if not torch.is_tensor(movie) or movie.dim() not in (2, 3) or movie.shape[-1] != n_hexals:
        got = tuple(movie.shape) if torch.is_tensor(movie) else type(movie).__name__
        raise ValueError(f"movie must have shape (T, {n_hexals}) or (B, T, {n_hexals}), "
                         f"got {got}")
    batched = movie.dim() == 3
    T = movie.shape[-2]
    if targets is not None:
        want = (*movie.shape[:-1], 2, n_hexals)
        if not torch.is_tensor(targets) or tuple(targets.shape) != want:
            got = tuple(targets.shape) if torch.is_tensor(targets) else type(targets).__name__
            raise ValueError(f"targets must have shape {want}, got {got}")
    for t in range(T):
        x = movie[:, t].T if batched else movie[t, :, None]  # views: (n_hexals, B or 1)
        y = None
        if targets is not None:  # (n_hexals, 2) or (n_hexals, B, 2)
            y = targets[:, t].permute(2, 0, 1) if batched else targets[t].T
        yield t, x, y


def temporal_graph_frames(graph, movie: torch.Tensor,
                          targets: torch.Tensor | None = None) -> Iterator[Data | HeteroData]:
    """Yield one PyG object per frame: the frame's input on the photoreceptors, shared edges.

    For a ``HeteroData`` (``FlyVisConnectome(...)[0]``) each frame is a ``HeteroData`` whose
    input cell types (R1-R8) have ``x`` = the frame (a view of ``movie``), the other types a
    shared zero ``x``, and whose edge stores hold the base graph's own ``edge_index``
    tensors. For a ``FlatGraph`` each frame is a ``Data`` with ``x`` zero except on R1-R8
    and one ``edge_index = stack(source, target)`` built once and shared by all frames; a
    ``Data`` base shares its ``edge_index``. ``y`` holds the frame's flow target on the
    hexals. Features are the batch: ``x`` is ``(n, 1)`` or ``(n, B)``.

    Args:
        graph: ``HeteroData``, ``FlatGraph``, ``Data`` or a network with ``.graph``.
        movie: luminance per hexal.
        targets: optional flow targets.

    **Shapes:** ``movie (T, n_hexals)`` or ``(B, T, n_hexals)``; ``targets (T, 2, n_hexals)``
    or ``(B, T, 2, n_hexals)``; per frame ``y (n_hexals, 2)`` or ``(n_hexals, B, 2)``.
    """
    base = _resolve_graph(graph)
    if isinstance(base, HeteroData):
        yield from _hetero_frames(base, movie, targets)
    elif isinstance(base, FlatGraph):
        yield from _flat_frames(base, movie, targets)
    else:
        yield from _data_frames(base, movie, targets)


def _hetero_frames(base: HeteroData, movie, targets):
    inputs = list(base.input_types)
    n_hexals = base[inputs[0]].num_nodes
    width = movie.shape[0] if movie.dim() == 3 else 1
    zeros = {t: torch.zeros(base[t].num_nodes, width, dtype=movie.dtype, device=movie.device)
             for t in base.node_types if t not in inputs}
    edges = [(key, base[key].edge_index) for key in base.edge_types if "edge_index" in base[key]]
    for t, x, y in _frames(movie, targets, n_hexals):
        frame = HeteroData(t=t)
        for node_type in base.node_types:
            frame[node_type].x = x if node_type in inputs else zeros[node_type]
        for key, edge_index in edges:
            frame[key].edge_index = edge_index
        if y is not None:
            frame.y = y
        yield frame


def _flat_frames(base: FlatGraph, movie, targets):
    edge_index = torch.stack([base.source, base.target]).long()  # once, shared by all frames
    receptors = base.nodes_of(base.input_types).to(movie.device)
    n_hexals = receptors.numel() // len(base.input_types)
    for t, x, y in _frames(movie, targets, n_hexals):
        full = torch.zeros(base.num_nodes, x.shape[1], dtype=movie.dtype, device=movie.device)
        full[receptors] = x.repeat(len(base.input_types), 1)
        yield Data(x=full, edge_index=edge_index, y=y, num_nodes=base.num_nodes, t=t)


def _data_frames(base: Data, movie, targets):
    receptors = getattr(base, "input_index", None)
    if receptors is None:
        raise ValueError("a Data base graph needs an 'input_index' attribute (photoreceptor "
                         "node indices, (n_input_types * n_hexals,)) to place the movie")
    n_types = receptors.numel() // movie.shape[-1]
    for t, x, y in _frames(movie, targets, movie.shape[-1]):
        full = torch.zeros(base.num_nodes, x.shape[1], dtype=movie.dtype, device=movie.device)
        full[receptors.to(movie.device)] = x.repeat(n_types, 1)
        yield Data(x=full, edge_index=base.edge_index, y=y, num_nodes=base.num_nodes, t=t)
