# %% [markdown]
# # 07 — Writing your own neuron dynamics
#
# In flygnn the *model* of a neuron is separate from the network that holds the connectome
# and the parameters: a `Network` steps forward with whatever `Dynamics` object it is given.
# A dynamics is a PyTorch Geometric `MessagePassing` layer with a small contract:
#
# * `setup(graph)`: create graph-sized parameters of the dynamics itself (called once);
# * `prepare(net) -> ctx`: once per forward pass, the resting potentials, time constants,
#   weights and fused adjacency as a `Context`; add your own tensors to `ctx.extras`;
# * `initial_state(ctx, B)`: the state at rest, a `(B, N)` tensor or a tuple of them;
# * `step(state, input, ctx, dt)`: one explicit Euler step of `dt` seconds; `input` is the
#   photoreceptor current, added with `ctx.add_input`;
# * `activity(state)`: the `(B, N)` activity that is recorded (default: the first tensor).
#
# Synaptic input $\sum_{j \to i} w_{ji} f(V_j)$ is a message-passing aggregation. It can be
# computed with PyG's gather/scatter `propagate` (`message(x_j, edge_weight)`), or with the
# fused path `message_and_aggregate(ctx.adjacency, x)`: one sparse CSR × dense product,
# about 10x faster.
#
# This tutorial writes an *adapting* neuron, plugs it into a `Network`, checks it, takes a
# gradient with respect to its new parameter, saves and reloads it, and compares it with the
# two built-in dynamics.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import flygnn
from flygnn import plotting
from flygnn.dynamics import Dynamics, broadcast_state, register_dynamics
from flygnn.stimuli import Flashes

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # a throw-away connectome cache
data = flygnn.FlyVisConnectome(root=root, extent=4)[0]

# %% [markdown]
# ## An adapting graded neuron
#
# Each neuron gets a second state variable, an adaptation current $a_i$ that follows the
# depolarisation above rest with a slow time constant $\tau_a$ and subtracts from the drive:
#
# $$ \tau_i \frac{dV_i}{dt} = -V_i + b_i + \sum_{j \to i} w_{ji}\, f(V_j) - a_i + x_i(t), \qquad
#    \tau_a \frac{da_i}{dt} = -a_i + k_{c(i)}\, [V_i - b_i]_+ , $$
#
# with a trainable adaptation strength $k_c$ per cell type $c$. With $k = 0$ it is exactly
# the default `GradedDynamics`. Both equations take one Euler step from the same old state.
# `@register_dynamics` makes it loadable by its `name` from checkpoints; `config()` lists
# the constructor arguments saved with them.

# %%
@register_dynamics
class AdaptingDynamics(Dynamics):
    """Graded neurons with a slow adaptation current (state ``(V, a)``, both ``(B, N)``)."""

    name = "adapting"

    def __init__(self, strength: float = 0.5, tau_adapt: float = 0.2, activation: str = "relu",
                 fused: bool = True):
        super().__init__(activation)  # sets self.f, the synaptic transfer function
        self.init_strength, self.tau_adapt, self.fused = strength, tau_adapt, fused

    def config(self) -> dict:
        return {"strength": self.init_strength, "tau_adapt": self.tau_adapt,
                "activation": self.activation, "fused": self.fused}

    def setup(self, graph) -> None:
        self.strength = nn.Parameter(torch.full((len(graph.cell_types),), self.init_strength))

    def prepare(self, net):
        ctx = super().prepare(net)  # the network's parameters on nodes and edges
        ctx.extras["k"] = self.strength[net.node_type]  # (N,): per type -> per neuron
        return ctx

    def initial_state(self, ctx, batch_size):
        v = broadcast_state(ctx.bias.unsqueeze(0), batch_size)  # V = b, node-major (B, N)
        return v, torch.zeros_like(v)

    def step(self, state, input, ctx, dt):
        v, a = state
        x = self.f(v)
        if self.fused:  # one CSR x dense product, (B, N) -> (B, N)
            syn = self.message_and_aggregate(ctx.adjacency, x)
        else:  # PyG gather/scatter over ctx.edge_index, features node-first (N, B)
            syn = self.propagate(ctx.edge_index, x=x.T, edge_weight=ctx.edge_weight()).T
        drive = ctx.add_input((ctx.bias - v) + syn - a, input)
        v_next = v + (drive * ctx.inv_time_const(dt)) * dt  # 1 / max(tau, dt)
        a_next = a + (ctx.extras["k"] * F.relu(v - ctx.bias) - a) * (dt / self.tau_adapt)
        return v_next, a_next


# %% [markdown]
# ## Plug it in and check it
#
# `Network(data, dynamics=...)`; everything else (simulation, steady states, recording,
# analyses, training) works unchanged. Three checks: the two aggregation paths agree; with
# $k = 0$ the model reproduces `GradedDynamics`; and gradients reach the new parameter.

# %%
dt = 1 / 100
flashes = Flashes(extent=4, radius=(-1,), t_pre=0.2, t_stim=0.4, dt=dt)
movie = flashes.stack([1])  # the ON full-field flash, (1, T, 61)
time = flashes.time

adapting = flygnn.Network(data, dynamics=AdaptingDynamics())
graded = flygnn.Network(data)  # same initial parameters (seed 0), GradedDynamics
with torch.no_grad():
    r_adapt = adapting(movie, dt, t_pre=0.3, record="central")  # (1, T, 65)
    r_graded = graded(movie, dt, t_pre=0.3, record="central")
    gather = flygnn.Network(data, dynamics=AdaptingDynamics(fused=False))
    r_gather = gather(movie, dt, t_pre=0.3, record="central")
    no_adapt = flygnn.Network(data, dynamics=AdaptingDynamics(strength=0.0))
    r_no_adapt = no_adapt(movie, dt, t_pre=0.3, record="central")
print("fused vs gather/scatter: max difference %.1e" % (r_adapt - r_gather).abs().max())
print("k = 0 vs GradedDynamics: max difference %.1e" % (r_no_adapt - r_graded).abs().max())
torch.testing.assert_close(r_gather, r_adapt, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(r_no_adapt, r_graded, rtol=1e-6, atol=1e-6)

short = movie[:, 15:25]  # 100 ms around flash onset
loss = adapting(short, dt, t_pre=0.2, record="central").pow(2).sum()
loss.backward()
grad = adapting.dynamics.strength.grad
print("d loss / d k: nonzero for", int((grad != 0).sum()), "of", len(grad), "cell types")
assert torch.isfinite(grad).all() and (grad != 0).any()

# %% [markdown]
# Saving stores the dynamics' name and `config()`; since the class is registered, `load`
# rebuilds it by name (an unregistered class is passed as `dynamics=` instead).

# %%
path = Path(root) / "adapting.pt"
with torch.no_grad():
    adapting.dynamics.strength.mul_(2)  # a changed parameter survives the round trip
adapting.save(path)
again = flygnn.Network.load(path, data=data)
print(type(again.dynamics).__name__, again.dynamics.config())
assert torch.equal(again.dynamics.strength, adapting.dynamics.strength)
with torch.no_grad():
    adapting.dynamics.strength.div_(2)

# %% [markdown]
# ## Compared with the built-in dynamics
#
# * `GradedDynamics` (flyvis's model): instantaneous graded synapses.
# * `SynapticFilterDynamics`: every synaptic current is low-pass filtered with a trainable
#   time constant per type pair, $\tau_p\, dI_{p,i}/dt = -I_{p,i} + \sum_{e} c_e f(V_{s(e)})$;
#   same fixed points as the graded model, but the signal arrives with a delay.
# * our `AdaptingDynamics`: responses to a sustained input decay back towards rest.
#
# The photoreceptor R1 (driven by the flash directly) and the lamina cell L1 (one synapse
# downstream of R1-R6) show the differences.

# %%
filtered = flygnn.Network(data, dynamics=flygnn.SynapticFilterDynamics(syn_time_const=0.02))
with torch.no_grad():
    r_filter = filtered(movie, dt, t_pre=0.3, record="central")
types = graded.cell_types  # the 65 cell types, the order of record="central"
curves = {"graded": r_graded, "synaptic filter": r_filter, "adapting": r_adapt}
for cell in ("R1", "L1"):
    k = types.index(cell)
    traces = np.stack([r[0, :, k].numpy() - r[0, time < 0, k][-1].item() for r in curves.values()])
    plotting.traces(time, traces, labels=list(curves), ylabel=f"{cell} - grey level (a.u.)",
                    title=f"{cell}, ON full-field flash", path=out / f"07_{cell}.png")

on = (time > 0) & (time <= 0.4)
r1 = types.index("R1")
peak, end = r_adapt[0, on, r1].max(), r_adapt[0, on, r1][-1]
print("R1 adapting: peak %.3f, end of flash %.3f | graded: end of flash %.3f"
      % (peak, end, r_graded[0, on, r1][-1]))
assert end < peak - 0.05  # adaptation: the response sags during the flash
l1 = types.index("L1")
grey = {name: r[0, time < 0, l1][-1].item() for name, r in curves.items()}
step_10ms = {name: abs(r[0, np.searchsorted(time, 0.01), l1].item() - grey[name])
             for name, r in curves.items()}
print("L1 grey level, graded / filtered: %.4f / %.4f" % (grey["graded"], grey["synaptic filter"]))
print("L1 change 10 ms after onset, graded / filtered: %.2e / %.2e"
      % (step_10ms["graded"], step_10ms["synaptic filter"]))
assert abs(grey["graded"] - grey["synaptic filter"]) < 1e-4  # the same fixed point
assert step_10ms["synaptic filter"] < step_10ms["graded"]  # the filtered signal lags
print("figures in", out)
