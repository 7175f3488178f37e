r"""Maximally excitatory stimuli of a cell type's central neuron (reference section 10).

Three searches, all returning an :class:`OptimalStimulus`:

* :func:`most_excitatory` -- the item of a stimulus dataset (e.g. naturalistic
  :class:`~flygnn.stimuli.opticflow.OpticFlowMovies`) whose central response reaches the
  largest value over all (item, frame); re-simulated from the grey steady state.
* :func:`regularized_stimulus` -- that stimulus pulled towards grey while keeping its
  response: Adam on :math:`S` of
  :math:`L = \lambda_{act} \sum_t (r_t(S) - r^*_t)^2 + \lambda_{stim} \sum_{t,h} (S_{t,h} - 0.5)^2`.
* :func:`artificial_stimulus` -- the most exciting stimulus grown from uniform noise: Adam on
  :math:`L = -w_c \,\mathrm{mean}(\exp r_{T}(S)) + w_{mei}\,\mathrm{mean}((S - 0.5)^2)`
  (``r_T``: last frame, or all frames), then :math:`S \leftarrow \mathrm{clip}(S, 0, 1)`.

Every simulation starts from the grey (0.5) steady state after ``t_pre`` seconds, computed
once without gradients. The network is frozen during the optimisations (its parameters'
``requires_grad`` set to False and restored afterwards); gradients reach the stimulus
through :func:`flygnn.simulate.simulate`. Responses are in the network's voltage units;
``dt`` and ``t_pre`` in seconds.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from flygnn.simulate import fade_in_state, simulate, steady_state

__all__ = ["OptimalStimulus", "frozen", "most_excitatory", "regularized_stimulus",
           "artificial_stimulus"]


@dataclass
class OptimalStimulus:
    """A stimulus and the response it evokes in one cell type.

    Attributes:
        cell_type: the cell type whose central neuron is driven.
        stimulus: luminance ``(1, T, n_hexals)``.
        response: the whole type's response ``(1, T, n_cells)`` (flat order of the type).
        central: the central neuron's response ``(T,)``.
        dt: seconds per frame.
        losses: loss after each optimisation step (empty for :func:`most_excitatory`).
        target: the central response that was kept (``regularized_stimulus``), else None.
        index, frame, value: for :func:`most_excitatory`, the winning item, its frame and the
            maximal central response of the search pass.
    """

    cell_type: str
    stimulus: torch.Tensor
    response: torch.Tensor
    central: torch.Tensor
    dt: float
    losses: list[float] = field(default_factory=list)
    target: torch.Tensor | None = None
    index: int | None = None
    frame: int | None = None
    value: float | None = None


@contextlib.contextmanager
def frozen(net: torch.nn.Module):
    """Context manager: ``requires_grad = False`` on all parameters, restored on exit."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield net
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _central_position(net, cell_type: str) -> int:
    if cell_type not in net.cell_types:
        raise ValueError(f"cell_type: unknown cell type {cell_type!r}")
    k = net.cell_types.index(cell_type)
    return int(net.graph.central_index[k] - net.graph.type_ptr[k])


def _frames(item, key: str) -> torch.Tensor:
    if isinstance(item, dict):
        if key not in item:
            raise ValueError(f"dataset items are dicts without the key {key!r} (have {list(item)})")
        item = item[key]
    item = torch.as_tensor(item, dtype=torch.float32)
    if item.dim() == 3 and item.shape[1] == 1:  # (T, 1, n_hexals) channel axis
        item = item[:, 0]
    if item.dim() != 2:
        raise ValueError(f"dataset items must be (T, n_hexals) frames, got {tuple(item.shape)}")
    return item


def _grey_state(net, t_pre: float, dt: float):
    with torch.no_grad():
        return steady_state(net, t_pre, dt, batch_size=1, value=0.5)


def _evoke(net, stimulus: torch.Tensor, cell_type: str, dt: float, state) -> tuple:
    response = simulate(net, stimulus, dt, initial_state=state, record=[cell_type])
    return response, response[0, :, _central_position(net, cell_type)]


def most_excitatory(net, dataset, cell_type: str, dt: float | None = None, t_pre: float = 1.0,
                    batch_size: int = 4, protocol: str = "grey", t_fade_in: float = 2.0,
                    key: str = "lum") -> OptimalStimulus:
    """The dataset item that excites the central ``cell_type`` neuron most (section 10.1).

    Every item is simulated (``protocol="grey"``: from the grey steady state after
    ``t_pre``; ``"fade_in"``: from rest, faded in over ``t_fade_in`` from grey to the item's
    first frame, flyvis's naturalistic protocol); the argmax over (item, frame) of the
    central response (NaN ignored) picks the item, which is then re-simulated from the grey
    steady state.

    Args:
        net: a :class:`~flygnn.network.Network`.
        dataset: items ``(T, n_hexals)`` or dicts holding them under ``key``.
        cell_type: the cell type.
        dt: seconds per frame (default ``dataset.dt``).
        t_pre: grey period of the steady state in seconds.
        batch_size: items simulated together.
        protocol: ``"grey"`` or ``"fade_in"``.
        t_fade_in: fade-in duration for ``protocol="fade_in"``.
        key: item key of dict datasets.

    **Shapes:** result ``stimulus (1, T, n_hexals)``, ``response (1, T, n_cells)``.
    """
    dt = getattr(dataset, "dt", None) if dt is None else dt
    if dt is None:
        raise ValueError("dt: the dataset has no dt attribute; pass dt")
    if protocol not in ("grey", "fade_in"):
        raise ValueError(f"protocol must be 'grey' or 'fade_in', got {protocol!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    k = net.cell_types.index(cell_type) if cell_type in net.cell_types else None
    if k is None:
        raise ValueError(f"cell_type: unknown cell type {cell_type!r}")
    device = net.bias.device
    best = (-np.inf, None, None)
    with torch.no_grad():
        grey = _grey_state(net, t_pre, dt) if protocol == "grey" else None
        for start in range(0, len(dataset), batch_size):
            items = [_frames(dataset[i], key)
                     for i in range(start, min(start + batch_size, len(dataset)))]
            groups = [torch.stack(items)] if len({x.shape for x in items}) == 1 \
                else [x[None] for x in items]
            offset = start
            for movie in groups:
                movie = movie.to(device)
                state = grey if grey is not None else fade_in_state(net, t_fade_in, dt, movie[:, 0])
                central = simulate(net, movie, dt, initial_state=state, record="central")[..., k]
                central = torch.nan_to_num(central.double(), nan=-np.inf)
                flat = int(torch.argmax(central))
                value = float(central.flatten()[flat])
                if value > best[0]:
                    best = (value, offset + flat // central.shape[1], flat % central.shape[1])
                offset += movie.shape[0]
        if best[1] is None:
            raise ValueError(f"all central responses of {cell_type} are NaN")
        stimulus = _frames(dataset[best[1]], key)[None].to(device)
        response, central = _evoke(net, stimulus, cell_type, dt, _grey_state(net, t_pre, dt))
    return OptimalStimulus(cell_type, stimulus, response, central, float(dt), index=best[1],
                           frame=best[2], value=best[0])


def regularized_stimulus(net, optimal: OptimalStimulus, l2_act: float = 1.0, l2_stim: float = 1.0,
                         lr: float = 1e-2, n_iters: int = 100, t_pre: float = 1.0
                         ) -> OptimalStimulus:
    """Pull an optimal stimulus towards grey while keeping its central response (section 10.2).

    ``S`` starts at ``optimal.stimulus``; the target is ``optimal.central`` (frames where it
    is finite). Each of ``n_iters`` Adam steps (learning rate ``lr``) minimises
    ``l2_act * sum_t (r_t(S) - r*_t)^2 + l2_stim * sum_{t,h} (S - 0.5)^2`` with ``r`` the
    central response simulated from the grey steady state; ``S`` is not clipped.

    Returns:
        :class:`OptimalStimulus` with the regularised stimulus, its responses, ``target`` and
        the loss of each step (evaluated before the step).
    """
    _check_iters(n_iters, lr)
    cell_type, dt = optimal.cell_type, optimal.dt
    device = net.bias.device
    target = optimal.central.detach().to(device)
    valid = torch.isfinite(target)
    stimulus = optimal.stimulus.detach().clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([stimulus], lr=lr)
    losses = []
    with frozen(net), torch.enable_grad():
        state = _grey_state(net, t_pre, dt)
        for _ in range(n_iters):
            optimizer.zero_grad()
            _, central = _evoke(net, stimulus, cell_type, dt, state)
            act = ((central - target)[valid] ** 2).sum()
            stim = ((stimulus - 0.5) ** 2).sum(dim=(1, 2)).mean()
            loss = l2_act * act + l2_stim * stim
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    with torch.no_grad():
        final = stimulus.detach()
        response, central = _evoke(net, final, cell_type, dt, _grey_state(net, t_pre, dt))
    return OptimalStimulus(cell_type, final, response, central, float(dt), losses=losses,
                           target=target)


def artificial_stimulus(net, cell_type: str, dt: float = 1 / 100, t_stim: float = 49 / 200,
                        lr: float = 1e-2, weight_central: float = 1.0, weight_mei: float = 3000.0,
                        n_iters: int = 200, seed: int = 0, last_only: bool = True,
                        t_pre: float = 1.0, generator: torch.Generator | None = None
                        ) -> OptimalStimulus:
    """Grow a maximally exciting stimulus from uniform noise (section 10.3).

    ``S ~ U[0, 1)`` of ``int(t_stim / dt)`` frames (from a CPU generator seeded ``seed``,
    or ``generator``); each of ``n_iters`` Adam steps minimises
    ``-weight_central * mean(exp(r(S))) + weight_mei * mean((S - 0.5)^2)`` (``r``: the
    central response at the last frame if ``last_only`` else at every frame, simulated from
    the grey steady state), then clips ``S`` to [0, 1].

    Returns:
        :class:`OptimalStimulus` with the final stimulus, its responses and the loss of each
        step (evaluated before the step).

    **Shapes:** ``stimulus (1, int(t_stim / dt), n_hexals)``.
    """
    _check_iters(n_iters, lr)
    _central_position(net, cell_type)
    n_frames = int(t_stim / dt)
    if n_frames < 1:
        raise ValueError(f"t_stim={t_stim} is shorter than one frame of dt={dt}")
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.rand((1, n_frames, net.n_hexals), generator=generator,
                       device=generator.device)
    stimulus = noise.clamp(0, 1).to(net.bias.device).requires_grad_(True)
    optimizer = torch.optim.Adam([stimulus], lr=lr)
    losses = []
    with frozen(net), torch.enable_grad():
        state = _grey_state(net, t_pre, dt)
        for _ in range(n_iters):
            optimizer.zero_grad()
            _, central = _evoke(net, stimulus, cell_type, dt, state)
            drive = central[-1:] if last_only else central
            loss = -weight_central * torch.exp(drive).mean() \
                + weight_mei * ((stimulus - 0.5) ** 2).mean()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                stimulus.clamp_(0, 1)
            losses.append(float(loss.detach()))
    with torch.no_grad():
        final = stimulus.detach()
        response, central = _evoke(net, final, cell_type, dt, _grey_state(net, t_pre, dt))
    return OptimalStimulus(cell_type, final, response, central, float(dt), losses=losses)


def _check_iters(n_iters: int, lr: float) -> None:
    if isinstance(n_iters, bool) or not isinstance(n_iters, int) or n_iters < 1:
        raise ValueError(f"n_iters must be a positive integer, got {n_iters!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
