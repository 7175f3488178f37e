"""Batching onto the photoreceptors and per-frame graph views that share the edges."""

import pytest
import torch
from torch_geometric.data import Data, HeteroData

from flygnn.stimuli.augment import Augment
from flygnn.stimuli.loaders import collate, make_loader, temporal_graph_frames
from flygnn.stimuli.opticflow import OpticFlowMovies

N3 = 37  # hexals at extent 3


def _movies(n=5, **kw):
    return OpticFlowMovies(n, n_source_frames=3, height=100, width=100, extent=3, seed=4, **kw)


def test_collate_stacks_items():
    g = torch.Generator().manual_seed(0)
    items = [{"lum": torch.rand(6, N3, generator=g), "flow": torch.rand(6, 2, N3, generator=g)}
             for _ in range(3)]
    batch = collate(items)
    assert batch["lum"].shape == (3, 6, N3) and batch["flow"].shape == (3, 6, 2, N3)
    for b, item in enumerate(items):
        assert torch.equal(batch["lum"][b], item["lum"])
        assert torch.equal(batch["flow"][b], item["flow"])


def test_loader_batches_a_dataset_reproducibly():
    ds = _movies()
    first = [b["lum"] for b in make_loader(ds, batch_size=2, seed=1)]
    again = [b["lum"] for b in make_loader(ds, batch_size=2, seed=1)]
    assert len(first) == 2  # 5 items, drop_last
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # each batch row is one of the dataset's items
    items = [ds[i]["lum"] for i in range(5)]
    rows = [row for batch in first for row in batch]
    assert all(any(torch.equal(r, it) for it in items) for r in rows)
    assert len({min(i for i, it in enumerate(items) if torch.equal(r, it)) for r in rows}) == 4
    ordered = list(make_loader(ds, batch_size=5, shuffle=False, drop_last=False))
    assert torch.equal(ordered[0]["flow"][3], ds[3]["flow"])


def test_loader_restricted_to_indices():
    ds = _movies()
    batches = list(make_loader(ds, batch_size=1, indices=[1, 3], seed=0))
    items = [ds[i]["lum"] for i in range(5)]
    got = sorted(next(i for i in range(5) if torch.equal(b["lum"][0], items[i])) for b in batches)
    assert got == [1, 3]


def test_loader_with_augmentation_is_reproducible():
    runs = []
    for _ in range(2):
        ds = _movies(transform=Augment(n_clip_frames=3, seed=11))
        runs.append([b["lum"] for b in make_loader(ds, batch_size=2, seed=2)])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][0][0], _movies()[0]["lum"])  # augmented


def test_hetero_frames_share_edges_and_carry_the_movie(data_small):
    movie = torch.rand(4, N3, generator=torch.Generator().manual_seed(0))
    targets = torch.rand(4, 2, N3, generator=torch.Generator().manual_seed(1))
    frames = list(temporal_graph_frames(data_small, movie, targets))
    assert len(frames) == 4
    for t, frame in enumerate(frames):
        assert isinstance(frame, HeteroData)
        for key in data_small.edge_types:
            assert frame[key].edge_index.data_ptr() == data_small[key].edge_index.data_ptr()
        for cell in data_small.input_types:
            assert torch.equal(frame[cell].x[:, 0], movie[t])
            assert frame[cell].x.data_ptr() == movie[t].data_ptr()  # a view, no copy
        assert frame["L1"].x.abs().max() == 0 and frame["L1"].x.shape == (N3, 1)
        assert torch.equal(frame.y, targets[t].T)
    assert frames[0]["L1"].x.data_ptr() == frames[1]["L1"].x.data_ptr()


def test_flat_frames_share_one_edge_index(graph_small):
    movie = torch.rand(2, 3, N3, generator=torch.Generator().manual_seed(2))  # batched
    frames = list(temporal_graph_frames(graph_small, movie))
    assert len(frames) == 3
    ptr = frames[0].edge_index.data_ptr()
    assert all(f.edge_index.data_ptr() == ptr for f in frames)
    assert torch.equal(frames[0].edge_index[0], graph_small.source)
    assert torch.equal(frames[0].edge_index[1], graph_small.target)
    for t, frame in enumerate(frames):
        assert isinstance(frame, Data) and frame.x.shape == (graph_small.num_nodes, 2)
        for cell in graph_small.input_types:
            assert torch.equal(frame.x[graph_small.type_slice(cell)], movie[:, t].T)
        others = torch.ones(graph_small.num_nodes, dtype=torch.bool)
        others[graph_small.nodes_of(graph_small.input_types)] = False
        assert frame.x[others].abs().max() == 0


def test_frames_of_an_object_holding_the_graph(graph_small):
    class Holder:
        graph = graph_small

    frame = next(temporal_graph_frames(Holder(), torch.rand(2, N3)))
    assert frame.num_nodes == graph_small.num_nodes


def test_data_base_needs_input_index():
    base = Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3 * N3)
    with pytest.raises(ValueError, match="input_index"):
        next(temporal_graph_frames(base, torch.rand(2, N3)))
    base.input_index = torch.arange(N3)
    frame = next(temporal_graph_frames(base, torch.ones(2, N3)))
    assert frame.edge_index.data_ptr() == base.edge_index.data_ptr()
    assert frame.x[:N3].sum() == N3 and frame.x[N3:].sum() == 0


def test_collate_rejects_different_lengths():
    with pytest.raises(ValueError, match="disagree"):
        collate([{"lum": torch.rand(5, N3)}, {"lum": torch.rand(6, N3)}])


def test_collate_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_collate_rejects_nan():
    item = {"lum": torch.rand(5, N3)}
    item["lum"][0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"items\[1\]\['lum'\] contains NaN"):
        collate([{"lum": torch.rand(5, N3)}, item])


def test_loader_rejects_bad_indices():
    with pytest.raises(ValueError, match="indices"):
        make_loader(_movies(), indices=[0, 9])


def test_frames_reject_wrong_movie_shape(graph_small):
    with pytest.raises(ValueError, match="movie"):
        next(temporal_graph_frames(graph_small, torch.rand(3, 40)))


def test_frames_reject_wrong_target_shape(graph_small):
    with pytest.raises(ValueError, match="targets"):
        next(temporal_graph_frames(graph_small, torch.rand(3, N3), torch.rand(3, N3)))


def test_frames_reject_unknown_graph():
    with pytest.raises(ValueError, match="HeteroData"):
        next(temporal_graph_frames(object(), torch.rand(3, N3)))


def test_batches_drive_the_network_like_single_items(graph_small):
    """A loader batch through simulate equals each item simulated alone; the per-frame
    graph view puts the movie on the same nodes as the network's own input mapping."""
    from flygnn.network import Network
    from flygnn.simulate import simulate

    net = Network(graph_small)
    ds = _movies(n=2)
    batch = next(iter(make_loader(ds, batch_size=2, shuffle=False)))
    movie = batch["lum"][:, :6]
    together = simulate(net, movie, dt=0.02, t_pre=0.1)
    for b in range(2):
        alone = simulate(net, movie[b:b + 1], dt=0.02, t_pre=0.1)
        torch.testing.assert_close(together[b:b + 1], alone, atol=1e-6, rtol=1e-6)
    receptors = graph_small.nodes_of(graph_small.input_types)
    for t, frame in enumerate(temporal_graph_frames(net, movie)):
        torch.testing.assert_close(frame.x[receptors].T, net.frame_input(movie[:, t]))
