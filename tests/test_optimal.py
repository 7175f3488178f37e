"""Maximally excitatory stimuli: dataset argmax, regularised and artificial optimisation."""

import numpy as np
import pytest
import torch

from flygnn.analysis import optimal as O
from flygnn.datasets import FlyVisConnectome
from flygnn.network import Network
from flygnn.simulate import simulate, steady_state
from flygnn.stimuli import Flashes

EXTENT, DT = 4, 1 / 50


@pytest.fixture(scope="module")
def net():
    return Network(FlyVisConnectome(extent=EXTENT)[0])


@pytest.fixture(scope="module")
def flashes():
    return Flashes(extent=EXTENT, t_stim=0.1, t_pre=0.1, dt=DT, radius=(-1, 1, 2))


class DictMovies(torch.utils.data.Dataset):
    """Naturalistic-style items: dicts with a 'lum' entry."""

    def __init__(self, n, n_frames, n_hexals, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.items = torch.rand(n, n_frames, n_hexals, generator=gen)
        self.dt = DT

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return {"lum": self.items[i], "flow": torch.zeros(self.items.shape[1], 2, 1)}


def _brute_force(net, items, cell_type):
    k = net.cell_types.index(cell_type)
    with torch.no_grad():
        state = steady_state(net, 1.0, DT)
        central = torch.stack([simulate(net, x[None], DT, initial_state=state,
                                        record="central")[0, :, k] for x in items])
    flat = int(torch.argmax(central))
    return central, flat // central.shape[1], flat % central.shape[1]


@pytest.mark.parametrize("cell_type", ["L1", "T4a"])
def test_most_excitatory_item_has_the_max_response(net, flashes, cell_type):
    found = O.most_excitatory(net, flashes, cell_type, batch_size=4)
    central, index, frame = _brute_force(net, [flashes[i] for i in range(len(flashes))],
                                         cell_type)
    assert (found.index, found.frame) == (index, frame)
    assert found.value == pytest.approx(float(central.max()), abs=1e-6)
    assert torch.equal(found.stimulus[0], flashes[index])
    torch.testing.assert_close(found.central, central[index], atol=1e-6, rtol=0)
    block = net.graph.type_slice(cell_type)
    assert found.response.shape == (1, flashes.n_frames, block.stop - block.start)
    k = net.cell_types.index(cell_type)
    pos = int(net.graph.central_index[k]) - block.start
    assert torch.equal(found.response[0, :, pos], found.central)


def test_most_excitatory_on_dict_items(net):
    movies = DictMovies(5, 6, net.n_hexals)
    found = O.most_excitatory(net, movies, "Mi1", batch_size=2)
    _, index, frame = _brute_force(net, list(movies.items), "Mi1")
    assert (found.index, found.frame) == (index, frame)
    faded = O.most_excitatory(net, movies, "Mi1", protocol="fade_in", t_fade_in=0.2)
    assert 0 <= faded.index < 5 and torch.equal(faded.stimulus[0], movies.items[faded.index])


def test_regularized_stimulus_lowers_the_loss(net, flashes):
    found = O.most_excitatory(net, flashes, "T4a")
    params = [p.detach().clone() for p in net.parameters()]
    reg = O.regularized_stimulus(net, found, n_iters=8, lr=2e-2)
    assert len(reg.losses) == 8
    assert reg.losses[-1] < reg.losses[0]
    # the first loss is the stimulus term alone (the response equals its target)
    assert reg.losses[0] == pytest.approx(float(((found.stimulus - 0.5) ** 2).sum()), rel=1e-5)
    assert ((reg.stimulus - 0.5) ** 2).sum() < ((found.stimulus - 0.5) ** 2).sum()
    torch.testing.assert_close(reg.target, found.central)
    assert all(torch.equal(a, b.detach()) for a, b in zip(params, net.parameters()))
    assert all(p.requires_grad for p in net.parameters())  # restored


def test_artificial_stimulus_increases_the_response(net):
    kwargs = dict(dt=DT, t_stim=0.2, n_iters=8, lr=5e-2, weight_mei=0.1, t_pre=0.5)
    art = O.artificial_stimulus(net, "L1", **kwargs)
    n_frames = int(0.2 / DT)
    assert art.stimulus.shape == (1, n_frames, net.n_hexals)
    assert float(art.stimulus.min()) >= 0 and float(art.stimulus.max()) <= 1
    noise = torch.rand((1, n_frames, net.n_hexals),
                       generator=torch.Generator().manual_seed(0))
    k = net.cell_types.index("L1")
    with torch.no_grad():
        before = simulate(net, noise, DT, t_pre=0.5, record="central")[0, -1, k]
    assert float(art.central[-1]) > float(before)
    assert art.losses[-1] < art.losses[0]
    expected_first = -np.exp(float(before)) + 0.1 * float(((noise - 0.5) ** 2).mean())
    assert art.losses[0] == pytest.approx(expected_first, rel=1e-5)
    assert all(p.requires_grad for p in net.parameters())


def test_artificial_stimulus_is_seeded(net):
    kwargs = dict(dt=DT, t_stim=0.06, n_iters=2, t_pre=0.1)
    a = O.artificial_stimulus(net, "L1", seed=3, **kwargs)
    b = O.artificial_stimulus(net, "L1", generator=torch.Generator().manual_seed(3), **kwargs)
    c = O.artificial_stimulus(net, "L1", seed=4, **kwargs)
    assert torch.equal(a.stimulus, b.stimulus) and not torch.equal(a.stimulus, c.stimulus)


def test_frozen_restores_flags(net):
    net.time_const.requires_grad_(False)
    try:
        with O.frozen(net):
            assert not any(p.requires_grad for p in net.parameters())
        assert [p.requires_grad for p in net.parameters()] == [True, False, True]
    finally:
        net.time_const.requires_grad_(True)


def test_most_excitatory_rejects_unknown_type(net, flashes):
    with pytest.raises(ValueError, match="cell_type"):
        O.most_excitatory(net, flashes, "T9z")


def test_most_excitatory_rejects_bad_protocol(net, flashes):
    with pytest.raises(ValueError, match="protocol"):
        O.most_excitatory(net, flashes, "L1", protocol="sintel")


def test_most_excitatory_needs_dt(net):
    movies = DictMovies(2, 3, net.n_hexals)
    del movies.dt
    with pytest.raises(ValueError, match="dt"):
        O.most_excitatory(net, movies, "L1")


def test_most_excitatory_rejects_bad_items(net):
    with pytest.raises(ValueError, match="key"):
        O.most_excitatory(net, DictMovies(2, 3, net.n_hexals), "L1", key="rgb")


def test_artificial_stimulus_rejects_zero_iterations(net):
    with pytest.raises(ValueError, match="n_iters"):
        O.artificial_stimulus(net, "L1", n_iters=0)


def test_artificial_stimulus_rejects_short_t_stim(net):
    with pytest.raises(ValueError, match="t_stim"):
        O.artificial_stimulus(net, "L1", t_stim=0.001, dt=0.01)
