"""Tables on disk: CSV/TSV (optionally gzipped), Parquet or Feather, chosen by extension.

Parquet and Feather need pyarrow (the ``tables`` extra: ``pip install 'flygnn[tables]'``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["FORMATS", "read_table", "suffix", "write_table"]

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
