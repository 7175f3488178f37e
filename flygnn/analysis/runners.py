"""Response runners: simulate networks on the standard stimulus sets with flyvis's protocols.

Each runner builds its stimulus dataset, computes the initial state of section 8.1 of the
reference (grey steady state once with batch 1, or a fade-in from rest for naturalistic
movies), simulates batches of items without gradients and returns a
:class:`~flygnn.analysis.responses.Responses`:

=========================== ================================ ============ ==========
runner                      stimulus (defaults)              grey state   fade-in
=========================== ================================ ============ ==========
flash_responses             Flashes, dt 1/200                1 s          --
moving_edge_responses       MovingEdges, height 80           1 s          --
moving_bar_responses        MovingBars, height 9             1 s          --
central_impulses_responses  CentralImpulses, t_stim 2        4 s          --
spatial_impulses_responses  SpatialImpulses, t_stim 2        4 s          --
naturalistic_responses      OpticFlowMovies lum, dt 1/100    none         2 s
=========================== ================================ ============ ==========

Responses are kept on disk under a key from :mod:`flygnn.analysis.response_cache`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch

from flygnn._paths import cache_dir
from flygnn.analysis.response_cache import KEEP_RESPONSES, response_key
from flygnn.analysis.responses import Responses
from flygnn.simulate import fade_in_state, record_index, simulate, steady_state

__all__ = [
    "stimulus_responses",
    "flash_responses",
    "moving_edge_responses",
    "moving_bar_responses",
    "central_impulses_responses",
    "spatial_impulses_responses",
    "naturalistic_responses",
]


def _device_of(net: torch.nn.Module) -> torch.device:
    for tensor in list(net.parameters()) + list(net.buffers()):
        return tensor.device
    return torch.device("cpu")


def _simulate_padded(net, movie: torch.Tensor, dt: float, state, record) -> np.ndarray:
    """Simulate a batch whose items may end in NaN padding frames (moving bars and edges).

    Frames from an item's first NaN frame on get NaN responses (flyvis propagates NaN through
    the network within a few steps; analyses only read the stimulus window). Frames after the
    last non-padded frame of the batch are not simulated.
    """
    padded = torch.isnan(movie).any(dim=-1).cumsum(dim=1) > 0  # (B, T)
    n_valid = int((~padded).sum(dim=1).max())
    lead = (net.num_models,) if hasattr(net, "num_models") else ()  # a stack: (K, B, T, R)
    if n_valid == 0:
        first = getattr(net, "networks", [net])[0]
        size = len(record_index(first, record)) if record is not None else net.num_nodes
        return np.full((*lead, *movie.shape[:2], size), np.nan, dtype=np.float32)
    clean = torch.nan_to_num(movie[:, :n_valid], nan=0.5)
    resp = simulate(net, clean, dt, initial_state=state, record=record).cpu().numpy()
    if n_valid == movie.shape[1] and not padded.any():
        return resp
    out = np.full((*lead, *movie.shape[:2], resp.shape[-1]), np.nan, dtype=np.float32)
    out[..., :n_valid, :] = resp
    out[(slice(None),) * len(lead) + (padded.cpu().numpy(),)] = np.nan
    return out


def _item(x, key: str | None) -> torch.Tensor:
    if isinstance(x, dict):
        if key not in x:
            raise ValueError(f"dataset items are dicts without the key {key!r}; keys: {sorted(x)}")
        x = x[key]
    return torch.as_tensor(x, dtype=torch.float32)


def _by_length(dataset, key) -> np.ndarray:
    """Item order by decreasing length before NaN padding (stable), so that a batch of items of
    similar lengths is not simulated over the padding of its longest item. Results do not
    depend on the order: every item starts from the same state."""
    lengths = []
    for i in range(len(dataset)):
        item = _item(dataset[i], key)
        padded = torch.isnan(item.reshape(len(item), -1)).any(dim=1)
        lengths.append(int(padded.float().argmax()) if padded.any() else len(item))
    return np.argsort(-np.asarray(lengths), kind="stable")


def _cell_types(net, record) -> list[str]:
    g = getattr(net, "graph", None)
    if g is None:  # a stand-in network: the 65 central cells of the shipped connectome
        from flygnn.analysis import known

        return list(known.cell_types())
    if record == "central":
        return list(g.cell_types)
    index = (torch.arange(g.num_nodes) if record is None else _record_index(net, record))
    return [g.cell_types[k] for k in g.node_type[index].tolist()]


def _record_index(net, record):
    return record_index(getattr(net, "networks", [net])[0], record)


def stimulus_responses(
    nets: torch.nn.Module | Sequence[torch.nn.Module],
    dataset,
    t_pre_state: float = 1.0,
    batch_size: int = 4,
    model_names: Sequence[str] | None = None,
    attrs: dict | None = None,
    *,
    t_fade_in: float = 0.0,
    record: str | Sequence[str] | None = "central",
    key: str | None = "lum",
    progress: bool | None = None,
    cache: bool = True,
) -> Responses:
    """Responses of one or several networks to every item of a stimulus dataset.

    For each network: ``s0 = steady_state(net, t_pre_state, dataset.dt, batch_size=1)`` (grey,
    once; ``t_pre_state = 0`` starts from rest), then batches of ``batch_size`` items in index
    order are simulated from ``s0`` (after a fade-in from grey to each batch's first frames over
    ``t_fade_in`` seconds, when positive) with one Euler step per frame, without gradients.
    Several networks that share one graph (and no fade-in) run in one pass per batch
    (:mod:`flygnn.stacked`), with the same results.

    Args:
        nets: a :class:`flygnn.network.Network` or a list of them (an ensemble).
        dataset: a stimulus dataset with ``len``, items ``(n_frames, n_hexals)`` (or dicts whose
            ``key`` entry is), ``.dt`` and optionally ``.params`` and ``.t_pre``.
        t_pre_state: seconds of grey input for the initial steady state (0 = resting state).
        batch_size: items simulated together.
        model_names: one name per network.
        attrs: stored on the result (e.g. ``t_stim``, ``offsets``).
        t_fade_in: seconds of contrast fade-in per batch (naturalistic protocol).
        record: ``"central"`` (one cell per type), None (all cells) or a list of cell types.
        key: entry of dict items holding the luminance.
        progress: show a tqdm progress bar over batches (after 2 s); None: only when standard
            error is a terminal.
        cache: keep the responses on disk, keyed by a hash of the network (parameters, graph,
            dynamics), the stimulus parameters and this protocol, for datasets that name their
            parameters (``dataset.cache_token()``, e.g. moving bars and edges) and flygnn's own
            network and dynamics classes; the next call with the same inputs loads them
            (:mod:`flygnn.diskcache`; the last ``KEEP_RESPONSES`` sets are kept).

    Returns:
        :class:`Responses`; responses are NaN from an item's first NaN (padding) frame on.

    **Shapes:** items ``(n_frames, n_hexals)``; result ``(n_models, n_items, n_frames, n_cells)``
    with ``n_cells = 65`` for ``record="central"``.
    """
    nets = [nets] if isinstance(nets, torch.nn.Module) else list(nets)
    if not nets:
        raise ValueError("nets is empty; pass a Network or a list of Networks")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty()
    dt = float(dataset.dt)
    batches = None

    def make_batches():  # items of one length together (not needed when the cache answers)
        order = _by_length(dataset, key) if t_fade_in <= 0 else np.arange(len(dataset))
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    protocol = {"t_pre_state": t_pre_state, "t_fade_in": t_fade_in, "batch_size": batch_size,
                "record": record, "key": key, "runner_version": 1}
    n_cells = len(_cell_types(nets[0], record))
    out = []
    if len(nets) > 1 and t_fade_in <= 0:  # an ensemble sharing one graph: one pass
        out = _stacked_responses(nets, dataset, dt, t_pre_state, make_batches(), key, record,
                                 progress)
    with torch.no_grad():
        for m, net in enumerate([] if out else nets):
            cache_key = response_key(net, dataset, protocol) if cache else None
            if cache_key is not None:
                from flygnn.diskcache import load_array

                path = cache_dir() / "responses" / f"{cache_key}.npy"
                hit = load_array(path, shape=(len(dataset), None, n_cells))
                if hit is not None:
                    out.append(hit)
                    continue
            if batches is None:
                batches = make_batches()
            device = _device_of(net)
            state = None
            if t_pre_state > 0:
                state = steady_state(net, t_pre_state, dt, batch_size=1, value=0.5)
            chunks = [None] * len(dataset)
            label = f"model {m + 1}/{len(nets)}" if len(nets) > 1 else type(dataset).__name__
            for batch in tqdm(batches, desc=label, disable=not progress, leave=False, delay=2.0):
                movie = torch.stack([_item(dataset[int(i)], key) for i in batch]).to(device)
                first = state
                if t_fade_in > 0:
                    first = fade_in_state(net, t_fade_in, dt,
                                          torch.nan_to_num(movie[:, 0], nan=0.5),
                                              state=state)
                for i, resp in zip(batch, _simulate_padded(net, movie, dt, first, record)):
                    chunks[int(i)] = resp
            out.append(np.stack(chunks))
            if cache_key is not None:
                from flygnn.diskcache import prune, save_array

                save_array(path, out[-1])
                prune(path.parent, KEEP_RESPONSES)
    params = getattr(dataset, "params", None)
    if params is None or callable(params):
        import pandas as pd

        params = pd.DataFrame({"item": np.arange(len(dataset))})
    return Responses(
        np.stack(out),
        params.copy(),
        dt,
        float(getattr(dataset, "t_pre", 0.0) or 0.0),
        _cell_types(nets[0], record),
        model_names=list(model_names) if model_names is not None else None,
        attrs=dict(attrs or {}),
    )


def _stacked_responses(nets, dataset, dt, t_pre_state, batches, key, record, progress) -> list:
    """:func:`stimulus_responses` of several networks in one pass per batch
    (:mod:`flygnn.stacked`); [] when they cannot share one pass."""
    from tqdm.auto import tqdm

    from flygnn import stacked

    try:
        stack = stacked.StackedNetworks(nets)
    except ValueError:  # not flygnn networks of one graph size: model by model
        return []
    if stack.reason is not None:
        return []
    device = _device_of(nets[0])
    chunks = [None] * len(dataset)
    with torch.no_grad():
        state = None
        if t_pre_state > 0:
            state = stacked.steady_state_stacked(stack, t_pre_state, dt, batch_size=1, value=0.5)
        for batch in tqdm(batches, desc=f"{len(nets)} models", disable=not progress, leave=False):
            movie = torch.stack([_item(dataset[int(i)], key) for i in batch]).to(device)
            if state is None:
                state = stack.initial_state(stack.prepare(), 1)
            resp = _simulate_padded(stack, movie, dt, state, record)  # (K, B, T, R)
            for j, i in enumerate(batch):
                chunks[int(i)] = resp[:, j]
    return list(np.stack(chunks, axis=1))


def flash_responses(nets, dt: float = 1 / 200, radius: Sequence[int] = (-1, 6), t_stim: float = 1.0,
                    t_pre: float = 1.0, batch_size: int = 4, model_names=None, *,
                    record="central", progress: bool | None = None, **stimulus_kwargs) -> Responses:
    """Responses to ON/OFF flashes (flyvis ``flash_responses``): grey state of 1 s.

    **Shapes:** result ``(n_models, n_flashes, n_frames, n_cells)``; defaults 4 flashes x 600
    frames x 65 central cells.
    """
    from flygnn.stimuli import Flashes

    data = Flashes(dt=dt, radius=tuple(radius), t_stim=t_stim, t_pre=t_pre, **stimulus_kwargs)
    attrs = {"t_stim": float(getattr(data, "t_stim", t_stim)),
             "alternations": tuple(getattr(data, "alternations", (0, 1, 0))), "stimulus": "flashes"}
    return stimulus_responses(nets, data, 1.0, batch_size, model_names, attrs, record=record,
                              progress=progress)


def _moving(cls_name, nets, offsets, stimulus, batch_size, model_names, record, progress, **kw):
    from flygnn import stimuli

    data = getattr(stimuli, cls_name)(offsets=tuple(offsets), **kw)
    attrs = {"offsets": tuple(int(o) for o in offsets), "stimulus": stimulus}
    return stimulus_responses(nets, data, 1.0, batch_size, model_names, attrs, record=record,
                              progress=progress)


def moving_edge_responses(nets, dt: float = 1 / 200, offsets: tuple[int, int] = (-10, 11),
                          intensities: Sequence[float] = (0, 1),
                          speeds: Sequence[float] = (2.4, 4.8, 9.7, 13, 19, 25), height: float = 80,
                          post_pad_mode: str = "continue", t_pre: float = 1.0, t_post: float = 1.0,
                          batch_size: int = 24, model_names=None, *, record="central",
                          progress: bool | None = None, **stimulus_kwargs) -> Responses:
    """Responses to moving ON/OFF edges (flyvis ``moving_edge_responses``): 144 items by default.

    Items are simulated 24 at a time (the 12 directions x 2 contrasts of one speed share a
    length), which gives the same responses as any other batch size (to float32 rounding),
    faster. Progress is shown on a terminal; rendered edges and responses are cached on disk
    (see :func:`stimulus_responses`; pass ``cache=False`` to skip both).

    **Shapes:** result ``(n_models, n_angles * n_intensities * n_speeds, n_frames, n_cells)``.
    """
    return _moving("MovingEdges", nets, offsets, "moving_edge", batch_size, model_names, record,
                   progress, intensities=tuple(intensities), speeds=tuple(speeds), height=height,
                   post_pad_mode=post_pad_mode, dt=dt, t_pre=t_pre, t_post=t_post,
                   **stimulus_kwargs)


def moving_bar_responses(nets, dt: float = 1 / 200, offsets: tuple[int, int] = (-10, 11),
                         widths: Sequence[int] = (1, 2, 4), intensities: Sequence[float] = (0, 1),
                         speeds: Sequence[float] = (2.4, 4.8, 9.7, 13, 19, 25), height: float = 9,
                         post_pad_mode: str = "continue", t_pre: float = 1.0, t_post: float = 1.0,
                         batch_size: int = 4, model_names=None, *, record="central",
                         progress: bool | None = None, **stimulus_kwargs) -> Responses:
    """Responses to moving ON/OFF bars (flyvis ``moving_bar_responses``): 432 items by default.

    **Shapes:** result ``(n_models, n_angles * n_widths * n_intensities * n_speeds, n_frames,
    n_cells)``.
    """
    return _moving("MovingBars", nets, offsets, "moving_bar", batch_size, model_names, record,
                   progress, widths=tuple(widths), intensities=tuple(intensities),
                   speeds=tuple(speeds), height=height, post_pad_mode=post_pad_mode, dt=dt,
                   t_pre=t_pre, t_post=t_post, **stimulus_kwargs)


def central_impulses_responses(nets, dt: float = 1 / 200,
                               impulse_durations: Sequence[float] = (5, 20, 50, 100, 200, 300),
                               t_stim: float = 2.0, t_pre: float = 1.0, batch_size: int = 4,
                               model_names=None, *, record="central", progress: bool | None = None,
                               **stimulus_kwargs) -> Responses:
    """Responses to ON/OFF impulses at the central column (durations in ms): grey state of 4 s.

    **Shapes:** result ``(n_models, 2 * n_durations, n_frames, n_cells)``; 600 frames by default.
    """
    from flygnn.stimuli import CentralImpulses

    data = CentralImpulses(impulse_durations=tuple(impulse_durations), t_stim=t_stim, t_pre=t_pre,
                           dt=dt, **stimulus_kwargs)
    return stimulus_responses(nets, data, 4.0, batch_size, model_names,
                              {"stimulus": "central_impulses"}, record=record, progress=progress)


def spatial_impulses_responses(nets, dt: float = 1 / 200,
                               impulse_durations: Sequence[float] = (5, 20),
                               max_extent: int = 4, t_stim: float = 2.0, t_pre: float = 1.0,
                               batch_size: int = 4, model_names=None, *, record="central",
                               progress: bool | None = None, **stimulus_kwargs) -> Responses:
    """Responses to ON/OFF impulses at every column within ``max_extent``: grey state of 4 s.

    **Shapes:** result ``(n_models, n_positions * 2 * n_durations, n_frames, n_cells)``.
    """
    from flygnn.stimuli import SpatialImpulses

    data = SpatialImpulses(impulse_durations=tuple(impulse_durations), max_extent=max_extent,
                           t_stim=t_stim, t_pre=t_pre, dt=dt, **stimulus_kwargs)
    return stimulus_responses(nets, data, 4.0, batch_size, model_names,
                              {"stimulus": "spatial_impulses"}, record=record, progress=progress)


def naturalistic_responses(nets, dataset=None, dt: float = 1 / 100, n_sequences: int = 16,
                           seed: int = 12345, t_fade_in: float = 2.0, batch_size: int = 4,
                           model_names=None, *, record="central",
                           progress: bool | None = None) -> Responses:
    """Responses to naturalistic movies: from rest, faded in over 2 s per batch (section 8.1).

    Sintel is not shipped, so the default movies are ``n_sequences`` procedural optic-flow movies
    (:class:`~flygnn.stimuli.OpticFlowMovies`, luminance only, at ``dt``); pass any dataset (for
    example :class:`~flygnn.stimuli.SintelFlow`) to use other movies. Its ``dt`` is set to ``dt``.

    **Shapes:** result ``(n_models, n_items, n_frames, n_cells)``.
    """
    if dataset is None:
        from flygnn.stimuli import OpticFlowMovies

        nets_list = [nets] if isinstance(nets, torch.nn.Module) else list(nets)
        extent = nets_list[0].graph.extent if nets_list else 15
        dataset = OpticFlowMovies(n_sequences, dt=dt, seed=seed, extent=extent)
    elif getattr(dataset, "dt", None) != dt and hasattr(dataset, "dt"):
        try:
            dataset.dt = dt
        except AttributeError:
            pass
    return stimulus_responses(nets, dataset, 0.0, batch_size, model_names,
                              {"stimulus": "naturalistic"}, t_fade_in=t_fade_in, record=record,
                              progress=progress)
