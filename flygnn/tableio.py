"""Tables on disk: CSV/TSV (optionally gzipped), Parquet or Feather, chosen by extension;
:func:`to_tables` writes any flygnn graph as the three tables of :mod:`flygnn.tables`.

Parquet and Feather need pyarrow (the ``tables`` extra: ``pip install 'flygnn[tables]'``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.data import HeteroData

__all__ = ["FORMATS", "read_table", "suffix", "to_tables", "write_table"]

FORMATS = {".csv": "csv", ".csv.gz": "csv", ".tsv": "tsv", ".parquet": "parquet",
           ".pq": "parquet", ".feather": "feather", ".arrow": "feather"}


def suffix(path: Path) -> str:
    """The table extension of ``path`` (``.csv.gz`` counts as one); ValueError if unknown."""
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    raise ValueError(f"{path}: unknown table format; expected one of {sorted(FORMATS)}")


def read_table(path: str | os.PathLike, columns=(), name: str = "table") -> pd.DataFrame:
    """Read a CSV/TSV/Parquet/Feather file (by extension) and check its ``columns`` exist.

    Raises:
        FileNotFoundError: no such file. ImportError: Parquet/Feather without pyarrow.
        ValueError: unreadable file or a missing column, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {name} file not found")
    kind = FORMATS[suffix(path)]
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(path, sep="," if kind == "csv" else "\t")
        elif kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_feather(path)
    except ImportError as err:
        raise ImportError(f"{path}: reading {kind} needs pyarrow (pip install "
                          f"'flygnn[tables]'): {err}") from None
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable {kind} {name} ({err})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: column {missing[0]!r} missing from the {name} table "
                         f"(columns: {list(frame.columns)})")
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table in the format its extension names (no index column)."""
    path = Path(path)
    kind = FORMATS[suffix(path)]
    if kind in ("csv", "tsv"):
        frame.to_csv(path, index=False, sep="," if kind == "csv" else "\t")
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_feather(path)


def to_tables(data: HeteroData, folder: str | os.PathLike, format: str = "csv") -> dict[str, Path]:
    """Write a flygnn graph as the three tables ``neurons``, ``synapses``, ``types``.

    Neuron ids are the flat node indices (:func:`flygnn.flat.flatten` order). The types
    table's ``sign`` is the most common sign of the type's outgoing pairs (+1 without any);
    the synapses carry each edge's ``sign`` and ``n_syn_certainty``, so that
    :class:`~flygnn.tables.TableConnectome` rebuilds the same graph, edge for edge.

    Args:
        data: a connectome ``HeteroData`` (any flygnn graph).
        folder: created if needed.
        format: ``"csv"``, ``"parquet"`` or ``"feather"``.

    Returns:
        ``{"neurons": path, "synapses": path, "types": path}``.
    """
    from flygnn.flat import edges_frame, flatten

    if format not in ("csv", "parquet", "feather"):
        raise ValueError(f"format must be 'csv', 'parquet' or 'feather', got {format!r}")
    graph = flatten(data)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = np.asarray(graph.cell_types, dtype=object)
    neurons = pd.DataFrame({"id": np.arange(graph.num_nodes),
                            "type": names[graph.node_type.numpy()],
                            "u": graph.u.numpy(), "v": graph.v.numpy()})
    edges = edges_frame(graph)
    synapses = pd.DataFrame({"pre": edges["source"], "post": edges["target"],
                             "n_syn": edges["n_syn"].astype(np.float64),
                             "sign": edges["sign"].astype(np.int64),
                             "n_syn_certainty": edges["n_syn_certainty"].astype(np.float64)})
    majority = edges.groupby("source_type")["sign"].agg(
        lambda s: 1 if (s > 0).mean() >= 0.5 else -1)
    role = {"input": "input", "intermediate": "hidden", "output": "output"}
    types = pd.DataFrame({"type": graph.cell_types,
                          "sign": [int(majority.get(t, 1)) for t in graph.cell_types],
                          "role": [role[r] for r in graph.roles]})
    paths = {}
    for name, frame in (("neurons", neurons), ("synapses", synapses), ("types", types)):
        paths[name] = folder / f"{name}.{format}"
        write_table(frame, paths[name])
    return paths
