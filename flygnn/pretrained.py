"""Trained models: load a run folder or a shipped model, validate it, simulate a movie file.

A model folder (a finished training run, or ``data/models/<name>/`` in the package) holds
``network.pt`` (:meth:`flygnn.network.Network.save`), ``decoder.pt`` (the
:class:`~flygnn.task.FlowDecoder` state dict), ``config.json`` (the
:class:`~flygnn.config.TrainConfig`), ``log.csv`` and ``metrics.json``. A run that has not
finished yet is read from its ``best.pt`` (else ``checkpoint.pt``). Movie files are read and
checked by :mod:`flygnn.moviefile`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from flygnn._checks import read_json
from flygnn.build import build_connectome, build_datasets, transfer
from flygnn.checkpoint import atomic_write_text, load_checkpoint, load_file
from flygnn.config import TrainConfig
from flygnn.moviefile import check_movie_range, read_movie
from flygnn.network import Network
from flygnn.task import FlowDecoder

__all__ = ["TrainedModel", "available_ensembles", "available_models", "best_member",
           "check_movie_range", "ensemble_members", "load_ensemble", "load_model",
           "load_pretrained", "simulate_file", "transfer", "validate_run"]


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


def available_ensembles() -> list[str]:
    """Names of the ensembles shipped under ``data/models/`` (folders of model folders)."""
    root = _models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and any(_is_model(q) for q in p.iterdir()))


def _decoder(config: TrainConfig | None, network: Network, state: dict) -> FlowDecoder:
    decoder = (FlowDecoder(network.graph) if config is None
               else FlowDecoder.from_config(network.graph, config.decoder))
    try:
        decoder.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"decoder weights do not fit the decoder of this network/config: "
                         f"{str(err).splitlines()[0]}") from None
    return decoder.eval()


def _extent(data) -> int:
    return int(data.extent)


def load_model(path: str | os.PathLike, data=None) -> TrainedModel:
    """Load a model or run folder (see the module docstring); modules are in eval mode.

    Args:
        path: the folder.
        data: optional connectome ``HeteroData``/``FlatGraph`` (None: rebuilt from the
            config, with its ``network.connectome`` transforms, or from the extent); at another
            extent than the model's, its parameters are transferred
            (:meth:`flygnn.Network.transfer`).

    Raises:
        ValueError: not a folder, or none of ``network.pt``/``best.pt``/``checkpoint.pt``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"model folder {str(path)!r} not found")
    config = TrainConfig.from_json(path / "config.json") if (path / "config.json").exists() \
        else None
    metrics = read_json(path / "metrics.json", "metrics file") \
        if (path / "metrics.json").exists() else {}
    own = None if config is None or not config.network.connectome \
        else build_connectome(config.network)  # the transformed graph it was trained on
    if (path / "network.pt").exists():
        if data is not None and config is not None and _extent(data) != config.network.extent:
            network = Network.load(path / "network.pt", own).transfer(data)  # another lattice
        elif data is None and own is not None:
            network = Network.load(path / "network.pt", own)
        else:
            network = Network.load(path / "network.pt", data)
        decoder = None
        if (path / "decoder.pt").exists():
            state = load_file(path / "decoder.pt", "decoder")
            decoder = _decoder(config, network, state)
    else:
        files = [path / name for name in ("best.pt", "checkpoint.pt") if (path / name).exists()]
        if not files:
            raise ValueError(f"model folder {str(path)!r} has none of network.pt, best.pt, "
                             "checkpoint.pt")
        blob = load_checkpoint(files[0])
        config = TrainConfig.from_dict(json.loads(blob["config"]))
        if data is None:
            data = build_connectome(config.network)
        network = Network(data)
        network.load_state_dict(blob["network"])
        decoder = _decoder(config, network, blob["decoder"])
    return TrainedModel(network.eval(), decoder, config, metrics, path)


def load_pretrained(name: str, data=None):
    """Load a model shipped with flygnn under ``data/models/<name>/``; an ensemble folder
    there (sub-folders that are models) loads as an ensemble (:func:`load_ensemble`).

    Raises:
        ValueError: unknown ``name`` (the message lists the available ones).
    """
    names = available_models()
    folder = _models_dir() / name
    if name not in names and folder.is_dir() and any(_is_model(p) for p in folder.iterdir()):
        return load_ensemble(folder, data)
    if name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; available: {names or 'none'}")
    return load_model(folder, data)


def _is_model(path: Path) -> bool:
    return (path / "network.pt").is_file()


def load_ensemble(paths_or_name, data=None, metric: str = "best_val_epe"):
    """Several model folders as one :class:`~flygnn.analysis.ensembles.Ensemble`.

    Args:
        paths_or_name: a list of model folders; or one folder whose sub-folders are model
            folders (an ensemble folder, e.g. ``flygnn train --recipe cpu --seed S --out
            DIR/S`` for several seeds); or the name of such a folder shipped under
            ``data/models/``.
        data: connectome for every member (None: each member's own, from its config; the
            members trained on the same connectome are loaded on, or transferred to, the
            lattice of the first of them).
        metric: key of the task error in each ``metrics.json`` (the ensemble's
            ``validation_loss``, used by ``ranked``/``best``/``cluster``).

    Returns:
        the ensemble, members named by their folders and in that order; each member's
        :class:`TrainedModel` (decoder, config, metrics) is in ``ensemble.models``.

    Raises:
        ValueError: a folder is missing or holds no model, or there are no members.
    """
    from flygnn.analysis.ensembles import Ensemble

    paths = ensemble_members(paths_or_name)
    models, graphs = [], {}
    for path in paths:  # members trained on the same connectome share one graph
        key = _connectome_key(path)
        model = load_model(path, data if data is not None else graphs.get(key))
        graphs.setdefault(key, model.network.graph)
        models.append(model)
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    losses = [float(m.metrics.get(metric, float("nan"))) for m in models]
    ensemble = Ensemble([m.network for m in models], names, losses)
    ensemble.models = models
    return ensemble


def ensemble_members(paths_or_name) -> list[Path]:
    """The member folders of an ensemble: a list of model folders as given (each is read by
    :func:`load_model`); the sub-folders
    of a folder that hold a ``network.pt``, sorted by name; or those of an ensemble shipped
    under ``data/models/`` by that name.

    Raises:
        ValueError: a folder is missing or holds no model, or there are no members.
    """
    if isinstance(paths_or_name, (str, os.PathLike)):
        root = Path(paths_or_name)
        if not root.is_dir() and (_models_dir() / str(paths_or_name)).is_dir():
            root = _models_dir() / str(paths_or_name)
        if not root.is_dir():
            raise ValueError(f"ensemble {str(paths_or_name)!r} is neither a folder nor a "
                             f"shipped ensemble (shipped: {available_ensembles() or 'none'})")
        paths = sorted(p for p in root.iterdir() if _is_model(p))
        if not paths:
            raise ValueError(f"ensemble folder {str(root)!r} holds no model folders "
                             "(sub-folders with network.pt)")
        return paths
    paths = [Path(p) for p in paths_or_name]
    if not paths:
        raise ValueError("load_ensemble: no model folders given")
    return paths


def best_member(paths_or_name, metric: str = "best_val_epe") -> tuple[Path, float, int]:
    """The member of an ensemble with the lowest task error, read from the members'
    ``metrics.json`` (their own validation score; nothing is simulated).

    Returns:
        ``(folder, error, n_members)``.

    Raises:
        ValueError: no member has a finite ``metric`` (the message names the folders).
    """
    paths = ensemble_members(paths_or_name)
    scores = []
    for path in paths:
        file = path / "metrics.json"
        value = read_json(file, "metrics file").get(metric) if file.is_file() else None
        if isinstance(value, (int, float)) and np.isfinite(value):
            scores.append((float(value), path))
    if not scores:
        raise ValueError(f"no member of the ensemble has a finite {metric!r} in its "
                         f"metrics.json: {[str(p) for p in paths]}")
    error, path = min(scores, key=lambda item: item[0])
    return path, error, len(paths)


def _connectome_key(path: Path) -> str:
    """The connectome transforms of a model folder's config, as a key ("[]" if none)."""
    if not (path / "config.json").is_file():
        return "[]"
    return json.dumps(TrainConfig.from_json(path / "config.json").to_dict()["network"][
        "connectome"], sort_keys=True)


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
                 progress: bool = False, val_start: int | None = None,
                 n_val: int | None = None) -> dict:
    """Validation ``l2norm`` and EPE of a run's (best) model on its validation movies, or on
    another block of its movie set.

    By default the run's own validation settings are used (``optim.val_t_pre`` and
    ``optim.val_batch_size`` of its ``config.json``), so a finished run or a shipped model
    reproduces the ``val_l2norm`` and ``val_epe`` of its ``metrics.json`` (given as
    ``recorded``, only when the movies are the run's own). ``val_start`` / ``n_val`` score
    items ``val_start .. val_start + n_val - 1`` of the same movie set instead (the run's
    ``data.movies`` and crop), e.g. held-out movies that no stage trained or validated on.
    The result, with the zero-flow error for comparison, is written as JSON to
    ``out``; by default to ``run/validation.json`` for a run folder, and nowhere for a shipped
    model (the package folder is left as installed).

    Args:
        run: a run folder or a shipped model's name (:func:`available_models`).
        out: JSON file to write (see above).
        batch_size: validation batch size (default: the run's ``optim.val_batch_size``).
        t_pre: seconds of grey before each movie (default: the run's ``optim.val_t_pre``).
        progress: show a progress bar.
        val_start: first item to score (default: the run's ``data.val_start``, or its
            ``data.n_train`` when that is null).
        n_val: how many items (default: the run's ``data.n_val``).

    Raises:
        ValueError: unknown run or name, a folder without ``config.json`` or decoder, or a
            ``val_start`` below 0 / ``n_val`` below 1.
    """
    import dataclasses

    from flygnn.task import evaluate, zero_flow_error

    for name, value, least in (("val_start", val_start, 0), ("n_val", n_val, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < least):
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    folder, shipped = _run_folder(run)
    model = load_model(folder)
    if model.config is None or model.decoder is None:
        raise ValueError(f"run folder {str(folder)!r} lacks config.json or a decoder")
    config, data = model.config, model.config.data
    own_start = data.n_train if data.val_start is None else data.val_start
    start = own_start if val_start is None else val_start
    count = data.n_val if n_val is None else n_val
    own = (start, count) == (own_start, data.n_val)
    if not own:
        config = dataclasses.replace(config, data=dataclasses.replace(data, val_start=start,
                                                                      n_val=count))
    optim = config.optim
    t_pre = optim.val_t_pre if t_pre is None else float(t_pre)
    batch_size = optim.val_batch_size if batch_size is None else int(batch_size)
    _, val = build_datasets(config)
    metrics = evaluate(model.network, model.decoder, val, config.data.dt, t_pre, batch_size,
                       progress)
    result = {"run": str(run), "val_start": start, "n_val": len(val), "t_pre": t_pre,
              "batch_size": batch_size, "dt": config.data.dt, **metrics,
              "zero_flow": zero_flow_error(val)}
    recorded = {k: model.metrics[f"val_{k}"] for k in ("l2norm", "epe")
                if f"val_{k}" in model.metrics} if own else {}
    if recorded:
        result["recorded"] = recorded
    if out is not None or not shipped:
        atomic_write_text(Path(out) if out is not None else folder / "validation.json",
                          json.dumps(result, indent=2) + "\n")
    return result


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

    array = read_movie(Path(movie))
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
