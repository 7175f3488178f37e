"""Parameters: flyvis's default initialisation, tables by name, and the constraints."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REFERENCE

from flygnn import params
from flygnn.network import Network

# section 4.2 of the flyvis reference (CPU initialisation)
FIRST_BIASES = [0.443708, 0.44238198, 0.48747107, 0.47830606, 0.5424355, 0.53460044,
                0.48419937, 0.39423904]


@pytest.fixture(scope="module")
def net15(graph15):
    return Network(graph15)


@pytest.fixture(scope="module")
def defaults():
    return json.loads((REFERENCE / "default_params.json").read_text())


def test_bias_initialisation_is_flyvis_cpu_draw():
    bias = params.init_bias(65)
    assert bias.dtype == torch.float32
    np.testing.assert_allclose(bias[:8].numpy(), FIRST_BIASES, rtol=0, atol=5e-8)
    assert float(bias[-1]) == pytest.approx(0.5163807, abs=1e-7)


@pytest.mark.parametrize("name", ["bias", "time_const", "sign", "syn_strength"])
def test_defaults_equal_flyvis_exactly(net15, defaults, name):
    table = net15.param_table(name)
    rows = defaults[name]
    keys = [tuple(r[:-1]) if len(r) > 2 else r[0] for r in rows]
    assert list(table.index) == keys
    np.testing.assert_array_equal(table.to_numpy(), np.array([r[-1] for r in rows], np.float32))


def test_default_syn_count(net15, defaults):
    rows = defaults["syn_count"]
    table = net15.param_table("syn_count")
    assert list(table.index) == [tuple(r[:4]) for r in rows]
    np.testing.assert_allclose(table.to_numpy(), [r[4] for r in rows], rtol=2.5e-7, atol=0)
    raw = net15.syn_count
    np.testing.assert_allclose(raw[:5].numpy(), [3.6888795, 3.8286414, 2.3978953, 3.5835190,
                                                 0.6931472], rtol=1e-7)
    assert float(torch.exp(raw).double().sum()) == pytest.approx(8293.4522, abs=1e-3)


def test_default_strength_sums(net15):
    s = net15.syn_strength.detach()
    assert float(s.double().sum()) == pytest.approx(3.3234836, abs=1e-6)
    np.testing.assert_allclose(s[:5].numpy(), [2.5000001e-4, 2.1739131e-4, 9.0909092e-4,
                                               2.7777778e-4, 4.9999999e-3], rtol=1e-7)


def test_parameter_counts(net15):
    trainable = sum(p.numel() for p in net15.parameters() if p.requires_grad)
    fixed = net15.sign.numel() + net15.syn_count.numel()
    assert (trainable, fixed) == (734, 2959)
    assert [n for n, _ in net15.named_parameters()] == ["bias", "time_const", "syn_strength"]


def test_table_indices(net15):
    assert net15.param_table("bias").index.name == "cell_type"
    assert net15.param_table("syn_strength").index.names == ["source_type", "target_type"]
    assert net15.param_table("syn_count").index.names == ["source_type", "target_type", "du", "dv"]
    assert net15.param_table("syn_strength").loc[("R1", "L1")] == pytest.approx(2.5000001e-4)


def test_edge_weight_composition(net15):
    """w_e = (sign * exp(raw)) * strength, in this float32 order."""
    ctx = net15.context()
    g = net15.graph
    e = torch.tensor([0, 123456, 1513230])
    expected = (g.pair_sign[g.pair_index[e]] * torch.exp(net15.syn_count[g.offset_index[e]])) \
        * net15.syn_strength.detach()[g.pair_index[e]]
    assert torch.equal(ctx.edge_weight()[e].detach(), expected)
    np.testing.assert_allclose(ctx.coeff[e].numpy(), (g.sign * g.n_syn)[e].numpy(), rtol=2.5e-7)


def test_set_table_roundtrip_and_partial_update(graph_small):
    net = Network(graph_small)
    table = net.param_table("syn_strength") * 2
    net.set_param_table("syn_strength", table)
    pd.testing.assert_series_equal(net.param_table("syn_strength"), table.astype(np.float32))
    net.set_param_table("bias", pd.Series({"T4a": 1.5, "L1": -0.25}))
    bias = net.param_table("bias")
    assert (bias["T4a"], bias["L1"]) == (1.5, -0.25)
    assert bias["R1"] == pytest.approx(float(params.init_bias(65)[0]))
    counts = net.param_table("syn_count")
    net.set_param_table("syn_count", counts.iloc[:3] * 0 + 7.0)
    np.testing.assert_allclose(net.param_table("syn_count").iloc[:3], 7.0, rtol=2.5e-7)
    np.testing.assert_array_equal(net.param_table("syn_count").iloc[3:], counts.iloc[3:])


def test_set_table_accepts_dict(graph_small):
    net = Network(graph_small)
    net.set_param_table("time_const", {"R1": 0.1})
    assert net.param_table("time_const")["R1"] == pytest.approx(0.1)


def test_set_table_rejects_unknown_key(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match="unknown keys.*'R9'"):
        net.set_param_table("bias", pd.Series({"R9": 0.0}))


def test_set_table_rejects_unknown_pair(graph_small):
    net = Network(graph_small)
    bad = pd.Series([0.1], index=pd.MultiIndex.from_tuples([("L1", "R1")]))
    with pytest.raises(ValueError, match="syn_strength: unknown keys"):
        net.set_param_table("syn_strength", bad)


def test_set_table_rejects_unknown_name(graph_small):
    with pytest.raises(ValueError, match="unknown parameter 'gain'"):
        Network(graph_small).set_param_table("gain", pd.Series({"R1": 1.0}))


def test_param_table_rejects_unknown_name(graph_small):
    with pytest.raises(ValueError, match="unknown parameter"):
        Network(graph_small).param_table("weights")


def test_set_table_rejects_negative_strength(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match="non-negative"):
        net.set_param_table("syn_strength", net.param_table("syn_strength") - 1)


def test_set_table_rejects_nan(graph_small):
    with pytest.raises(ValueError, match="finite"):
        Network(graph_small).set_param_table("bias", pd.Series({"R1": float("nan")}))


def test_set_table_rejects_bad_sign(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match=r"\+1 or -1"):
        net.set_param_table("sign", net.param_table("sign") * 0.5)


def test_set_table_rejects_nonpositive_count(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match="positive"):
        net.set_param_table("syn_count", net.param_table("syn_count") * 0)


def test_set_table_rejects_duplicates(graph_small):
    with pytest.raises(ValueError, match="duplicate"):
        Network(graph_small).set_param_table("bias", pd.Series([0.1, 0.2], index=["R1", "R1"]))


def test_set_table_rejects_non_series(graph_small):
    with pytest.raises(ValueError, match="Series"):
        Network(graph_small).set_param_table("bias", [0.1, 0.2])


def test_negative_strength_acts_as_zero_and_project_writes_it(graph_small):
    net = Network(graph_small)
    with torch.no_grad():
        net.syn_strength[:3] = -1.0
    ctx = net.context()
    assert net.syn_strength.detach()[:3].tolist() == [-1.0] * 3  # the forward writes nothing
    assert ctx.strength.detach()[:3].tolist() == [0.0] * 3
    torch.testing.assert_close(ctx.strength[3:], net.syn_strength.detach()[3:], rtol=0, atol=0)
    net.project_()
    assert float(net.syn_strength.detach().min()) == 0.0
    assert net.syn_strength.detach()[:3].tolist() == [0.0] * 3


def test_strength_gradient_passes_at_zero(graph_small):
    """A projected strength of exactly 0 still gets its gradient (flyvis's in-place clamp)."""
    net = Network(graph_small)
    with torch.no_grad():
        net.syn_strength[:3] = 0.0
    net.context().strength.sum().backward()
    assert net.syn_strength.grad[:3].tolist() == [1.0] * 3


def test_time_constant_floor():
    tau = torch.tensor([0.001, 0.02, 0.05], requires_grad=True)
    eff = params.effective_time_const(tau, 0.02)
    assert eff.tolist() == pytest.approx([0.02, 0.02, 0.05])
    eff.sum().backward()
    assert tau.grad.tolist() == [0.0, 1.0, 1.0]
