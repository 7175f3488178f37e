"""Which model the demo shows: an ensemble's best member by validation EPE, said aloud."""

import json
import shutil

import pytest

import flygnn
from flygnn import demo
from flygnn.pretrained import best_member, ensemble_members


def _ensemble(tmp_path, errors):
    """A folder of copies of the shipped default model with the given validation EPEs."""
    source = flygnn.pretrained._models_dir() / demo.DEFAULT_MODEL
    root = tmp_path / "ens"
    for k, error in enumerate(errors):
        member = root / f"seed{k}"
        shutil.copytree(source, member)
        metrics = json.loads((member / "metrics.json").read_text())
        metrics["best_val_epe"] = error
        (member / "metrics.json").write_text(json.dumps(metrics))
    return root


def test_best_member_reads_each_members_validation_error(tmp_path):
    root = _ensemble(tmp_path, [2.5, 1.25, float("nan"), 1.75])
    assert [p.name for p in ensemble_members(root)] == ["seed0", "seed1", "seed2", "seed3"]
    path, error, n = best_member(root)
    assert (path.name, error, n) == ("seed1", 1.25, 4)
    source, label, why = demo._choose(str(root))
    assert source == root / "seed1" and label == "ens/seed1"
    assert "best of the 4 models" in why and "1.25" in why


def test_a_model_folder_is_shown_as_itself_and_the_default_says_why(tmp_path):
    root = _ensemble(tmp_path, [1.0])
    source, label, _ = demo._choose(str(root / "seed0"))
    assert source == root / "seed0" and label == "seed0"
    source, label, why = demo._choose(None)
    if demo.DEFAULT_ENSEMBLE not in flygnn.pretrained.available_ensembles():
        assert source == label == demo.DEFAULT_MODEL and "not installed" in why
    elif len(ensemble_members(demo.DEFAULT_ENSEMBLE)) < demo.ENSEMBLE_SIZE:
        n = len(ensemble_members(demo.DEFAULT_ENSEMBLE))
        assert source == label == demo.DEFAULT_MODEL
        assert f"holds {n} of the {demo.ENSEMBLE_SIZE} seeds" in why
    else:
        expected, _, _ = best_member(demo.DEFAULT_ENSEMBLE)
        assert source == expected and demo.DEFAULT_ENSEMBLE in why


@pytest.mark.parametrize("size", [2, 4])
def test_the_default_ensemble_is_shown_once_it_holds_enough_seeds(tmp_path, monkeypatch, size):
    models = tmp_path / "models"
    shutil.copytree(flygnn.pretrained._models_dir() / demo.DEFAULT_MODEL,
                    models / demo.DEFAULT_MODEL)
    shutil.move(str(_ensemble(tmp_path, [2.0, 1.5, 1.75, 3.0][:size])),
                str(models / demo.DEFAULT_ENSEMBLE))
    monkeypatch.setattr(flygnn.pretrained, "_models_dir", lambda: models)
    source, label, why = demo._choose(None)
    if size < demo.ENSEMBLE_SIZE:
        assert source == label == demo.DEFAULT_MODEL
        assert f"holds {size} of the {demo.ENSEMBLE_SIZE} seeds" in why
    else:
        assert source == models / demo.DEFAULT_ENSEMBLE / "seed1"
        assert f"best of the {size} models" in why


def test_an_ensemble_without_scores_is_refused_by_name(tmp_path):
    root = _ensemble(tmp_path, [float("nan")])
    with pytest.raises(ValueError, match="best_val_epe"):
        best_member(root)
    with pytest.raises(ValueError, match="neither a folder nor a shipped ensemble"):
        ensemble_members(tmp_path / "missing")
