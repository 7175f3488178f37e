# %% [markdown]
# # 06 — Maximally excitatory stimuli
#
# What does a neuron "want to see"? Because the whole network is differentiable, we can
# search for stimuli that drive one cell type's central neuron as strongly as possible
# (flyvis, Lappalainen et al. 2024, methods "maximally excitatory stimuli"). Three searches
# in `flygnn.analysis.optimal`:
#
# 1. `most_excitatory`: the item of a stimulus dataset (here naturalistic movies) whose
#    central response reaches the largest value;
# 2. `regularized_stimulus`: that movie pulled towards grey while keeping the response —
#    what remains is the part of the movie the neuron actually needs;
# 3. `artificial_stimulus`: a stimulus grown by gradient ascent from noise.
#
# Small lattice (extent 4, 61 columns), few movies and few optimisation steps to stay fast.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import flygnn
from flygnn import plotting
from flygnn.analysis import optimal
from flygnn.stimuli import OpticFlowMovies

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # a throw-away connectome cache
extent = 4
data = flygnn.FlyVisConnectome(root=root, extent=extent)[0]

# %% [markdown]
# The network: the shipped trained model if there is one (its per-type and per-pair
# parameter tables copied onto the small lattice, see tutorial 03), else the untrained
# initialisation — whose cells barely depend on the stimulus, so the optimised stimuli are
# not meaningful, only the procedure is.

# %%
models = flygnn.available_models()
net = flygnn.Network(data)
if models:
    net = flygnn.load_pretrained(models[0], data=data).network  # tables moved to this lattice
    source = f"the shipped trained model {models[0]!r}"
else:
    source = "an UNTRAINED network (no trained model is shipped with this installation)"
net.eval()
print("using", source)
cell_type = "T4c"  # the ON motion detector tuned to upward motion

# %% [markdown]
# ## 1. The most exciting movie of a dataset
#
# Every item is simulated from the grey steady state (here 0.5 s of luminance 0.5, flyvis
# uses 1 s); the item and
# frame with the largest central `T4c` response win, and the winning item is simulated once
# more. The dataset: 8 procedural naturalistic movies (`OpticFlowMovies`, tutorial 05),
# 6 source frames at 24 fps resampled to `dt = 10 ms` (25 frames).

# %%
movies = OpticFlowMovies(8, n_source_frames=6, height=100, width=100, extent=extent, dt=1 / 100,
                         seed=1)
best = optimal.most_excitatory(net, movies, cell_type, t_pre=0.5, batch_size=8)
print(f"item {best.index}, frame {best.frame}: central {cell_type} response {best.value:.4f}")
print("stimulus", tuple(best.stimulus.shape), "| response of all", cell_type, "cells",
      tuple(best.response.shape))
assert np.isclose(float(best.central.max()), best.value, rtol=1e-5)
assert int(best.central.argmax()) == best.frame

# check the search by brute force: simulate all movies, take each one's peak
k = net.cell_types.index(cell_type)
with torch.no_grad():
    lum = torch.stack([movies[i]["lum"] for i in range(len(movies))])  # (8, T, n_hexals)
    central = flygnn.simulate(net, lum, movies.dt, t_pre=0.5, record="central")[..., k]
peaks = central.max(dim=1).values.tolist()
print("peak response per movie:", np.round(peaks, 4))
assert np.isclose(peaks[best.index], max(peaks), rtol=1e-6)  # the winner is the maximum

# %% [markdown]
# ## 2. Regularised: keep the response, lose the rest
#
# Starting from the winning movie $S^0$ with central response $r^*_t$, Adam minimises
#
# $$ L(S) = \lambda_\mathrm{act} \sum_t \big(r_t(S) - r^*_t\big)^2
#          + \lambda_\mathrm{stim} \sum_{t,h} \big(S_{t,h} - 0.5\big)^2 , $$
#
# with gradients through the simulation (the network's parameters are frozen meanwhile).
# Pixels that do not matter for the response decay to grey.

# %%
reg = optimal.regularized_stimulus(net, best, n_iters=12, lr=1e-2, t_pre=0.5)
contrast_before = float(((best.stimulus - 0.5) ** 2).mean())
contrast_after = float(((reg.stimulus - 0.5) ** 2).mean())
change = float((reg.central - best.central).abs().max())
print(f"loss {reg.losses[0]:.2f} -> {reg.losses[-1]:.2f} in {len(reg.losses)} steps")
print(f"mean squared contrast {contrast_before:.4f} -> {contrast_after:.4f}, "
      f"largest change of the response {change:.2e}")
assert reg.losses[-1] < reg.losses[0] and contrast_after < contrast_before

t = np.arange(best.stimulus.shape[1]) * best.dt
plotting.traces(t, np.stack([best.central.numpy(), reg.central.numpy()]),
                labels=["most exciting movie", "regularised"], ylabel=f"{cell_type} (a.u.)",
                title=f"central {cell_type}", path=out / "06_responses.png")
plotting.hex_map(best.stimulus[0, best.frame], cmap="viridis", vmin=0, vmax=1,
                 title="most exciting frame", path=out / "06_most_exciting_frame.png")
plotting.hex_map(reg.stimulus[0, best.frame] - 0.5, title="regularised frame - grey",
                 path=out / "06_regularized_frame.png")

# %% [markdown]
# ## 3. Artificial: grown from noise
#
# Starting from uniform noise $S \sim U[0, 1)$ (seeded), Adam minimises
#
# $$ L(S) = -w_c\, \mathrm{mean}\big(e^{r_T(S)}\big)
#          + w_\mathrm{mei}\, \mathrm{mean}\big((S - 0.5)^2\big) $$
#
# (response at the last frame $T$; the exponential rewards large responses, the second term
# keeps the stimulus near grey), and clips $S$ to $[0, 1]$ after every step. Here 10 frames
# of 10 ms and 12 steps; flyvis uses 200 steps.

# %%
art = optimal.artificial_stimulus(net, cell_type, dt=1 / 100, t_stim=0.1, n_iters=12, seed=0,
                                  t_pre=0.5)
print(f"loss {art.losses[0]:.1f} -> {art.losses[-1]:.1f}; stimulus {tuple(art.stimulus.shape)}, "
      f"central response at the last frame {float(art.central[-1]):.4f}")
assert art.stimulus.shape == (1, 10, 61)
assert art.losses[-1] < art.losses[0]
assert float(art.stimulus.min()) >= 0 and float(art.stimulus.max()) <= 1
plotting.hex_map(art.stimulus[0, -1] - 0.5, title="artificial stimulus, last frame - grey",
                 path=out / "06_artificial_frame.png")
print("figures in", out)
