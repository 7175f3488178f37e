"""Input checks at flygnn's public boundary: each raises a ``ValueError`` that names the
argument, field or file and says what was expected (no deep traceback, no silent NaN).

The hot modules (simulate, network, flat) call these with one line each.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

__all__ = ["MAX_DT", "IntegrationWarning", "check_dt", "check_extent", "check_finite",
           "check_frames", "check_graph", "check_record", "check_state", "check_time",
           "read_json", "record_index"]

#: per-node attributes every cell type's node store needs
NODE_FIELDS = ("u", "v", "role")
#: per-edge attributes every connected type pair's edge store needs
EDGE_FIELDS = ("du", "dv", "n_syn", "n_syn_certainty", "sign")


def check_time(value, name: str, allow_none: bool = True) -> float | None:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is a finite real number
    (or None, when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def check_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """``tensor`` itself; ``ValueError`` naming ``name`` and the count if any entry is NaN or
    infinite. Check after casting (a float64 1e300 is infinite in float32)."""
    if tensor.is_floating_point() and not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name}: {bad} of {tensor.numel()} values are NaN or infinite "
                         f"(in {str(tensor.dtype).replace('torch.', '')}); expected finite values")
    return tensor


def check_state(state, num_nodes: int, name: str = "initial_state"):
    """``state`` itself: a ``(B, num_nodes)`` tensor, or a tuple of ``(B, ...)`` tensors whose
    first one is ``(B, num_nodes)``, all finite.

    Raises:
        ValueError: another type, a wrong node count or NaN/inf values (naming ``name``).
    """
    parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
    if not parts or not all(isinstance(p, torch.Tensor) for p in parts):
        raise ValueError(f"{name}: expected a (batch, nodes) tensor or a tuple of them, got "
                         f"{type(state).__name__}")
    first = parts[0]
    if first.dim() != 2 or first.shape[1] != num_nodes:
        raise ValueError(f"{name}: expected shape (batch, {num_nodes}) for the network's "
                         f"{num_nodes} nodes, got {tuple(first.shape)}")
    for k, part in enumerate(parts):
        check_finite(part, name if len(parts) == 1 else f"{name}[{k}]")
    return state


def check_record(record) -> None:
    """``ValueError`` for an empty list of recorded cell types."""
    if isinstance(record, (list, tuple)) and len(record) == 0:
        raise ValueError("record: expected None, 'central', 'output' or a non-empty list of "
                         "cell types, got an empty list")


def _fail_graph(problem: str):
    raise ValueError(f"connectome HeteroData: {problem}")


def check_graph(data) -> None:
    """Check that a ``HeteroData`` has what :func:`flygnn.flat.flatten` needs: the graph
    attributes, a node store with ``u``, ``v``, ``role`` for every cell type, at least one
    input type, and per-edge ``du``, ``dv``, ``n_syn``, ``n_syn_certainty``, ``sign`` (finite,
    one per edge) for every connected type pair.

    Raises:
        ValueError: naming the missing or bad node type, edge type or attribute.
    """
    cell_types = list(data.cell_types)
    if not cell_types or not all(isinstance(t, str) for t in cell_types):
        _fail_graph(f"'cell_types' must be a non-empty list of names, got {cell_types!r}")
    for key in ("extent", "input_types", "output_types"):
        if not hasattr(data, key):
            _fail_graph(f"graph attribute {key!r} is missing")
    for key in ("input_types", "output_types"):
        unknown = [t for t in getattr(data, key) if t not in cell_types]
        if unknown:
            _fail_graph(f"{key} names unknown cell types {unknown}")
    if not list(data.input_types):
        _fail_graph("'input_types' is empty: at least one cell type must receive the stimulus")
    present = set(data.node_types)
    for t in cell_types:
        if t not in present:
            _fail_graph(f"node type {t!r} (listed in cell_types) is missing")
        missing = [f for f in NODE_FIELDS if f not in data[t]]
        if missing:
            _fail_graph(f"node type {t!r} lacks the attributes {missing}")
    n_edges = 0
    for edge_type in data.edge_types:
        store = data[edge_type]
        if "edge_index" not in store:
            continue
        s, _, t = edge_type
        for end in (s, t):
            if end not in cell_types:
                _fail_graph(f"edge type {edge_type} joins {end!r}, which is not in cell_types")
        n = store.edge_index.shape[1] if store.edge_index.dim() == 2 else -1
        if store.edge_index.dim() != 2 or store.edge_index.shape[0] != 2:
            _fail_graph(f"edge type {edge_type}: edge_index must be (2, E), got "
                        f"{tuple(store.edge_index.shape)}")
        missing = [f for f in EDGE_FIELDS if f not in store]
        if missing:
            _fail_graph(f"edge type {edge_type} lacks the edge attributes {missing}")
        for f in EDGE_FIELDS:
            value = store[f]
            if not isinstance(value, torch.Tensor) or value.shape != (n,):
                _fail_graph(f"edge type {edge_type}: {f!r} must be a tensor of shape ({n},), got "
                            f"{tuple(getattr(value, 'shape', ())) or type(value).__name__}")
            check_finite(value, f"connectome HeteroData: edge type {edge_type}, {f!r}")
        n_edges += n
    if n_edges == 0:
        _fail_graph("no edges: at least one type pair must be connected")


def read_json(path, what: str):
    """The JSON value in the file ``path``; ``what`` names it in errors (e.g. ``"config file"``).

    Raises:
        FileNotFoundError: no such file (message naming ``what`` and the path).
        ValueError: a folder, an unreadable file, not UTF-8, not JSON or nested too deeply.
    """
    import json
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(path)!r} not found") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text: {err}") from None
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not readable: {err.strerror or err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {err}") from None
    except RecursionError:
        raise ValueError(f"{what} {str(path)!r}: JSON nested too deeply") from None


def check_extent(value, name: str, max_extent: int = 25) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer lattice
    radius in ``[1, max_extent]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or not 1 <= value <= max_extent:
        raise ValueError(f"{name}: expected an integer lattice extent in [1, {max_extent}], "
                         f"got {value!r}")
    return int(value)


MAX_DT = 1 / 50


class IntegrationWarning(UserWarning):
    """A time step large enough to make explicit Euler integration inaccurate."""


def check_dt(dt: float) -> float:
    """``dt`` as a float; ``ValueError`` unless ``0 < dt < inf``; warns if ``dt > 1/50`` s."""
    if getattr(dt, "ndim", None) == 0:  # numpy / torch scalars
        dt = float(dt)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive number of seconds, got {dt!r}")
    if dt > MAX_DT:
        warnings.warn(IntegrationWarning(
            f"dt={dt} is very large for Euler integration (> {MAX_DT:.3g} s)"), stacklevel=3)
    return float(dt)


def check_frames(frames, n_hexals: int, name: str, dim: int, like: torch.Tensor) -> torch.Tensor:
    """Validate a movie ``(B, T, n_hexals)`` (``dim=3``) or frames ``(B, n_hexals)`` (``dim=2``).

    Returns it as a tensor with ``like``'s dtype and device. Raises ``ValueError`` on a
    wrong shape or non-finite values.
    """
    frames = torch.as_tensor(frames)
    expected = "(B, T, n_hexals)" if dim == 3 else "(B, n_hexals)"
    if frames.dim() != dim or frames.shape[-1] != n_hexals or 0 in frames.shape:
        raise ValueError(f"{name}: expected shape {expected} with n_hexals={n_hexals}, "
                         f"got {tuple(frames.shape)}")
    if not frames.is_floating_point() and frames.dtype != torch.bool:
        frames = frames.to(torch.float64)
    return check_finite(frames.to(dtype=like.dtype, device=like.device), name)


def record_index(net, record) -> torch.Tensor | None:
    """Node indices recorded by ``record`` (None = all nodes, flyvis order).

    ``"central"``: the (0, 0) neuron of each cell type (65); ``"output"``: all neurons of
    the output types in output order; a list of cell types: their neurons, in that order.
    """
    if record is None:
        return None
    check_record(record)
    g = net.graph
    if isinstance(record, str):
        if record == "central":
            return g.central_index
        if record == "output":
            return g.nodes_of(g.output_types)
        record = [record]
    if not isinstance(record, (list, tuple)) or not all(isinstance(t, str) for t in record):
        raise ValueError(f"record: expected None, 'central', 'output' or a list of cell types, "
                         f"got {record!r}")
    return g.nodes_of(list(record))
