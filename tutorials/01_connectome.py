# %% [markdown]
# # 01 — The connectome as a PyG dataset
#
# flygnn compiles the fly visual-system connectome (65 cell types, type-to-type average filters
# from the FIB-25/FIB-19 reconstructions) onto a hexagonal lattice of columns. The result is a
# PyTorch Geometric `HeteroData`: one node type per cell type, one edge type per connected pair.
#
# Run this file as a script (`python tutorials/01_connectome.py`) or open it as a notebook with
# jupytext; each `# %%` is a cell.

# %%
import tempfile

import networkx as nx

import flygnn

root = tempfile.mkdtemp()  # a throw-away cache; omit `root` to use ~/.cache/flygnn
data = flygnn.FlyVisConnectome(root=root, extent=15)[0]
print(data.num_nodes, "neurons,", data.num_edges, "edges,", len(data.edge_types), "edge types")
print("inputs:", data.input_types)
print("first outputs:", data.output_types[:6])

# %% [markdown]
# Each cell type is a node store with lattice coordinates `u`, `v` and a role; each type pair an
# edge store with local `edge_index`, the offsets `du`, `dv`, the mean synapse count and sign.

# %%
def shapes(store):
    """The attributes of a PyG store with their shapes (printing the store lists every value)."""
    return {key: tuple(value.shape) if hasattr(value, "shape") else value
            for key, value in store.items()}


print("T4a:", shapes(data["T4a"]))
store = data["Mi1", "chem", "T4a"]
print("Mi1 -> T4a:", shapes(store))
print("Mi1 -> T4a offsets:", sorted(set(zip(store.du.tolist(), store.dv.tolist()))))

# %% [markdown]
# ## pandas views in flyvis's flat order
#
# `nodes_frame` and `edges_frame` give one row per neuron and per edge, in exactly the order of
# the reference implementation (so parameters and responses line up with flyvis's).

# %%
nodes = flygnn.nodes_frame(data)
edges = flygnn.edges_frame(data)
print(nodes.head())
inputs_per_type = edges.groupby("target_type")["n_syn"].sum().sort_values(ascending=False)
print("most synapses received (summed over neurons):")
print(inputs_per_type.head())
assert len(nodes) == 45669 and len(edges) == 1513231

# %% [markdown]
# The central column holds one neuron of each type:

# %%
central = flygnn.central_index(data)
print(nodes.loc[central.tolist()].head(5))

# %% [markdown]
# ## networkx: the cell-type graph
#
# `type_graph` summarises the neuron-level graph per type pair. Here: which cell types reach T4a
# within two synapses from the photoreceptors, and the strongest inputs of T4a.

# %%
G = flygnn.graph.type_graph(data)
t4a_inputs = sorted(G.in_edges("T4a", data=True), key=lambda e: -e[2]["n_syn_filter"])
for source, _, attrs in t4a_inputs[:6]:
    print(f"{source:>8} -> T4a: {attrs['n_syn_filter']:6.1f} synapses per column, sign {attrs['sign']:+.0f}")
paths = [p for p in nx.all_simple_paths(G, "R1", "T4a", cutoff=3)]
print(len(paths), "paths of at most 3 synapses from R1 to T4a, e.g.", paths[:3])

# %% [markdown]
# The neuron-level graph exports to networkx too (at small extents: extent 15 has 1.5M edges).

# %%
small = flygnn.FlyVisConnectome(root=root, extent=2)[0]
H = flygnn.graph.to_networkx(small)
print(H.number_of_nodes(), "neurons,", H.number_of_edges(), "edges at extent 2")
mi1 = [n for n, a in H.nodes(data=True) if a["type"] == "Mi1" and a["u"] == 0 and a["v"] == 0][0]
print("in-degree of the central Mi1:", H.in_degree(mi1))
