"""Where flygnn finds its shipped data and keeps its caches (nothing is created at import)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def data_dir() -> Path:
    """Folder of the shipped data (``data/`` in the source tree, ``flygnn/data`` when installed)."""
    try:
        path = Path(str(resources.files("flygnn.data")))
        if (path / "fib25-fib19_v2.2.json").exists():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "data"


def default_connectome_file() -> Path:
    """The shipped connectome JSON (fib25-fib19 v2.2, from flyvis 1.2.0)."""
    return data_dir() / "fib25-fib19_v2.2.json"


def cache_dir() -> Path:
    """Per-user cache folder: ``$FLYGNN_CACHE``, else ``$XDG_CACHE_HOME/flygnn``, else ``~/.cache/flygnn``."""
    if os.environ.get("FLYGNN_CACHE"):
        return Path(os.environ["FLYGNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "flygnn"
