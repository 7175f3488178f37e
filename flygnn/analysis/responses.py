"""Responses of one model or an ensemble to a stimulus dataset, and the runners that make them.

A :class:`Responses` holds the central-cell (or any per-cell) activity of ``n_models`` networks to
every item of a stimulus dataset, together with the dataset's parameter table and time axis. It is
the input of every index in :mod:`flygnn.analysis.tuning`.

The time axis follows flyvis (reference section 8.1): ``time_k = k * dt - t_pre`` in float64, where
``t_pre`` is the dataset's own grey pre-period, so the stimulus starts at ``time == 0``.

The runners that simulate networks on the standard stimulus sets live in
:mod:`flygnn.analysis.runners`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

__all__ = ["Responses"]


@dataclass
class Responses:
    """Responses of ``n_models`` networks to the ``n_samples`` items of a stimulus dataset.

    Attributes:
        responses: activity, converted to a float32 numpy array. A 3-D input
            ``(n_samples, n_frames, n_cells)`` is read as one model.
        params: the dataset's parameter table, one row per sample in item order (its index is kept,
            so selections can be traced back to item indices).
        dt: integration time step in seconds (one frame per step).
        t_pre: the dataset's grey pre-period in seconds; ``time_k = k * dt - t_pre``.
        cell_types: the type of each cell (last axis), e.g. the 65 types in JSON order for central
            responses.
        model_names: one name per model; default ``"model_0"``, ``"model_1"``, ...
        attrs: dataset settings the analyses need and the table lacks, e.g. ``t_stim`` (flashes) or
            ``offsets`` (moving bars and edges).

    **Shapes:** ``responses`` ``(n_models, n_samples, n_frames, n_cells)``; ``params`` has
    ``n_samples`` rows; ``cell_types`` has ``n_cells`` entries; ``time`` ``(n_frames,)``.
    """

    responses: Any
    params: pd.DataFrame
    dt: float
    t_pre: float
    cell_types: list[str]
    model_names: list[str] | None = None
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        r = self.responses
        if isinstance(r, torch.Tensor):
            r = r.detach().cpu().numpy()
        r = np.asarray(r, dtype=np.float32)
        if r.ndim == 3:
            r = r[None]
        if r.ndim != 4:
            raise ValueError(
                "responses must have shape (n_models, n_samples, n_frames, n_cells) or "
                f"(n_samples, n_frames, n_cells), got {r.shape}"
            )
        self.responses = r
        if not isinstance(self.params, pd.DataFrame):
            raise ValueError(f"params must be a pandas DataFrame, got {type(self.params).__name__}")
        if len(self.params) != r.shape[1]:
            raise ValueError(
                f"params has {len(self.params)} rows but responses has {r.shape[1]} samples "
                f"(shape {r.shape})"
            )
        self.cell_types = [str(c) for c in self.cell_types]
        if len(self.cell_types) != r.shape[3]:
            raise ValueError(
                f"cell_types has {len(self.cell_types)} entries but responses has {r.shape[3]} "
                f"cells (shape {r.shape})"
            )
        if self.model_names is None:
            self.model_names = [f"model_{i}" for i in range(r.shape[0])]
        self.model_names = [str(m) for m in self.model_names]
        if len(self.model_names) != r.shape[0]:
            raise ValueError(
                f"model_names has {len(self.model_names)} entries but responses has "
                f"{r.shape[0]} models (shape {r.shape})"
            )
        if not float(self.dt) > 0:
            raise ValueError(f"dt must be > 0, got {self.dt}")
        self.dt = float(self.dt)
        self.t_pre = float(self.t_pre)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(n_models, n_samples, n_frames, n_cells)``."""
        return tuple(self.responses.shape)

    @property
    def n_models(self) -> int:
        return self.responses.shape[0]

    @property
    def time(self) -> np.ndarray:
        """Time of each frame in seconds, ``k * dt - t_pre`` (float64, shape ``(n_frames,)``)."""
        return np.arange(self.responses.shape[2]) * self.dt - self.t_pre

    def _replace(self, responses, params=None, cell_types=None, model_names=None) -> Responses:
        return Responses(
            responses,
            self.params if params is None else params,
            self.dt,
            self.t_pre,
            self.cell_types if cell_types is None else cell_types,
            self.model_names if model_names is None else model_names,
            dict(self.attrs),
        )

    def change_from_rest(self) -> Responses:
        """The responses minus each sample's first frame (the grey rest the stimuli start from).

        flyvis's indices rectify the activity itself; for a network whose responses are small
        against its resting activity they are all ~0, while the same indices on the change
        from rest show the tuning.
        """
        return self._replace(self.responses - self.responses[:, :, :1])

    def sel(self, cell_type: str | Sequence[str] | None = None, model=None) -> Responses:
        """Select cells by type and/or models by name or position (a str/int keeps the axis).

        Raises:
            ValueError: if a named cell type or model is not present.
        """
        out = self
        if cell_type is not None:
            names = [cell_type] if isinstance(cell_type, str) else list(cell_type)
            missing = [c for c in names if c not in self.cell_types]
            if missing:
                raise ValueError(f"cell_type {missing} not among the responses' cell types")
            idx = [i for c in names for i, t in enumerate(self.cell_types) if t == c]
            types = [self.cell_types[i] for i in idx]
            out = out._replace(out.responses[..., idx], cell_types=types)
        if model is not None:
            models = [model] if isinstance(model, (str, int, np.integer)) else list(model)
            idx = []
            for m in models:
                if isinstance(m, (int, np.integer)):
                    if not -out.n_models <= m < out.n_models:
                        raise ValueError(f"model index {m} out of range for {out.n_models} models")
                    idx.append(int(m) % out.n_models)
                elif m in out.model_names:
                    idx.append(out.model_names.index(m))
                else:
                    raise ValueError(f"model {m!r} not among {out.model_names}")
            out = out._replace(
                out.responses[idx], model_names=[out.model_names[i] for i in idx]
            )
        return out

    def where(self, **param_values) -> Responses:
        """Select the samples whose parameters equal the given values (a list means any of them).

        Float columns are compared with a relative tolerance of 1e-9, e.g. ``where(speed=13)``,
        ``where(intensity=1, radius=[6])``.

        Raises:
            ValueError: if a parameter is not a column of ``params`` or nothing matches.
        """
        keep = np.ones(len(self.params), dtype=bool)
        for name, value in param_values.items():
            if name not in self.params.columns:
                have = list(self.params.columns)
                raise ValueError(f"{name!r} is not a stimulus parameter; have {have}")
            col = self.params[name].to_numpy()
            values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
            hit = np.zeros(len(col), dtype=bool)
            for val in values:
                if np.issubdtype(col.dtype, np.floating):
                    hit |= np.isclose(col, float(val), rtol=1e-9, atol=0.0)
                else:
                    hit |= col == val
            keep &= hit
        if not keep.any():
            raise ValueError(f"no sample matches {param_values}")
        return self._replace(self.responses[:, keep], params=self.params[keep])

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (model, sample, frame, cell) with the sample's parameters.

        Columns: ``model, sample, frame, time, cell, cell_type, response`` and the ``params``
        columns. ``sample`` is the params index (the dataset's item index).
        """
        n_m, n_s, n_f, n_c = self.shape
        m, s, f, c = (a.ravel() for a in np.indices(self.shape))
        frame = pd.DataFrame(
            {
                "model": np.asarray(self.model_names, dtype=object)[m],
                "sample": self.params.index.to_numpy()[s],
                "frame": f,
                "time": self.time[f],
                "cell": c,
                "cell_type": np.asarray(self.cell_types, dtype=object)[c],
                "response": self.responses.ravel(),
            }
        )
        table = self.params.reset_index(drop=True)
        for col in table.columns:
            if col not in frame.columns:
                frame[col] = table[col].to_numpy()[s]
        return frame
