"""Trained models: load a run folder or a shipped model, validate it, simulate a movie file.

A model folder (a finished training run, or ``data/models/<name>/`` in the package) holds
``network.pt`` (:meth:`flygnn.network.Network.save`), ``decoder.pt`` (the
:class:`~flygnn.task.FlowDecoder` state dict), ``config.json`` (the
:class:`~flygnn.config.TrainConfig`), ``log.csv`` and ``metrics.json``. A run that has not
finished yet is read from its ``best.pt`` (else ``checkpoint.pt``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from flygnn.checkpoint import atomic_write_text, load_checkpoint
from flygnn.config import TrainConfig
from flygnn.network import Network
from flygnn.task import FlowDecoder

__all__ = ["TrainedModel", "available_models", "load_model", "load_pretrained", "transfer",
           "validate_run", "simulate_file", "check_movie_range"]


@dataclass
class TrainedModel:
    """A network with its flow decoder, training config and recorded metrics."""

    network: Network
    decoder: FlowDecoder | None
    config: TrainConfig | None
    metrics: dict = field(default_factory=dict)
    path: Path | None = None


def _models_dir() -> Path:
    from flygnn._paths import data_dir

    return data_dir() / "models"


def available_models() -> list[str]:
    """Names of the models shipped under ``data/models/``."""
    root = _models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "network.pt").is_file())


def _decoder(config: TrainConfig | None, network: Network, state: dict) -> FlowDecoder:
    decoder = (FlowDecoder(network.graph) if config is None
               else FlowDecoder.from_config(network.graph, config.decoder))
    decoder.load_state_dict(state)
    return decoder.eval()


def _extent(data) -> int:
    return int(data.extent)


def transfer(network: Network, data) -> Network:
    """The trained parameters of ``network`` on another lattice (``data``, any extent).

    Resting potentials and time constants are shared per cell type and strengths per type
    pair, so a model trained at one extent runs on another: the tables are copied (pairs that
    produce no edge on the target lattice are dropped). Only dynamics without parameters of
    their own (the default graded dynamics) transfer.
    """
    from flygnn import params
    from flygnn.dynamics import make_dynamics

    if any(True for _ in network.dynamics.parameters()):
        raise ValueError(f"dynamics {network.dynamics.name!r} has parameters of its own; "
                         "load it at its training extent instead")
    target = Network(data, dynamics=make_dynamics(network.dynamics.name, network.dynamics.config()))
    for name in ("bias", "time_const", "syn_strength"):
        table = network.param_table(name)
        target.set_param_table(name, table[table.index.isin(params.table_index(name, target.graph))])
    return target


def load_model(path: str | os.PathLike, data=None) -> TrainedModel:
    """Load a model or run folder (see the module docstring); modules are in eval mode.

    Args:
        path: the folder.
        data: optional connectome ``HeteroData``/``FlatGraph`` (rebuilt from the extent if None);
            at another extent than the model's, its parameters are transferred (:func:`transfer`).

    Raises:
        ValueError: not a folder, or none of ``network.pt``/``best.pt``/``checkpoint.pt``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"model folder {str(path)!r} not found")
    config = TrainConfig.from_json(path / "config.json") if (path / "config.json").exists() else None
    metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").exists() else {}
    if (path / "network.pt").exists():
        if data is not None and config is not None and _extent(data) != config.network.extent:
            network = transfer(Network.load(path / "network.pt"), data)  # another lattice
        else:
            network = Network.load(path / "network.pt", data)
        decoder = None
        if (path / "decoder.pt").exists():
            state = torch.load(path / "decoder.pt", map_location="cpu", weights_only=True)
            decoder = _decoder(config, network, state)
    else:
        files = [path / name for name in ("best.pt", "checkpoint.pt") if (path / name).exists()]
        if not files:
            raise ValueError(f"model folder {str(path)!r} has none of network.pt, best.pt, "
                             "checkpoint.pt")
        blob = load_checkpoint(files[0])
        config = TrainConfig.from_dict(json.loads(blob["config"]))
        if data is None:
            from flygnn.datasets import FlyVisConnectome
            data = FlyVisConnectome(extent=config.network.extent)[0]
        network = Network(data)
        network.load_state_dict(blob["network"])
        decoder = _decoder(config, network, blob["decoder"])
    return TrainedModel(network.eval(), decoder, config, metrics, path)


def load_pretrained(name: str, data=None) -> TrainedModel:
    """Load a model shipped with flygnn under ``data/models/<name>/``.

    Raises:
        ValueError: unknown ``name`` (the message lists the available ones).
    """
    names = available_models()
    if name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; available: {names or 'none'}")
    return load_model(_models_dir() / name, data)


def _run_folder(run: str | os.PathLike) -> tuple[Path, bool]:
    """A run folder, or a shipped model's folder by name; flag whether it is shipped."""
    path = Path(run)
    if path.is_dir():
        shipped = _models_dir().resolve() in path.resolve().parents
        return path, shipped
    if str(run) in available_models():
        return _models_dir() / str(run), True
    raise ValueError(f"no run folder or shipped model {str(run)!r}; shipped models: "
                     f"{available_models() or 'none'}")


def validate_run(run: str | os.PathLike, out: str | os.PathLike | None = None,
                 batch_size: int | None = None, t_pre: float | None = None,
                 progress: bool = False) -> dict:
    """Validation ``l2norm`` and EPE of a run's (best) model on its validation movies.

    By default the run's own validation settings are used (``optim.val_t_pre`` and
    ``optim.val_batch_size`` of its ``config.json``), so a finished run or a shipped model
    reproduces the ``val_l2norm`` and ``val_epe`` of its ``metrics.json`` (given as
    ``recorded``). The result, with the zero-flow baseline for comparison, is written as JSON to
    ``out``; by default to ``run/validation.json`` for a run folder, and nowhere for a shipped
    model (the package folder is left as installed).

    Args:
        run: a run folder or a shipped model's name (:func:`available_models`).
        out: JSON file to write (see above).
        batch_size: validation batch size (default: the run's ``optim.val_batch_size``).
        t_pre: seconds of grey before each movie (default: the run's ``optim.val_t_pre``).
        progress: show a progress bar.

    Raises:
        ValueError: unknown run or name, or a folder without ``config.json`` or decoder.
    """
    from flygnn.build import build_datasets
    from flygnn.task import evaluate, zero_flow_baseline

    folder, shipped = _run_folder(run)
    model = load_model(folder)
    if model.config is None or model.decoder is None:
        raise ValueError(f"run folder {str(folder)!r} lacks config.json or a decoder")
    optim = model.config.optim
    t_pre = optim.val_t_pre if t_pre is None else float(t_pre)
    batch_size = optim.val_batch_size if batch_size is None else int(batch_size)
    _, val = build_datasets(model.config)
    metrics = evaluate(model.network, model.decoder, val, model.config.data.dt, t_pre, batch_size,
                       progress)
    result = {"run": str(run), "n_val": len(val), "t_pre": t_pre, "batch_size": batch_size,
              "dt": model.config.data.dt, **metrics, "zero_flow": zero_flow_baseline(val)}
    recorded = {k: model.metrics[f"val_{k}"] for k in ("l2norm", "epe")
                if f"val_{k}" in model.metrics}
    if recorded:
        result["recorded"] = recorded
    if out is not None or not shipped:
        atomic_write_text(Path(out) if out is not None else folder / "validation.json",
                          json.dumps(result, indent=2) + "\n")
    return result


def _read_movie(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"movie file {str(path)!r} not found")
    if path.suffix == ".npy":
        movie = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "movie" if "movie" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise ValueError(f"movie file {str(path)!r}: expected a 'movie' array, got {keys}")
            movie = z[key]
    else:
        raise ValueError(f"movie file {str(path)!r}: expected .npy or .npz")
    if movie.ndim == 2:
        movie = movie[None]
    if movie.ndim != 3:
        raise ValueError(f"movie file {str(path)!r}: expected shape (T, n_hexals) or "
                         f"(B, T, n_hexals), got {movie.shape}")
    return movie


def _resolve(model: str) -> TrainedModel:
    path = Path(model)
    if path.is_dir():
        return load_model(path)
    if path.is_file():
        try:
            return TrainedModel(Network.load(path).eval(), None, None, path=path)
        except ValueError:
            return TrainedModel(Network.from_flyvis_checkpoint(path).eval(), None, None, path=path)
    return load_pretrained(model)


def check_movie_range(movie: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless every value of ``movie`` is a luminance in ``[0, 1]``.

    The network's photoreceptors expect luminance in ``[0, 1]`` (0 black, 0.5 the grey of
    the steady state, 1 white); an 8-bit movie (0-255) must be divided by 255 first.
    """
    values = np.asarray(movie)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real luminance values, got dtype {values.dtype}")
    if values.size == 0:
        raise ValueError(f"{name}: the movie is empty (shape {values.shape})")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"{name}: the movie contains NaN")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        hint = " (an 8-bit movie? divide it by 255)" if low >= 0 and 1 < high <= 255 else ""
        raise ValueError(f"{name}: luminance must lie in [0, 1] (0 black, 0.5 grey, 1 white), got "
                         f"values in [{low:g}, {high:g}]{hint}")


def simulate_file(model: str, movie: str | os.PathLike, dt: float, out: str | os.PathLike,
                  record: str | None = None, t_pre: float = 1.0, check_range: bool = True) -> dict:
    """Responses of a model to a movie file, written as ``.npz``.

    Args:
        model: a shipped model name, a model/run folder, a ``Network.save`` file or a flyvis
            checkpoint.
        movie: ``.npy`` / ``.npz`` (key ``movie``) of shape ``(T, n_hexals)`` or
            ``(B, T, n_hexals)``, luminance in ``[0, 1]`` (0 black, 0.5 grey, 1 white).
        dt: seconds per frame.
        out: the ``.npz`` to write: ``responses (B, T, K)``, ``node_index (K,)``,
            ``node_type (K,)`` names, ``dt``, ``t_pre``; with a decoder and ``record=None``
            also the decoded ``flow (B, T, 2, n_hexals)``.
        record: None (all neurons), ``"central"``, ``"output"`` or a cell type.
        t_pre: seconds of grey before the movie.
        check_range: refuse a movie with values outside ``[0, 1]`` (:func:`check_movie_range`).

    Returns:
        the written arrays.

    Raises:
        ValueError: an unreadable movie, or (with ``check_range``) values outside ``[0, 1]``.
    """
    from flygnn.simulate import record_index, simulate, steady_state

    array = _read_movie(Path(movie))
    if check_range:
        check_movie_range(array, f"movie file {str(movie)!r}")
    trained = _resolve(str(model))
    net = trained.network
    frames = torch.from_numpy(array.astype(np.float32))
    with torch.no_grad():
        state = steady_state(net, t_pre, dt)
        responses = simulate(net, frames, dt, initial_state=state, record=record)
        index = record_index(net, record)
        index = torch.arange(net.num_nodes) if index is None else index
        result = {"responses": responses.numpy(), "node_index": index.numpy(),
                  "node_type": np.asarray([net.cell_types[k] for k in net.graph.node_type[index]]),
                  "dt": np.float64(dt), "t_pre": np.float64(t_pre)}
        if trained.decoder is not None and record is None:
            result["flow"] = trained.decoder(responses, net.dynamics.activity(state)).numpy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **result)
    return result
