"""Training recipes: a whole training, in stages, as data.

A recipe is a JSON file::

    {"name": "cpu", "about": "...",
     "base": {<a partial TrainConfig>},
     "stages": [{"name": "decoder", "about": "...", "config": {<partial config over base>},
                 "start": {"network": "base", "decoder": "new"}}, ...],
     "criteria": {"epe_over_zero_flow_max": 0.6, ...}}

Each stage's config is ``base`` updated (key by key, nested) with the stage's ``config``; its
``start`` says where it begins: ``network`` ``"previous"`` (the previous stage's best network,
transferred to this stage's extent) or ``"base"`` (``base``'s ``network.init``: flyvis's
initialisation when none), ``decoder`` ``"previous"`` or ``"new"``. Stages after the first
start from the previous one unless they say otherwise. The recipes shipped with flygnn are
``tiny`` (seconds; what the tests train), ``cpu`` (the distilled CPU recipe) and ``flyvis``
(flyvis's published hyper-parameters); :func:`recipe_names` lists them.

The optional ``criteria`` (:data:`CRITERIA`) are what a model trained by the recipe should
reach when scored (``flygnn score``, :mod:`flygnn.analysis.scores`); training ignores them,
and a run resumes whether or not its stored recipe has them.

:func:`run_recipe` (``flygnn train --recipe``) trains all stages into a model folder::

    DIR/recipe.json              the recipe as run, with the seed and overrides
    DIR/stages/<k>_<name>/       each stage's run folder (config.json, log.csv, metrics.json,
                                 network.pt, decoder.pt; checkpoints while it runs)
    DIR/network.pt, decoder.pt   the last stage's (best) network and decoder
    DIR/config.json              the last stage's config
    DIR/log.csv                  every stage's log, with a ``stage`` column
    DIR/metrics.json             the last stage's metrics, and every stage's under "stages"

``metrics.json`` is written last: it marks a finished recipe. A resume (``--resume``) skips
finished stages and continues the running one from its checkpoint, bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from flygnn._deprecation import canonical_dict
from flygnn.checkpoint import atomic_write_text
from flygnn.config import TrainConfig, canonical_overrides
from flygnn.configio import apply_overrides, dict_diff
from flygnn.rundir import LOG_COLUMNS, RunDir

__all__ = ["CRITERIA", "check_criteria", "load_recipe", "recipe_names", "run_recipe",
           "stage_configs"]

log = logging.getLogger(__name__)
_RECIPE_KEYS = {"name", "about", "base", "stages", "criteria"}
_STAGE_KEYS = {"name", "about", "config", "start"}

#: the criteria a recipe may set for its models (each optional): key -> (lower bound, upper
#: bound, meaning)
CRITERIA = {
    "epe_over_zero_flow_max": (0.0, None, "validation EPE / zero-flow EPE <= this"),
    "fri_correlation_min": (-1.0, 1.0, "FRI correlation with the 32 known polarities >= this"),
    "t4t5_dsi_min": (0.0, 1.0, "DSI of each of T4a-d (ON edges) and T5a-d (OFF edges) >= this"),
    "t4t5_angle_max_deg": (0.0, 180.0, "each T4/T5 preferred direction within this many "
                                       "degrees of the flies'"),
}


def recipe_names() -> list[str]:
    """Names of the recipes shipped with flygnn."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".json"))


def load_recipe(name_or_file: str | os.PathLike) -> dict:
    """A shipped recipe by name, or a recipe JSON file; checked (:func:`check_recipe`).

    Raises:
        ValueError: an unknown name, an unreadable file or a malformed recipe.
    """
    text = str(name_or_file)
    if text in recipe_names():
        source = resources.files(__name__) / f"{text}.json"
    elif Path(text).is_file():
        source = Path(text)
    else:
        raise ValueError(f"recipe {text!r} is neither a file nor one of {recipe_names()}")
    try:
        recipe = json.loads(source.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"recipe {text!r} is not valid JSON: {err}") from None
    check_recipe(recipe, text)
    return recipe


def check_recipe(recipe: dict, where: str = "recipe") -> None:
    """Check the recipe's structure and every stage's config (each value once, by
    :class:`~flygnn.config.TrainConfig`); errors name the stage and the field."""
    if not isinstance(recipe, dict) or set(recipe) - _RECIPE_KEYS or "stages" not in recipe:
        raise ValueError(f"{where}: expected an object with keys among {sorted(_RECIPE_KEYS)} "
                         "and 'stages'")
    if not isinstance(recipe["stages"], list) or not recipe["stages"]:
        raise ValueError(f"{where}: 'stages' must be a non-empty list")
    names = []
    for k, stage in enumerate(recipe["stages"]):
        label = f"{where}: stage {k}"
        if not isinstance(stage, dict) or set(stage) - _STAGE_KEYS or "name" not in stage:
            raise ValueError(f"{label}: expected an object with 'name' and keys among "
                             f"{sorted(_STAGE_KEYS)}")
        name = stage["name"]
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or name in names:
            raise ValueError(f"{label}: name {name!r} must be a unique word (letters, digits, _)")
        names.append(name)
        start = {**_default_start(k), **stage.get("start", {})}
        if set(start) != {"network", "decoder"} or start["network"] not in ("base", "previous") \
                or start["decoder"] not in ("new", "previous"):
            raise ValueError(f"{label} ({name}): 'start' must be {{'network': 'base' or "
                             f"'previous', 'decoder': 'new' or 'previous'}}, got {start}")
        if k == 0 and "previous" in start.values():
            raise ValueError(f"{label} ({name}): the first stage has no previous stage")
    if "criteria" in recipe:
        check_criteria(recipe["criteria"], f"{where}: criteria")
    stage_configs(recipe, where=where)


def check_criteria(criteria, where: str = "criteria") -> dict[str, float]:
    """The criteria as ``{key: float}``: an object whose keys are among :data:`CRITERIA`,
    each a finite number within the key's range.

    Raises:
        ValueError: naming ``where`` and the offending key or value.
    """
    if not isinstance(criteria, dict):
        raise ValueError(f"{where}: expected an object with keys among {sorted(CRITERIA)}, "
                         f"got {type(criteria).__name__}")
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(CRITERIA)}")
    out = {}
    for key, value in criteria.items():
        low, high, _ = CRITERIA[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < low or (high is not None and value > high):
            bounds = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise ValueError(f"{where}: {key} must be a number {bounds}, got {value!r}")
        out[key] = float(value)
    return out


def _default_start(k: int) -> dict:
    return {"network": "base", "decoder": "new"} if k == 0 else \
        {"network": "previous", "decoder": "previous"}


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def stage_configs(recipe: dict, seed: int | None = None, overrides: list[str] | None = None,
                  out: str | os.PathLike | None = None, where: str = "recipe") \
        -> list[TrainConfig]:
    """The stages' :class:`~flygnn.config.TrainConfig` (base, then the stage's config, then
    ``overrides`` and ``seed``); with ``out``, the ``init`` files of each stage point to the
    previous stage's folder in ``out``."""
    configs = []
    for k, stage in enumerate(recipe["stages"]):
        d = _merge(canonical_dict(TrainConfig, recipe.get("base", {})),
                   canonical_dict(TrainConfig, stage.get("config", {})))
        d = apply_overrides(d, canonical_overrides(list(overrides or [])))
        if seed is not None:
            d["seed"] = seed
        start = {**_default_start(k), **stage.get("start", {})}
        if out is not None and k > 0:
            previous = stage_dir(out, recipe, k - 1).resolve()
            if start["network"] == "previous":
                d = _merge(d, {"network": {"init": str(previous / "network.pt"),
                                           "init_flyvis": False}})
            if start["decoder"] == "previous":
                d = _merge(d, {"decoder": {"init": str(previous / "decoder.pt")}})
        try:
            configs.append(TrainConfig.from_dict(d))
        except ValueError as err:
            raise ValueError(f"{where}: stage {k} ({stage['name']}): {err}") from None
    return configs


def stage_dir(out: str | os.PathLike, recipe: dict, k: int) -> Path:
    """Run folder of stage ``k`` in the model folder ``out``."""
    return Path(out) / "stages" / f"{k}_{recipe['stages'][k]['name']}"


def _stored(recipe: dict, seed: int | None, overrides: list[str]) -> dict:
    return {"recipe": recipe, "seed": seed, "overrides": list(overrides)}


def _canonical(stored: dict) -> dict:
    """A stored recipe with deprecated config keys renamed (a run started before a rename
    resumes with the renamed recipe) and without its ``criteria`` and ``about`` texts (they
    do not train)."""
    recipe = {k: v for k, v in stored["recipe"].items() if k not in ("criteria", "about")}
    recipe["base"] = canonical_dict(TrainConfig, recipe.get("base", {}))
    recipe["stages"] = [{k: canonical_dict(TrainConfig, v) if k == "config" else v
                         for k, v in s.items() if k != "about"} for s in recipe.get("stages", [])]
    return dict(stored, recipe=recipe, overrides=canonical_overrides(stored["overrides"]))


def run_recipe(recipe: str | os.PathLike | dict | None, out: str | os.PathLike,
               seed: int | None = None, overrides: list[str] | None = None,
               resume: bool = False, progress: bool = True, device: str | None = None,
               stop_after: int | None = None, datasets: Callable | None = None,
               on_validation: Callable | None = None,
               reuse: str | os.PathLike | None = None) -> dict:
    """Train every stage of a recipe into the model folder ``out`` (``flygnn train --recipe``).

    Args:
        recipe: a shipped name, a JSON file or a recipe dict; None when resuming (the
            folder's ``recipe.json``).
        out: the model folder; must be missing or empty unless ``resume``.
        seed: seed of every stage (data order, augmentation, dropout; None: the recipe's).
        overrides: ``key=value`` strings applied to every stage (``optim.n_iters=5``).
        resume: continue ``out``: finished stages are kept, the running one resumes.
        progress: a progress bar per stage (``stage 2/4 network``) and a line per stage.
        device: torch device of every stage (may change between resumes).
        stop_after: stop after this many stages (the rest run on a resume).
        datasets: ``f(config) -> (train, val)`` replacing the config's movies (tests).
        on_validation: called with the trainer after each validation.
        reuse: a recipe run folder whose leading finished stages equal this run's (the same
            configs, seed and overrides): they are copied instead of trained
            (:mod:`flygnn.recipes.reuse`); a new run only.

    Returns:
        the model folder's metrics (the last stage's, with every stage's under ``stages``);
        when stopped early, ``{"stages": [...]}`` of the finished stages.

    Raises:
        ValueError: a bad recipe, a non-empty ``out`` without ``resume``, a resume with a
            different recipe, seed or overrides, or a ``reuse`` folder with no stage to give.
    """
    from flygnn.train import Trainer

    out = Path(out)
    RunDir(out, resume)  # the same folder rules as a single run
    saved_file = out / "recipe.json"
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else None
    if recipe is None:
        if saved is None:
            raise ValueError(f"no recipe given and no {str(saved_file)!r} to resume from")
        recipe, seed, overrides = saved["recipe"], saved["seed"], saved["overrides"]
    elif not isinstance(recipe, dict):
        recipe = load_recipe(recipe)
    else:
        check_recipe(recipe)
    overrides = list(overrides or [])
    stored = _stored(recipe, seed, overrides)
    if saved is not None and _canonical(saved) != _canonical(stored):
        diff = dict_diff(_canonical(saved), _canonical(stored))
        raise ValueError(f"the recipe, seed or overrides differ from {str(saved_file)!r} in "
                         f"{diff[:5]}; resume without --recipe/--seed/--set, or use a new folder")
    configs = stage_configs(recipe, seed, overrides, out, where=f"recipe {recipe.get('name')!r}")
    if device is not None:
        configs = [c.with_overrides([f"device={device}"]) for c in configs]
    n = len(configs)
    if reuse is not None:
        from flygnn.recipes.reuse import copy_stages, reusable_stages

        if saved is not None:
            raise ValueError("--reuse starts a new run; --resume continues one, not both")
        dirs = [stage_dir(out, recipe, k) for k in range(n)]
        taken, diff = reusable_stages(reuse, configs, dirs)
        if taken == 0:
            why = f"differs in {diff[:5]}" if diff else "is not finished"
            raise ValueError(f"--reuse {str(reuse)!r}: nothing to take over; its first "
                             f"stage {why}")
    out.mkdir(parents=True, exist_ok=True)
    if saved is None:
        atomic_write_text(saved_file, json.dumps(stored, indent=2) + "\n")
    if reuse is not None:
        copy_stages(reuse, configs, dirs, taken)
        if progress:
            names = ", ".join(s["name"] for s in recipe["stages"][:taken])
            print(f"stages 1-{taken} ({names}) taken from {reuse}", flush=True)
    done = []
    for k, config in enumerate(configs):
        if stop_after is not None and k >= stop_after:
            return {"stages": done}
        folder = stage_dir(out, recipe, k)
        name = recipe["stages"][k]["name"]
        run = RunDir(folder, resume=True)
        if not run.finished():
            if progress:
                print(f"stage {k + 1}/{n} {name}: extent {config.network.extent}, "
                      f"{config.optim.n_iters} iterations -> {folder}", flush=True)
            if run.config_file.exists():  # as started (the init paths of that folder)
                config = TrainConfig.from_json(run.config_file).with_overrides(
                    [f"device={config.device}"])
            trainer = Trainer(config, folder, resume=True, progress=progress,
                              desc=f"stage {k + 1}/{n} {name}", on_validation=on_validation,
                              datasets=None if datasets is None else datasets(config))
            trainer.train()
            for file in (run.checkpoint_file, run.best_file):  # the stage's model is written
                file.unlink(missing_ok=True)
        done.append({"stage": name, **json.loads((folder / "metrics.json").read_text())})
    return _finish(out, recipe, configs[-1], done)


def _finish(out: Path, recipe: dict, config: TrainConfig, done: list[dict]) -> dict:
    """Copy the last stage's model to ``out`` and write the joint log and metrics."""
    last = stage_dir(out, recipe, len(done) - 1)
    for name in ("network.pt", "decoder.pt"):
        tmp = out / f".{name}.tmp"
        shutil.copyfile(last / name, tmp)
        os.replace(tmp, out / name)
    atomic_write_text(out / "config.json", config.to_json())
    lines = ["stage," + ",".join(LOG_COLUMNS) + "\n"]
    for k, stage in enumerate(recipe["stages"]):
        rows = (stage_dir(out, recipe, k) / "log.csv").read_text().splitlines(keepends=True)
        lines += [f"{stage['name']},{row}" for row in rows[1:]]
    atomic_write_text(out / "log.csv", "".join(lines))
    metrics = {k: v for k, v in done[-1].items() if k != "stage"}
    metrics.update(recipe=recipe.get("name"), stages=done,
                   train_time_s=round(sum(s.get("train_time_s", 0.0) for s in done), 1))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
