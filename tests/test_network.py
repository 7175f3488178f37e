"""Network: parity with flyvis, checkpoint import/export, parameters, closed-loop stepping."""

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE

from flygnn.network import Network
from flygnn.neurons import SynapticFilter as SynapticFilterDynamics
from flygnn.simulate import simulate, steady_state

CHKPT = REFERENCE / "flyvis_chkpt_public.pt"

# section 14.2 of the flyvis reference: untrained default network, grey steady state
# (t_pre 1 s, dt 0.02, batch 1), central cells
DEFAULT_STEADY_STATE = dict(
    R1=0.954138, R2=0.947418, R3=0.993943, R4=0.984623, R5=1.048873, R6=1.045388, R7=0.975354,
    R8=0.884485, L1=0.516858, L2=0.411336, L3=0.452832, L4=0.539478, L5=0.509907,
    Lawf1=0.542388, Lawf2=0.423503, Am=0.447033, C2=0.543151, C3=0.431534,
    **{"CT1(Lo1)": 0.556900, "CT1(M10)": 0.545314}, Mi1=0.508644, Mi2=0.490824, Mi3=0.490248,
    Mi4=0.494960, Mi9=0.535431, Mi10=0.471148, Mi11=0.505009, Mi12=0.501214, Mi13=0.608002,
    Mi14=0.653472, Mi15=0.608603, T1=0.400983, T2=0.696903, T2a=0.535005, T3=0.574993,
    T4a=0.280598, T4b=0.215675, T4c=0.173779, T4d=0.352175, T5a=0.335069, T5b=0.423538,
    T5c=0.389817, T5d=0.369659, Tm1=0.392469, Tm2=0.465603, Tm3=0.686835, Tm4=0.305904,
    Tm5Y=0.510520, Tm5a=0.461055, Tm5b=0.582639, Tm5c=0.596439, Tm9=0.480567, Tm16=0.340130,
    Tm20=0.686284, Tm28=0.552800, Tm30=0.523588, TmY3=0.673058, TmY4=0.805647,
    TmY5a=0.656492, TmY9=0.649339, TmY10=0.464642, TmY13=0.527137, TmY14=0.569839,
    TmY15=1.273687, TmY18=0.464172,
)


@pytest.fixture(scope="module")
def public_net(graph15):
    return Network.from_flyvis_checkpoint(CHKPT, data=graph15)


@pytest.fixture(scope="module")
def responses():
    return np.load(REFERENCE / "responses_public.npz")


def test_parity_with_flyvis_responses(public_net, responses):
    movie = torch.from_numpy(responses["movie"])
    dt, t_pre = float(responses["dt"]), float(responses["t_pre"])
    with torch.no_grad():
        initial = steady_state(public_net, t_pre, dt, batch_size=2)
        central, final = simulate(public_net, movie, dt, t_pre=t_pre, record="central",
                                  return_state=True)
    np.testing.assert_allclose(initial.numpy(), responses["initial_state"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(central.numpy(), responses["central_responses"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(final.numpy(), responses["final_state"], rtol=0, atol=1e-5)
    assert torch.equal(public_net.graph.central_index, torch.from_numpy(responses["central_index"]))


def test_default_untrained_steady_state(graph15):
    net = Network(graph15)
    state = steady_state(net, 1.0, 0.02, batch_size=1)
    central = state[0, graph15.central_index].numpy()
    expected = np.array([DEFAULT_STEADY_STATE[t] for t in net.cell_types])
    np.testing.assert_allclose(central, expected, rtol=0, atol=1.5e-6)
    assert abs(float(state.mean()) - 0.5747712) < 1e-6


def test_checkpoint_tables_equal_reference_json(public_net):
    reference = json.loads((REFERENCE / "params_public.json").read_text())
    for name, rows in reference.items():
        table = public_net.param_table(name)
        keys = [tuple(r[:-1]) if len(r) > 2 else r[0] for r in rows]
        values = np.array([r[-1] for r in rows])
        assert list(table.index) == keys, name
        np.testing.assert_allclose(table.to_numpy(), values, rtol=3e-7, atol=0, err_msg=name)


def test_checkpoint_maps_by_key_onto_a_smaller_extent(public_net, graph_small):
    small = Network.from_flyvis_checkpoint(CHKPT, data=graph_small)
    for name in ("bias", "time_const", "sign", "syn_strength", "syn_count"):
        mine, full = small.param_table(name), public_net.param_table(name)
        assert len(mine) <= len(full)
        np.testing.assert_array_equal(mine.to_numpy(), full.loc[mine.index].to_numpy(), name)
    assert len(small.param_table("syn_count")) < len(public_net.param_table("syn_count"))


def test_checkpoint_without_data_builds_extent_15(flygnn_cache):
    net = Network.from_flyvis_checkpoint(CHKPT)
    assert net.graph.extent == 15 and net.num_nodes == 45669


def test_foreign_file_is_rejected(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="notes.txt"):
        Network.from_flyvis_checkpoint(path)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        Network.from_flyvis_checkpoint(tmp_path / "nothing.pt")


def _flyvis_state():
    return dict(torch.load(CHKPT, weights_only=True)["network"])


def test_checkpoint_without_network_entry_is_rejected(tmp_path, graph_small):
    path = tmp_path / "other.pt"
    torch.save({"model": _flyvis_state()}, path)
    with pytest.raises(ValueError, match="other.pt.*'network'"):
        Network.from_flyvis_checkpoint(path, data=graph_small)


def test_checkpoint_with_missing_key_is_rejected(tmp_path, graph_small):
    state = _flyvis_state()
    del state["edges_syn_strength"]
    path = tmp_path / "broken.pt"
    torch.save({"network": state}, path)
    with pytest.raises(ValueError, match="broken.pt.*edges_syn_strength"):
        Network.from_flyvis_checkpoint(path, data=graph_small)


def test_checkpoint_with_misshaped_key_is_rejected(tmp_path, graph_small):
    state = _flyvis_state()
    state["edges_syn_count"] = state["edges_syn_count"][:-1]
    path = tmp_path / "short.pt"
    torch.save({"network": state}, path)
    with pytest.raises(ValueError, match=r"short.pt.*edges_syn_count.*\(2354,\)"):
        Network.from_flyvis_checkpoint(path, data=graph_small)


def test_save_load_roundtrip(tmp_path, graph_small):
    net = Network.from_flyvis_checkpoint(CHKPT, data=graph_small)
    net.save(tmp_path / "net.pt")
    again = Network.load(tmp_path / "net.pt", data=graph_small)
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert set(net.state_dict()) == {"bias", "time_const", "syn_strength", "sign", "syn_count"}


def test_save_load_rebuilds_data_and_dynamics(tmp_path, flygnn_cache, graph_small):
    net = Network(graph_small, SynapticFilterDynamics(syn_time_const=0.03))
    with torch.no_grad():
        net.dynamics.syn_time_const.uniform_(0.01, 0.1)
    net.save(tmp_path / "filtered.pt")
    again = Network.load(tmp_path / "filtered.pt")
    assert isinstance(again.dynamics, SynapticFilterDynamics)
    assert again.graph.extent == graph_small.extent
    assert torch.equal(again.dynamics.syn_time_const, net.dynamics.syn_time_const)
    assert again.dynamics.config() == net.dynamics.config()


def test_load_rejects_a_flyvis_checkpoint(graph_small):
    with pytest.raises(ValueError, match="not a flygnn Network checkpoint"):
        Network.load(CHKPT, data=graph_small)


def test_load_rejects_other_extent(tmp_path, graph_small, data15):
    Network(graph_small).save(tmp_path / "small.pt")
    with pytest.raises(ValueError, match="extent"):
        Network.load(tmp_path / "small.pt", data=data15)


def test_step_equals_simulate(graph_small):
    net = Network(graph_small)
    gen = torch.Generator().manual_seed(0)
    movie = torch.rand(2, 5, net.n_hexals, generator=gen)
    with torch.no_grad():
        start = steady_state(net, 0.2, 0.01, batch_size=2)
        expected = simulate(net, movie, 0.01, initial_state=start)
        state, ctx = start, net.prepare()
        for t in range(5):
            state = net.step(state, movie[:, t], 0.01, ctx=ctx)
            torch.testing.assert_close(net.dynamics.activity(state), expected[:, t], rtol=0, atol=0)
        # without a context it is rebuilt, same numbers
        torch.testing.assert_close(net.step(start, movie[:, 0], 0.01), expected[:, 0])


def test_step_rejects_wrong_frame_shape(graph_small):
    net = Network(graph_small)
    with pytest.raises(ValueError, match="frame"):
        net.step(net.initial_state(1), torch.zeros(1, net.n_hexals + 1), 0.01)


def test_photoreceptors_receive_the_frame(graph_small):
    net = Network(graph_small)
    with torch.no_grad():
        net.syn_strength.zero_()
        net.time_const.fill_(0.001)  # < dt: one step jumps to bias + input
    frame = torch.linspace(0, 1, net.n_hexals).unsqueeze(0)
    state = net.step(net.initial_state(1), frame, 0.01)
    g = net.graph
    expected = net.bias.detach()[g.node_type].clone()
    expected[g.nodes_of(g.input_types)] += frame[0].repeat(len(g.input_types))
    torch.testing.assert_close(state[0].detach(), expected, rtol=0, atol=1e-6)


def test_rejects_non_dynamics(graph_small):
    with pytest.raises(ValueError, match="dynamics"):
        Network(graph_small, dynamics=torch.nn.Linear(2, 2))


def test_float64_network(graph_small):
    net = Network(graph_small).double()
    with torch.no_grad():
        out = simulate(net, torch.rand(1, 3, net.n_hexals), 0.01, t_pre=0.05)
    assert out.dtype == torch.float64
    net32 = Network(graph_small)
    with torch.no_grad():
        ref = simulate(net32, out.new_zeros(1, 3, net.n_hexals).float() + 0.5, 0.01, t_pre=0.05)
        out = simulate(net, torch.full((1, 3, net.n_hexals), 0.5, dtype=torch.float64), 0.01,
                       t_pre=0.05)
    torch.testing.assert_close(out.float(), ref, rtol=1e-5, atol=1e-6)


def test_save_without_graph_tables_loads_them_from_the_graph(tmp_path, data_small):
    """``save(graph_tables=False)`` keeps only the trained tables; ``load`` takes the signs and
    synapse counts from the connectome it is given, so a rewired network (counts per edge)
    comes back equal on the same seeded rewiring and carries the other graph's counts on
    another."""
    import copy

    from flygnn.flat import flatten
    from flygnn.transforms import RewireDegreePreserving

    rewired = flatten(RewireDegreePreserving(seed=3)(copy.deepcopy(data_small)))
    net = Network(rewired)
    with torch.no_grad():
        net.bias.uniform_(-1, 1)
        net.syn_strength.mul_(torch.linspace(0.5, 2, len(net.syn_strength)))
    net.save(tmp_path / "full.pt")
    net.save(tmp_path / "trained.pt", graph_tables=False)
    saved = torch.load(tmp_path / "trained.pt", weights_only=True)["state_dict"]
    assert set(saved) == {"bias", "time_const", "syn_strength"}
    assert (tmp_path / "trained.pt").stat().st_size < (tmp_path / "full.pt").stat().st_size
    again = flatten(RewireDegreePreserving(seed=3)(copy.deepcopy(data_small)))
    loaded = Network.load(tmp_path / "trained.pt", data=again)
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    on_true = Network.load(tmp_path / "trained.pt", data=data_small)
    assert torch.equal(on_true.syn_count, Network(data_small).syn_count)
    assert torch.equal(on_true.syn_strength, net.syn_strength)
    assert not torch.equal(on_true.syn_count, net.syn_count) or \
        on_true.syn_count.shape != net.syn_count.shape
