"""The folder of one training run: its files, log, checkpoints and where a resume starts.

Layout (a finished run is a model folder, :func:`flygnn.pretrained.load_model`):

* ``config.json``: the :class:`~flygnn.config.TrainConfig`;
* ``log.csv``: one row per iteration (:data:`LOG_COLUMNS`), appended as training goes;
* ``checkpoint.pt``: the latest full training state, written atomically;
* ``best.pt``: the full state at the lowest validation EPE so far;
* after the last iteration ``network.pt``, ``decoder.pt`` (the best weights) and
  ``metrics.json``, written in that order: ``metrics.json`` marks a finished run. A run that
  ended before its last iteration because its weights no longer moved
  (``optim.nonfinite_stall``) is finished too; its ``metrics.json`` says why under
  ``stopped_early``.

Resume rules: a folder with files is only continued when asked to. It continues from
``checkpoint.pt``; when that file is missing or unreadable but ``best.pt`` is readable, from
``best.pt`` (with a warning: the iterations after it are trained again, bit for bit); when
neither is there but the log shows training, it refuses. Log rows after the resumed
iteration, and a torn last row (an interrupted append), are dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from flygnn.checkpoint import atomic_torch_save, atomic_write_text, load_checkpoint
from flygnn.config import TrainConfig
from flygnn.configio import dict_diff

__all__ = ["LOG_COLUMNS", "RunDir"]

log = logging.getLogger(__name__)
LOG_COLUMNS = ["iteration", "loss", "lr", "val_l2norm", "val_epe", "time"]


class RunDir:
    """Files of one training run.

    Args:
        path: the folder; a new run needs it missing or empty.
        resume: allow continuing a folder that has files.

    Raises:
        ValueError: ``path`` is a file, or has files and ``resume`` is False.
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"run folder {str(self.path)!r} is a file")
        busy = self.path.is_dir() and any(self.path.iterdir())
        if busy and not resume:
            raise ValueError(f"run folder {str(self.path)!r} is not empty; pass resume=True "
                             "(--resume) to continue it, or choose a new folder")

    # ------------------------------------------------------------------ files
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.csv"

    @property
    def checkpoint_file(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best_file(self) -> Path:
        return self.path / "best.pt"

    def finished(self) -> bool:
        """Whether the run wrote its final files."""
        return (self.path / "metrics.json").is_file() and (self.path / "network.pt").is_file()

    # ------------------------------------------------------------------ config
    def resolve_config(self, config: TrainConfig | None) -> TrainConfig:
        """The run's config: ``config`` checked against the saved one (only ``device`` may
        differ), or the saved one when ``config`` is None."""
        if self.config_file.exists():
            previous = TrainConfig.from_json(self.config_file)
            if config is not None:
                diff = dict_diff(dict(previous.to_dict(), device=None),
                                 dict(config.to_dict(), device=None))
                if diff:
                    raise ValueError(f"config differs from the run's {str(self.config_file)!r} "
                                     f"in {diff}")
            return previous if config is None else config
        if config is None:
            raise ValueError(f"no config given and no {str(self.config_file)!r} to resume from")
        return config

    def start(self, config: TrainConfig) -> None:
        """Create the folder, write ``config.json`` (once) and a fresh log."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.config_file.exists():
            atomic_write_text(self.config_file, config.to_json())
        atomic_write_text(self.log_file, ",".join(LOG_COLUMNS) + "\n")

    # ------------------------------------------------------------------ log
    def append_log(self, row: dict) -> None:
        with open(self.log_file, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS).writerow(row)

    def logged_iterations(self) -> int:
        """The last iteration in ``log.csv`` (0 when none)."""
        rows = self._rows()
        return rows[-1][0] if rows else 0

    def _rows(self) -> list[tuple[int, str]]:
        """Complete rows of the log as ``(iteration, line)``; a torn or unreadable row and
        everything after it is left out."""
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text().splitlines(keepends=True)
        out, last = [], 0
        for line in lines[1:]:
            fields = line.rstrip("\r\n").split(",")
            try:
                iteration = int(fields[0])
            except ValueError:
                break
            if not line.endswith("\n") or len(fields) != len(LOG_COLUMNS) or iteration <= last:
                break
            out.append((iteration, line))
            last = iteration
        return out

    def repair_log(self, iteration: int) -> None:
        """Keep the header and the complete rows up to ``iteration``; drop the rest."""
        keep = [line for it, line in self._rows() if it <= iteration]
        atomic_write_text(self.log_file, ",".join(LOG_COLUMNS) + "\n" + "".join(keep))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, state: dict, best: bool = False) -> Path:
        """Write a full training state atomically to ``checkpoint.pt`` (or ``best.pt``)."""
        return atomic_torch_save(state, self.best_file if best else self.checkpoint_file)

    def resume_point(self) -> tuple[dict, Path] | None:
        """The state to continue from and its file, or None for a fresh start.

        Raises:
            ValueError: the log shows training but no checkpoint can be read.
        """
        problems = []
        for path in (self.checkpoint_file, self.best_file):
            if not path.exists():
                problems.append(f"{path.name} missing")
                continue
            try:
                blob = load_checkpoint(path)
            except ValueError as err:
                problems.append(str(err))
                continue
            if path == self.best_file:
                log.warning("%s: %s; resuming from best.pt at iteration %d instead (the "
                            "iterations after it are trained again)", self.path,
                            "; ".join(problems), blob["iteration"])
            return blob, path
        logged = self.logged_iterations()
        if logged:
            raise ValueError(f"run folder {str(self.path)!r} logged {logged} iterations but "
                             f"has no readable checkpoint ({'; '.join(problems)}); it cannot "
                             "be resumed: start it again in a new folder")
        return None

    # ------------------------------------------------------------------ the model
    def write_model(self, network, decoder_state: dict, metrics: dict) -> None:
        """Write ``network.pt``, ``decoder.pt`` and, last, ``metrics.json``."""
        network.save(self.path / "network.pt")
        atomic_torch_save({k: v.cpu() for k, v in decoder_state.items()},
                          self.path / "decoder.pt")
        atomic_write_text(self.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")
