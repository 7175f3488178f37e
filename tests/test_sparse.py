"""The fused CSR aggregation equals plain gather/scatter, in values and gradients."""

import pytest
import torch

from flygnn.sparse import CSRMatmul, PairAdjacency, gather_scatter


def random_graph(num_nodes=12, num_edges=60, num_pairs=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    source = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    target = torch.randint(0, num_nodes, (num_edges,), generator=gen)
    # every pair used; repeated (target, source) pairs on purpose
    pair = torch.cat([torch.arange(num_pairs), torch.randint(0, num_pairs, (num_edges - num_pairs,),
                                                             generator=gen)])
    source[:4], target[:4] = 3, 7
    coeff = torch.randn(num_edges, generator=gen, dtype=dtype)
    strength = torch.rand(num_pairs, generator=gen, dtype=dtype) + 0.1
    return source, target, pair, coeff, strength


def test_forward_matches_gather_scatter():
    source, target, pair, coeff, strength = random_graph(dtype=torch.float32)
    adj = PairAdjacency(source, target, pair, 12, 5).bind(coeff, strength)
    x = torch.randn(3, 12)
    ref = gather_scatter(x, coeff * strength[pair], source, target, 12)
    torch.testing.assert_close(adj.matmul(x), ref, rtol=1e-6, atol=1e-6)
    # independent dense re-computation
    dense = torch.zeros(12, 12).index_put_((target, source), coeff * strength[pair], accumulate=True)
    torch.testing.assert_close(adj.matmul(x), x @ dense.T, rtol=1e-5, atol=1e-6)


def test_output_is_node_major():
    source, target, pair, coeff, strength = random_graph(dtype=torch.float32)
    y = PairAdjacency(source, target, pair, 12, 5).bind(coeff, strength).matmul(torch.randn(3, 12))
    assert y.shape == (3, 12) and y.stride() == (1, 3)


def test_gradcheck_input_and_strength():
    source, target, pair, coeff, strength = random_graph()
    structure = PairAdjacency(source, target, pair, 12, 5)
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    strength.requires_grad_(True)

    def f(x, s):
        return structure.bind(coeff, s).matmul(x)

    assert torch.autograd.gradcheck(f, (x, strength))


def test_gradients_match_reference_on_node_major_input():
    source, target, pair, coeff, strength = random_graph(num_nodes=30, num_edges=400, num_pairs=7)
    structure = PairAdjacency(source, target, pair, 30, 7)
    x0 = torch.randn(30, 4, dtype=torch.float64).T  # node-major layout, as in the Euler loop
    upstream = torch.randn(4, 30, dtype=torch.float64)

    def grads(fused):
        x = x0.clone().requires_grad_(True)
        s = strength.clone().requires_grad_(True)
        if fused:
            y = structure.bind(coeff, s).matmul(torch.relu(x))
        else:
            y = gather_scatter(torch.relu(x), coeff * s[pair], source, target, 30)
        (y * upstream).sum().backward()
        return x.grad, s.grad

    for a, b in zip(grads(True), grads(False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_csr_matmul_gradcheck():
    gen = torch.Generator().manual_seed(1)
    rows = torch.randint(0, 6, (30,), generator=gen)
    cols = torch.randint(0, 9, (30,), generator=gen)
    vals = torch.randn(30, generator=gen, dtype=torch.float64)
    m = CSRMatmul(rows, cols, vals, (6, 9))
    x = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    dense = torch.zeros(6, 9, dtype=torch.float64).index_put_((rows, cols), vals, accumulate=True)
    torch.testing.assert_close(m.matmul(x), x @ dense.T)
    assert torch.autograd.gradcheck(m.matmul, (x,))


def test_structure_for_a_graph():
    class G:  # the fields PairAdjacency.for_graph reads
        source, target, pair_index = random_graph()[:3]
        num_nodes, pairs = 12, list(range(5))

    adj = PairAdjacency.for_graph(G())
    assert (adj.num_nodes, adj.num_pairs) == (12, 5)
    assert torch.equal(adj.crow[-1:], torch.tensor([len(G.source)], dtype=torch.int32))


def test_pair_without_edges_is_rejected():
    source, target, pair, _, _ = random_graph()
    with pytest.raises(ValueError, match="pair_index"):
        PairAdjacency(source, target, pair, 12, 6)


@pytest.mark.parametrize("wrt", ["x", "strength"])
def test_gradient_to_one_input_only(wrt):
    source, target, pair, coeff, strength = random_graph(num_nodes=20, num_edges=150)
    structure = PairAdjacency(source, target, pair, 20, 5)
    x = torch.randn(2, 20, dtype=torch.float64, requires_grad=wrt == "x")
    s = strength.clone().requires_grad_(wrt == "strength")
    upstream = torch.randn(2, 20, dtype=torch.float64)
    (structure.bind(coeff, s).matmul(x) * upstream).sum().backward()
    x_ref, s_ref = x.detach().requires_grad_(True), strength.clone().requires_grad_(True)
    (gather_scatter(x_ref, coeff * s_ref[pair], source, target, 20) * upstream).sum().backward()
    got, ref = (x.grad, x_ref.grad) if wrt == "x" else (s.grad, s_ref.grad)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_grouped_matmul_sums_per_pair_and_target():
    source, target, pair, coeff, strength = random_graph(num_nodes=15, num_edges=90)
    bound = PairAdjacency(source, target, pair, 15, 5).bind(coeff, strength)
    grp = bound.structure.by_target
    x = torch.randn(2, 15, dtype=torch.float64, requires_grad=True)
    y = bound.grouped_matmul(x)
    key = pair * 15 + target
    ref = torch.zeros(2, 5 * 15, dtype=torch.float64).index_add_(1, key, coeff * x[:, source])
    torch.testing.assert_close(y, ref[:, grp.row_pair * 15 + grp.row_node])
    assert torch.autograd.gradcheck(bound.grouped_matmul, (x,))


def test_int32_and_int64_inputs_give_the_same_structure_and_numbers():
    source, target, pair, coeff, strength = random_graph(num_nodes=30, num_edges=400, num_pairs=7,
                                                         dtype=torch.float32)
    wide = PairAdjacency(source, target, pair, 30, 7)
    narrow = PairAdjacency(source.int(), target.int(), pair.int(), 30, 7)
    for name in ("crow", "col", "perm"):
        assert getattr(narrow, name).dtype == torch.int32
        assert torch.equal(getattr(wide, name), getattr(narrow, name)), name
    # the CSR order is the stable sort of the targets: edges of a row keep their order
    assert torch.equal(wide.perm.long(), torch.argsort(target, stable=True))
    x0 = torch.randn(30, 4).T
    upstream = torch.randn(4, 30)
    results = []
    for structure in (wide, narrow):
        x, s = x0.clone().requires_grad_(True), strength.clone().requires_grad_(True)
        bound = structure.bind(coeff, s)
        y = bound.matmul(x)
        y.backward(upstream)
        results.append((y, x.grad, s.grad, bound.transposed().to_dense()))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    # the weights in CSR order are coeff * strength[pair] of the edge list, bit for bit
    expected = (coeff * strength[pair])[torch.argsort(target, stable=True)]
    assert torch.equal(narrow.bind(coeff, strength).matrix.values(), expected)


def test_backward_structure_is_built_on_first_use():
    source, target, pair, coeff, strength = random_graph()
    structure = PairAdjacency(source, target, pair, 12, 5)
    x = torch.randn(3, 12, dtype=torch.float64)
    with torch.no_grad():
        structure.bind(coeff, strength).matmul(x)
    assert structure._by_source is None  # a no-grad forward never needs S and Q
    s = strength.clone().requires_grad_(True)
    structure.bind(coeff, s).matmul(x).sum().backward()
    assert structure._by_source is not None and s.grad is not None
    with pytest.raises(ValueError, match=r"pair_index: expected values in \[0, 4\)"):
        PairAdjacency(source, target, pair, 12, 4)  # pair 4 is out of range
