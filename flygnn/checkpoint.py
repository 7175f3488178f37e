"""Crash-safe files for training runs: atomic writes and checked checkpoint loading.

Every file is written to a temporary file in the same folder, flushed to disk and then
moved over the target with ``os.replace`` (atomic on POSIX and Windows), so an
interrupted write leaves either the old file or the new one, never a truncated one.

A training checkpoint is a ``torch.save`` dict (``FORMAT``) with the keys ``network``,
``decoder`` (state dicts), ``optim`` (Adam state dict), ``rng`` (generator states),
``iteration``, ``epoch``, ``order`` and ``position`` (the epoch's data order and how much of
it is used), ``epoch_state`` (the epoch's grey steady state), ``best_val_epe``,
``best_iteration``, ``nonfinite``, ``nonfinite_stalled`` and ``nonfinite_rate`` (the counts of
:class:`~flygnn.stepguard.NonFiniteGuard`), ``config`` (JSON text) and ``time``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

__all__ = ["FORMAT", "atomic_write_bytes", "atomic_write_text", "atomic_torch_save",
           "load_file", "load_checkpoint", "truncate_log"]

FORMAT = "flygnn.TrainCheckpoint"
REQUIRED = ("network", "decoder", "optim", "rng", "iteration", "epoch", "order", "position",
            "epoch_state", "config")


def _file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file (0o666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic(path: str | os.PathLike, write) -> Path:
    """Write through a temporary file in the same folder, then rename it over ``path``:
    readers see the old file or the complete new one, never a partial write. The file
    gets the usual permissions (``mkstemp`` alone would make it private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return _atomic(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return _atomic(path, lambda f: torch.save(obj, f))


def _unpickler_reason(message: str) -> str:
    """The short reason in torch's long weights-only error (e.g. ``Unsupported global: GLOBAL
    io.open ...``)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    for k, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            text = rest or (lines[k + 1] if k + 1 < len(lines) else "")
            return text.split(" was not an allowed global")[0]
    return lines[0] if lines else "UnpicklingError"


def load_file(path: str | os.PathLike, what: str):
    """``torch.load`` a file to the CPU with ``weights_only=True``: tensors and plain Python
    values only, so no code in the file ever runs.

    Args:
        path: the file.
        what: what the file is, for the messages (e.g. ``"checkpoint"``).

    Raises:
        ValueError: a missing or unreadable file, or one that holds other objects (a pickle
            payload); the message names ``what`` and the path.
    """
    if not Path(path).is_file():
        raise ValueError(f"{what} {str(path)!r} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _unpickler_reason(str(err))
        if "global" not in reason.lower():
            raise ValueError(f"{what} {str(path)!r} is not readable: not a torch.save file "
                             f"({reason})") from None
        raise ValueError(f"{what} {str(path)!r} holds objects other than tensors and plain "
                         f"values; flygnn loads files with weights_only=True and runs no code "
                         f"from them ({reason})") from None
    except Exception as err:  # noqa: BLE001 - any other failure means a broken file
        first = str(err).strip().splitlines()
        raise ValueError(f"{what} {str(path)!r} is not readable: {type(err).__name__}: "
                         f"{first[0] if first else ''}") from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and check a training checkpoint (tensors to CPU).

    Raises:
        ValueError: missing, unreadable or foreign file, or a missing key (named).
    """
    path = Path(path)
    blob = load_file(path, "checkpoint")
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"checkpoint {str(path)!r} is not a flygnn training checkpoint")
    missing = [k for k in REQUIRED if k not in blob]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks the keys {missing}")
    return blob


def truncate_log(path: Path, iteration: int, columns: list[str]) -> None:
    """Drop the CSV log rows written after the checkpoint being resumed (``iteration``);
    a missing log is started with its header ``columns``."""
    if not path.exists():
        atomic_write_text(path, ",".join(columns) + "\n")
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.strip() and int(ln.split(",")[0]) <= iteration]
    atomic_write_text(path, "".join(keep))
