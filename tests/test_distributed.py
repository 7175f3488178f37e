"""Distributed ensembles on Ray: two members trained on a local 2-CPU Ray, one of them killed
once right after a checkpoint (retried and resumed), evaluated in parallel, compared with the
same computations in this process; joining a two-node cluster by address; the no-Ray error.

Every Ray address here is on loopback: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray use
127.0.0.1 as the node address (it must be set before ``ray`` is imported).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn.cli import main
from flygnn.config import TrainConfig
from flygnn.distributed import (
    evaluate_ensemble,
    load_responses,
    read_manifest,
    train_ensemble,
)

pytestmark = pytest.mark.slow
INSTALL = 'pip install "flygnn[ray]"'
FLASHES = {"dt": 0.02, "t_stim": 0.2, "t_pre": 0.2}
EDGES = {"dt": 0.02, "speeds": [25], "t_pre": 0.2, "t_post": 0.2}


def tiny_config(cache="", **optim) -> TrainConfig:
    """Extent 2 (19 columns), 2 training movies of 24 x 24 pixels, 4 iterations."""
    o = {"n_iters": 4, "batch_size": 1, "val_every": 4, "checkpoint_every": 2, "t_pre": 0.04,
         "val_t_pre": 0.04, "val_batch_size": 1}
    o.update(optim)
    return TrainConfig.from_dict({
        "network": {"extent": 2}, "seed": 3, "optim": o, "decoder": {"p_dropout": 0.0},
        "data": {"n_train": 2, "n_val": 1, "cache": str(cache), "augment": {"n_clip_frames": 3},
                 "movies": {"n_source_frames": 4, "height": 24, "width": 24}}})


def kill_once(trainer, name):
    """Member 001: SIGKILL its own worker right after its first periodic checkpoint, once."""
    if name != "001" or (trainer.out / "killed").exists():
        return
    save = trainer.save_checkpoint

    def save_then_die(path=None):
        written = save(path)
        if path is None:  # the periodic checkpoint (best.pt is saved with a path)
            (trainer.out / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return written

    trainer.save_checkpoint = save_then_die


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # kill_once runs in workers
    return ray


@pytest.fixture(scope="module")
def trained(ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    cfg = tiny_config(cache=root / "movies")
    t0 = time.perf_counter()
    manifest = train_ensemble(cfg, root / "ens", n_members=2, num_cpus=2, setup=kill_once)
    print(f"train_ensemble: {time.perf_counter() - t0:.1f} s")
    assert not ray.is_initialized()  # the local Ray it started is stopped again
    return root / "ens", manifest, cfg


@pytest.fixture(scope="module")
def evaluated(trained):
    out = trained[0]
    t0 = time.perf_counter()
    result = evaluate_ensemble(out, num_cpus=2, flashes=FLASHES, edges=EDGES,
                               cluster_types=("T4c", "T5c"), cluster={"n_init": 2})
    print(f"evaluate_ensemble: {time.perf_counter() - t0:.1f} s")
    return result


@pytest.fixture(scope="module")
def reference(trained):
    """The same evaluation in this process, with the analysis functions directly."""
    from flygnn.analysis import flash_responses, moving_edge_responses
    from flygnn.analysis.ensembles import Ensemble

    ens = Ensemble.from_dir(trained[0])
    return ens, {"flashes": ens.responses(flash_responses, extent=2, **FLASHES),
                 "edges": ens.responses(moving_edge_responses, extent=2, **EDGES)}


def _attempts(folder):
    return [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- training


def test_manifest_records_members_seeds_configs_and_metrics(trained):
    out, manifest, cfg = trained
    assert manifest == read_manifest(out)
    assert manifest["n_members"] == manifest["n_done"] == 2
    members = manifest["members"]
    assert [m["name"] for m in members] == ["000", "001"]
    assert [m["seed"] for m in members] == [3, 4]  # config.seed + i
    assert [m["status"] for m in members] == ["done", "done"]
    for m in members:
        assert m["config"] == cfg.with_overrides([f"seed={m['seed']}"]).to_dict()
        assert m["config"] == json.loads((out / m["name"] / "config.json").read_text())
        assert m["metrics"] == json.loads((out / m["name"] / "metrics.json").read_text())
        assert m["metrics"]["iteration"] == 4 and np.isfinite(m["metrics"]["best_val_epe"])
        assert m["error"] is None


def test_killed_member_was_retried_and_resumed_from_its_checkpoint(trained):
    out, manifest, _ = trained
    assert [m["attempts"] for m in manifest["members"]] == [1, 2]
    assert [a["start_iteration"] for a in _attempts(out / "000")] == [0]
    first, second = _attempts(out / "001")
    assert (first["start_iteration"], second["start_iteration"]) == (0, 2)
    assert (out / "001" / "killed").exists()
    log = pd.read_csv(out / "001" / "log.csv")
    assert log["iteration"].tolist() == [1, 2, 3, 4]  # nothing lost, nothing repeated


def test_resumed_member_equals_an_uninterrupted_run(trained, tmp_path):
    from flygnn.network import Network
    from flygnn.train import Trainer

    out, _, cfg = trained
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the Ray task (num_cpus_per_member=1)
    try:
        Trainer(cfg.with_overrides(["seed=4"]), tmp_path / "run").train()
    finally:
        torch.set_num_threads(threads)
    ours = Network.load(out / "001" / "network.pt").state_dict()
    alone = Network.load(tmp_path / "run" / "network.pt").state_dict()
    assert ours.keys() == alone.keys()
    for key in ours:
        torch.testing.assert_close(ours[key], alone[key], rtol=0, atol=0, msg=key)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["best_val_epe"] == read_manifest(out)["members"][1]["metrics"]["best_val_epe"]


def test_ensemble_class_reads_the_folder(trained):
    from flygnn.analysis.ensembles import Ensemble

    out, manifest, _ = trained
    ens = Ensemble.from_dir(out)
    assert ens.names == ["000", "001"]
    expected = [m["metrics"]["best_val_epe"] for m in manifest["members"]]
    np.testing.assert_allclose(ens.validation_loss.to_numpy(), expected, rtol=0, atol=0)


def test_resume_skips_finished_members(trained, ray):
    out, manifest, _ = trained
    again = train_ensemble(None, out, resume=True)
    assert [m["status"] for m in again["members"]] == ["done", "done"]
    assert [m["metrics"] for m in again["members"]] == [m["metrics"] for m in manifest["members"]]
    assert len(_attempts(out / "001")) == 2  # nothing ran again
    assert not ray.is_initialized()  # no Ray needed when every member is done


def test_non_empty_folder_needs_resume(trained):
    with pytest.raises(ValueError, match="resume=True"):
        train_ensemble(trained[2], trained[0], n_members=2)


def test_changed_config_is_refused_on_resume(trained):
    with pytest.raises(ValueError, match="member 000: config differs"):
        train_ensemble(trained[2].with_overrides(["optim.n_iters=5"]), trained[0], n_members=2,
                       resume=True)


def test_seeds_must_match_n_members(tmp_path):
    with pytest.raises(ValueError, match="n_members=3"):
        train_ensemble(tiny_config(), tmp_path / "ens", n_members=3, seeds=[1, 2])


def test_one_config_per_member_with_seeds(tmp_path):
    with pytest.raises(ValueError, match="seeds has 1 entries for 2 configs"):
        train_ensemble(None, tmp_path / "ens", configs=[tiny_config(), tiny_config()], seeds=[1])


def test_config_or_configs_is_required(tmp_path):
    with pytest.raises(ValueError, match="config is required"):
        train_ensemble(None, tmp_path / "ens", n_members=2)


def test_n_members_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="n_members must be >= 1"):
        train_ensemble(tiny_config(), tmp_path / "ens", n_members=0)


def test_max_retries_must_be_non_negative(tmp_path):
    with pytest.raises(ValueError, match="max_retries"):
        train_ensemble(tiny_config(), tmp_path / "ens", n_members=1, max_retries=-1)


def test_num_cpus_per_member_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="num_cpus_per_member must be >= 1"):
        train_ensemble(tiny_config(), tmp_path / "ens", n_members=1, num_cpus_per_member=0)


def test_cli_train_ensemble_needs_a_config(tmp_path, capsys):
    assert main(["train-ensemble", "--members", "2", "--out", str(tmp_path / "ens")]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_resume_without_manifest_is_refused(tmp_path):
    (tmp_path / "ens").mkdir()
    with pytest.raises(ValueError, match="ensemble.json.*not found"):
        train_ensemble(None, tmp_path / "ens", resume=True)


# --------------------------------------------------------------------------- evaluation


def test_evaluated_responses_equal_in_process_responses(evaluated, reference):
    for stimulus in ("flashes", "edges"):
        ours, theirs = evaluated["responses"][stimulus], reference[1][stimulus]
        assert ours.model_names == theirs.model_names == ["000", "001"]
        assert ours.shape == theirs.shape and ours.shape[0] == 2
        np.testing.assert_allclose(ours.responses, theirs.responses, rtol=1e-5, atol=1e-6)
        pd.testing.assert_frame_equal(ours.params, theirs.params)
        assert ours.attrs == theirs.attrs
    assert np.ptp(evaluated["responses"]["flashes"].responses, axis=2).max() > 1e-3  # not flat


def test_indices_equal_the_tuning_functions_on_the_stacked_responses(evaluated, reference):
    from flygnn.analysis import (
        direction_selectivity_index,
        flash_response_index,
        preferred_direction,
    )

    fri = flash_response_index(reference[1]["flashes"])
    pd.testing.assert_frame_equal(evaluated["fri"], fri, check_names=False, rtol=1e-4, atol=1e-6)
    edges = reference[1]["edges"]
    for ours, fn in ((evaluated["dsi"], direction_selectivity_index),
                     (evaluated["preferred_direction"], preferred_direction)):
        theirs = fn(edges)
        assert list(ours.columns) == list(theirs.columns)
        np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-4, atol=1e-6)


def test_clustering_equals_the_ensemble_class(evaluated, reference, trained):
    ens, responses = reference
    saved = json.loads((trained[0] / "evaluation" / "clustering.json").read_text())
    assert set(saved) == {"T4c", "T5c"}
    for cell_type in ("T4c", "T5c"):
        theirs = ens.cluster(cell_type, responses=responses["flashes"], n_init=2)
        ours = evaluated["clustering"][cell_type]
        assert ours == saved[cell_type]
        assert ours["names"] == ["000", "001"]
        assert ours["labels"] == theirs.labels.tolist()
        assert ours["n_clusters"] == theirs.n_clusters
        np.testing.assert_allclose(np.asarray(ours["embedding"], dtype=float), theirs.embedding,
                                   atol=1e-6)


def test_evaluation_files_round_trip(evaluated, trained):
    folder = trained[0] / "evaluation"
    for stimulus in ("flashes", "edges"):
        loaded, ours = load_responses(trained[0], stimulus), evaluated["responses"][stimulus]
        np.testing.assert_array_equal(loaded.responses, ours.responses)
        assert (loaded.dt, loaded.t_pre, loaded.cell_types, loaded.model_names, loaded.attrs) == \
            (ours.dt, ours.t_pre, ours.cell_types, ours.model_names, ours.attrs)
        pd.testing.assert_frame_equal(loaded.params, ours.params, check_dtype=False)
    fri = pd.read_csv(folder / "fri.csv", index_col="model", dtype={"model": str})
    np.testing.assert_allclose(fri.to_numpy(), evaluated["fri"].to_numpy(), rtol=1e-6)
    table = pd.read_csv(folder / "direction.csv", dtype={"model": str})
    assert len(table) == 2 * 65 * 2
    row = table[(table.model == "001") & (table.cell_type == "T4c") & (table.intensity == "ON")]
    assert row["dsi"].item() == pytest.approx(evaluated["dsi"].loc["T4c", ("001", "ON")], rel=1e-6)
    summary = json.loads((folder / "evaluation.json").read_text())
    assert summary["members"] == ["000", "001"] and summary["cluster_types"] == ["T4c", "T5c"]


def test_load_responses_names_the_missing_file(tmp_path):
    with pytest.raises(ValueError, match="edges_responses.npz.*not found"):
        load_responses(tmp_path, "edges")


def test_evaluate_needs_member_networks(tmp_path):
    (tmp_path / "ens" / "000").mkdir(parents=True)
    with pytest.raises(ValueError, match="no member folder with a network.pt"):
        evaluate_ensemble(tmp_path / "ens")


def test_evaluate_rejects_unknown_stimuli(trained):
    with pytest.raises(ValueError, match="stimuli must be"):
        evaluate_ensemble(trained[0], stimuli=("gratings",))


def test_evaluate_rejects_cluster_on_outside_stimuli(trained):
    with pytest.raises(ValueError, match="cluster_on 'edges'"):
        evaluate_ensemble(trained[0], stimuli=("flashes",), cluster_on="edges")


def test_evaluate_rejects_unknown_cluster_types(trained):
    with pytest.raises(ValueError, match=r"cluster_types \['T4x'\] are not cell types"):
        evaluate_ensemble(trained[0], cluster_types=("T4c", "T4x"))


def test_evaluate_max_retries_must_be_non_negative(trained):
    with pytest.raises(ValueError, match="max_retries"):
        evaluate_ensemble(trained[0], max_retries=-1)


def test_clustering_without_scikit_learn_says_how_to_install(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match=re.escape('pip install "flygnn[cluster]"')):
        evaluate_ensemble(trained[0], cluster_types=("T4c",))


def test_cli_evaluate_rejects_unknown_set_keys(trained, capsys):
    assert main(["evaluate-ensemble", str(trained[0]), "--set", "gratings.dt=0.1"]) == 2
    assert "--set keys must start with" in capsys.readouterr().err


# --------------------------------------------------------------------------- cluster by address


@pytest.fixture(scope="module")
def cluster(ray):
    """Two local Ray nodes of one CPU each, on 127.0.0.1."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def always_fail(trainer, name):
    raise RuntimeError(f"member {name} cannot train here")


def test_cli_trains_and_evaluates_on_a_two_node_cluster_by_address(cluster, tmp_path, capsys):
    assert cluster.address.startswith("127.0.0.1:")
    tiny_config().to_json(tmp_path / "cfg.json")
    out = tmp_path / "ens"
    code = main(["train-ensemble", "--config", str(tmp_path / "cfg.json"), "--members", "2",
                 "--out", str(out), "--address", cluster.address, "--set", "optim.n_iters=2",
                 "--no-progress"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["done", "done"]
    members = read_manifest(out)["members"]
    assert [m["metrics"]["iteration"] for m in members] == [2, 2]
    nodes = {node.node_id for node in cluster.list_all_nodes()}
    assert len(nodes) == 2
    assert {m["node"] for m in members} == nodes  # one 1-CPU node each, in parallel
    code = main(["evaluate-ensemble", str(out), "--address", cluster.address,
                 "--stimuli", "flashes", "--cluster-types", "T4c", "--set", "flashes.dt=0.02",
                 "--set", "flashes.t_stim=0.2", "--set", "flashes.t_pre=0.2",
                 "--set", "cluster.n_init=2"])
    assert code == 0
    fri = pd.read_csv(out / "evaluation" / "fri.csv", index_col="model", dtype={"model": str})
    assert fri.index.tolist() == ["000", "001"] and fri.shape[1] == 65
    assert np.isfinite(fri.to_numpy()).all()
    assert list(json.loads((out / "evaluation" / "clustering.json").read_text())) == ["T4c"]


def test_member_failing_every_attempt_is_recorded_as_failed(cluster, tmp_path):
    manifest = train_ensemble(tiny_config(), tmp_path / "ens", n_members=1, max_retries=1,
                              address=cluster.address, setup=always_fail)
    (member,) = manifest["members"]
    assert member["status"] == "failed" and manifest["n_done"] == 0
    assert member["attempts"] == 2  # the first attempt and one retry, each from the checkpoint
    assert "cannot train here" in member["error"]
    assert member["metrics"] is None


# --------------------------------------------------------------------------- without Ray


def test_train_without_ray_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=re.escape(INSTALL)):
        train_ensemble(tiny_config(), tmp_path / "ens", n_members=2)
    assert not (tmp_path / "ens").exists()


def test_evaluate_without_ray_says_how_to_install(monkeypatch, tmp_path, data_small):
    from flygnn.network import Network

    (tmp_path / "ens" / "000").mkdir(parents=True)
    Network(data_small).save(tmp_path / "ens" / "000" / "network.pt")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=re.escape(INSTALL)):
        evaluate_ensemble(tmp_path / "ens", cluster_types=())


def test_cli_without_ray_prints_the_install_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    tiny_config().to_json(tmp_path / "cfg.json")
    code = main(["train-ensemble", "--config", str(tmp_path / "cfg.json"), "--members", "2",
                 "--out", str(tmp_path / "ens")])
    assert code == 2
    assert INSTALL in capsys.readouterr().err


def test_importing_flygnn_never_imports_ray():
    code = ("import sys, flygnn, flygnn.distributed, flygnn.cli, flygnn.analysis; "
            "flygnn.cli.build_parser(); print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"
