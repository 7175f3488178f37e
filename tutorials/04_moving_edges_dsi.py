# %% [markdown]
# # 04 — Moving edges, direction selectivity and preferred directions
#
# T4 (ON) and T5 (OFF) cells are the fly's elementary motion detectors: each of the four
# subtypes a-d responds most to motion in one of the four cardinal directions. This
# tutorial shows ON and OFF edges moving in 12 directions to a network, reads the peak
# responses of the central cells, and computes
#
# * the direction selectivity index (DSI) of every cell type,
# * the preferred direction of T4a-d and T5a-d, compared with the measured ones,
# * a polar tuning plot.
#
# To stay fast on a CPU it uses one edge speed and a network on a small lattice (extent 5),
# which looks at the central columns of the standard 721-column stimulus.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import flygnn
from flygnn import analysis, hexgrid, plotting
from flygnn.analysis import known
from flygnn.stimuli import MovingEdges

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # a throw-away connectome cache
extent = 5
data = flygnn.FlyVisConnectome(root=root, extent=extent)[0]

# %% [markdown]
# ## The network
#
# As in tutorial 03: the shipped trained model if there is one (its parameter tables, which
# are shared per cell type and type pair, copied onto the small lattice), else the untrained
# initialisation. An untrained network has no reason to be direction selective; the
# numbers below show the machinery, and become meaningful with a trained model.

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

# %% [markdown]
# ## The stimulus
#
# `MovingEdges` (see tutorial 02) at one speed, 19 columns per second, in 12 directions
# (0°, 30°, ..., 330°; 0° = rightwards, 90° = upwards), ON (intensity 1) and OFF (0):
# 24 items, sampled every 10 ms, with 0.25 s of grey before and 0.25 s after the motion
# (flyvis: 5 ms, 1 s and 1 s). The arena is rendered for the standard 721-column eye; a
# small wrapper hands the network the central `n_hexals` columns of every frame. Any object
# with `len`, items `(n_frames, n_hexals)`, `dt`, `t_pre` and a `params` table is a
# stimulus dataset.

# %%
edges = MovingEdges(speeds=(19,), t_pre=0.25, t_post=0.25, height=80, dt=1 / 100)


class CentralColumns:
    """The columns of a 721-column stimulus dataset within ``extent`` of the centre."""

    def __init__(self, dataset, extent: int):
        u, v = hexgrid.disk(15)
        self.mask = torch.as_tensor(hexgrid.hex_distance(u, v) <= extent)
        self.dataset, self.dt, self.t_pre = dataset, dataset.dt, dataset.t_pre
        self.params = dataset.params

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index][:, self.mask]  # (n_frames, n_hexals)


stimulus = CentralColumns(edges, extent)
print(edges.params.head(4))
print(len(stimulus), "items of", tuple(stimulus[0].shape),
      "| t_stim = %.3f s" % edges.params.t_stim[0])
assert stimulus[0].shape[1] == net.n_hexals

# %% [markdown]
# ## Responses
#
# `stimulus_responses` runs the standard protocol: a grey steady state (here 0.5 s; flyvis
# uses 1 s) computed once, then every batch of items simulated from it without gradients,
# recording the central cell of each type. (At extent 15, with flyvis's settings, the
# one-liner is `analysis.moving_edge_responses(net, speeds=[19])`.)
#
# The peak response of a cell to item $s$ is the maximum of its rectified response while the
# edge is moving, $p_s = \max_{t \in \mathrm{stim}} \max(r_t, 0)$.

# %%
resp = analysis.stimulus_responses(net, stimulus, t_pre_state=0.5, batch_size=24,
                                   attrs={"offsets": (-10, 11), "stimulus": "moving_edge"})
peak = analysis.peak_responses(resp)  # (n_models, n_items, n_cells)
print("responses", resp.shape, "-> peaks", peak.shape)
assert resp.shape[:2] == (1, 24) and peak.shape == (1, 24, 65)
assert np.all(peak >= 0)

# %% [markdown]
# ## Direction selectivity index
#
# Each peak is a vector pointing in its motion direction, $z_\theta = p_\theta e^{i\theta}$.
# The DSI is the length of their sum relative to the sum of their lengths,
#
# $$ \mathrm{DSI} = \frac{\left|\sum_\theta z_\theta\right|}
#                        {\max_{\mathrm{ON,OFF}} \sum_\theta |z_\theta|} \in [0, 1], $$
#
# where ON and OFF edges share the larger denominator (averaged over speeds and widths
# when there are several). 0: the same response in every direction; 1: a response in one
# direction only. The preferred direction is the angle of $\sum_\theta z_\theta$.
#
# As in flyvis, peaks are not baseline-subtracted: a cell that rests well above zero and is
# only slightly modulated by the edges (every cell of an untrained network) has a DSI near 0.

# %%
dsi = analysis.direction_selectivity_index(resp)  # cell types x intensity (0 OFF, 1 ON)
pref = analysis.preferred_direction(resp)  # radians
t4, t5 = ["T4a", "T4b", "T4c", "T4d"], ["T5a", "T5b", "T5c", "T5d"]
print("DSI of T4 (ON edges) and T5 (OFF edges):")
print(pd.DataFrame({"T4 (ON)": dsi.loc[t4, "ON"].to_numpy(), "T5 (OFF)": dsi.loc[t5, "OFF"].to_numpy()},
                   index=list("abcd")).to_string(float_format="%.3g"))
print("correlation of DSI with the known direction selectivity of 18 types: %.2f"
      % analysis.dsi_correlation_to_known(dsi))

# check one value by hand, from the peaks
angles = np.radians(resp.params.angle.to_numpy())
k = resp.cell_types.index("T4a")
z = {i: (peak[0, resp.params.intensity == i, k] * np.exp(1j * angles[resp.params.intensity == i]))
     for i in (0, 1)}
by_hand = abs(z[1].sum()) / (max(abs(z[0]).sum(), abs(z[1]).sum()) + 1e-15)
assert np.isclose(dsi.loc["T4a", "ON"], by_hand, rtol=1e-5)
assert dsi.to_numpy().min() >= 0 and dsi.to_numpy().max() <= 1

# %% [markdown]
# Angular distance between predicted and measured preferred directions (T4a 180°, T4b 0°,
# T4c 90°, T4d 270°, and the same for T5; T4 read at ON edges, T5 at OFF edges): 0 is a
# perfect match, π the opposite direction.

# %%
distance = analysis.angular_distance_to_known(pref)
table = {"known (deg)": known.preferred_directions().loc[t4 + t5],
         "model (deg)": np.degrees([pref.loc[c, "ON" if c in t4 else "OFF"] for c in t4 + t5]) % 360,
         "distance (deg)": np.degrees(distance.loc[t4 + t5])}
print(pd.DataFrame(table).round(0).to_string())
assert np.all((distance >= 0) & (distance <= np.pi))

# %% [markdown]
# ## Small responses: the change from rest
#
# The shipped model's responses are small against its resting activity (its synapse
# strengths are still near flyvis's initialisation), so flyvis's index is close to 0 for
# every cell. The same index on the change from the grey rest
# (`Responses.change_from_rest()`: each response minus its first frame) shows the tuning.

# %%
change = analysis.direction_selectivity_index(resp.change_from_rest())
print("DSI of the change from rest:")
print(pd.DataFrame({"T4 (ON)": change.loc[t4, "ON"].to_numpy(), "T5 (OFF)": change.loc[t5, "OFF"].to_numpy()},
                   index=list("abcd")).to_string(float_format="%.3g"))
assert change.to_numpy().min() >= 0 and change.to_numpy().max() <= 1

# %% [markdown]
# ## Figures
#
# Polar tuning curves of T4a-d (peak response to ON edges per direction), arrows of the
# preferred directions (length = DSI) with the flies' known directions dashed, and the DSI of
# every cell type.

# %%
on = resp.params.intensity.to_numpy() == 1
curves = np.stack([peak[0, on, resp.cell_types.index(c)] for c in t4])  # (4, 12)
plotting.polar_tuning(resp.params.angle[on], curves, labels=t4,
                      title="T4 at ON edges (radius: peak response, a.u.)",
                      path=out / "04_t4_tuning.png")
plotting.direction_arrows(pref.loc[t4, "ON"], reference=known.preferred_directions(radians=True),
                          lengths=dsi.loc[t4, "ON"], title="T4 preferred directions",
                          path=out / "04_t4_directions.png")
plotting.dsi_bars(dsi, title=f"DSI ({'trained' if models else 'untrained'})",
                  path=out / "04_dsi.png")
assert (out / "04_t4_tuning.png").stat().st_size > 0
print("figures in", out)
