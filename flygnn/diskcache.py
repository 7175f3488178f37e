"""Arrays cached on disk under the flygnn cache folder, keyed by a hash of what made them.

Rendered stimuli (:class:`~flygnn.stimuli.MovingBars`, :class:`~flygnn.stimuli.MovingEdges`)
and the responses of the analysis runners are stored as plain ``.npy`` files under
``cache_dir()/<kind>/<key>.npy`` (``$FLYGNN_CACHE``, else ``~/.cache/flygnn``). A key is the
SHA-256 of the JSON of every parameter that determines the array (and, for responses, of the
network's parameters and graph), so a changed parameter never reads a stale file.

Files are read with ``numpy.load(allow_pickle=False)``: nothing in a cache can run code. A file
that cannot be read or has an unexpected shape is deleted with a warning and rebuilt. Writes are
atomic (a temporary file renamed into place), so an interrupted run leaves no half-written
file. Nothing is created at import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flygnn._paths import cache_dir

__all__ = ["digest", "cached_array", "load_array", "save_array", "prune"]

log = logging.getLogger(__name__)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot hash a {type(value).__name__} into a cache key")


def digest(*parts, extra: bytes | None = None) -> str:
    """SHA-256 hex digest of JSON-able ``parts`` (numpy values allowed) and optional bytes."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=_plain).encode())
    if extra is not None:
        h.update(extra)
    return h.hexdigest()


def load_array(path: str | os.PathLike, shape: tuple | None = None) -> np.ndarray | None:
    """The array in ``path``, or None if it is missing; an unreadable file, or one whose shape
    differs from ``shape`` (None entries match anything), is deleted with a warning."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        array = np.load(path, allow_pickle=False)
        if not isinstance(array, np.ndarray):
            raise ValueError("not a single array")
        if shape is not None and (array.ndim != len(shape) or any(
                s is not None and s != a for s, a in zip(shape, array.shape))):
            raise ValueError(f"shape {array.shape}, expected {shape}")
    except (OSError, ValueError, EOFError) as err:
        warnings.warn(f"flygnn cache file {path} is unreadable ({err}); it is rebuilt",
                      RuntimeWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)  # most recently used: kept longest by prune()
    except OSError:
        pass
    return array


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (``.npy``) atomically; failures are logged, not raised."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
            os.chmod(tmp, 0o644)  # as a plain file: mkstemp makes it private
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        log.warning("could not write the cache file %s: %s", path, err)


def prune(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` most recently used ``.npy`` files of ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    stamped = []
    for path in folder.glob("*.npy"):
        try:
            stamped.append((path.stat().st_mtime, path))
        except OSError:  # deleted meanwhile by another process
            continue
    stamped.sort(key=lambda item: item[0], reverse=True)
    for _, path in stamped[keep:]:
        path.unlink(missing_ok=True)


def cached_array(kind: str, key: str, build: Callable[[], np.ndarray],
                 shape: tuple | None = None, keep: int | None = None) -> np.ndarray:
    """``cache_dir()/kind/key.npy`` if it holds a readable array (of ``shape``), else
    ``build()``, stored there (keeping the ``keep`` most recently used files of ``kind``)."""
    path = cache_dir() / kind / f"{key}.npy"
    array = load_array(path, shape)
    if array is not None:
        log.debug("cache hit %s", path)
        return array
    array = np.asarray(build())
    save_array(path, array)
    if keep is not None:
        prune(path.parent, keep)
    return array
