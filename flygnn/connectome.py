"""Read and validate a connectome JSON file into a typed, plain-Python specification.

The file (schema described in ``data/README.md``) lists cell types with their lattice
pattern and type-to-type "average filters": for a source type S and a target type T,
offsets ``(du, dv)`` with the mean number of synapses that an S neuron at ``(u, v)``
makes onto the T neuron at ``(u + du, v + dv)``.

Filters with three or more offsets have their gaps filled (``n_syn_fill``): every
integer point inside the convex hull of the reported offsets, or on its boundary except
on a horizontal bottom edge (the edge at the smallest ``dv``), is added with count
``n_syn_fill``. This reproduces flyvis's ``fill_hull`` exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CellTypeSpec", "FilterSpec", "ConnectomeSpec", "read_connectome", "fill_filter",
           "file_hash"]

#: largest ``|du|``, ``|dv|`` of a filter offset (the largest lattice has radius 25)
MAX_OFFSET = 10_000
#: most lattice points in a filter's bounding box that gap filling will visit (the shipped
#: connectome's largest box has 80; 10,000 fill in well under a second)
MAX_FILL_BOX = 10_000


@dataclass(frozen=True)
class CellTypeSpec:
    """One cell type: its name and the lattice stride it occupies (``(0, 0)``: a single cell)."""

    name: str
    stride: tuple[int, int]

    @property
    def single(self) -> bool:
        return self.stride == (0, 0)


@dataclass(frozen=True)
class FilterSpec:
    """One type-to-type filter: ``offsets[k] = (du, dv)`` carries ``n_syn[k]`` mean synapses."""

    source: str
    target: str
    sign: int
    offsets: tuple[tuple[int, int], ...]
    n_syn: tuple[float, ...]
    n_syn_certainty: float
    relation: str


@dataclass(frozen=True)
class ConnectomeSpec:
    """The whole file: cell types (file order), filters (file order), input and output types."""

    path: str
    cell_types: tuple[CellTypeSpec, ...]
    filters: tuple[FilterSpec, ...]
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cell_types]


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fail(path, where: str, field: str, problem: str):
    raise ValueError(f"{path}: {where}, field '{field}': {problem}")


def _get(path, obj: dict, key: str, where: str):
    if not isinstance(obj, dict):
        _fail(path, where, key, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        _fail(path, where, key, "missing")
    return obj[key]


def _as_int(path, value, where: str, field: str) -> int:
    is_int = isinstance(value, numbers.Integral) or (isinstance(value, float)
                                                     and value.is_integer())
    if isinstance(value, bool) or not is_int:
        _fail(path, where, field, f"expected an integer, got {value!r}")
    return int(value)


def _parse_pattern(path, pattern, where: str) -> tuple[int, int]:
    if not isinstance(pattern, list) or len(pattern) != 2:
        _fail(path, where, "pattern", f"expected [kind, argument], got {pattern!r}")
    kind, arg = pattern
    if kind == "single":
        return (0, 0)
    if kind == "tile":
        n = _as_int(path, arg, where, "pattern")
        stride = (n, n)
    elif kind == "stride":
        if not isinstance(arg, list) or len(arg) != 2:
            _fail(path, where, "pattern", f"stride needs [u_stride, v_stride], got {arg!r}")
        stride = (_as_int(path, arg[0], where, "pattern"), _as_int(path, arg[1], where, "pattern"))
    else:
        _fail(path, where, "pattern",
              f"unknown kind {kind!r}; expected 'stride', 'tile' or 'single'")
    if min(stride) < 1:
        _fail(path, where, "pattern", f"strides must be >= 1, got {stride}")
    return stride


def read_connectome(path: str | Path) -> ConnectomeSpec:
    """Parse and validate a connectome JSON file.

    Raises:
        ValueError: naming the file, the entry (e.g. ``edges[12] (R1->L1)``) and the field
            for invalid JSON, a missing field, an unknown or duplicate cell type, a
            non-integer offset, or a non-positive synapse count.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: connectome file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text, so not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a connectome file") from None
    except OSError as err:
        raise ValueError(f"{path}: connectome file not readable ({err.strerror or err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")

    cell_types, seen = [], set()
    for k, node in enumerate(_get(path, raw, "nodes", "top level")):
        name = _get(path, node, "name", f"nodes[{k}]")
        where = f"nodes[{k}] ({name})"
        if not isinstance(name, str) or not name:
            _fail(path, f"nodes[{k}]", "name", f"expected a non-empty string, got {name!r}")
        if name in seen:
            _fail(path, where, "name", f"duplicate cell type {name!r}")
        seen.add(name)
        pattern = _get(path, node, "pattern", where)
        cell_types.append(CellTypeSpec(name, _parse_pattern(path, pattern, where)))

    filters, pairs = [], set()
    for k, edge in enumerate(_get(path, raw, "edges", "top level")):
        src = _get(path, edge, "src", f"edges[{k}]")
        tar = _get(path, edge, "tar", f"edges[{k}]")
        where = f"edges[{k}] ({src}->{tar})"
        for field, name in (("src", src), ("tar", tar)):
            if name not in seen:
                _fail(path, where, field, f"unknown cell type {name!r}")
        if (src, tar) in pairs:
            _fail(path, where, "src/tar", "duplicate type pair")
        pairs.add((src, tar))
        alpha = _get(path, edge, "alpha", where)
        if alpha not in (1, -1) or isinstance(alpha, bool):
            _fail(path, where, "alpha", f"expected +1 or -1, got {alpha!r}")
        offsets, counts = [], []
        entries = _get(path, edge, "offsets", where)
        if not isinstance(entries, list) or not entries:
            _fail(path, where, "offsets", "expected a non-empty list of [[du, dv], n_syn]")
        for j, entry in enumerate(entries):
            field = f"offsets[{j}]"
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list)
                    and len(entry[0]) == 2):
                _fail(path, where, field, f"expected [[du, dv], n_syn], got {entry!r}")
            du = _as_int(path, entry[0][0], where, field + ".du")
            dv = _as_int(path, entry[0][1], where, field + ".dv")
            if max(abs(du), abs(dv)) > MAX_OFFSET:
                _fail(path, where, field, f"offset {(du, dv)} is beyond |du|, |dv| <= "
                      f"{MAX_OFFSET:,} (no lattice is that large)")
            count = entry[1]
            if (isinstance(count, bool) or not isinstance(count, numbers.Real)
                    or not math.isfinite(count) or not count > 0):
                _fail(path, where, field + ".n_syn",
                      f"expected a finite positive number, got {count!r}")
            if (du, dv) in offsets:
                _fail(path, where, field, f"duplicate offset {(du, dv)}")
            offsets.append((du, dv))
            counts.append(float(count))
        certainty = _get(path, edge, "lambda_mult", where)
        if (isinstance(certainty, bool) or not isinstance(certainty, numbers.Real)
                or not math.isfinite(certainty)):
            _fail(path, where, "lambda_mult", f"expected a finite number, got {certainty!r}")
        relation = edge.get("edge_type", "chem")
        if not isinstance(relation, str) or not relation.isidentifier():
            _fail(path, where, "edge_type", f"expected an identifier string, got {relation!r}")
        filters.append(FilterSpec(src, tar, int(alpha), tuple(offsets), tuple(counts),
                                  float(certainty), relation))

    names = [c.name for c in cell_types]
    groups = {}
    for key in ("input_units", "output_units"):
        group = _get(path, raw, key, "top level")
        if not isinstance(group, list):
            _fail(path, "top level", key, "expected a list of cell type names")
        for j, name in enumerate(group):
            if name not in seen:
                _fail(path, f"{key}[{j}]", key, f"unknown cell type {name!r}")
        groups[key] = tuple(group)
    if not groups["input_units"]:
        _fail(path, "top level", "input_units", "empty; at least one cell type must receive "
              "the stimulus")
    del names
    return ConnectomeSpec(str(path), tuple(cell_types), tuple(filters),
                          groups["input_units"], groups["output_units"])


def _cross(o, a, b) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _convex_hull(points) -> list[tuple[int, int]]:
    """Counter-clockwise hull vertices (Andrew's monotone chain; exact on integers)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts
    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def fill_filter(offsets, n_syn, fill: float = 1.0):
    """Fill the gaps of a filter inside the convex hull of its offsets.

    Args:
        offsets: reported ``(du, dv)`` points (kept first, in their order).
        n_syn: their counts.
        fill: count given to added points; ``fill <= 0`` or fewer than 3 offsets disables filling.

    Raises:
        ValueError: a bounding box of more than ``MAX_FILL_BOX`` lattice points.

    Returns:
        ``(offsets, n_syn)`` lists: the reported entries, then the added ones in
        lexicographic ``(du, dv)`` order. Added: integer points of the bounding box that lie
        strictly inside the hull or on its boundary, except on a horizontal edge at the
        minimum ``dv``. Collinear offsets add nothing.
    """
    offsets, n_syn = list(offsets), list(n_syn)
    if fill <= 0 or len(offsets) < 3:
        return offsets, n_syn
    dus, dvs = [p[0] for p in offsets], [p[1] for p in offsets]
    box = (max(dus) - min(dus) + 1) * (max(dvs) - min(dvs) + 1)
    if box > MAX_FILL_BOX:
        raise ValueError(f"offsets span du {min(dus)}..{max(dus)}, dv {min(dvs)}..{max(dvs)}: "
                         f"{box:,} lattice points to fill, more than {MAX_FILL_BOX:,}; use "
                         "n_syn_fill=0 or smaller offsets")
    hull = _convex_hull(offsets)
    if len(hull) < 3:
        return offsets, n_syn
    min_dv = min(p[1] for p in offsets)
    edges = list(zip(hull, hull[1:] + hull[:1]))
    known = set(offsets)
    for du in range(min(dus), max(dus) + 1):
        for dv in range(min(dvs), max(dvs) + 1):
            p = (du, dv)
            if p in known:
                continue
            crosses = [_cross(a, b, p) for a, b in edges]
            if min(crosses) < 0:
                continue
            on_bottom = any(c == 0 and a[1] == b[1] == min_dv for c, (a, b) in zip(crosses, edges))
            if not on_bottom:
                offsets.append(p)
                n_syn.append(float(fill))
    return offsets, n_syn
