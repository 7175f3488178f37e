"""The optic-flow task: a convolutional decoder on the hexagonal lattice and its losses.

The decoder reads the activity of the output cell types, places each type's lattice in an
axial ``(2E+1) x (2E+1)`` map (``map[u + E, v + E]``, zeros off the lattice), and maps the
34 channels to a flow vector per hexal with two hex-masked convolutions (flyvis's
``DecoderGAVP``, reference 9.2). Its state-dict names equal flyvis's (``base.0.weight`` ...
``decoder.0.bias``), so a flyvis checkpoint's ``decoder["flow"]`` loads directly.

:func:`evaluate` scores a (network, decoder) pair on a movie dataset (mean ``l2norm`` and
``epe``), :func:`zero_flow_error` the error of the trivial prediction. The building blocks (hex
convolution, dropout, running RMS) are in :mod:`flygnn.layers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from flygnn import hexgrid
from flygnn._arguments import is_int, is_number, require
from flygnn._deprecation import renamed_argument, warn_renamed
from flygnn.flat import FlatGraph
from flygnn.layers import Dropout, GroupDropout, HexConv2d, RunningRMS
from flygnn.simulate import simulate, steady_state
from flygnn.stimuli.loaders import collate

if TYPE_CHECKING:
    from flygnn.network import Network

__all__ = ["FlowDecoder", "check_decoder_arguments", "l2norm", "epe", "activity_penalty",
           "rest_cost", "batch_of", "evaluate", "zero_flow_error"]


def check_decoder_arguments(*, hidden, kernel_size, const_weight, p_dropout, input_reference,
                            input_norm, norm_momentum, type_dropout, pathway_dropout,
                            type_dropout_groups) -> None:
    """Check :class:`FlowDecoder`'s keyword arguments (they are described there); called by
    the decoder and by :class:`~flygnn.config.DecoderConfig`.

    Raises:
        ArgumentError: (a ``ValueError``) naming the first bad argument.
    """
    require(is_int(hidden) and hidden >= 1, "hidden", f"must be >= 1, got {hidden!r}")
    require(is_int(kernel_size) and kernel_size >= 1 and kernel_size % 2 == 1, "kernel_size",
            f"must be a positive odd integer, got {kernel_size!r}")
    require(const_weight is None or is_number(const_weight), "const_weight",
            f"must be a finite number or None, got {const_weight!r}")
    for name, p in (("p_dropout", p_dropout), ("type_dropout", type_dropout),
                    ("pathway_dropout", pathway_dropout)):
        require(is_number(p) and 0 <= p < 1, name, f"must be in [0, 1), got {p!r}")
    require(input_reference in FlowDecoder.INPUT_REFERENCES, "input_reference",
            f"must be one of {FlowDecoder.INPUT_REFERENCES}, got {input_reference!r}")
    require(input_norm in FlowDecoder.INPUT_NORMS, "input_norm",
            f"must be one of {FlowDecoder.INPUT_NORMS}, got {input_norm!r}")
    require(is_number(norm_momentum) and 0 < norm_momentum <= 1, "norm_momentum",
            f"must be in (0, 1], got {norm_momentum!r}")
    require(type_dropout_groups in ("types", "directions"), "type_dropout_groups",
            f"must be 'types' or 'directions', got {type_dropout_groups!r}")


class FlowDecoder(nn.Module):
    """flyvis's ``DecoderGAVP``: network activity -> optic flow on the lattice.

    With ``a`` the activity of the output types, ``m = map(relu(a))`` on the axial grid,

        ``h = Dropout(Softplus(BatchNorm(HexConv(m))))``, ``o = HexConv(h)``,
        ``y = o[:2] / (softplus(o[2]) + 1)``,

    read back at the lattice positions. Convolutions use ``kernel_size`` (5) hex kernels
    and same padding; all weights and biases start at ``const_weight`` (then masked).
    At extent 15 with 34 output types: 7,427 parameters.

    *Input reference* (not in flyvis). With ``input_reference="rest"`` the decoder reads the
    change from rest, ``m = map(relu(a) - relu(a_rest))``, where ``a_rest`` is the activity in the
    grey steady state the movie starts from (``rest`` in :meth:`forward`). In a network at
    flyvis's initialisation the output cells' responses to a movie are ~1e-4 of their
    resting activity; the DC term then dominates the batch norm and no flow can be read
    out, so the network receives no useful gradient for a long time. Subtracting the rest
    removes the DC term; the decoder's input is otherwise unchanged (``"none"``: flyvis).
    ``input_reference="rest_positive"`` keeps only the rise above rest, ``relu(relu(a) -
    relu(a_rest))``: a cell then reports one direction of change, as a synapse onto a
    downstream cell would, and a motion axis needs two opponent types.
    On its own it does not make very small inputs readable in eval mode (the batch norm's
    running statistics lag behind the fit); ``input_norm="rms"`` does.

    *Input normalisation* (not in flyvis). With ``input_norm="rms"`` each output type's
    input (after the reference) is divided by its running root mean square over the lattice
    (:class:`RunningRMS`, momentum ``norm_momentum``) before the first convolution, so the
    decoder sees inputs of order one however weakly the network responds, in training and
    eval mode alike. Meant for ``input_reference="rest"``; ``"none"`` is flyvis.

    *Type dropout* (not in flyvis). With ``type_dropout = p > 0`` each output type's whole
    input map is dropped with probability ``p`` per frame in training (the rest scaled by
    ``1 / (1 - p)``), so the flow must be readable from any subset of the types: no type
    (e.g. T4) can carry the motion alone, which pushes the network to code it redundantly
    (e.g. in T5 as well). Identity in eval mode; 0 is flyvis. With
    ``type_dropout_groups="directions"`` the T4 and T5 type of each direction (T4a with T5a,
    ...) are dropped together, every other type alone: T5a then cannot stand in for T4a, so
    copying T4a's ON motion signal into T5a no longer pays.

    *Pathway dropout* (not in flyvis). With ``pathway_dropout = p > 0`` the four T4 types
    (the ON motion pathway) are dropped together with probability ``p`` per frame, and
    independently the four T5 types (OFF): the flow must then be readable without either
    motion pathway, so each must code motion on its own (:class:`GroupDropout`).

    Args:
        graph: the network's flat graph (output types and lattice extent).
        hidden: channels of the hidden layer (8).
        kernel_size: odd kernel size (5).
        const_weight: initial value of all weights and biases; None keeps PyTorch's init.
        p_dropout: dropout probability of the hidden layer (0.5).
        input_reference: ``"none"`` (flyvis), ``"rest"`` (subtract the resting activity) or
            ``"rest_positive"`` (and keep only the rise above it).
        input_norm: ``"none"`` (flyvis) or ``"rms"`` (divide by the running RMS per type).
        norm_momentum: momentum of the running RMS (0.01).
        type_dropout: probability of dropping a type's whole input map in training (0).
        type_dropout_groups: ``"types"`` (each type alone) or ``"directions"`` (T4x with T5x).
        pathway_dropout: probability of dropping all T4 (or all T5) input maps together (0).
        baseline: deprecated spelling of ``input_reference``.

    **Shapes:** ``responses (B, T, N)``, ``rest (B or 1, N)`` -> ``flow (B, T, 2, n_hexals)``.
    """

    INPUT_REFERENCES = ("none", "rest", "rest_positive")
    BASELINES = INPUT_REFERENCES  # deprecated spelling
    INPUT_NORMS = ("none", "rms")

    def __init__(self, graph: FlatGraph, hidden: int = 8, kernel_size: int = 5,
                 const_weight: float | None = 0.001, p_dropout: float = 0.5,
                 input_reference: str = "none", input_norm: str = "none",
                 norm_momentum: float = 0.01, type_dropout: float = 0.0,
                 pathway_dropout: float = 0.0, type_dropout_groups: str = "types", *,
                 baseline: str | None = None) -> None:
        super().__init__()
        input_reference = renamed_argument("FlowDecoder", "baseline", "input_reference", baseline,
                                           input_reference, "none")
        check_decoder_arguments(
            hidden=hidden, kernel_size=kernel_size, const_weight=const_weight,
            p_dropout=p_dropout, input_reference=input_reference, input_norm=input_norm,
            norm_momentum=norm_momentum, type_dropout=type_dropout,
            pathway_dropout=pathway_dropout, type_dropout_groups=type_dropout_groups)
        self.input_reference = input_reference
        self.extent, self.num_nodes = graph.extent, graph.num_nodes
        self.n_types = len(graph.output_types)
        u, v = hexgrid.disk(graph.extent)
        size = 2 * graph.extent + 1
        self.register_buffer("output_index", graph.nodes_of(graph.output_types), persistent=False)
        index = (u + graph.extent) * size + v + graph.extent
        self.register_buffer("map_index", torch.as_tensor(index), persistent=False)
        self.base = nn.Sequential(
            HexConv2d(self.n_types, hidden, kernel_size, const_weight),
            nn.BatchNorm2d(hidden),
            nn.Softplus(),
            Dropout(p_dropout),
        )
        self.decoder = nn.Sequential(HexConv2d(hidden, 3, kernel_size, const_weight))
        self.input_norm = (RunningRMS(self.n_types, norm_momentum) if input_norm == "rms"
                           else None)
        types = list(graph.output_types)
        if type_dropout_groups == "types":
            self.input_dropout = Dropout(type_dropout, whole_channels=True, name="type_dropout")
        else:  # "directions"
            pairs = [[types.index(t) for t in (f"T4{d}", f"T5{d}") if t in types] for d in "abcd"]
            paired = {k for pair in pairs for k in pair}
            groups = [p for p in pairs if p] + [[k] for k in range(self.n_types) if k not in paired]
            self.input_dropout = GroupDropout(type_dropout, groups, self.n_types, "type_dropout")
        groups = [[types.index(f"{t}{s}") for s in "abcd" if f"{t}{s}" in types]
                  for t in ("T4", "T5")]
        self.pathway_dropout = GroupDropout(pathway_dropout, [g for g in groups if g],
                                            self.n_types)

    @classmethod
    def from_config(cls, graph: FlatGraph, config) -> FlowDecoder:
        """The decoder a :class:`~flygnn.config.DecoderConfig` describes."""
        c = config
        return cls(graph, c.hidden, c.kernel_size, c.const_weight, c.p_dropout, c.input_reference,
                   c.input_norm, c.norm_momentum, c.type_dropout, c.pathway_dropout,
                   c.type_dropout_groups)

    @property
    def dropout(self) -> Dropout:
        """The hidden layer's dropout (set its ``generator`` for reproducible masks)."""
        return self.base[3]

    def to_map(self, x: torch.Tensor) -> torch.Tensor:
        """Scatter lattice values into the axial map (zeros off the lattice).

        **Shapes:** ``(..., n_hexals)`` -> ``(..., 2E+1, 2E+1)``.
        """
        size = 2 * self.extent + 1
        out = x.new_zeros(*x.shape[:-1], size * size)
        out[..., self.map_index] = x
        return out.reshape(*x.shape[:-1], size, size)

    def from_map(self, x: torch.Tensor) -> torch.Tensor:
        """Read the lattice positions of an axial map.

        Shapes: ``(..., 2E+1, 2E+1)`` -> ``(..., n_hexals)``."""
        return x.flatten(-2)[..., self.map_index]

    @property
    def baseline(self) -> str:
        """Deprecated spelling of :attr:`input_reference`."""
        warn_renamed("FlowDecoder", "baseline", "input_reference")
        return self.input_reference

    def forward(self, responses: torch.Tensor, rest: torch.Tensor | None = None) -> torch.Tensor:
        """Decode ``responses``; ``rest`` (the activity of the grey steady state the
        simulation started from, e.g. ``net.dynamics.activity(steady_state(...))``) is
        required with ``input_reference`` ``"rest"`` or ``"rest_positive"`` and ignored
        otherwise."""
        if responses.dim() != 3 or responses.shape[-1] != self.num_nodes:
            raise ValueError(f"responses must have shape (B, T, {self.num_nodes}), got "
                             f"{tuple(responses.shape)}")
        B, T, _ = responses.shape
        n = self.map_index.numel()
        x = responses[..., self.output_index].relu()
        if self.input_reference != "none":
            if rest is None:
                raise ValueError(f"this decoder reads activity relative to rest (input_reference="
                                 f"{self.input_reference!r}): "
                                 "pass rest=net.dynamics.activity(state) of the grey steady state "
                                 "the simulation started from")
            if rest.dim() != 2 or rest.shape[-1] != self.num_nodes or rest.shape[0] not in (1, B):
                raise ValueError(f"rest must have shape ({B} or 1, {self.num_nodes}), got "
                                 f"{tuple(rest.shape)}")
            x = x - rest[:, None, self.output_index].relu()
            if self.input_reference == "rest_positive":
                x = x.relu()
        x = x.reshape(B * T, self.n_types, n)
        if self.input_norm is not None:
            x = self.input_norm(x)
        x = self.pathway_dropout(self.input_dropout(self.to_map(x)))
        out = self.decoder(self.base(x))
        y = out[:, :2] / (F.softplus(out[:, 2:3]) + 1.0)
        return self.from_map(y).reshape(B, T, 2, n)


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape or prediction.dim() != 4 or prediction.shape[2] != 2:
        raise ValueError(f"prediction and target must both have shape (B, T, 2, n_hexals), got "
                         f"{tuple(prediction.shape)} and {tuple(target.shape)}")


def l2norm(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Training loss: ``mean_b sqrt( sum_{t, c, h} (y_hat - y)^2 )`` (flyvis ``l2norm``).

    **Shapes:** ``(B, T, 2, n_hexals)`` twice -> scalar.
    """
    _check_pair(prediction, target)
    return (prediction - target).pow(2).flatten(1).sum(1).sqrt().mean()


def epe(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Average end-point error: ``mean_{b, t, h} sqrt( sum_c (y_hat - y)^2 )``.

    **Shapes:** ``(B, T, 2, n_hexals)`` twice -> scalar.
    """
    _check_pair(prediction, target)
    return (prediction - target).pow(2).sum(2).sqrt().mean()


def activity_penalty(responses: torch.Tensor, central_index: torch.Tensor, target: float = 5.0,
                     weight: float = 0.1, below: float = 1.0, above: float = 0.1, *,
                     baseline: float | None = None) -> torch.Tensor:
    """flyvis's activity penalty on the central cells (reference 9.5; ``target`` is flyvis's
    ``activity_baseline``; the old spelling ``baseline=`` is deprecated).

    ``a = mean_{t >= floor(T/4)} r[b, t, central_k]``, ``x = target - a``,
    ``g = below * relu(x) - above * relu(-x)``, ``P = weight * mean_{b, k} g^2``.

    **Shapes:** ``responses (B, T, N)``, ``central_index (K,)`` -> scalar.
    """
    target = renamed_argument("activity_penalty", "baseline", "target", baseline, target, 5.0)
    T = responses.shape[1]
    a = responses[:, T // 4:].index_select(2, central_index.to(responses.device)).mean(1)
    x = target - a
    g = below * x.relu() - above * (-x).relu()
    return weight * g.pow(2).mean()


def rest_cost(rest: torch.Tensor, index: torch.Tensor, weight: float = 1.0,
              target: float = 0.0, floor: float | None = None) -> torch.Tensor:
    """A cost on tonic activity (not in flyvis): ``weight * mean_k relu(rest_k - target)^2``
    over the cells ``index`` (``rest_k = rest[..., index_k]``), plus ``weight * mean_k
    relu(floor - rest_k)^2`` when ``floor`` is given.

    Keeps the chosen cells at or below ``target`` at the grey rest -- below the threshold 0
    of the rectified readout and synapses when negative, so that only responses larger than
    ``-target`` reach them. With a ``floor`` the rest is kept in the band ``[floor, target]``:
    a cell cannot sink so far below threshold that no stimulus lifts it across, where it
    would be silent to the rectified readout and its gradient zero. **Shapes:** ``rest (...,
    N)``, ``index (K,)`` -> scalar (mean over the leading dimensions too).

    Raises:
        ValueError: ``floor`` above ``target``.
    """
    x = rest.index_select(-1, index.to(rest.device))
    cost = (x - target).relu().pow(2)
    if floor is not None:
        if floor > target:
            raise ValueError(f"rest_cost: floor ({floor}) must be <= target ({target})")
        cost = cost + (floor - x).relu().pow(2)
    return weight * cost.mean()


def batch_of(items: list[dict], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack dataset items (:func:`flygnn.stimuli.loaders.collate`) onto ``device``.

    **Shapes:** items ``{"lum": (T, n), "flow": (T, 2, n)}`` -> ``(B, T, n)``, ``(B, T, 2, n)``.
    """
    batch = collate(items)
    return (batch["lum"].to(device=device, dtype=torch.float32),
            batch["flow"].to(device=device, dtype=torch.float32))


@torch.no_grad()
def evaluate(net: Network, decoder: FlowDecoder, dataset, dt: float, t_pre: float = 0.5,
             batch_size: int = 4, progress: bool = False) -> dict[str, float]:
    """Mean ``l2norm`` and ``epe`` over a dataset (eval mode, grey steady state of ``t_pre``).

    Per-sample values are averaged over samples, so the result does not depend on
    ``batch_size`` (flyvis evaluates with batch 1). The modules' modes are restored.
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    was = net.training, decoder.training
    net.eval()
    decoder.eval()
    state = steady_state(net, t_pre, dt, batch_size=1)
    totals, n = {"l2norm": 0.0, "epe": 0.0}, 0
    starts = range(0, len(dataset), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="validate", leave=False)
    for start in starts:
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        lum, flow = batch_of(items, net.bias.device)
        pred = decoder(simulate(net, lum, dt, initial_state=state), net.dynamics.activity(state))
        totals["l2norm"] += float(l2norm(pred, flow)) * len(items)
        totals["epe"] += float(epe(pred, flow)) * len(items)
        n += len(items)
    net.train(was[0])
    decoder.train(was[1])
    return {k: v / n for k, v in totals.items()}


def zero_flow_error(dataset) -> dict[str, float]:
    """``l2norm`` and ``epe`` of predicting zero flow everywhere (the trivial prediction that a
    trained decoder must beat); ``metrics.json`` keeps it under ``zero_flow``."""
    totals = {"l2norm": 0.0, "epe": 0.0}
    for i in range(len(dataset)):
        flow = dataset[i]["flow"][None].float()
        zero = torch.zeros_like(flow)
        totals["l2norm"] += float(l2norm(zero, flow))
        totals["epe"] += float(epe(zero, flow))
    return {k: v / len(dataset) for k, v in totals.items()}


def zero_flow_baseline(dataset) -> dict[str, float]:
    """Deprecated spelling of :func:`zero_flow_error`."""
    warn_renamed("flygnn.task", "zero_flow_baseline", "zero_flow_error")
    return zero_flow_error(dataset)
