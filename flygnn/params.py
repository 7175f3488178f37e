r"""The network's parameters: what they are, how they start, which constraints they obey.

Five tensors, shared per cell type, type pair or (pair, offset) as in flyvis (all float32):

================ ======= ===================================== =========== =========================
name             shape   shared over                           trainable   default
================ ======= ===================================== =========== =========================
``bias``         (65,)   cell type                             yes         Normal(0.5, 0.05), seed 0
``time_const``   (65,)   cell type                             yes         0.05 s
``syn_strength`` (604,)  (source_type, target_type)            yes         0.01 / mean n_syn of pair
``sign``         (604,)  (source_type, target_type)            no          +1 / -1 from the file
``syn_count``    (2355,) (source_type, target_type, du, dv)    no          ln(count), see below
================ ======= ===================================== =========== =========================

``syn_count`` is stored as flyvis stores it: ``raw = float32(ln(float64(count)))``; the count
used by the dynamics is ``exp(raw)`` in float32 (within 2.4e-7 of the file's count). The
per-edge weight is ``w_e = (sign_p * exp(raw_o)) * strength_p`` in that order
(:func:`edge_coefficient` computes the bracket).

**Constraints** (the only place they are defined):

* ``syn_strength >= 0``: projected in place (:func:`project_`) before every forward pass,
  as flyvis does, so gradients pass unchanged and a strength driven below zero by an
  optimiser restarts from 0. The table setter refuses negative values. Training may raise
  the floor to a fraction of the initial strengths (``optim.strength_floor``; not in flyvis).
* ``time_const`` is floored at the step: :math:`\tau_{eff} = \max(\tau, dt)`
  (:func:`effective_time_const`), so a neuron with :math:`\tau \le dt` jumps to its
  target in one step instead of overshooting. No clamp is applied to the stored value.

Tables (:func:`to_series` / :func:`from_series`) are pandas ``Series`` indexed by cell type
(``bias``, ``time_const``), by a ``(source_type, target_type)`` MultiIndex (``sign``,
``syn_strength``) or by ``(source_type, target_type, du, dv)`` (``syn_count``, values are
counts, not logs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = [
    "PARAMETERS", "TRAINABLE", "init_bias", "init_time_const", "init_syn_count",
    "init_syn_strength", "syn_count_value", "edge_coefficient", "effective_time_const",
    "project_", "pair_positions", "table_index", "to_series", "from_series",
]

#: parameter name -> grouping ("type", "pair" or "offset")
PARAMETERS = {
    "bias": "type",
    "time_const": "type",
    "sign": "pair",
    "syn_count": "offset",
    "syn_strength": "pair",
}
TRAINABLE = ("bias", "time_const", "syn_strength")


def init_bias(n_types: int, mean: float = 0.5, std: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Resting potentials: one ``torch.normal`` draw from a CPU generator seeded ``seed``.

    Reproduces flyvis's CPU initialisation bit for bit (65 float32 values, mean 0.5, std 0.05).

    Shapes:
        -> ``(n_types,)`` float32.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.normal(torch.full((n_types,), mean), torch.full((n_types,), std), generator=gen)


def init_time_const(n_types: int, value: float = 0.05) -> torch.Tensor:
    """Membrane time constants in seconds (flyvis: 0.05 s for every type).

    Shapes: ``(n_types,)``."""
    return torch.full((n_types,), value, dtype=torch.float32)


def init_syn_count(offset_n_syn: torch.Tensor) -> torch.Tensor:
    """Stored form of synapse counts: ``float32(ln(float64(count)))``. Shapes: ``(O,)``."""
    return torch.log(offset_n_syn.to(torch.float64)).to(torch.float32)


def syn_count_value(raw: torch.Tensor) -> torch.Tensor:
    """Counts used by the dynamics, ``exp(raw)`` in the stored dtype. Shapes: ``(O,)``."""
    return torch.exp(raw)


def init_syn_strength(pair_mean_n_syn: torch.Tensor, scale: float = 0.01) -> torch.Tensor:
    """``float32(scale / mean_pair_n_syn)`` with the float64 mean over the pair's edges.

    Shapes: ``(P,)``."""
    return (scale / pair_mean_n_syn.to(torch.float64)).to(torch.float32)


def edge_coefficient(sign: torch.Tensor, syn_count: torch.Tensor, pair_index: torch.Tensor,
                     offset_index: torch.Tensor) -> torch.Tensor:
    """``c_e = sign[pair(e)] * exp(syn_count[offset(e)])`` (float32, this order).

    Shapes:
        sign ``(P,)``, syn_count ``(O,)`` (raw logs), pair_index/offset_index ``(E,)`` -> ``(E,)``.
    """
    return sign[pair_index] * syn_count_value(syn_count)[offset_index]


def effective_time_const(time_const: torch.Tensor, dt: float) -> torch.Tensor:
    r""":math:`\tau_{eff} = \max(\tau, dt)` (gradient passes where :math:`\tau \ge dt`)."""
    return time_const.clamp(min=dt)


@torch.no_grad()
def project_(syn_strength: torch.Tensor, floor: torch.Tensor | None = None) -> None:
    """Project strengths onto ``>= 0`` (or ``>= floor``, a ``(P,)`` tensor) in place; a no-op,
    with no write, when already valid."""
    if floor is not None:
        if bool((syn_strength < floor).any()):
            torch.maximum(syn_strength, floor, out=syn_strength)
    elif bool((syn_strength < 0).any()):
        syn_strength.clamp_(min=0)


def pair_positions(graph, pairs) -> list[int]:
    """Positions in ``syn_strength`` of type pairs written ``"source->target"``; raises
    ``ValueError`` naming the pairs without synapses."""
    known = {f"{a}->{b}": i for i, (a, b) in enumerate(table_index("syn_strength", graph))}
    unknown = [p for p in pairs if p not in known]
    if unknown:
        raise ValueError(f"no synapses for {unknown}")
    return [known[p] for p in pairs]


def table_index(name: str, graph) -> pd.Index:
    """The pandas index of a parameter table, in flyvis's parameter order."""
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}; known: {list(PARAMETERS)}")
    group = PARAMETERS[name]
    if group == "type":
        return pd.Index(list(graph.cell_types), name="cell_type")
    if group == "pair":
        return pd.MultiIndex.from_tuples(list(graph.pairs), names=["source_type", "target_type"])
    return pd.MultiIndex.from_tuples(list(graph.offsets),
                                     names=["source_type", "target_type", "du", "dv"])


def to_series(name: str, value: torch.Tensor, graph) -> pd.Series:
    """A parameter tensor as a named ``Series`` (``syn_count``: counts ``exp(raw)``)."""
    value = value.detach().cpu()
    if name == "syn_count":
        value = syn_count_value(value)
    return pd.Series(value.numpy().copy(), index=table_index(name, graph), name=name)


def from_series(name: str, table: pd.Series, graph, current: torch.Tensor) -> torch.Tensor:
    """Validate a table and merge it into ``current`` (entries not in ``table`` are kept).

    Args:
        name: parameter name.
        table: ``Series`` indexed like :func:`table_index` (any subset, any order), or a
            ``dict`` with the same keys.
        graph: the network's :class:`~flygnn.flat.FlatGraph`.
        current: the stored tensor (raw logs for ``syn_count``).

    Returns:
        the new stored tensor (float32, on ``current``'s device).

    Raises:
        ValueError: unknown or duplicate keys, non-finite values, negative strengths,
            non-positive counts, signs other than +-1.
    """
    index = table_index(name, graph)
    if isinstance(table, dict):
        table = pd.Series(list(table.values()),
                          index=pd.Index(list(table.keys()), tupleize_cols=True))
    if not isinstance(table, pd.Series):
        raise ValueError(f"{name}: expected a pandas Series, got {type(table).__name__}")
    keys = list(table.index)
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: duplicate keys in the table")
    position = index.get_indexer(table.index)
    if (position < 0).any():
        unknown = [k for k, p in zip(keys, position) if p < 0]
        raise ValueError(f"{name}: unknown keys {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
                         f"(expected entries of {list(index.names)})")
    values = np.array(table.to_numpy(), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: values must be finite")
    if name == "syn_strength" and (values < 0).any():
        raise ValueError("syn_strength: strengths must be non-negative")
    if name == "syn_count" and (values <= 0).any():
        raise ValueError("syn_count: counts must be positive")
    if name == "sign" and not np.isin(values, (-1.0, 1.0)).all():
        raise ValueError("sign: signs must be +1 or -1")
    new = torch.from_numpy(values)
    new = torch.log(new).to(torch.float32) if name == "syn_count" else new.to(torch.float32)
    out = current.detach().clone()
    out[torch.from_numpy(position).to(out.device)] = new.to(out.device)
    return out
