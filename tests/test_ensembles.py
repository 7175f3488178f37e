"""Ensembles: loading from run folders, ranking, stacked responses, clustering."""

import json
import sys

import numpy as np
import pytest
import torch

from flygnn.analysis import ensembles as E
from flygnn.analysis.runners import flash_responses, stimulus_responses
from flygnn.datasets import FlyVisConnectome
from flygnn.flat import flatten
from flygnn.network import Network
from flygnn.stimuli import Flashes

EXTENT = 4
FLASH = dict(extent=EXTENT, t_stim=0.2, t_pre=0.2, dt=1 / 50, radius=(-1,))


@pytest.fixture(scope="module")
def graph():
    return flatten(FlyVisConnectome(extent=EXTENT)[0])


def _two_groups(graph, n=12):
    """Even members: default strengths; odd members: strengths x 3. Small bias noise."""
    gen = torch.Generator().manual_seed(0)
    nets = []
    for i in range(n):
        net = Network(graph)
        with torch.no_grad():
            net.bias.add_(0.01 * torch.randn(65, generator=gen))
            if i % 2:
                net.syn_strength.mul_(3.0)
        nets.append(net)
    return nets


def test_ranking_order(graph):
    nets = [Network(graph, seed=i) for i in range(5)]
    ens = E.Ensemble(nets, names=list("abcde"), validation_loss=[0.3, np.nan, 0.1, 0.2, 0.1])
    ranked = ens.ranked()
    assert ranked.names == ["c", "e", "d", "a", "b"]  # stable for ties, NaN last
    assert ranked[0] is nets[2] and ranked["a"] is nets[0]
    assert ranked.validation_loss.tolist()[:4] == [0.1, 0.1, 0.2, 0.3]
    assert ens.best(0.4).names == ["c", "e"]
    assert ens.best(0.1).names == ["c"]
    assert ens.names == list("abcde")  # ranking returns a new ensemble


def test_from_dir_reads_networks_and_metrics(graph, tmp_path):
    nets = [Network(graph, seed=i) for i in range(3)]
    for name, net, loss in zip(["002", "000", "001"], nets, [0.5, 0.7, 0.6]):
        (tmp_path / name).mkdir()
        net.save(tmp_path / name / "network.pt")
        if name != "001":
            (tmp_path / name / "metrics.json").write_text(json.dumps({"best_val_epe": loss}))
    (tmp_path / "notes").mkdir()  # no checkpoint: not a member
    ens = E.Ensemble.from_dir(tmp_path, data=graph)
    assert ens.names == ["000", "001", "002"]
    assert ens.validation_loss["000"] == 0.7 and ens.validation_loss["002"] == 0.5
    assert np.isnan(ens.validation_loss["001"])
    assert torch.equal(ens["002"].bias, nets[0].bias)
    assert torch.equal(ens["000"].bias, nets[1].bias)
    assert ens.ranked().names == ["002", "000", "001"]
    assert E.Ensemble.from_dir(tmp_path).names == ens.names  # data rebuilt from the extent


def test_responses_are_stacked_per_model(graph):
    nets = _two_groups(graph, 3)
    ens = E.Ensemble(nets, names=["x", "y", "z"])
    resp = ens.responses(flash_responses, **FLASH)
    assert resp.model_names == ["x", "y", "z"]
    data = Flashes(**FLASH)
    for i, net in enumerate(nets):
        alone = stimulus_responses(net, data, 1.0)
        np.testing.assert_array_equal(resp.responses[i], alone.responses[0])
    assert not np.array_equal(resp.responses[0], resp.responses[1])


def test_clustering_recovers_two_groups_of_models(graph):
    nets = _two_groups(graph, 12)
    loss = np.linspace(1.0, 0.1, 12)  # odd members have the lower mean task error
    ens = E.Ensemble(nets, validation_loss=loss)
    resp = ens.responses(flash_responses, **FLASH)
    result = ens.cluster("L1", responses=resp, n_init=10)
    assert result.n_clusters == 2
    np.testing.assert_array_equal(result.labels, np.arange(12) % 2 == 0)  # odd -> 0, even -> 1
    assert result.indices() == {0: list(range(1, 12, 2)), 1: list(range(0, 12, 2))}
    assert result.embedding.min() == pytest.approx(0) and result.embedding.max() == pytest.approx(1)
    assert list(result.bic.index) == [2, 3, 4, 5]


def _blobs(seed=0, n=24):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(2, 40))
    rows = [base[i % 2] + 0.05 * rng.normal(size=40) for i in range(n)]
    return np.stack(rows)


def test_cluster_models_on_separated_blobs_and_task_error_order():
    features = _blobs()
    error = np.where(np.arange(24) % 2 == 0, 0.1, 0.9)  # even rows are better
    result = E.cluster_models(features, task_error=error, n_init=5)
    assert result.n_clusters == 2
    np.testing.assert_array_equal(result.labels, np.arange(24) % 2)
    flipped = E.cluster_models(features, task_error=error[::-1], n_init=5)
    np.testing.assert_array_equal(flipped.labels, 1 - np.arange(24) % 2)


def test_constant_models_are_invalid():
    features = _blobs()
    features[3] = 1.5
    result = E.cluster_models(features, n_init=5)
    assert not result.valid[3] and result.valid.sum() == 23
    assert result.labels[3] == E.INVALID and np.isnan(result.embedding[3]).all()
    assert set(result.labels[result.valid]) == {0, 1}


def test_pca_embedding_matches_eigendecomposition():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 6)) @ rng.normal(size=(6, 6))
    scores = E.pca_embedding(x, standardize=False)
    centred = x - x.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    top = eigvec[:, ::-1][:, :2]
    top *= np.sign(top[np.abs(top).argmax(axis=0), [0, 1]])
    np.testing.assert_allclose(scores, centred @ top, atol=1e-10)
    np.testing.assert_allclose((scores ** 2).sum(axis=0), eigval[::-1][:2], rtol=1e-10)
    z = E.pca_embedding(x * 7 + 3)  # row z-scoring removes per-row scale and offset
    np.testing.assert_allclose(z, E.pca_embedding(x), atol=1e-10)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.mixture", None)
    with pytest.raises(ImportError, match=r"flygnn\[cluster\]"):
        E.cluster_models(_blobs())


def test_ensemble_rejects_mismatched_names(graph):
    with pytest.raises(ValueError, match="names"):
        E.Ensemble([Network(graph)], names=["a", "b"])


def test_ensemble_rejects_mismatched_losses(graph):
    with pytest.raises(ValueError, match="validation_loss"):
        E.Ensemble([Network(graph)], validation_loss=[0.1, 0.2])


def test_ensemble_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        E.Ensemble([])


def test_from_dir_rejects_folder_without_members(tmp_path):
    with pytest.raises(ValueError, match="no member folder"):
        E.Ensemble.from_dir(tmp_path)


def test_from_dir_rejects_broken_metrics(graph, tmp_path):
    (tmp_path / "000").mkdir()
    Network(graph).save(tmp_path / "000" / "network.pt")
    (tmp_path / "000" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json"):
        E.Ensemble.from_dir(tmp_path, data=graph)


def test_cluster_rejects_bad_embedding():
    with pytest.raises(ValueError, match="embedding"):
        E.cluster_models(_blobs(), embedding="tsne")


def test_cluster_rejects_too_many_clusters():
    with pytest.raises(ValueError, match="range_n_clusters"):
        E.cluster_models(_blobs()[:3], range_n_clusters=(5, 6))


def test_cluster_rejects_foreign_responses(graph):
    ens = E.Ensemble([Network(graph), Network(graph, seed=1)], names=["a", "b"])
    other = E.Ensemble(list(ens), names=["c", "d"])
    with pytest.raises(ValueError, match="model names"):
        ens.cluster("L1", responses=other.responses(flash_responses, **FLASH))
