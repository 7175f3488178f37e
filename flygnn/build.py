"""What a :class:`~flygnn.config.TrainConfig` describes, built: the training and validation
movies, the connectome (flyvis's graph with ``network.connectome``'s transforms), the starting
network and the starting decoder (from ``network.init`` / ``decoder.init`` when given, at any
extent)."""

from __future__ import annotations

import dataclasses
import logging

import torch

from flygnn.checkpoint import load_file
from flygnn.config import NetworkConfig, TrainConfig
from flygnn.network import Network
from flygnn.task import FlowDecoder

__all__ = ["MovieSubset", "arguments", "build_connectome", "build_datasets", "build_decoder",
           "build_network", "build_optimizer", "transfer"]

log = logging.getLogger(__name__)


def build_datasets(config: TrainConfig, generator: torch.Generator | None = None):
    """Training (augmented with ``generator``) and validation movie sets of a config: the
    ``data.movies`` section's :class:`~flygnn.stimuli.opticflow.OpticFlowMovies` with the
    ``data.augment`` section's :class:`~flygnn.stimuli.augment.Augment` (validation: the same
    crop, no augmentation)."""
    from flygnn._paths import cache_dir
    from flygnn.stimuli.augment import Augment
    from flygnn.stimuli.opticflow import OpticFlowMovies

    d = config.data
    augment = Augment(**arguments(d.augment))
    if generator is not None:
        augment.generator = generator
    root = None if d.cache == "" else (d.cache or cache_dir() / "opticflow")
    common = dict(arguments(d.movies), extent=config.network.extent, dt=d.dt, root=root)
    val_start = d.n_train if d.val_start is None else d.val_start
    val = OpticFlowMovies(d.n_val, start=val_start,
                          transform=Augment(d.augment.n_clip_frames, enabled=False), **common)
    if val_start >= d.n_train:
        return OpticFlowMovies(d.n_train, transform=augment, **common), val
    # the validation block lies inside the first n_train + n_val items: train on the others
    items = OpticFlowMovies(d.n_train + d.n_val, transform=augment, **common)
    keep = [i for i in range(len(items)) if not val_start <= i < val_start + d.n_val]
    return MovieSubset(items, keep), val


def arguments(section) -> dict:
    """A config section's fields as keyword arguments of the constructor it mirrors (nested
    sections stay objects, e.g. ``data.movies.prior``, a ``MotionPrior``)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


class MovieSubset(torch.utils.data.Subset):
    """Some items of a movie set; its other attributes (``config``, ``transform``) are the
    set's."""

    def __getattr__(self, name: str):
        if name in ("dataset", "indices"):  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def build_connectome(network: NetworkConfig, extent: int | None = None):
    """flyvis's connectome at ``extent`` (default ``network.extent``) with the transforms of
    ``network.connectome`` applied in order (seeded: the same config gives the same graph).

    Returns:
        the connectome ``HeteroData``.
    """
    from flygnn.datasets import FlyVisConnectome
    from flygnn.transforms import make_transforms

    data = FlyVisConnectome(extent=network.extent if extent is None else int(extent))[0]
    for transform in make_transforms(network.connectome, "network.connectome"):
        data = transform(data)
    return data


def build_network(config: TrainConfig, data=None) -> Network:
    """The config's starting network on ``data`` (default :func:`build_connectome`). A
    flygnn ``init`` saved at another extent is transferred (:func:`transfer`: the
    parameters are per cell type and type pair); it is read on the config's connectome at
    its extent, or, with transforms, on flyvis's intact graph when it does not fit there
    (e.g. a model trained on the intact connectome, then knocked out)."""
    c = config.network
    data = build_connectome(c) if data is None else data
    if c.init is None:
        return Network(data)
    if c.init_flyvis:
        return Network.from_flyvis_checkpoint(c.init, data)
    extent = _saved_extent(c.init)
    if extent == c.extent and not c.connectome:
        return Network.load(c.init, data)
    try:
        saved = Network.load(c.init, data if extent == c.extent else build_connectome(c, extent))
    except ValueError:
        if not c.connectome:
            raise
        log.info("network.init %s does not fit the transformed connectome: read on the "
                 "intact one and transferred", c.init)
        return transfer(Network.load(c.init), data)
    return saved if extent == c.extent else transfer(saved, data)


def _saved_extent(path) -> int:
    """The extent a ``Network.save`` file was saved at (its own checks run on loading)."""
    blob = load_file(path, "network.init")
    config = blob.get("config") if isinstance(blob, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("extent"), int):
        raise ValueError(f"network.init {str(path)!r}: not a flygnn Network checkpoint "
                         "(no config.extent)")
    return config["extent"]


def build_decoder(config: TrainConfig, network: Network) -> FlowDecoder:
    """The config's decoder for ``network``, with the weights of ``decoder.init`` if given
    (a ``decoder.pt`` state dict or a training checkpoint; the weights do not depend on
    the lattice extent)."""
    decoder = FlowDecoder.from_config(network.graph, config.decoder)
    path = config.decoder.init
    if path is None:
        return decoder
    blob = load_file(path, "decoder.init")
    state = blob["decoder"] if isinstance(blob, dict) and "decoder" in blob else blob
    try:
        decoder.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"decoder.init {path!r} does not fit the decoder of this config: "
                         f"{err}") from None
    return decoder


def transfer(network: Network, data) -> Network:
    """``network.transfer(data)``: its trained parameters on another lattice
    (:meth:`flygnn.Network.transfer`)."""
    return network.transfer(data)


def build_optimizer(optim, network: Network, decoder) -> torch.optim.Adam:
    """Adam with one group per distinct rate scale of the network's learning tables (one
    group when all scales are 1, as in flyvis), then the decoder's group; every rate starts
    at 0 (the trainer sets them per epoch). Tables outside ``optim.train_params`` (all of
    them without ``optim.train_network``) stop requiring gradients."""
    frozen = {"bias", "time_const", "syn_strength"} - set(optim.train_params)
    for name, parameter in network.named_parameters():
        parameter.requires_grad_(optim.train_network and parameter.requires_grad
                                 and name not in frozen)
    groups: dict[float, list] = {}
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            groups.setdefault(float(getattr(optim.net_rate_scale, name, 1.0)), []).append(parameter)
    net_groups = [{"params": ps, "lr": 0.0, "scale": k} for k, ps in groups.items()] or \
        [{"params": [], "lr": 0.0, "scale": 1.0}]
    return torch.optim.Adam(
        net_groups + [{"params": list(decoder.parameters()), "lr": 0.0, "scale": 1.0}])
