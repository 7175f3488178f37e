"""``flygnn train --reuse RUN``: a variant of a recipe takes over the leading stages it shares
with an earlier run, and ends bit for bit where a fresh run of the variant ends."""

import copy
import json

import pandas as pd
import pytest
import torch

from flygnn.cli import main
from flygnn.recipes import load_recipe, run_recipe


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("movies"))


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, cache):
    """A finished run of the tiny recipe."""
    out = tmp_path_factory.mktemp("earlier") / "run"
    run_recipe("tiny", out, overrides=[f"data.cache={cache}"], progress=False)
    return out


def variant():
    """The tiny recipe with a longer last stage."""
    recipe = copy.deepcopy(load_recipe("tiny"))
    recipe["stages"][-1]["config"]["optim"]["n_iters"] = 3
    return recipe


def weights(folder):
    out = {}
    for name in ("network.pt", "decoder.pt"):
        blob = torch.load(folder / name, weights_only=True)
        out.update({f"{name}.{k}": v for k, v in blob.get("state_dict", blob).items()
                    if isinstance(v, torch.Tensor)})
    return out


def test_a_variant_reuses_the_shared_stage_and_equals_a_fresh_run(tmp_path, cache, earlier):
    fresh, reused = tmp_path / "fresh", tmp_path / "reused"
    overrides = [f"data.cache={tmp_path / 'other_cache'}"]  # where movies live does not count
    run_recipe(variant(), fresh, overrides=overrides, progress=False)
    metrics = run_recipe(variant(), reused, overrides=overrides, progress=False, reuse=earlier)
    first = reused / "stages" / "0_network"
    assert (first / "log.csv").read_text() == (earlier / "stages/0_network/log.csv").read_text()
    assert metrics["stages"][0]["reused_from"] == str((earlier / "stages/0_network").resolve())
    assert "reused_from" not in metrics["stages"][1]
    a, b = weights(fresh), weights(reused)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [pd.read_csv(f / "log.csv").drop(columns="time") for f in (fresh, reused)]
    pd.testing.assert_frame_equal(*logs)
    assert len(logs[1][logs[1]["stage"] == "decoder"]) == 3  # the variant's stage trained
    # the copied stage's config points into the new run, and the run resumes as its own
    started = json.loads((reused / "stages/1_decoder/config.json").read_text())
    assert started["network"]["init"] == str((first / "network.pt").resolve())
    assert run_recipe(None, reused, resume=True, progress=False)["best_val_epe"] == \
        metrics["best_val_epe"]


def test_nothing_shared_is_refused_and_leaves_no_folder(tmp_path, cache, earlier):
    out = tmp_path / "other_seed"
    with pytest.raises(ValueError, match=r"nothing to take over.*differs in.*seed"):
        run_recipe(variant(), out, overrides=[f"data.cache={cache}"], seed=7,
                   progress=False, reuse=earlier)
    assert not out.exists()
    with pytest.raises(ValueError, match="not a recipe run folder"):
        run_recipe(variant(), out, progress=False, reuse=tmp_path)
    unfinished = tmp_path / "unfinished"
    run_recipe("tiny", unfinished, overrides=[f"data.cache={cache}"], progress=False,
               stop_after=0)
    with pytest.raises(ValueError, match="first stage is not finished"):
        run_recipe(variant(), out, overrides=[f"data.cache={cache}"], progress=False,
                   reuse=unfinished)


def test_cli_reuse_needs_a_recipe_and_a_new_run(tmp_path, cache, earlier, capsys):
    out = tmp_path / "model"
    recipe = tmp_path / "variant.json"
    recipe.write_text(json.dumps(variant()))
    args = ["train", "--recipe", str(recipe), "--out", str(out), "--set",
            f"data.cache={cache}", "--reuse", str(earlier)]
    assert main(args) == 0
    assert "stages 1-1 (network) taken from" in capsys.readouterr().out
    assert main(args + ["--resume"]) == 2  # a finished run is not a new one
    assert "--reuse starts a new run" in capsys.readouterr().err
    assert main(["train", "--config", str(out / "config.json"), "--out",
                 str(tmp_path / "single"), "--reuse", str(earlier)]) == 2
    assert "--reuse takes stages from a recipe run" in capsys.readouterr().err


def test_the_same_recipe_takes_every_stage_and_trains_nothing(tmp_path, cache, earlier):
    out = tmp_path / "copy"
    metrics = run_recipe("tiny", out, overrides=[f"data.cache={cache}"], progress=False,
                         reuse=earlier)
    assert [s.get("reused_from") for s in metrics["stages"]] == \
        [str((earlier / "stages" / f).resolve()) for f in ("0_network", "1_decoder")]
    assert (out / "log.csv").read_text() == (earlier / "log.csv").read_text()
    a, b = weights(earlier), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    earlier_metrics = json.loads((earlier / "metrics.json").read_text())
    assert metrics["train_time_s"] == earlier_metrics["train_time_s"]
