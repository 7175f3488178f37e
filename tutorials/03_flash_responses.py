# %% [markdown]
# # 03 — Flash responses and the flash response index
#
# The simplest probe of a visual neuron: show a grey screen, then flash a disk brighter (ON)
# or darker (OFF), and record the response. Cells that depolarise to light increments are
# ON cells (e.g. Mi1, Tm3, T4), cells that depolarise to decrements are OFF cells (L1-L4
# in the fly, Tm1, T5 ...). This tutorial
#
# 1. builds a `Network` (the shipped trained model if there is one, else an untrained one),
# 2. records its flash responses with `flygnn.analysis.flash_responses`,
# 3. plots traces of a few cell types,
# 4. computes the flash response index (FRI) of every cell type and compares it with the
#    known polarities from the literature.
#
# Small lattice (extent 5, 91 columns) so it runs in seconds on a CPU.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

import flygnn
from flygnn import analysis, plotting
from flygnn.analysis import known

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # a throw-away connectome cache
extent = 5
data = flygnn.FlyVisConnectome(root=root, extent=extent)[0]

# %% [markdown]
# ## The network
#
# A `Network` holds the connectome graph and flyvis's parameters: a resting potential
# (`bias`) and a membrane time constant per cell type, and a synapse strength per connected
# type pair. Its default dynamics (`GradedDynamics`) integrate, for every neuron $i$,
#
# $$ \tau_i \frac{dV_i}{dt} = -V_i + b_i + \sum_{j \to i} w_{ji}\,\mathrm{ReLU}(V_j) + x_i(t), $$
#
# with $w_{ji} = \mathrm{sign} \cdot \mathrm{count} \cdot \mathrm{strength}$ and the
# stimulus $x_i(t)$ entering the photoreceptors R1-R8.
#
# Parameters are shared per cell type and type pair, so they do not depend on the lattice
# size: a model trained at extent 15 runs unchanged on a smaller lattice
# (`flygnn.load_pretrained(name, data=data)` copies its parameter tables). Without a shipped model we use the untrained initialisation (resting
# potentials around 0.5, all time constants 50 ms, strengths `0.01 / mean synapse count`):
# its responses reflect only the connectome's signs and counts.

# %%
models = flygnn.available_models()
net = flygnn.Network(data)
if models:
    net = flygnn.load_pretrained(models[0], data=data).network  # tables moved to this lattice
    source = f"the shipped trained model {models[0]!r}"
else:
    source = "an UNTRAINED network (no trained model is shipped with this installation)"
net.eval()
print(f"using {source}: {net.num_nodes} neurons at extent {extent}")
print(net.param_table("time_const").head(3))

# %% [markdown]
# ## Flash responses
#
# `flash_responses` builds a `Flashes` dataset (see tutorial 02), computes the grey steady
# state once (1 s of grey), and simulates every flash from it, recording the central neuron
# of each of the 65 cell types. The result is a `Responses` object: an array
# `(n_models, n_flashes, n_frames, n_cells)`, the stimulus parameter table and the time axis
# $t_k = k\,dt - t_\mathrm{pre}$ (the flash starts at $t = 0$).

# %%
resp = analysis.flash_responses(net, radius=(-1, 3), extent=extent)  # dt = 5 ms, 1 s flashes
print("responses", resp.shape, "| model:", resp.model_names)
print(resp.params)
assert resp.shape == (1, 4, 600, 65)
# before the flash the network sits at its grey steady state: flat traces
pre = resp.responses[0, :, (resp.time > -0.5) & (resp.time < 0)]
print("largest change before the flash: %.1e" % np.ptp(pre, axis=1).max())
assert np.ptp(pre, axis=1).max() < 1e-3

# %% [markdown]
# Select with `where` (stimulus parameters) and `sel` (cell types), then plot. The
# photoreceptor R1 is driven directly by light; the lamina cells L1/L2 receive inhibitory
# (sign −1) synapses from it, so they are pushed the opposite way. Traces are drawn relative
# to each cell's grey steady state.

# %%
types = ["R1", "L1", "L2", "Mi1", "Tm3", "Tm1", "T4a", "T5a"]
on = resp.where(intensity=1, radius=3).sel(cell_type=types)
off = resp.where(intensity=0, radius=3).sel(cell_type=types)
for name, r in (("ON", on), ("OFF", off)):
    trace = r.responses[0, 0]  # (n_frames, n_types)
    change = trace - trace[r.time < 0][-1]  # relative to the grey steady state
    plotting.traces(r.time, change.T, labels=types, ylabel="response - grey level (a.u.)",
                    title=f"{name} flash (radius 3)",
                    path=out / f"03_{name.lower()}_flash_traces.png")
r1_on = on.sel(cell_type="R1").responses[0, 0, :, 0]  # (n_frames,)
r1_off = off.sel(cell_type="R1").responses[0, 0, :, 0]
during = (on.time > 0.5) & (on.time < 1.0)
print("R1 after 0.5 s of ON / OFF flash: %.3f / %.3f (grey %.3f)"
      % (r1_on[during].mean(), r1_off[during].mean(), r1_on[on.time < 0][-1]))
assert r1_on[during].mean() > r1_on[on.time < 0][-1] > r1_off[during].mean()

# %% [markdown]
# ## Flash response index
#
# For each cell type, with $r_\mathrm{on}$ and $r_\mathrm{off}$ the peak responses to the ON
# and OFF flash (within $-dt \le t \le t_\mathrm{stim}$, after shifting both traces by the
# magnitude of their common minimum so that they are non-negative),
#
# $$ \mathrm{FRI} = \frac{r_\mathrm{on} - r_\mathrm{off}}{r_\mathrm{on} + r_\mathrm{off}}
#    \in [-1, 1]. $$
#
# FRI > 0 marks an ON cell, FRI < 0 an OFF cell. `fri_correlation_to_known` is the Pearson
# correlation between the FRIs and the known polarity (+1 / −1) of the 32 cell types whose
# polarity has been measured.

# %%
fri = analysis.flash_response_index(resp, radius=3)
corr = analysis.fri_correlation_to_known(fri)
polarity = known.polarity()
print(fri.loc[types].round(3).to_string())
print(f"correlation of FRI with the known polarity of {len(known.known_polarity())} types: "
      f"{corr:.2f} ({source})")
assert fri.shape == (65,) and np.all(np.abs(fri) <= 1)
assert -1 <= corr <= 1
# photoreceptors are ON by construction: light is a positive input current
assert (fri.loc[["R1", "R2", "R3", "R4", "R5", "R6"]] > 0).all()

# %% [markdown]
# A bar per cell type, coloured by its known polarity (red ON, blue OFF, grey unknown): a
# good model has red bars up and blue bars down.

# %%
fig = plotting.index_bars(fri, polarity=polarity, ylabel="FRI",
                          title=f"flash response index ({'trained' if models else 'untrained'})",
                          path=out / "03_fri.png")
assert (out / "03_fri.png").stat().st_size > 0
print("figures in", out)
