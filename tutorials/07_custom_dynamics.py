# %% [markdown]
# # 07 — Writing your own neuron model
#
# In flygnn the *model* of a neuron is separate from the network that holds the connectome
# and the parameters, and from the *integrator* that advances it in time:
#
# * a neuron model (`flygnn.NeuronModel`, an `nn.Module`) says what changes: its state at
#   rest, `initial_state(ctx, B)`, and its time derivative, `derivative(state, input, ctx, dt)`;
# * synaptic input $\sum_{j \to i} w_{ji} f(V_j)$ is one PyTorch Geometric layer,
#   `flygnn.Synapses` (`self.synapses(x, ctx.adjacency)`), which dispatches itself: the fused
#   sparse CSR operator `ctx.adjacency` (fast) or `ctx.edges = (edge_index, edge_weight)`
#   (gather/scatter);
# * `simulate(net, movie, dt, method=...)` integrates: `"euler"` (flyvis's, bit for bit),
#   `"exponential_euler"`, `"rk4"`.
#
# `ctx` carries the network's parameters on nodes and edges: `ctx.bias`, `ctx.time_const`,
# `ctx.node_type`, `ctx.inv_time_const(dt)` ($1/\max(\tau, dt)$, flyvis's floor),
# `ctx.add_input(drive, input)` (adds the photoreceptor current) and `ctx.rest(B)`.
#
# This tutorial writes an *adapting* neuron, checks it, trains its new parameter a step,
# saves and reloads it, and then runs flygnn's three built-in models — graded (flyvis),
# synaptic filter and spiking (leaky integrate-and-fire) — on the same flash.

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
# the default `Graded` model. `@register_model` makes it loadable by its `name` from
# checkpoints; `config()` lists the constructor arguments saved with them.

# %%
@flygnn.register_model
class Adapting(flygnn.NeuronModel):
    """Graded neurons with a slow adaptation current (state ``(V, a)``, both ``(B, N)``)."""

    name = "adapting"

    def __init__(self, strength: float = 0.5, tau_adapt: float = 0.2):
        super().__init__("relu")  # self.f = relu, self.synapses = Synapses()
        self.init_strength, self.tau_adapt = strength, tau_adapt

    def config(self) -> dict:
        return {"strength": self.init_strength, "tau_adapt": self.tau_adapt}

    def setup(self, graph) -> None:
        self.strength = nn.Parameter(torch.full((len(graph.cell_types),), self.init_strength))

    def initial_state(self, ctx, batch_size):
        v = ctx.rest(batch_size)  # V = b, (B, N)
        return v, torch.zeros_like(v)

    def derivative(self, state, input, ctx, dt):
        v, a = state
        syn = self.synapses(self.f(v), ctx.adjacency)
        dv = ctx.add_input((ctx.bias - v) + syn - a, input) * ctx.inv_time_const(dt)
        da = (self.strength[ctx.node_type] * F.relu(v - ctx.bias) - a) / self.tau_adapt
        return dv, da


# %% [markdown]
# ## Plug it in and check it
#
# `Network(data, dynamics=...)`; everything else (simulation, steady states, recording,
# analyses, training) works unchanged. Three checks: the two forms of the synaptic
# layer agree; with $k = 0$ the model reproduces `Graded`; and gradients reach $k$.

# %%
dt = 1 / 100
flashes = Flashes(extent=4, radius=(-1,), t_pre=0.2, t_stim=0.4, dt=dt)
movie = flashes.stack([1])  # the ON full-field flash, (1, T, 61)
time = flashes.time

adapting = flygnn.Network(data, dynamics=Adapting())
graded = flygnn.Network(data)  # same initial parameters (seed 0), the Graded model
with torch.no_grad():
    r_adapt = adapting(movie, dt, t_pre=0.3, record="central")  # (1, T, 65)
    r_graded = graded(movie, dt, t_pre=0.3, record="central")
    r_no_adapt = flygnn.Network(data, dynamics=Adapting(strength=0.0))(
        movie, dt, t_pre=0.3, record="central")
    ctx = graded.context()
    x = torch.rand(2, graded.num_nodes)
    fused, gathered = adapting.dynamics.synapses(x, ctx.adjacency), adapting.dynamics.synapses(
        x, ctx.edges)
print("Synapses, fused CSR vs gather/scatter: max difference %.1e" % (fused - gathered).abs().max())
print("k = 0 vs Graded: max difference %.1e" % (r_no_adapt - r_graded).abs().max())
torch.testing.assert_close(fused, gathered, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(r_no_adapt, r_graded, rtol=1e-6, atol=1e-6)

short = movie[:, 15:25]  # 100 ms around flash onset
loss = adapting(short, dt, t_pre=0.2, record="central").pow(2).sum()
loss.backward()
grad = adapting.dynamics.strength.grad
print("d loss / d k: nonzero for", int((grad != 0).sum()), "of", len(grad), "cell types")
assert torch.isfinite(grad).all() and (grad != 0).any()

# %% [markdown]
# Saving stores the model's name and `config()`; since the class is registered, `load`
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
# ## The integrator is a choice of the simulation
#
# The same model under three integrators: explicit Euler (flyvis), exponential Euler (the
# linear decay $-V/\tau$ integrated exactly) and classical Runge-Kutta. At 10 ms steps they
# differ by a little; all three share the fixed point.

# %%
with torch.no_grad():
    by_method = {m: graded(movie, dt, t_pre=0.3, record="central", method=m)
                 for m in ("euler", "exponential_euler", "rk4")}
for m in ("exponential_euler", "rk4"):
    print(f"{m} vs euler: max difference %.3f" % (by_method[m] - by_method["euler"]).abs().max())

# %% [markdown]
# ## Graded, synaptic-filter and spiking neurons on the same flash
#
# * `Graded` (flyvis's model): instantaneous graded synapses.
# * `SynapticFilter`: every synaptic current is low-pass filtered with a trainable time
#   constant per type pair, $\tau_p\, dI_{p,i}/dt = -I_{p,i} + \sum_{e} c_e f(V_{s(e)})$;
#   same fixed points as the graded model, but the signal arrives with a delay.
# * `LIF`: leaky integrate-and-fire neurons with exponential synaptic currents and Shiu et
#   al. (2024)'s whole-brain parameters (rest and reset -52 mV, threshold -45 mV,
#   $\tau_m$ = 20 ms, $\tau_s$ = 5 ms, 2.2 ms refractory, 0.275 mV per synapse). Its
#   spikes carry a surrogate gradient, so it trains like the others.
#
# The spiking model needs millisecond steps, so all three run at 1 ms here. The
# photoreceptor R1 is driven by the flash directly; the lamina cell L1 is one (inhibitory)
# synapse downstream of R1-R6.

# %%
dt = 1 / 1000
flashes = Flashes(extent=4, radius=(-1,), t_pre=0.2, t_stim=0.4, dt=dt)
movie, time = flashes.stack([1]), flashes.time
models = {"graded": flygnn.Graded(), "synaptic filter": flygnn.SynapticFilter(syn_time_const=0.02),
          "LIF voltage (mV)": flygnn.LIF(output="voltage"), "LIF spikes": flygnn.LIF()}
responses = {}
with torch.no_grad():
    for label, model in models.items():
        net = flygnn.Network(data, dynamics=model)
        responses[label] = net(movie, dt, t_pre=0.3, method="exponential_euler")[0]  # (T, N)
g = graded.graph
for cell in ("R1", "L1"):
    k = g.central_index[g.cell_types.index(cell)]
    graded_like = [responses[m][:, k] - responses[m][time < 0][-1, k]
                   for m in ("graded", "synaptic filter")]
    plotting.traces(time, torch.stack(graded_like), labels=["graded", "synaptic filter"],
                    ylabel=f"{cell} - grey level (a.u.)", title=f"{cell}, ON full-field flash",
                    path=out / f"07_{cell}_graded.png")
    rate = responses["LIF spikes"][:, g.nodes_of([cell])].mean(1).numpy() / dt  # Hz
    rate = np.convolve(rate, np.ones(50) / 50, mode="same")  # population rate, 50 ms box
    plotting.traces(time, np.stack([responses["LIF voltage (mV)"][:, k].numpy(), rate]),
                    labels=["central neuron V (mV)", "population rate (Hz)"], ylabel="",
                    title=f"{cell}, LIF, ON full-field flash", path=out / f"07_{cell}_lif.png")

on, grey = (time > 0.05) & (time <= 0.4), (time > -0.2) & (time <= 0)
r1 = g.nodes_of(["R1"])
rate_grey = float(responses["LIF spikes"][grey][:, r1].mean()) / dt
rate_on = float(responses["LIF spikes"][on][:, r1].mean()) / dt
print("LIF R1 population rate: grey %.0f Hz, ON flash %.0f Hz" % (rate_grey, rate_on))
assert rate_on > rate_grey > 0  # brighter light, more photoreceptor spikes
l1 = g.central_index[g.cell_types.index("L1")]
v_l1 = responses["LIF voltage (mV)"][:, l1]
print("LIF L1 voltage: grey %.2f mV, ON flash %.2f mV" % (v_l1[grey].mean(), v_l1[on].mean()))
assert v_l1[on].mean() < v_l1[grey].mean()  # R1-R6 inhibit L1
fixed = {k: float(responses[k][time < 0][-1, l1]) for k in ("graded", "synaptic filter")}
print("L1 grey level, graded / filtered: %.4f / %.4f" % tuple(fixed.values()))
assert abs(fixed["graded"] - fixed["synaptic filter"]) < 1e-3  # the same fixed point
print("figures in", out)
