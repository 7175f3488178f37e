# %% [markdown]
# # 05 — Training on optic flow
#
# In flyvis (Lappalainen et al. 2024) the connectome-constrained network is trained end to
# end on a computer-vision task: estimating optic flow from naturalistic movies. Only the
# ~700 shared parameters are learned (a resting potential and a time constant per cell type,
# a strength per connected type pair); the connectivity itself is fixed by the connectome.
#
# The pieces:
#
# * movies with exact optic flow (`OpticFlowMovies`, a procedural stand-in for MPI-Sintel),
#   rendered onto the photoreceptor lattice: `lum (T, n_hexals)`, `flow (T, 2, n_hexals)`;
# * the `Network`, simulated with gradients (backpropagation through time);
# * a `FlowDecoder`: two hexagonal convolutions from the 34 output cell types to a flow
#   vector per column;
# * the loss $\mathcal{L} = \mathrm{mean}_b \sqrt{\sum_{t,c,h} (\hat y - y)^2}$ (`l2norm`),
#   Adam on network and decoder, stepwise learning-rate schedules;
# * a `Trainer` that owns the run folder: config, log, checkpoints, best model.
#
# This tutorial trains for twenty iterations on a tiny problem (extent 4 = 61 columns,
# 100 x 100 pixel movies) — enough to watch the loss fall and to show checkpointing, not to
# learn motion detection. Whole trainings are recipes, JSON files of stages shipped in
# `flygnn/recipes/` and run by one command: `flygnn train --recipe cpu --out runs/mine` (2.5
# hours on a quiet CPU thread, 3.5-3.9 hours measured with two runs sharing two cores; what its
# models reach is in `data/models/README.md`; `--recipe tiny` takes seconds, `--recipe flyvis`
# is flyvis's published training, for a GPU). Each stage is a `TrainConfig` like the one below.

# %%
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

import flygnn
from flygnn import plotting
from flygnn.config import TrainConfig
from flygnn.task import evaluate, zero_flow_error
from flygnn.train import Trainer

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # connectome cache and run folders
data = flygnn.FlyVisConnectome(root=root, extent=4)[0]

# %% [markdown]
# ## The configuration
#
# A `TrainConfig` is a tree of frozen dataclasses (`network`, `data`, `decoder`, `optim`); a
# section that feeds a class has that class's keyword arguments as its fields (`decoder`:
# `FlowDecoder`; `data.movies`: `OpticFlowMovies`, with its `MotionPrior` as `prior`;
# `data.augment`: `Augment`). Every field is validated on construction and the whole config
# round-trips through JSON (it is saved beside every run). `from_dict` accepts a partial
# dict: missing fields take the defaults, which follow flyvis's training setup.
#
# Tiny settings here: 2 training movies shown every iteration (batch 2, no augmentation, no
# dropout), so that twenty steps visibly reduce the training loss; 2 other movies for
# validation; 5 source frames at 24 fps resampled to `dt = 20 ms` (11 frames). The activity
# penalty on the resting potentials is switched off (`weight 0`). Rendered movies are cached
# on disk under `data.cache` (default: the per-user cache), so later runs skip rendering.

# %%
config = TrainConfig.from_dict({
    "network": {"extent": 4},
    "data": {"n_train": 2, "n_val": 2, "dt": 0.02,
             "movies": {"n_source_frames": 6, "height": 100, "width": 100},
             "augment": {"n_clip_frames": 5, "enabled": False},
             "cache": os.path.join(root, "opticflow")},  # rendered movies are cached here
    "decoder": {"p_dropout": 0.0},
    "optim": {"n_iters": 20, "batch_size": 2, "t_pre": 0.25, "val_t_pre": 0.25,
              "val_every": 10, "checkpoint_every": 5,
              "lr_net": {"start": 3e-4, "stop": 3e-5, "steps": 10},
              "lr_dec": {"start": 1e-2, "stop": 1e-3, "steps": 10},
              "penalty": {"weight": 0.0}},
    "seed": 0,
})
print(config.data)
print(config.optim.lr_net, "| value at iteration 15 of 20:", config.optim.lr_net.value(15, 20))
assert TrainConfig.from_dict(json.loads(config.to_json())) == config  # JSON round trip
try:
    TrainConfig.from_dict({"optim": {"batch_size": 0}})
except ValueError as err:
    print("bad values are named:", err)

# %% [markdown]
# ## The data
#
# `build_datasets` (called by the `Trainer`) makes the training and validation sets. Every
# movie is a pink-noise background and a few textured objects moving rigidly (translation,
# rotation, expansion); the flow is known exactly at every pixel and is averaged into the
# columns by a `BoxEye` (in image heights per source frame).

# %%
run = Path(root) / "run"
trainer = Trainer(config, run, data=data)
item = trainer.train_set[0]
print("training movies:", len(trainer.train_set), "| validation movies:", len(trainer.val_set))
print("lum", tuple(item["lum"].shape), "flow", tuple(item["flow"].shape))
assert item["lum"].shape == (11, 61) and item["flow"].shape == (11, 2, 61)
plotting.hex_map(item["lum"][0], cmap="viridis", vmin=0, vmax=1, title="a training frame",
                 path=out / "05_frame.png")

# %% [markdown]
# ## Training, checkpointing, resuming
#
# `train(until=...)` stops at an iteration with a checkpoint (`checkpoint.pt`: network,
# decoder, optimiser, random-generator states, data order). A new `Trainer` on the same
# folder with `resume=True` continues from it — bit for bit, as we check below against an
# uninterrupted run. The command-line equivalent is
# `flygnn train --config cfg.json --out runs/x --resume`.
#
# Per iteration: simulate the batch from the grey steady state with gradients, decode,
# loss, backward, Adam step, then project the strengths onto $\ge 0$.

# %%
first = trainer.train(until=10)  # iterations 1..10, then a checkpoint
print("stopped:", first)
assert (run / "checkpoint.pt").exists() and first["iteration"] == 10

trainer = Trainer(config, run, resume=True, data=data)  # e.g. in a new session
print("resumed at iteration", trainer.iteration)
assert trainer.iteration == 10
metrics = trainer.train()  # to n_iters = 20
print("finished:", metrics)
print("run folder:", sorted(p.name for p in run.iterdir()))

# %% [markdown]
# The log has one row per iteration (validation every `val_every`). The training loss on
# the two movies falls steadily:

# %%
log = pd.read_csv(run / "log.csv")
print(log[["iteration", "loss", "lr", "val_l2norm", "val_epe"]].iloc[[0, 4, 9, 14, 19]])
plotting.loss_curve(log, smooth=4, path=out / "05_loss.png")
assert len(log) == 20 and log.loss.iloc[-1] < log.loss.iloc[0]
assert log.loss.iloc[-5:].mean() < log.loss.iloc[:5].mean()

# an uninterrupted run with the same config gives the same losses
straight = Trainer(config, Path(root) / "straight", data=data)
straight.train(until=12)
same = pd.read_csv(Path(root) / "straight" / "log.csv").loss.to_numpy()
print("first 12 losses identical to the interrupted run:", (same == log.loss[:12].to_numpy()).all())
assert (same == log.loss[:12].to_numpy()).all()

# %% [markdown]
# ## Evaluation
#
# `evaluate` reports the mean `l2norm` and the end-point error
# $\mathrm{EPE} = \mathrm{mean}_{b,t,h} \lVert \hat y - y \rVert_2$ on a dataset (eval mode,
# from the grey steady state). The trivial prediction is zero flow everywhere. After 20
# iterations on two movies, the model beats it on its training movies but not yet on
# unseen ones: generalising takes thousands of iterations on many movies.

# %%
net, decoder = trainer.network, trainer.decoder
dt = config.data.dt
for name, dataset in (("train", trainer.train_set), ("validation", trainer.val_set)):
    model = evaluate(net, decoder, dataset, dt, t_pre=0.25)
    zero = zero_flow_error(dataset)
    print(f"{name:>10}: model EPE {model['epe']:.3f}, l2norm {model['l2norm']:.1f} | "
          f"zero flow EPE {zero['epe']:.3f}, l2norm {zero['l2norm']:.1f}")
    assert model["epe"] > 0 and zero["epe"] > 0
    if name == "train":
        assert model["epe"] < zero["epe"]

# %% [markdown]
# A finished run folder has the layout of a shipped model (`network.pt`, `decoder.pt` with
# the best weights by validation EPE, `config.json`, `metrics.json`), so `load_model` reads
# it back:

# %%
trained = flygnn.pretrained.load_model(run, data=data)
print(type(trained.network).__name__, "| decoder:", type(trained.decoder).__name__,
      "| best validation EPE %.3f at iteration %d"
      % (trained.metrics["best_val_epe"], trained.metrics["best_iteration"]))
assert trained.metrics["best_iteration"] in (10, 20)
print("figures in", out)
