"""Where flygnn finds its shipped data and keeps its caches (nothing is created at import)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

_SOURCE_DATA = Path(__file__).resolve().parent.parent / "data"


def data_dir() -> Path:
    """Folder of the shipped data: the ``flygnn.data`` package (``data/`` of a source checkout,
    ``flygnn/data`` in an installed wheel).

    Raises:
        FileNotFoundError: the data is not on the file system (e.g. flygnn imported from a zip).
    """
    checkout = (_SOURCE_DATA.parent / "pyproject.toml").is_file()
    if checkout and (_SOURCE_DATA / "__init__.py").is_file():
        return _SOURCE_DATA  # a source checkout: its own data, even beside another install
    try:
        root = resources.files("flygnn.data")
    except ModuleNotFoundError:
        root = None
    if not isinstance(root, Path) or not root.is_dir():
        raise FileNotFoundError(f"flygnn's shipped data (package flygnn.data) is not a folder on "
                                f"the file system: {root!r}; reinstall flygnn from a wheel")
    return root


def default_connectome_file() -> Path:
    """The shipped connectome JSON (fib25-fib19 v2.2, from flyvis 1.2.0)."""
    return data_dir() / "fib25-fib19_v2.2.json"


def cache_dir() -> Path:
    """Per-user cache folder: ``$FLYGNN_CACHE``, else ``$XDG_CACHE_HOME/flygnn``, else
    ``~/.cache/flygnn``."""
    if os.environ.get("FLYGNN_CACHE"):
        return Path(os.environ["FLYGNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "flygnn"
