r"""Leaky integrate-and-fire neurons with synaptic currents, trainable through surrogate gradients.

The whole-brain LIF model of Shiu et al. 2024 (Nature 634, "A Drosophila computational brain
model reveals sensorimotor processing"; their public Brian2 code, ``model.py`` of
``philshiu/Drosophila_brain_model``) on flyvis's connectome. Per neuron ``i``, with
:math:`V` and :math:`g` in mV and times in seconds:

.. math::
    \tau_m \frac{dV_i}{dt} &= (V_{rest} - V_i) + g_i + u_i(t), \qquad
    \tau_s \frac{dg_i}{dt} = -g_i \qquad \text{(both frozen while refractory)} \\
    u_i(t) &= k_b\, b_{c(i)} + k_x\, x_i(t)

A neuron spikes when :math:`V_i > V_{th}`; then :math:`V_i \leftarrow V_{reset}`,
:math:`g_i \leftarrow 0`, it stays refractory for ``round(t_ref / dt)`` steps, and every
target ``j`` of an edge ``e: i -> j`` receives :math:`g_j \mathrel{+}= w_{syn}\, c_e\,
s_p / s^0_p` one step later (``c_e = sign * count``; at the initial strengths
:math:`s = s^0` that is Shiu et al.'s :math:`w_{syn}` = 0.275 mV per synapse, signed).

Defaults (Shiu et al.): :math:`V_{rest} = V_{reset} = -52` mV, :math:`V_{th} = -45` mV,
:math:`\tau_m` = 20 ms, :math:`\tau_s` = 5 ms, :math:`t_{ref}` = 2.2 ms,
:math:`w_{syn}` = 0.275 mV. Not from that paper (their input is Poisson spike trains at
150 Hz): the tonic drive :math:`k_b b` from the network's ``bias`` (:math:`k_b` = 10 mV,
so the initial :math:`b \approx 0.5` is 5 mV, below threshold) and the photoreceptor
drive :math:`k_x x` (:math:`k_x` = 10 mV per unit luminance: grey 0.5 makes R1-R8 fire at
about 38 Hz, black silences them). Their synaptic delay of 1.8 ms is one step here.

Spikes are a Heaviside step in the forward pass and, backward, the SuperSpike surrogate
:math:`\partial S / \partial V = (1 + \beta |V - V_{th}|)^{-2}` (Zenke & Ganguli 2018;
:math:`\beta` per mV), so ``loss.backward()`` reaches ``bias``, ``syn_strength`` (and
``time_const`` with ``tau_mem=None``). The reset is not differentiated through.

With 5 ms synapses use ``method="exponential_euler"`` (exact decay at any step) or
``dt`` below about 1 ms with ``"euler"``.
"""

from __future__ import annotations

import torch

from flygnn import params
from flygnn.context import node_major
from flygnn.neurons import NeuronModel, register_model

__all__ = ["LIF", "lif_rate", "spike"]


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1 + ctx.slope * x.abs()).square(), None


def spike(x: torch.Tensor, slope: float = 1.0) -> torch.Tensor:
    r"""Heaviside :math:`S = [x > 0]` with the surrogate gradient :math:`(1 + \beta|x|)^{-2}`."""
    return _Spike.apply(x, slope)


def lif_rate(drive, v_rest=-52.0, v_reset=-52.0, v_th=-45.0, tau_mem=0.02, t_ref=0.0022):
    r"""Closed-form firing rate (Hz) of a LIF neuron under a constant drive ``u`` (mV).

    .. math:: r = \left[t_{ref} + \tau_m \ln\frac{u + V_{rest} - V_{reset}}
              {u + V_{rest} - V_{th}}\right]^{-1}, \quad 0 \text{ if } u \le V_{th} - V_{rest}

    Shapes: any; returns the same shape (float64 for tensors).
    """
    drive = torch.as_tensor(drive, dtype=torch.float64)
    above = drive > v_th - v_rest
    safe = torch.where(above, drive, torch.full_like(drive, v_th - v_rest + 1.0))
    period = t_ref + tau_mem * torch.log((safe + v_rest - v_reset) / (safe + v_rest - v_th))
    return torch.where(above, 1 / period, torch.zeros_like(drive))


@register_model
class LIF(NeuronModel):
    """Leaky integrate-and-fire neurons with exponential synaptic currents (module docstring).

    Args:
        v_rest, v_reset, v_th: resting, reset and threshold potentials (mV).
        tau_mem: membrane time constant (s); None uses the network's trainable
            ``time_const`` per cell type instead.
        tau_syn: synaptic time constant (s).
        t_ref: refractory period (s).
        w_syn: jump of the synaptic current per synapse at the initial strengths (mV).
        bias_gain: mV of tonic drive per unit of the network's ``bias``.
        input_gain: mV of drive per unit luminance into the photoreceptors.
        surrogate_slope: :math:`\\beta` of the surrogate gradient (1/mV).
        output: what ``activity`` returns: ``"spikes"`` (0/1 per step) or ``"voltage"`` (mV).

    Shapes:
        state ``(V, g, ref, S)``, each ``(B, N)``: potential, synaptic current, remaining
        refractory time (s), spikes of the last step.
    """

    name = "lif"

    def __init__(self, v_rest: float = -52.0, v_reset: float = -52.0, v_th: float = -45.0,
                 tau_mem: float | None = 0.02, tau_syn: float = 0.005, t_ref: float = 0.0022,
                 w_syn: float = 0.275, bias_gain: float = 10.0, input_gain: float = 10.0,
                 surrogate_slope: float = 1.0, output: str = "spikes"):
        super().__init__("relu")
        for name, value in (("tau_syn", tau_syn), ("surrogate_slope", surrogate_slope)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if tau_mem is not None and not tau_mem > 0:
            raise ValueError(f"tau_mem must be positive or None, got {tau_mem}")
        if not t_ref >= 0:
            raise ValueError(f"t_ref must be >= 0, got {t_ref}")
        if not v_reset < v_th:
            raise ValueError(f"v_reset ({v_reset}) must be below v_th ({v_th})")
        if output not in ("spikes", "voltage"):
            raise ValueError(f"output must be 'spikes' or 'voltage', got {output!r}")
        self.v_rest, self.v_reset, self.v_th = float(v_rest), float(v_reset), float(v_th)
        self.tau_mem = None if tau_mem is None else float(tau_mem)
        self.tau_syn, self.t_ref, self.w_syn = float(tau_syn), float(t_ref), float(w_syn)
        self.bias_gain, self.input_gain = float(bias_gain), float(input_gain)
        self.surrogate_slope, self.output = float(surrogate_slope), output

    def config(self) -> dict:
        return {k: getattr(self, k) for k in (
            "v_rest", "v_reset", "v_th", "tau_mem", "tau_syn", "t_ref", "w_syn", "bias_gain",
            "input_gain", "surrogate_slope", "output")}

    def setup(self, graph) -> None:
        self.register_buffer("ref_strength", params.init_syn_strength(graph.pair_mean_n_syn),
                             persistent=False)

    def _adjacency(self, ctx):
        """The fused operator with weights ``w_syn * c_e * s_p / s0_p`` (mV per spike)."""
        def make():
            scale = self.w_syn / self.ref_strength.to(ctx.strength.dtype)
            return ctx.adjacency.structure.bind(ctx.coeff, ctx.strength * scale)
        return ctx.once(("lif_adjacency", self.w_syn), make)

    def _inv_tau_mem(self, ctx):
        return 1 / ctx.time_const if self.tau_mem is None else 1 / self.tau_mem

    def initial_state(self, ctx, batch_size):
        v = node_major(ctx.bias.new_full((1, ctx.num_nodes), self.v_rest), batch_size)
        return v, torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(v)

    def derivative(self, state, input, ctx, dt):
        v, g, ref, _ = state
        active = (ref <= dt / 2).to(v.dtype)
        current = None if input is None else input * self.input_gain
        drive = ctx.add_input((self.v_rest - v) + g + self.bias_gain * ctx.bias, current)
        return drive * (self._inv_tau_mem(ctx) * active), g * (-active / self.tau_syn), None, None

    def decay(self, state, ctx, dt):
        return self._inv_tau_mem(ctx), 1 / self.tau_syn, None, None

    def after_step(self, state, ctx, dt):
        v, g, ref, _ = state
        s = spike(v - self.v_th, self.surrogate_slope)
        fired = s.detach() > 0
        v = v.masked_fill(fired, self.v_reset)
        g = g.masked_fill(fired, 0.0) + self.synapses(s, self._adjacency(ctx))
        ref = (ref - dt).clamp(min=0).masked_fill(fired, self.t_ref)
        return v, g, ref, s

    def activity(self, state):
        return state[3] if self.output == "spikes" else state[0]
