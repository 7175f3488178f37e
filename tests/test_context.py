"""One cache with one owner: reuse while sources are unchanged; copies need no patches."""

import copy

import torch

from flygnn.context import DerivedCache
from flygnn.network import Network
from flygnn.simulate import simulate


def test_cache_rebuilds_when_a_source_changes():
    cache, source, calls = DerivedCache(), torch.zeros(3), []

    def make():
        calls.append(1)
        return source.sum() + 1

    assert cache.get("k", [source], make) == 1
    assert cache.get("k", [source], make) == 1 and len(calls) == 1
    source.add_(1)  # in place: a new version
    assert cache.get("k", [source], make) == 4 and len(calls) == 2


def test_context_is_cached_without_grad_only(graph_small):
    net = Network(graph_small)
    with torch.no_grad():
        a, b = net.context(), net.context()
        assert a is b
        net.bias.add_(0.1)
        c = net.context()
    assert c is not a
    torch.testing.assert_close(c.bias, a.bias + 0.1)
    assert net.context() is not net.context()  # with grad: a fresh graph each forward
    assert net.context().adjacency.structure is a.adjacency.structure  # one CSR structure


def test_deepcopy_needs_no_patches(graph_small):
    net = Network(graph_small)
    movie = torch.rand(1, 4, net.n_hexals, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = simulate(net, movie, 0.02, t_pre=0.1)
    twin = copy.deepcopy(net)
    assert twin.graph is net.graph  # frozen, shared
    assert twin.cache.get(("adjacency", "cpu"), (), lambda: None) is \
        net.cache.get(("adjacency", "cpu"), (), lambda: None)
    with torch.no_grad():
        torch.testing.assert_close(simulate(twin, movie, 0.02, t_pre=0.1), before, rtol=0, atol=0)
        twin.syn_strength.zero_()
        after = simulate(twin, movie, 0.02, t_pre=0.1)
        assert not torch.allclose(after, before)
        torch.testing.assert_close(simulate(net, movie, 0.02, t_pre=0.1), before, rtol=0, atol=0)


def test_edge_index_is_int64_over_int32_graph_indices(graph_small):
    ctx = Network(graph_small).prepare()
    assert ctx.source.dtype == torch.int32  # the graph's compact indices, shared
    assert ctx.edge_index.dtype == torch.int64  # PyG's convention
    assert torch.equal(ctx.edge_index, torch.stack([graph_small.source, graph_small.target]).long())
    # the gather/scatter path over int64 indices equals the fused product
    net = Network(graph_small)
    x = torch.rand(2, net.num_nodes)
    fused = net.dynamics.synapses(x, ctx.adjacency)
    torch.testing.assert_close(net.dynamics.synapses(x, ctx.edges), fused, rtol=1e-5, atol=1e-6)
