# %% [markdown]
# # 02 — Stimuli and the eye
#
# The network sees the world through a hexagonal lattice of columns (ommatidia, "hexals"):
# every frame of a stimulus is one luminance per column, shape `(n_hexals,)`, and a movie is
# `(T, n_hexals)` (a batch `(B, T, n_hexals)`). This tutorial shows
#
# 1. the lattice (`flygnn.hexgrid`),
# 2. how a Cartesian image or video becomes hexals (`BoxEye`, `CustomMovie`),
# 3. the standard stimulus datasets (`Flashes`, `MovingEdges`): their parameter tables and
#    time axes,
# 4. a hex map figure (`flygnn.plotting.hex_map`).
#
# Run it as a script (`python tutorials/02_stimuli_and_the_eye.py`) or as a notebook with
# jupytext.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from flygnn import hexgrid, plotting
from flygnn.stimuli import BoxEye, CustomMovie, Flashes, MovingEdges

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The hexagonal lattice
#
# A column has integer axial coordinates `(u, v)`. A lattice of *extent* $E$ holds every
# `(u, v)` with $|u| \le E$, $|v| \le E$, $|u + v| \le E$, that is $1 + 3E(E+1)$ columns:
# 721 at the network's default extent 15. The *canonical order* (used by every stimulus
# and by every cell type's block of neurons) is lexicographic in `(u, v)`. The distance of
# two columns is the hex distance $(|du| + |dv| + |du + dv|) / 2$.

# %%
for extent in (1, 4, 15):
    print(f"extent {extent:2d}: {hexgrid.num_hexals(extent):4d} hexals")
u, v = hexgrid.disk(4)
center = hexgrid.center_index(4)
print("first coordinates (u, v):", list(zip(u[:5].tolist(), v[:5].tolist())))
print("central hexal index:", center, "->", (int(u[center]), int(v[center])))
assert hexgrid.num_hexals(15) == 721 and len(u) == hexgrid.num_hexals(4) == 61
assert (u[center], v[center]) == (0, 0)
assert hexgrid.hex_distance(u, v).max() == 4  # the rim of the disk

# %% [markdown]
# For plotting, `to_cartesian` places `(u, v)` at $x = 1.5\,v$, $y = -\sqrt{3}(u + v/2)$
# (x right, y up): `+u` points down and `+v` right and 30° down. The lattice has the
# symmetries of a hexagon: `permutation(extent, n_rot, flip_axis)` returns the index that
# rotates a hexal frame by `n_rot` × 60° (used for data augmentation).

# %%
x, y = hexgrid.to_cartesian(u, v)
ring1 = hexgrid.hex_distance(u, v) == 1
print("the 6 neighbours of (0, 0) at angles",
      sorted(np.round(np.degrees(np.arctan2(y[ring1], x[ring1])) % 360).astype(int).tolist()))
frame = torch.arange(61.0)  # any per-hexal values
rot = hexgrid.permutation(4, n_rot=1)
rotated = frame[rot]
six = frame
for _ in range(6):
    six = six[rot]
assert torch.equal(six, frame)  # six rotations by 60 degrees are the identity
assert rotated[center] == frame[center]  # the centre stays put

# %% [markdown]
# ## From a Cartesian image to hexals: `BoxEye`
#
# `BoxEye(extent, kernel_size=k)` places one receptor every `k` pixels on the lattice,
# centred on the image: hexal `(u, v)` sits at pixel row $\lfloor k(u + v/2) \rfloor$ and
# column $k v$ from the image centre, and reports the mean of the $k \times k$ box of
# pixels around it,
#
# $$ y_i = \frac{1}{k^2} \sum_{|dr|, |dc| \le k/2} x[r_i + dr,\ c_i + dc]. $$
#
# Videos go in as `(B, T, H, W)` (numpy or torch) and come out as `(B, T, n_hexals)`.
# Frames smaller than the lattice's span are first resized (bilinear) to `min_frame_size`.
#
# Here: a sine grating drawn with numpy, drifting to the right, and a static checkerboard.

# %%
extent, k = 8, 13
eye = BoxEye(extent=extent, kernel_size=k)
print(eye, "needs frames of at least", eye.min_frame_size, "pixels")

H, W, T = 240, 240, 24
rows, cols = np.mgrid[0:H, 0:W]
period = 60  # pixels
grating = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (cols - 5 * t) / period) for t in range(T)])
checker = ((rows // 30 + cols // 30) % 2).astype(np.float32)
video = np.stack([grating, np.broadcast_to(checker, (T, H, W))]).astype(np.float32)  # (2, T, H, W)
hexals = eye(video)
print("video", video.shape, "-> hexals", tuple(hexals.shape))

# A grating that varies only along x looks the same to every hexal of one lattice column v
# (they sample the same pixel columns), so its hexal values depend on v alone.
u8, v8 = hexgrid.disk(extent)
g0 = hexals[0, 0].numpy()
spread = max(np.ptp(g0[v8 == c]) for c in np.unique(v8))
print(f"largest spread of the grating within a column of constant v: {spread:.2e}")
assert hexals.shape == (2, T, hexgrid.num_hexals(extent))
assert spread < 1e-5
# box means of a [0.1, 0.9] grating stay inside that range
assert 0.1 - 1e-6 <= float(hexals[0].min()) and float(hexals[0].max()) <= 0.9 + 1e-6

# %% [markdown]
# ## A hex map figure
#
# `plotting.hex_map(values)` draws one hexagon per column (values in canonical order) and
# returns a matplotlib `Figure`; with `path=` it is saved too. It never touches pyplot's
# global state. Luminance is drawn with `viridis` (0 dark blue, 1 yellow).

# %%
fig = plotting.hex_map(hexals[0, 0], cmap="viridis", vmin=0, vmax=1, title="grating, frame 0",
                       path=out / "02_grating_hexals.png")
plotting.hex_map(hexals[1, 0], cmap="viridis", vmin=0, vmax=1, title="checkerboard",
                 path=out / "02_checker_hexals.png")
print("saved", out / "02_grating_hexals.png")
assert (out / "02_grating_hexals.png").stat().st_size > 0
assert np.allclose(fig.axes[0].collections[0].get_array(), hexals[0, 0].numpy())

# %% [markdown]
# ## Your own movie as a dataset: `CustomMovie`
#
# `CustomMovie` wraps any movie as a stimulus dataset. Cartesian frames `(T, H, W)` or
# `(B, T, H, W)` go through `BoxEye(*boxfilter)`; arrays whose last axis already has
# `n_hexals` entries are taken as hexal movies; a file path is read with imageio (optional).
# With the movie's own frame interval `source_dt` and the simulation step `dt`, each item is
# stretched to `int(T * source_dt / dt)` frames by repeating source frames.

# %%
movie = CustomMovie(video, boxfilter=(extent, k), source_dt=1 / 24, dt=1 / 100)
print(movie, "items:", len(movie))
print(movie.params)
print("item shape", tuple(movie[0].shape), "| first times (s):", movie.time[:4])
assert len(movie) == 2 and movie[0].shape == (int(T * (1 / 24) / (1 / 100)), 217)
# resampling only repeats source frames: the first item starts with the first grating frame
assert torch.equal(movie[0][0], hexals[0, 0])

# %% [markdown]
# ## Standard stimuli: `Flashes`
#
# A stimulus dataset is a PyTorch `Dataset` whose items are `(n_frames, n_hexals)` float32
# tensors sampled every `dt` seconds, with one row per item in `params` and a time axis
# $t_k = k\,dt - t_\mathrm{pre}$ (so the stimulus starts at $t = 0$).
#
# `Flashes` shows grey (the middle of `dynamic_range`), then an ON (1) or OFF (0) flash of a
# disk of hex radius `radius` (-1: the whole field) for `t_stim`, then grey again.

# %%
flashes = Flashes(extent=extent, radius=(-1, 3), t_pre=0.5, t_stim=0.5, dt=1 / 100)
print(flashes.params)
item = flashes[3]  # ON flash of radius 3
t = flashes.time
print("frames:", flashes.n_frames, "| time from", t[0], "to", round(t[-1], 3), "s")
during = item[(t >= 0) & (t < 0.5)][0]
disk3 = torch.as_tensor(hexgrid.hex_distance(u8, v8) <= 3)
assert torch.all(during[disk3] == 1) and torch.all(during[~disk3] == 0.5)
assert torch.all(item[t < 0] == 0.5)

plotting.hex_map(during, cmap="viridis", vmin=0, vmax=1, title="ON flash, radius 3",
                 path=out / "02_flash.png")

# %% [markdown]
# ## Standard stimuli: `MovingEdges`
#
# ON/OFF edges sweep across a virtual LED arena (2.25° per LED) in 12 directions by default.
# The arena image is rendered through `HexEye`, which averages the monitor pixels inside each
# hexagonal ommatidium (5.8° wide). An edge crossing `len(offsets)` LED positions at `speed`
# ommatidia per second takes
#
# $$ t_\mathrm{stim} = \frac{n_\mathrm{pos} \cdot 2.25°}{5.8° \cdot \mathrm{speed}}. $$
#
# Items are `t_pre` grey, the motion, then `t_post` holding the last frame; shorter (faster)
# items are padded with NaN up to the slowest item's length. One speed and two directions
# keep it quick here.
#
# The arena's geometry (a monitor spanning 180°) is defined for the standard 721-column eye,
# so render at 721 columns; a network on a smaller lattice sees the central columns of it
# (the crop below, used again in tutorials 04 and 08).

# %%
edges = MovingEdges(speeds=(19,), angles=(0, 90), t_pre=0.25, t_post=0.25, dt=1 / 100, height=80)
print(edges.params)
item = edges[1]  # angle 0, ON edge
t = edges.time
print("frames:", edges.n_frames, "| t_stim = %.3f s" % edges.params.t_stim[0])
assert len(edges) == 4 and item.shape == (edges.n_frames, 721)
assert not torch.isnan(item).any()  # one speed: no NaN padding
assert torch.allclose(item[0], torch.full((721,), 0.5))  # grey before the motion
bright = (item > 0.75).float().mean(dim=1)  # fraction of columns the ON edge has covered
print("fraction of bright columns at t = 0, t_stim/2, end: %.2f, %.2f, %.2f"
      % (bright[t >= 0][0], bright[np.searchsorted(t, edges.params.t_stim[0] / 2)], bright[-1]))
assert bright[t >= 0][0] < bright[-1]  # the edge advanced

u15, v15 = hexgrid.disk(15)
central = torch.as_tensor(hexgrid.hex_distance(u15, v15) <= extent)  # the extent-8 disk
assert int(central.sum()) == hexgrid.num_hexals(extent)
cropped = item[:, central]  # (T, 217): canonical order is kept by the boolean mask
mid = int(np.searchsorted(t, edges.params.t_stim[0] / 2))
plotting.hex_map(item[mid], cmap="viridis", vmin=0, vmax=1, title="ON edge moving at 0°",
                 path=out / "02_moving_edge.png")
plotting.hex_map(cropped[mid], cmap="viridis", vmin=0, vmax=1, title="the central 217 columns",
                 path=out / "02_moving_edge_central.png")
print("figures in", out)
