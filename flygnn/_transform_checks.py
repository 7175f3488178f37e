"""Argument checks shared by the connectome transforms (:mod:`flygnn.transforms`,
:mod:`flygnn.rewiring`): that the input is a connectome ``HeteroData``, its connected edge
types, and that named cell types and type pairs exist; each failure is a ``ValueError`` naming
the argument."""

from __future__ import annotations

from torch_geometric.data import HeteroData

__all__ = ["check_data", "check_pairs", "check_types", "edge_types"]


def check_data(data) -> None:
    """``ValueError`` unless ``data`` is a connectome ``HeteroData`` (``dataset[0]``)."""
    if not isinstance(data, HeteroData) or not hasattr(data, "cell_types"):
        raise ValueError("expected a connectome HeteroData (dataset[0]), got "
                         f"{type(data).__name__}")


def edge_types(data) -> list[tuple[str, str, str]]:
    """The edge types of ``data`` that hold edges (an ``edge_index``)."""
    return [k for k in data.edge_types if "edge_index" in data[k]]


def check_types(data, names, arg: str) -> list[str]:
    """``names`` (one name or several) as a list; ``ValueError`` naming ``arg`` for a name
    that is not a cell type of ``data``."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in data.cell_types]
    if unknown:
        raise ValueError(f"{arg}: unknown cell types {unknown}")
    return names


def check_pairs(data, pairs) -> list[tuple[str, str]]:
    """``pairs`` as ``(source_type, target_type)`` tuples; ``ValueError`` for a pair that
    no edge type of ``data`` connects."""
    pairs = [tuple(p) for p in pairs]
    connected = {(s, t) for s, _, t in edge_types(data)}
    bad = [p for p in pairs if len(p) != 2 or p not in connected]
    if bad:
        raise ValueError(f"pairs: {bad} are not connected (source_type, target_type) pairs")
    return pairs
