# %% [markdown]
# # 08 — Circuit analysis: paths, receptive fields and knockouts
#
# The connectome tells us who talks to whom; a trained network adds how strongly. This
# tutorial uses `flygnn.analysis.circuits` to ask about T4a, the ON motion detector tuned to
# front-to-back motion:
#
# 1. the cell-type graph weighted by the network's strengths, and the paths from the
#    photoreceptor R1 to T4a;
# 2. the receptive field of the central T4a neuron: which presynaptic neurons, where;
# 3. knockouts of a cell type and of a single connection, on the graph and on the network;
# 4. `input_ablation`: cut each input of T4a in turn and measure its direction selectivity —
#    "which inputs does T4a's direction selectivity need?" in a few lines.
#
# Small lattice (extent 5) and short stimuli. With an untrained network the numbers only
# show the procedure; with a trained model (tutorial 05, or a shipped one) they answer the
# question.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

import flygnn
from flygnn import analysis, hexgrid, plotting
from flygnn.stimuli import MovingEdges

out = Path(os.environ.get("FLYGNN_TUTORIAL_OUT", tempfile.mkdtemp()))  # figures go here
out.mkdir(parents=True, exist_ok=True)
root = tempfile.mkdtemp()  # a throw-away connectome cache
extent = 5
data = flygnn.FlyVisConnectome(root=root, extent=extent)[0]

models = flygnn.available_models()
net = flygnn.Network(data)
if models:  # a trained model's per-type / per-pair tables fit any lattice size (tutorial 03)
    net = flygnn.load_pretrained(models[0], data=data).network  # tables moved to this lattice
    source = f"the shipped trained model {models[0]!r}"
else:
    source = "an UNTRAINED network (no trained model is shipped with this installation)"
net.eval()
print("using", source)

# %% [markdown]
# ## 1. The weighted type graph and paths to T4a
#
# The type-level weight of a connected pair is what one interior target neuron receives from
# all source neurons at unit activity,
#
# $$ W_{S \to T} = \mathrm{sign}_{ST} \cdot \mathrm{strength}_{ST}
#                  \sum_{(du, dv)} \mathrm{count}_{ST}(du, dv). $$
#
# `weighted_type_graph(net)` is a networkx `DiGraph` with these weights; `paths` lists the
# simple paths between two types with the product of the weights along each (the gain of the
# chain if every cell were linear) and its sign. Without a network (pass the connectome)
# the strengths are 1 and the weights are signed synapse counts.

# %%
G = analysis.weighted_type_graph(net)
print(G.number_of_nodes(), "cell types,", G.number_of_edges(), "connected pairs")
inputs = sorted(G.in_edges("T4a", data="weight"), key=lambda e: -abs(e[2]))
print("inputs of T4a by |W|:", ", ".join(f"{s} {w:+.3f}" for s, _, w in inputs[:6]))

chains = analysis.paths(net, "R1", "T4a", max_length=3)
print(f"{len(chains)} paths of <= 3 synapses from R1 to T4a; the strongest:")
print(chains.head(5).to_string())
anatomy = analysis.paths(data, "R1", "T4a", max_length=3)  # synapse counts only
print("by synapse counts alone:", [" -> ".join(p) for p in anatomy.path[:3]])
assert set(chains.path) == set(anatomy.path)  # same paths, different weights
assert all(p[0] == "R1" and p[-1] == "T4a" and len(p) <= 4 for p in chains.path)

# %% [markdown]
# ## 2. The receptive field of T4a
#
# `receptive_field(net, "T4a", source)` lists every synapse onto one T4a neuron (the central
# one by default) from neurons of the source type: their lattice positions, offsets, counts
# and learned weights. A source at `(u, v)` reaches the target at `(u + du, v + dv)`, so for
# the central target the source sits at `(-du, -dv)`: the receptive field is the mirrored
# filter. `field_map` puts it on the lattice for `hex_map`.

# %%
rf = analysis.receptive_field(net, "T4a", "Mi9")
print(rf[["u", "v", "du", "dv", "n_syn", "weight"]].head())
assert (rf.u == -rf.du).all() and (rf.v == -rf.dv).all()
# the central neuron receives the whole filter: its summed weight is the type-level W
assert np.isclose(rf.weight.sum(), G.edges["Mi9", "T4a"]["weight"], rtol=1e-4)

fig = Figure(figsize=(13, 3.2))
for ax, src in zip(fig.subplots(1, 4), ["Mi1", "Tm3", "Mi4", "Mi9"]):
    field = analysis.field_map(analysis.receptive_field(net, "T4a", src), extent)
    plotting.hex_map(field, ax=ax, title=f"{src} -> T4a", colorbar=False)
fig.savefig(out / "08_t4a_receptive_fields.png", dpi=100, bbox_inches="tight")

# %% [markdown]
# ## 3. Knockouts
#
# A knockout silences a cell type (all its outgoing synapses; it still receives input and
# still has activity) or cuts single type pairs. On a connectome `HeteroData` it removes the
# edge types (a PyG transform, `Knockout`); on a `Network` it returns a copy whose cut
# strengths are 0 — node order and parameter tables unchanged, so read-outs line up with
# the intact network, and a gradient hook keeps the cut pairs at 0 if the copy is trained.
# The original is never modified.

# %%
cut_graph = analysis.knockout(data.clone(), cell_types=["Mi1"])
removed = [key for key in data.edge_types if key[0] == "Mi1"]
print(f"graph: {data.num_edges} -> {cut_graph.num_edges} edges "
      f"({len(removed)} edge types leaving Mi1 removed)")
assert cut_graph.num_edges == data.num_edges - sum(data[k].num_edges for k in removed)

before = net.param_table("syn_strength").copy()
no_mi1 = analysis.knockout(net, cell_types=["Mi1"])
no_mi9 = analysis.knockout(net, pairs=[("Mi9", "T4a")])
strength, cut = no_mi1.param_table("syn_strength"), no_mi1.knocked_out
print("network: cut pairs", len(cut), "e.g.", cut[:3], "| Mi9 -> T4a only:", no_mi9.knocked_out)
assert (strength.loc[cut] == 0).all()
assert net.param_table("syn_strength").equals(before)  # the original is intact

# %% [markdown]
# A measure of T4a's direction selectivity: the central T4a's responses to ON edges moving
# in the four cardinal directions (one speed, short grey periods; rendered for the standard
# 721-column eye and cropped to the network's lattice as in tutorial 04), then its DSI and
# its peak response to its preferred direction (180°, front to back).

# %%
edges = MovingEdges(speeds=(19,), angles=(0, 90, 180, 270), intensities=(1,), height=80,
                    dt=1 / 100, t_pre=0.25, t_post=0.25)
u15, v15 = hexgrid.disk(15)
inner = torch.as_tensor(hexgrid.hex_distance(u15, v15) <= extent)


class Cropped:
    """``edges`` seen through the central columns of the network's lattice."""

    dt, t_pre, params = edges.dt, edges.t_pre, edges.params

    def __len__(self):
        return len(edges)

    def __getitem__(self, i):
        return edges[i][:, inner]


stimulus = Cropped()


def t4a_selectivity(network) -> dict:
    resp = analysis.stimulus_responses(network, stimulus, t_pre_state=0.5, record="central",
                                       attrs={"offsets": (-10, 11)})
    centre = resp.sel(cell_type="T4a")  # the central T4a neuron
    peak = analysis.peak_responses(centre)[0, :, 0]  # (4 directions,)
    dsi = analysis.direction_selectivity_index(centre).loc["T4a", "ON"]
    return {"DSI": float(dsi), "peak at 180 deg": float(peak[centre.params.angle == 180][0])}


intact = t4a_selectivity(net)
print(f"{'intact:':16s}", {k: round(v, 5) for k, v in intact.items()})
for label, variant in (("Mi1 silenced", no_mi1), ("Mi9 -> T4a cut", no_mi9)):
    print(f"{label + ':':16s}", {k: round(v, 5) for k, v in t4a_selectivity(variant).items()})
# Mi1 drives T4a: silencing it changes the central T4a's voltage (before rectification)
with torch.no_grad():
    movie = stimulus[2][None]  # the edge moving at 180 degrees, (1, T, n_hexals)
    k = net.cell_types.index("T4a")
    v_intact = flygnn.simulate(net, movie, edges.dt, record="central")[0, :, k]
    v_no_mi1 = flygnn.simulate(no_mi1, movie, edges.dt, record="central")[0, :, k]
print("largest change of the T4a voltage without Mi1: %.3f" % (v_no_mi1 - v_intact).abs().max())
assert not torch.allclose(v_intact, v_no_mi1)

# %% [markdown]
# ## 4. Input ablation
#
# `input_ablation(net, "T4a", measure)` cuts each input pair `S -> T4a` in turn and reports
# `measure(knocked-out) - measure(intact)` for every source type `S`: the inputs whose loss
# changes the DSI most are the ones its direction selectivity needs.

# %%
ablation = analysis.input_ablation(net, "T4a", measure=t4a_selectivity)
print(ablation["change"].round(5).sort_values("DSI").to_string())
sources = [s for s, t in net.graph.pairs if t == "T4a"]
assert list(ablation.index) == sources
check = t4a_selectivity(analysis.knockout(net, pairs=[("Mi9", "T4a")]))["DSI"] - intact["DSI"]
assert np.isclose(ablation.loc["Mi9", ("change", "DSI")], check)
plotting.index_bars(ablation[("change", "DSI")], ylabel="change of T4a DSI",
                    title="T4a: knock out one input at a time",
                    path=out / "08_t4a_input_ablation.png")
print("figures in", out)
