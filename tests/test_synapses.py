"""Synapses: one layer, one dispatch; the fused CSR path equals gather/scatter and a dense product."""

import pytest
import torch

from flygnn.network import Network
from flygnn.sparse import CSRMatmul
from flygnn.synapses import Synapses


def dense_weights(net):
    g = net.graph
    w = net.context().edge_weight().detach()
    return torch.zeros(g.num_nodes, g.num_nodes).index_put_((g.target, g.source), w, accumulate=True)


@pytest.fixture
def net(graph_small):
    net = Network(graph_small)
    with torch.no_grad():
        net.syn_strength.mul_(torch.empty(len(net.syn_strength)).uniform_(
            0.5, 2, generator=torch.Generator().manual_seed(0)))
    return net


def test_fused_edges_and_dense_agree(net):
    x = torch.rand(3, net.num_nodes, generator=torch.Generator().manual_seed(1))
    ctx, syn = net.context(), Synapses()
    fused, gathered = syn(x, ctx.adjacency), syn(x, ctx.edges)
    expected = x @ dense_weights(net).T
    torch.testing.assert_close(fused.detach(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gathered.detach(), expected, rtol=1e-5, atol=1e-6)
    assert fused.stride() == (1, 3)  # node-major, as the fused kernel writes it


def test_bare_edge_index_has_unit_weights():
    edge_index = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    x = torch.tensor([[1.0, 10.0, 100.0]])
    out = Synapses()(x, edge_index)
    assert out.tolist() == [[100.0, 101.0, 10.0]]


def test_gradients_agree_on_both_paths(net):
    x = torch.rand(2, net.num_nodes, generator=torch.Generator().manual_seed(2), requires_grad=True)
    upstream = torch.randn(2, net.num_nodes, generator=torch.Generator().manual_seed(3))
    grads = []
    for form in ("adjacency", "edges"):
        net.zero_grad()
        x.grad = None
        ctx = net.context()
        (Synapses()(x, getattr(ctx, form)) * upstream).sum().backward()
        grads.append((x.grad.clone(), net.syn_strength.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)


def test_any_csr_operator():
    rows, cols = torch.tensor([0, 0, 1]), torch.tensor([0, 2, 1])
    op = CSRMatmul(rows, cols, torch.tensor([1.0, 2.0, 3.0]), (2, 3))
    out = Synapses()(torch.tensor([[1.0, 2.0, 3.0]]), op)
    assert out.tolist() == [[7.0, 6.0]]


def test_rejects_other_adjacency(net):
    with pytest.raises(ValueError, match="adj must be"):
        Synapses()(torch.zeros(1, net.num_nodes), [1, 2])
    with pytest.raises(ValueError, match="batch, nodes"):
        Synapses()(torch.zeros(net.num_nodes), net.context().adjacency)
