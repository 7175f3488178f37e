# %% [markdown]
# # 09 — Ensembles of models
#
# The connectome constrains the network but does not determine it: many parameter sets
# solve the task about equally well. flyvis's findings therefore rest on an *ensemble* of 50
# networks trained from different seeds, ranked by their task error, and on clustering the
# ensemble by the responses of one cell type to find the distinct solutions the data allow.
#
# `flygnn.analysis.ensembles.Ensemble` holds several networks with names and a validation
# loss each: it ranks them, runs any response runner on all of them at once (responses
# stacked on a model axis) and clusters them.
#
# Training 50 networks is a job for several machines: `flygnn train-ensemble` runs one
# training per member as a Ray task (`flygnn/distributed/`; `pip install "flygnn[ray]"`),
# locally or on a cluster, retrying and resuming members whose worker died:
#
#     flygnn train-ensemble --config my_stage.json --members 50 --out runs/ensemble
#     flygnn evaluate-ensemble runs/ensemble
#
# On one machine, a recipe per seed makes an ensemble folder that loads with one call:
#
#     for s in 0 1 2 3; do flygnn train --recipe cpu --seed $s --out runs/cpu/$s; done
#     ensemble = flygnn.load_ensemble("runs/cpu")   # members "0".."3", task error = val EPE
#
# Here, instead, we make a small ensemble by perturbing the parameters of one network, so
# that everything runs in seconds on a CPU (extent 4).

# %%
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import flygnn
from flygnn import analysis

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = Path(tempfile.mkdtemp())  # connectome cache and the ensemble folder
data = flygnn.FlyVisConnectome(root=root, extent=4)[0]
graph = flygnn.flatten(data)  # flatten once; all members share the graph buffers

# %% [markdown]
# ## Eight perturbed networks
#
# Parameters are edited as pandas tables (`param_table` / `set_param_table`, indexed by cell
# type or type pair). Every member gets its synapse strengths multiplied by log-normal
# noise, $s_p \leftarrow s_p\, e^{0.3 \xi_p}$, and its membrane time constants drawn around
# one of two values: 30 ms for members 000-003, 120 ms for 004-007. Two "families" of
# models, then, which the clustering below should tell apart from their responses alone.

# %%
base = flygnn.Network(graph)  # flyvis's initialisation
networks = []
for i in range(8):
    rng = np.random.default_rng(i)  # explicit seeds: the ensemble is reproducible
    net = flygnn.Network(graph, seed=i)  # seed i: its own resting potentials
    strength = base.param_table("syn_strength")
    net.set_param_table("syn_strength", strength * np.exp(0.3 * rng.standard_normal(len(strength))))
    tau = base.param_table("time_const")
    centre = 0.03 if i < 4 else 0.12
    jitter = np.exp(0.1 * rng.standard_normal(len(tau)))
    net.set_param_table("time_const", tau * 0 + centre * jitter)  # seconds
    networks.append(net.eval())
for i in (0, 5):
    tau = networks[i].param_table("time_const")
    print(f"member {i}: time constants of", list(tau.index[:3]), tau.to_numpy()[:3].round(3))
assert networks[0].param_table("time_const").max() < networks[5].param_table("time_const").min()

# %% [markdown]
# ## Responses of the whole ensemble
#
# `Ensemble.responses(runner, ...)` runs a response runner of tutorials 03/04 on every member
# and stacks the results: `(n_models, n_stimuli, n_frames, n_cells)`. Every analysis of those
# tutorials then returns one value per model.

# %%
ensemble = analysis.Ensemble(networks)  # names "000" ... "007"
resp = ensemble.responses(analysis.flash_responses, dt=1 / 100, radius=(-1, 3), t_stim=0.5,
                          t_pre=0.5, extent=4)
fri = analysis.flash_response_index(resp, radius=3)  # models x cell types
corr = analysis.fri_correlation_to_known(fri)  # one value per model
print("responses", resp.shape)
print("FRI correlation with known polarities:", corr.round(4).to_dict())
assert resp.shape == (8, 4, 150, 65)  # 0.5 s grey, 0.5 s flash, 0.5 s grey and fri.shape == (8, 65)

# %% [markdown]
# ## Ranking by a validation loss
#
# Trained ensembles are ranked by their task error (validation EPE on optic flow). Our
# members were never trained, so we use a stand-in validation loss: how far their flash
# response indices are from the known polarities, $1 - \rho_\mathrm{FRI}$. `ranked()` sorts
# by it, `best(fraction)` keeps the best part (flyvis analyses the best 20 %).

# %%
ensemble = analysis.Ensemble(networks, validation_loss=(1 - corr).to_numpy())
ranked = ensemble.ranked()
print("ranked:", ranked.names)
print("validation loss:", ranked.validation_loss.round(4).to_list())
best = ensemble.best(0.5)
print("best half:", best)
assert np.all(np.diff(ranked.validation_loss.to_numpy()) >= 0)
assert best.names == ranked.names[:4]

# %% [markdown]
# On disk, an ensemble is a folder of run folders, `<dir>/<member>/network.pt` with the task
# error in `<dir>/<member>/metrics.json` (`best_val_epe`), exactly what `flygnn
# train-ensemble` writes. `Ensemble.from_dir` reads it back:

# %%
folder = root / "ensemble"
for name, net, loss in zip(ensemble.names, ensemble.networks, ensemble.validation_loss):
    (folder / name).mkdir(parents=True)
    net.save(folder / name / "network.pt")
    (folder / name / "metrics.json").write_text(json.dumps({"best_val_epe": loss}))
loaded = analysis.Ensemble.from_dir(folder, data=graph)
print(loaded, "| best:", loaded.ranked().names[0])
assert loaded.names == ensemble.names
assert np.allclose(loaded.validation_loss, ensemble.validation_loss)
assert all((a.time_const == b.time_const).all() for a, b in zip(loaded, ensemble))

# %% [markdown]
# ## Clustering the ensemble
#
# Following flyvis: per model, the central responses of one cell type to all stimulus frames
# form a feature row; the rows are embedded in 2-D (here PCA of the z-scored rows, the linear
# analogue of flyvis's UMAP with a correlation metric; `embedding="umap"` with `umap-learn`
# installed), and Gaussian mixtures with $k$ components are fitted, choosing $k$ by the
# Bayesian information criterion. The mixture fit needs scikit-learn, an optional extra
# (`pip install "flygnn[cluster]"`).

# %%
# R1: the photoreceptor's flash response shows its membrane time constant most directly
# (deeper types such as L1 mix in each member's perturbed synapse strengths)
features = analysis.response_features(resp, "R1")  # (n_models, n_stimuli * n_frames)
points = analysis.pca_embedding(features)  # no extra dependency
print("features", features.shape, "-> embedding", points.shape)

if importlib.util.find_spec("sklearn") is None:
    print('scikit-learn is not installed: pip install "flygnn[cluster]" (or scikit-learn) '
          "to cluster the ensemble; skipping the clustering.")
    labels = None
else:
    clustering = ensemble.cluster("R1", responses=resp, range_n_clusters=(2, 3), n_init=10)
    labels = clustering.labels
    print("clusters (renumbered by mean validation loss, 0 = best):", labels.tolist())
    print("BIC per number of components:", clustering.bic.round(1).to_dict())
    # the two families (time constants 30 ms vs 120 ms) never share a cluster
    assert not set(labels[:4]) & set(labels[4:])

fig = Figure(figsize=(4, 4))
ax = fig.subplots()
colours = ["k"] * len(points) if labels is None else [f"C{k}" for k in labels]
ax.scatter(points[:, 0], points[:, 1], c=colours)
for name, (x, y) in zip(ensemble.names, points):
    ax.annotate(name, (x, y), fontsize=7)
ax.set_xlabel("PC 1")
ax.set_ylabel("PC 2")
ax.set_title("ensemble by R1 flash responses")
fig.savefig(out / "09_ensemble_embedding.png", dpi=100, bbox_inches="tight")
print("figures in", out)
