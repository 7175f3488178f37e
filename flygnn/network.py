"""``Network``: the connectome's graph buffers, flyvis's parameters and a swappable dynamics.

The ``HeteroData`` of a :class:`~flygnn.datasets.FlyVisConnectome` is flattened once
(:func:`flygnn.flat.flatten`) into flyvis's flat node and edge order. Parameters and their
constraints are described in :mod:`flygnn.params`; neuron models in :mod:`flygnn.neurons`;
integrators in :mod:`flygnn.integrators`; simulation (initial states, movies, recording) in
:mod:`flygnn.simulate`. Derived tensors (CSR structure, edge coefficients, the no-grad
context) live in one place, ``net.cache`` (:class:`~flygnn.context.DerivedCache`, whose
docstring states the invalidation rule); no method changes a parameter except the
explicit setters and :meth:`Network.project_`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from flygnn import params
from flygnn._checks import check_extent
from flygnn.context import Context, DerivedCache
from flygnn.flat import FlatGraph, flatten
from flygnn.integrators import get_integrator
from flygnn.neurons import Graded, NeuronModel, make_model
from flygnn.simulate import check_dt, check_frames, simulate
from flygnn.sparse import PairAdjacency

__all__ = ["Network"]

FORMAT = "flygnn.Network"
#: buffers fixed by the graph (not trained), which :meth:`Network.save` may leave out
GRAPH_TABLES = ("sign", "syn_count")
FLYVIS_KEYS = {"nodes_bias": "bias", "nodes_time_const": "time_const", "edges_sign": "sign",
               "edges_syn_count": "syn_count", "edges_syn_strength": "syn_strength"}


def _input_nodes(graph: FlatGraph) -> slice | torch.Tensor:
    nodes = graph.nodes_of(graph.input_types)
    start = int(nodes[0])
    if torch.equal(nodes, torch.arange(start, start + len(nodes))):
        return slice(start, start + len(nodes))
    return nodes


class Network(nn.Module):
    """The fly visual system network: flyvis's parameters, any
    :class:`~flygnn.neurons.NeuronModel`.

    Args:
        data: a connectome ``HeteroData`` (``FlyVisConnectome(...)[0]``) or its
            :class:`~flygnn.flat.FlatGraph`.
        dynamics: the neuron model; default :class:`~flygnn.neurons.Graded` (flyvis's).
        seed: seed of the resting-potential initialisation (flyvis: 0).

    Attributes:
        graph: the :class:`~flygnn.flat.FlatGraph` (CPU).
        cell_types: the 65 cell types in order.
        dynamics: the neuron model (its parameters are ``dynamics.*`` in the state dict).
        cache: the :class:`~flygnn.context.DerivedCache` of derived tensors.
        bias, time_const, syn_strength: trainable ``nn.Parameter`` (65, 65, 604).
        sign, syn_count: fixed buffers (604, 2355; ``syn_count`` holds ``ln(count)``).

    Shapes:
        node tensors have ``N = graph.num_nodes`` entries (flyvis's node order); a frame has
        ``n_hexals`` values (one per column, added to every photoreceptor type R1-R8).
    """

    def __init__(self, data, dynamics: NeuronModel | None = None, *, seed: int = 0):
        super().__init__()
        graph = data if isinstance(data, FlatGraph) else flatten(data)
        self.graph = graph
        self.cell_types = list(graph.cell_types)
        n_types = len(self.cell_types)
        self.bias = nn.Parameter(params.init_bias(n_types, seed=seed))
        self.time_const = nn.Parameter(params.init_time_const(n_types))
        self.register_buffer("sign", graph.pair_sign.clone())
        self.register_buffer("syn_count", params.init_syn_count(graph.offset_n_syn))
        self.syn_strength = nn.Parameter(params.init_syn_strength(graph.pair_mean_n_syn))
        for name in ("node_type", "source", "target", "pair_index", "offset_index"):
            self.register_buffer(name, getattr(graph, name), persistent=False)  # shared, read-only
        self.input_nodes = _input_nodes(graph)
        self.n_hexals = graph.type_slice(graph.input_types[0]).stop - graph.type_slice(
            graph.input_types[0]).start
        self.dynamics = dynamics if dynamics is not None else Graded()
        if not isinstance(self.dynamics, NeuronModel):
            raise ValueError(f"dynamics must be a flygnn.neurons.NeuronModel, got "
                             f"{type(self.dynamics).__name__}")
        self.dynamics.setup(graph)
        self.cache = DerivedCache()

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    # ---------------------------------------------------------------- parameters as tables
    def param_table(self, name: str) -> pd.Series:
        """A parameter as a ``Series`` (index: cell type, type pair or (pair, du, dv))."""
        if name not in params.PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; known: {list(params.PARAMETERS)}")
        return params.to_series(name, getattr(self, name), self.graph)

    def set_param_table(self, name: str, table: pd.Series) -> None:
        """Overwrite the entries of a parameter given in ``table`` (validated; see params)."""
        if name not in params.PARAMETERS:
            raise ValueError(f"unknown parameter {name!r}; known: {list(params.PARAMETERS)}")
        current = getattr(self, name)
        new = params.from_series(name, table, self.graph, current)
        with torch.no_grad():
            current.copy_(new)

    def transfer(self, data) -> Network:
        """This network's parameters on another lattice (``data``, any extent).

        Resting potentials and time constants are shared per cell type and strengths per
        type pair, so a model trained at one extent runs on another: the tables are copied
        (pairs that produce no edge on the target lattice are dropped). Only neuron models
        without parameters of their own (the default graded model) transfer.

        Raises:
            ValueError: the neuron model has parameters of its own.
        """
        if any(True for _ in self.dynamics.parameters()):
            raise ValueError(f"neuron model {self.dynamics.name!r} has parameters of its own; "
                             "load it at its training extent instead")
        target = type(self)(data, dynamics=make_model(self.dynamics.name, self.dynamics.config()))
        for name in ("bias", "time_const", "syn_strength"):
            table = self.param_table(name)
            keep = table.index.isin(params.table_index(name, target.graph))
            target.set_param_table(name, table[keep])
        return target

    def project_(self, floor: torch.Tensor | None = None) -> None:
        """Project ``syn_strength`` onto its constraint in place (``>= 0``, or ``>= floor``).

        The optimiser step's constraint (:func:`flygnn.params.project_`): trainers call it
        after every step. The forward pass itself reads ``max(s, 0)`` and writes nothing.
        """
        params.project_(self.syn_strength, floor)

    # ---------------------------------------------------------------- per-forward context
    def _sources(self) -> list[torch.Tensor]:
        return [self.bias, self.time_const, self.syn_strength, self.sign, self.syn_count,
                *self.dynamics.parameters(), *self.dynamics.buffers()]

    def context(self) -> Context:
        """Parameters broadcast to nodes and edges, and the fused adjacency, for one forward.

        Outside autograd the context is kept in :attr:`cache` until a parameter changes.
        Strengths enter as ``max(s, 0)`` (no write to the parameter; see :meth:`project_`).
        """
        if torch.is_grad_enabled():
            return self._make_context()
        return self.cache.get("context", self._sources(), self._make_context)

    def _make_context(self) -> Context:
        device, dtype = self.bias.device, self.bias.dtype
        structure = self.cache.get(("adjacency", str(device)), (), lambda: PairAdjacency(
            self.source, self.target, self.pair_index, self.num_nodes, len(self.graph.pairs)))

        def coefficients():
            with torch.no_grad():
                return params.edge_coefficient(self.sign, self.syn_count, self.pair_index,
                                               self.offset_index).to(dtype)

        coeff = self.cache.get(("coeff", dtype), (self.sign, self.syn_count), coefficients)
        strength = self.syn_strength.clamp(min=0)
        input_nodes = self.input_nodes
        if isinstance(input_nodes, torch.Tensor):
            input_nodes = input_nodes.to(device)
        return Context(
            graph=self.graph, node_type=self.node_type, bias=self.bias[self.node_type],
            time_const=self.time_const[self.node_type], strength=strength, coeff=coeff,
            adjacency=structure.bind(coeff, strength), source=self.source, target=self.target,
            pair_index=self.pair_index, input_nodes=input_nodes, cache=self.cache)

    def prepare(self) -> Context:
        """The context for one forward pass (:meth:`context`)."""
        return self.context()

    # ---------------------------------------------------------------- stepping
    def frame_input(self, frame: torch.Tensor) -> torch.Tensor:
        """Photoreceptor current of a frame: ``(B, n_hexals) -> (B, n_input_types * n_hexals)``."""
        return frame.repeat(1, len(self.graph.input_types))

    def initial_state(self, batch_size: int = 1, ctx: Context | None = None):
        """The model's resting state (graded models: ``v = bias``). Shapes: ``(B, N)``."""
        return self.dynamics.initial_state(ctx or self.prepare(), batch_size)

    def step(self, state, frame: torch.Tensor, dt: float, ctx: Context | None = None,
             method: str = "euler"):
        """Advance one integration step of ``dt`` seconds with one frame (closed-loop use).

        Args:
            state: current state (e.g. from :func:`flygnn.simulate.steady_state`).
            frame: ``(B, n_hexals)`` luminance, added to R1-R8 of each column.
            dt: step in seconds.
            ctx: a context from :meth:`prepare`, to reuse over many steps (recomputed if None).
            method: the integrator (:mod:`flygnn.integrators`).

        Returns:
            the next state; ``self.dynamics.activity(next_state)`` is ``(B, N)``.
        """
        dt = check_dt(dt)
        frame = check_frames(frame, self.n_hexals, "frame", 2, self.bias)
        return get_integrator(method)(self.dynamics, state, self.frame_input(frame),
                                      ctx or self.prepare(), dt)

    def forward(self, movie: torch.Tensor, dt: float, **kwargs) -> torch.Tensor:
        """:func:`flygnn.simulate.simulate` of this network (same arguments)."""
        return simulate(self, movie, dt, **kwargs)

    # ---------------------------------------------------------------- checkpoints
    def config(self) -> dict:
        """JSON-able configuration saved beside the state dict."""
        return {"extent": self.graph.extent, "dynamics": self.dynamics.name,
                "dynamics_kwargs": self.dynamics.config()}

    def save(self, path: str | os.PathLike, graph_tables: bool = True) -> None:
        """Write ``{"format", "config", "state_dict"}`` with ``torch.save``.

        ``graph_tables=False`` leaves out the tables that come with the graph and do not
        train (:data:`GRAPH_TABLES`: signs and synapse counts); :meth:`load` then takes them
        from the connectome it is given. For graphs that are rebuilt exactly from a seeded
        spec (a rewired connectome, whose counts are per edge: megabytes at extent 15)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()
                 if graph_tables or k not in GRAPH_TABLES}
        torch.save({"format": FORMAT, "version": 1, "config": self.config(),
                    "state_dict": state}, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike, data=None,
             dynamics: NeuronModel | None = None) -> Network:
        """Load a network written by :meth:`save`.

        Args:
            path: the file.
            data: the connectome (``HeteroData`` or ``FlatGraph``); None rebuilds
                ``FlyVisConnectome(extent=config["extent"])``.
            dynamics: an instance for unregistered model classes (else made by name).

        Raises:
            ValueError: unreadable file, not a flygnn checkpoint, or mismatching tensors.
        """
        blob = _load(path)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{path}: not a flygnn Network checkpoint (no format={FORMAT!r}); "
                             "for flyvis files use Network.from_flyvis_checkpoint")
        config = blob.get("config")
        if not isinstance(config, dict) or not {"extent", "dynamics"} <= set(config) \
                or not isinstance(blob.get("state_dict"), dict):
            raise ValueError(f"{path}: flygnn checkpoint without a valid 'config' / 'state_dict'")
        check_extent(config["extent"], f"{path}: config field 'extent'")
        data = _default_data(config["extent"]) if data is None else data
        if dynamics is None:
            dynamics = make_model(config["dynamics"], config.get("dynamics_kwargs"))
        net = cls(data, dynamics)
        if net.graph.extent != config["extent"]:
            raise ValueError(f"{path}: saved at extent {config['extent']}, data has extent "
                             f"{net.graph.extent}")
        state = dict(blob["state_dict"])
        for name in GRAPH_TABLES:  # saved without them: the connectome's own
            state.setdefault(name, getattr(net, name))
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path}: state dict does not fit this network: {err}") from None
        return net

    @classmethod
    def from_flyvis_checkpoint(cls, path: str | os.PathLike, data=None,
                               dynamics: NeuronModel | None = None) -> Network:
        """Import a flyvis checkpoint (``chkpts/chkpt_XXXXX``, a ``torch.save`` dict).

        Its ``network`` entry holds ``nodes_bias`` (65), ``nodes_time_const`` (65),
        ``edges_sign`` (604), ``edges_syn_count`` (2355, ln of counts) and
        ``edges_syn_strength`` (604) in flyvis's group order, which is the first-appearance
        order of the extent-15 graph (flygnn's own order at extent 15). Entries are mapped
        by key (cell type, type pair, (pair, du, dv)), so a smaller ``data`` extent works.

        Args:
            path: the checkpoint file.
            data: connectome; None builds ``FlyVisConnectome(extent=15)``.
            dynamics: default :class:`~flygnn.neurons.Graded`.

        Raises:
            ValueError: naming the file and the missing or mis-shaped key.
        """
        blob = _load(path)
        state = blob.get("network") if isinstance(blob, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a flyvis checkpoint (no 'network' state dict)")
        net = cls(_default_data(15) if data is None else data, dynamics)
        reference = net.graph if net.graph.extent == 15 else flatten(_default_data(15))
        orders = {"type": reference.cell_types, "pair": reference.pairs,
                  "offset": reference.offsets}
        tables = {}
        for key, name in FLYVIS_KEYS.items():
            value = state.get(key)
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"{path}: missing tensor 'network.{key}'")
            order = orders[params.PARAMETERS[name]]
            if value.dim() != 1 or value.numel() != len(order):
                raise ValueError(f"{path}: 'network.{key}' has shape {tuple(value.shape)}, "
                                 f"expected ({len(order)},)")
            value = value.detach().float().cpu()
            if not torch.isfinite(value).all():
                raise ValueError(f"{path}: 'network.{key}' contains non-finite values")
            tables[name] = dict(zip(order, value))
        ours = {"type": net.graph.cell_types, "pair": net.graph.pairs,
                "offset": net.graph.offsets}
        with torch.no_grad():
            for name, table in tables.items():
                keys = ours[params.PARAMETERS[name]]
                missing = [k for k in keys if k not in table]
                if missing:
                    raise ValueError(f"{path}: no entry for {missing[:3]} in '{name}'")
                getattr(net, name).copy_(torch.stack([table[k] for k in keys]))
            params.project_(net.syn_strength)
        return net


def _load(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a foreign file
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None


def _default_data(extent: int):
    from flygnn.datasets import FlyVisConnectome

    return FlyVisConnectome(extent=int(extent))[0]
