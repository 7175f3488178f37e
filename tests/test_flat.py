"""The flat view: parameter groupings in flyvis's order, totals of section 14.1."""

import numpy as np
import pytest
import torch

from flygnn.datasets import FlyVisConnectome
from flygnn.flat import FlatGraph, flatten


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> FlatGraph:
    return flatten(FlyVisConnectome(root=tmp_path_factory.mktemp("connectome"))[0])


def test_sizes_and_totals(flat):
    assert flat.num_nodes == 45669 and flat.num_edges == 1513231
    assert len(flat.pairs) == 604 and len(flat.offsets) == 2355
    n_syn = flat.n_syn.double()
    assert n_syn.sum().item() == pytest.approx(5440440.5689, abs=1e-3)
    assert (flat.sign.double() * n_syn).sum().item() == pytest.approx(910339.6098, abs=1e-3)


def test_offset_groups(flat):
    assert flat.offsets[:5] == [("R1", "L1", 0, 0), ("R1", "L2", 0, 0), ("R1", "L3", 0, 0),
                                ("R1", "Am", 0, 0), ("R1", "T1", 0, 0)]
    raw = torch.log(flat.offset_n_syn.double()).float()
    assert torch.allclose(raw[:5], torch.tensor([3.6888795, 3.8286414, 2.3978953, 3.5835190, 0.6931472]))
    assert torch.exp(raw).double().sum().item() == pytest.approx(8293.4522, abs=1e-3)
    # every edge's group carries that edge's count, pair and offset
    assert torch.equal(flat.offset_n_syn[flat.offset_index], flat.n_syn)
    keys = np.array([(flat.pairs.index((s, t)), du, dv) for s, t, du, dv in flat.offsets])
    idx = flat.offset_index.numpy()
    assert np.array_equal(keys[idx, 0], flat.pair_index.numpy())
    assert np.array_equal(keys[idx, 1], flat.du.numpy()) and np.array_equal(keys[idx, 2], flat.dv.numpy())
    lawf2 = [o for o in flat.offsets if o[:2] == ("Lawf2", "Lawf2")]
    assert (0, 0) in [o[2:] for o in lawf2] and (1, 0) not in [o[2:] for o in lawf2]


def test_pair_strength_initial_values(flat):
    strength = (0.01 / flat.pair_mean_n_syn).float()
    expected = torch.tensor([2.5000001e-4, 2.1739131e-4, 9.0909092e-4, 2.7777778e-4, 4.9999999e-3])
    assert torch.allclose(strength[:5], expected, rtol=1e-6)
    assert strength.double().sum().item() == pytest.approx(3.3234836, abs=1e-5)
    assert torch.equal(flat.pair_sign[flat.pair_index], flat.sign)


def test_type_helpers(flat):
    assert flat.type_slice("Lawf2") == slice(9496, 9619)
    nodes = flat.nodes_of(["Am", "R2"])
    assert nodes[:2].tolist() == [9619, 9620] and nodes[-1].item() == 2 * 721 - 1 and len(nodes) == 1442
    with pytest.raises(ValueError, match="XYZ"):
        flat.nodes_of(["XYZ"])


def test_flatten_rejects_other_objects():
    with pytest.raises(ValueError, match="HeteroData"):
        flatten({"nodes": []})
