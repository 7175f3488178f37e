"""Configuration sections mirror the constructors they feed, each value is checked in one place,
and every stored config (recipes, model folders, resumable runs) loads to what it was before
the ``data`` section had sections of its own."""

import dataclasses
import inspect
import json
import warnings
from pathlib import Path

import pytest

from flygnn.build import MovieSubset, arguments, build_datasets
from flygnn.config import (
    AugmentConfig,
    DataConfig,
    DecoderConfig,
    MoviesConfig,
    TrainConfig,
    canonical_overrides,
)
from flygnn.recipes import _canonical, _stored, load_recipe, stage_configs
from flygnn.stimuli.augment import Augment
from flygnn.stimuli.opticflow import OpticFlowMovies
from flygnn.stimuli.scenes import MotionPrior
from flygnn.task import FlowDecoder

ROOT = Path(__file__).resolve().parents[1]
#: what the code before the sections saved and built from every stored config dict
GOLDEN = json.loads((ROOT / "tests" / "fixtures" / "configs_v1.json").read_text())["sources"]

#: the flat ``data`` section of earlier releases: its defaults, and how ``build_datasets`` fed
#: them to the constructors (transcribed from that code, as the oracle of the new sections)
OLD_DATA = {"n_train": 64, "n_val": 16, "val_start": None, "n_source_frames": 25,
            "n_clip_frames": 19, "dt": 0.02, "height": 436, "width": 417, "seed": 0,
            "n_objects": [1, 4], "ego_motion": True, "speed": 4.0, "object_speed": 6.0,
            "texture_contrast": [0.1, 0.3], "augment": True, "p_rot": 0.5, "p_flip": 0.5,
            "flip_axes": [0, 1, 2, 3], "contrast_std": 0.2, "brightness_std": 0.1,
            "noise_std": 0.08, "cache": None}


def old_constructor_arguments(data: dict) -> dict:
    """The keyword arguments the flat-section code passed to ``Augment``, ``MotionPrior``
    and ``OpticFlowMovies`` (those not fed from other sections)."""
    d = dict(OLD_DATA, **{"n_clip_frames" if k == "n_frames" else k: v for k, v in data.items()})
    return {"augment": dict(n_clip_frames=d["n_clip_frames"], p_rot=d["p_rot"], p_flip=d["p_flip"],
                            flip_axes=tuple(d["flip_axes"]), contrast_std=d["contrast_std"],
                            brightness_std=d["brightness_std"], noise_std=d["noise_std"],
                            enabled=d["augment"]),
            "prior": dict(speed=d["speed"], object_speed=d["object_speed"],
                          contrast=tuple(d["texture_contrast"])),
            "movies": dict(n_source_frames=d["n_source_frames"], height=d["height"],
                           width=d["width"], seed=d["seed"], n_objects=tuple(d["n_objects"]),
                           ego_motion=d["ego_motion"]),
            "trainer": {k: d[k] for k in ("n_train", "n_val", "val_start", "dt", "cache")}}


def _ranges(indices):
    out = []
    for i in indices:
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def movies_summary(dataset) -> dict:
    """What a built movie set is made of (as the fixture records it)."""
    out = {}
    if isinstance(dataset, MovieSubset):
        out["indices"] = _ranges(list(dataset.indices))
        dataset = dataset.dataset
    augment = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(dataset.transform).items()
               if k != "generator"}
    return dict(out, n_sequences=dataset.n_sequences, start=dataset.start, dt=dataset.dt,
                cache=dataset.cache, config=json.loads(json.dumps(dataclasses.asdict(dataset.config))),
                key=None if dataset.folder is None else dataset.folder.name, augment=augment)


def stored_configs(source: str) -> list[TrainConfig]:
    """The configs a stored file gives today (warnings from old keys silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if source.startswith("recipe:"):
            return stage_configs(load_recipe(source[len("recipe:"):]))
        path = ROOT / source
        if path.name == "recipe.json":  # a run's or model folder's recipe as run
            saved = json.loads(path.read_text())
            return stage_configs(saved["recipe"], saved["seed"], saved["overrides"],
                                 out=path.parent)
        return [TrainConfig.from_json(path)]


def _relative(config: TrainConfig) -> dict:
    return json.loads(json.dumps(config.to_dict()).replace(str(ROOT), "<root>"))


@pytest.mark.parametrize("source", sorted(GOLDEN))
def test_stored_configs_load_and_build_as_before(source):
    """Old keys (read through the deprecation path) and today's keys give one config, and it
    builds the movie sets the flat section built: the same Augment, MotionPrior, movies
    and cache key (no rendering)."""
    if not source.startswith("recipe:") and not (ROOT / source).is_file():  # a finished
        # run's checkpoint leaves runs/
        pytest.skip(f"{source} is no longer in the repository")
    configs = stored_configs(source)
    assert len(configs) == len(GOLDEN[source])
    for config, golden in zip(configs, GOLDEN[source]):
        with pytest.warns(DeprecationWarning) as record:
            old = TrainConfig.from_dict(golden["config"])  # as the flat-section code saved it
        assert "use 'data.augment.n_clip_frames'" in " ".join(str(w.message) for w in record)
        assert _relative(config) == _relative(old)
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # today's keys do not warn
            assert TrainConfig.from_dict(config.to_dict()) == config
        train, val = build_datasets(config)
        assert movies_summary(train) == golden["train"] and movies_summary(val) == golden["val"]
        expected = old_constructor_arguments(golden["config"]["data"])
        d = config.data
        assert {k: v for k, v in arguments(d.augment).items() if k != "gamma_std"} == \
            expected["augment"] and d.augment.gamma_std is None
        assert {k: getattr(d.movies.prior, k) for k in expected["prior"]} == expected["prior"]
        assert {k: getattr(d.movies, k) for k in expected["movies"]} == expected["movies"]
        assert {k: getattr(d, k) for k in expected["trainer"]} == expected["trainer"]
        assert d.movies.kernel_size == 13  # new fields hold the constructors' defaults
        assert dataclasses.replace(d.movies.prior, **expected["prior"]) == d.movies.prior == \
            MotionPrior(**expected["prior"])


def _stored_files() -> list[str]:
    patterns = ("data/models/*/config.json", "data/models/*/recipe.json", "runs/*/recipe.json",
                "runs/*/stages/*/config.json")
    return sorted(str(p.relative_to(ROOT)) for pattern in patterns for p in ROOT.glob(pattern))


def test_every_stored_file_loads_and_a_flat_one_maps_like_the_flat_section():
    """Stored files added later (not in the fixture) load too; a config.json with the flat
    section gives the constructors the arguments the flat-section code gave them."""
    for source in _stored_files():
        configs = stored_configs(source)
        for config in configs:
            assert TrainConfig.from_dict(config.to_dict()) == config
        data = json.loads((ROOT / source).read_text()).get("data", {})
        if source.endswith("config.json") and "movies" not in data:
            expected, d = old_constructor_arguments(data), configs[0].data
            assert arguments(d.augment) == dict(expected["augment"], gamma_std=None)
            assert d.movies.prior == MotionPrior(**expected["prior"])
            assert arguments(d.movies) == dict(expected["movies"], prior=d.movies.prior,
                                               kernel_size=13)


def _runs_in_the_repository() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "runs").glob("*/recipe.json"))


def _recipes_named(name: str) -> list[dict]:
    """The shipped recipe ``name`` and every recipe file beside the runs (``runs/*.json``, a
    change to a shipped recipe under trial) that carries the name."""
    files = [p for p in sorted((ROOT / "runs").glob("*.json"))
             if json.loads(p.read_text()).get("name") == name]
    return [load_recipe(name)] + [load_recipe(p) for p in files]


@pytest.mark.parametrize("run", _runs_in_the_repository())
def test_a_resumed_run_rebuilds_the_same_stage_configs(run):
    """``flygnn train --out runs/<run> --resume`` reads the run's recipe.json: the running
    and finished stages' own config.json equal the configs the recipe builds today (only the
    init paths, relative in the repository, differ), and the recipe it names (shipped, or a
    trial file in ``runs/``) with the run's seed and overrides is accepted as the same
    recipe and builds the same stages."""
    out = ROOT / "runs" / run
    saved = json.loads((out / "recipe.json").read_text())
    configs = stored_configs(f"runs/{run}/recipe.json")
    for folder in sorted((out / "stages").iterdir()):
        k = int(folder.name.split("_")[0])
        (started,) = stored_configs(str((folder / "config.json").relative_to(ROOT)))
        init = {"network": {"init": started.network.init}, "decoder": {"init": started.decoder.init}}
        rebuilt = TrainConfig.from_dict(_merge_init(configs[k].to_dict(), init))
        assert rebuilt == started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        named = [_stored(r, saved["seed"], saved["overrides"])
                 for r in _recipes_named(saved["recipe"]["name"])]
        same = [s for s in named if _canonical(s) == _canonical(saved)]
    assert same, f"{run}: its recipe is neither the shipped one nor a recipe file in runs/"
    assert stage_configs(same[0]["recipe"], saved["seed"], saved["overrides"], out=out) == configs


def _merge_init(d: dict, init: dict) -> dict:
    d = json.loads(json.dumps(d))
    for section, values in init.items():
        d[section].update(values)
    return d


def test_recipes_and_the_shipped_models_use_the_new_keys():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in ("tiny", "cpu", "flyvis"):
            stage_configs(load_recipe(name))
        for path in ROOT.glob("data/models/*/config.json"):
            TrainConfig.from_json(path)


def _parameters(cls) -> dict:
    """A constructor's keyword arguments and defaults (deprecated keyword-only names left out)."""
    params = list(inspect.signature(cls).parameters.values())
    return {p.name: p.default for p in params if p.kind is p.POSITIONAL_OR_KEYWORD}


MIRRORS = [  # section, constructor, the constructor's arguments the builder sets, section extras
    (DecoderConfig, FlowDecoder, {"graph"}, {"init"}),
    (MoviesConfig, OpticFlowMovies,
     {"n_sequences", "extent", "dt", "start", "transform", "root", "cache"}, set()),
    (AugmentConfig, Augment, {"dt", "source_fps", "seed"}, set()),
]


@pytest.mark.parametrize("section, constructor, built, extra", MIRRORS,
                         ids=[m[0].__name__ for m in MIRRORS])
def test_sections_mirror_their_constructors(section, constructor, built, extra):
    params = _parameters(constructor)
    assert not built - set(params)
    fields = {f.name: f for f in dataclasses.fields(section)}
    assert set(fields) - extra == set(params) - built  # the same names
    defaults = section()
    for name in set(params) - built:  # the same defaults
        assert getattr(defaults, name) == params[name], name
    assert section.__doc__.count(constructor.__name__) >= 1  # documented there


def test_the_training_defaults_differ_from_the_constructors_in_the_crop_only():
    data = DataConfig()
    assert dataclasses.replace(data.movies, n_source_frames=19) == MoviesConfig()
    assert dataclasses.replace(data.augment, n_clip_frames=None) == AugmentConfig()
    assert (data.movies.n_source_frames, data.augment.n_clip_frames) == (25, 19)
    # a partial dict updates the training defaults, not the constructor's
    config = TrainConfig.from_dict({"data": {"movies": {"height": 60}, "augment": {"p_rot": 0.0}}})
    assert config.data.movies == dataclasses.replace(data.movies, height=60)
    assert config.data.augment == dataclasses.replace(data.augment, p_rot=0.0)
    assert config.data.movies.prior == MotionPrior()


BAD = [  # (dotted config key, value, constructor call with that value)
    ("decoder.hidden", 0, lambda g: FlowDecoder(g, hidden=0)),
    ("decoder.kernel_size", 4, lambda g: FlowDecoder(g, kernel_size=4)),
    ("decoder.input_norm", "batch", lambda g: FlowDecoder(g, input_norm="batch")),
    ("decoder.type_dropout_groups", "pairs", lambda g: FlowDecoder(g, type_dropout_groups="pairs")),
    ("decoder.norm_momentum", 0.0, lambda g: FlowDecoder(g, norm_momentum=0.0)),
    ("data.augment.p_rot", 1.5, lambda g: Augment(p_rot=1.5)),
    ("data.augment.flip_axes", [0, 5], lambda g: Augment(flip_axes=(0, 5))),
    ("data.augment.noise_std", -0.1, lambda g: Augment(noise_std=-0.1)),
    ("data.augment.n_clip_frames", 0, lambda g: Augment(n_clip_frames=0)),
    ("data.movies.height", 0, lambda g: OpticFlowMovies(1, height=0)),
    ("data.movies.n_objects", [3, 1], lambda g: OpticFlowMovies(1, n_objects=(3, 1))),
    ("data.movies.kernel_size", 0, lambda g: OpticFlowMovies(1, kernel_size=0)),
    ("data.movies.seed", -1, lambda g: OpticFlowMovies(1, seed=-1)),
    ("data.movies.prior.speed", -1.0, lambda g: MotionPrior(speed=-1.0)),
    ("data.movies.prior.contrast", [0.4, 0.2], lambda g: MotionPrior(contrast=(0.4, 0.2))),
    ("data.movies.prior.object_radius", [0.0, 10.0], lambda g: MotionPrior(object_radius=(0.0, 10.0))),
]


@pytest.mark.parametrize("key, value, build", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_checked_once_by_the_constructors_function(key, value, build, graph_small):
    """The config and the constructor give the same reason: one function checks the value,
    the config only adds the dotted field."""
    with pytest.raises(ValueError) as from_constructor:
        build(graph_small)
    with pytest.raises(ValueError) as from_config:
        TrainConfig().with_overrides([f"{key}={json.dumps(value)}"])
    argument = key.split(".")[-1]
    reason = str(from_constructor.value)
    assert reason.startswith(f"{argument} must")
    assert str(from_config.value) == f"config field {key!r}: {reason[len(argument) + 1:]}"


def test_the_trainers_own_fields_and_the_crop_are_checked_by_the_data_section():
    for override, field in (("data.n_train=0", "data.n_train"), ("data.dt=2", "data.dt"),
                            ("data.val_start=-1", "data.val_start"),
                            ("data.augment.n_clip_frames=30", "data.augment.n_clip_frames")):
        with pytest.raises(ValueError, match=f"config field '{field}'"):
            TrainConfig().with_overrides([override])
    with pytest.raises(ValueError, match="'data.augment.enabled': expected true or false"):
        TrainConfig.from_dict({"data": {"augment": {"enabled": "yes"}}})
    no_crop = TrainConfig().with_overrides(["data.augment.n_clip_frames=null"])
    assert no_crop.data.augment.n_clip_frames is None


#: every flat data key of earlier releases and where it lives now
MOVED = {"n_frames": ("augment.n_clip_frames", 7), "n_clip_frames": ("augment.n_clip_frames", 7),
         "augment": ("augment.enabled", False), "p_rot": ("augment.p_rot", 0.25),
         "p_flip": ("augment.p_flip", 0.75), "flip_axes": ("augment.flip_axes", [0, 2]),
         "contrast_std": ("augment.contrast_std", 0.3),
         "brightness_std": ("augment.brightness_std", 0.05),
         "noise_std": ("augment.noise_std", 0.01),
         "n_source_frames": ("movies.n_source_frames", 9), "height": ("movies.height", 50),
         "width": ("movies.width", 51), "seed": ("movies.seed", 3),
         "n_objects": ("movies.n_objects", [0, 2]), "ego_motion": ("movies.ego_motion", False),
         "speed": ("movies.prior.speed", 12.0), "object_speed": ("movies.prior.object_speed", 16.0),
         "texture_contrast": ("movies.prior.contrast", [0.2, 0.4])}


def _nested(dotted: dict) -> dict:
    out = {}
    for key, value in dotted.items():
        *path, leaf = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def test_old_flat_keys_move_into_the_sections_with_warnings():
    old = {k: v for k, (_, v) in MOVED.items() if k != "n_frames"}
    new = TrainConfig.from_dict({"data": _nested({path: v for path, v in MOVED.values()})})
    with pytest.warns(DeprecationWarning) as record:
        assert TrainConfig.from_dict({"data": old}) == new
    messages = " ".join(str(w.message) for w in record)
    for key, (path, _) in MOVED.items():
        if key != "n_frames":
            assert f"'data.{key}' is deprecated" in messages and f"'data.{path}'" in messages
    overrides = [f"data.{k}={json.dumps(v)}" for k, v in old.items()]
    with pytest.warns(DeprecationWarning):
        assert TrainConfig().with_overrides(overrides) == new
        assert canonical_overrides(["data.augment=false", "data.speed=3"]) == \
            ["data.augment.enabled=false", "data.movies.prior.speed=3"]
    assert canonical_overrides(['data.augment={"p_rot": 0.1}']) == ['data.augment={"p_rot": 0.1}']
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        TrainConfig.from_dict({"data": {"speed": 3.0, "movies": {"prior": {"speed": 4.0}}}})
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        TrainConfig.from_dict({"data": {"n_frames": 5, "n_clip_frames": 6}})
    with pytest.warns(DeprecationWarning):  # the same value in both places is accepted
        both = TrainConfig.from_dict({"data": {"speed": 3.0, "movies": {"prior": {"speed": 3.0}}}})
    assert both.data.movies.prior.speed == 3.0
    with pytest.warns(DeprecationWarning), \
            pytest.raises(ValueError, match="'data.movies.prior.speed': must be a finite number"):
        TrainConfig.from_dict({"data": {"speed": -1.0}})  # the error names the new field


def test_data_config_accepts_and_reads_the_old_keywords():
    with pytest.warns(DeprecationWarning) as record:
        old = DataConfig(speed=12.0, augment=False, n_frames=7, seed=2)
    assert "DataConfig: 'speed' is deprecated" in " ".join(str(w.message) for w in record)
    new = DataConfig(movies=dataclasses.replace(DataConfig().movies, seed=2,
                                                prior=MotionPrior(speed=12.0)),
                     augment=AugmentConfig(n_clip_frames=7, enabled=False))
    assert old == new
    with pytest.warns(DeprecationWarning, match="'movies.prior.contrast'"):
        assert old.texture_contrast == (0.1, 0.3)
    with pytest.warns(DeprecationWarning) as record:
        assert old.n_clip_frames == 7 and old.p_rot == 0.5
    assert len(record) == 2
    assert isinstance(old.augment, AugmentConfig)  # the flag's name is the section's now
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        DataConfig(n_frames=5, n_clip_frames=6)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        DataConfig(movies=MoviesConfig(seed=1), seed=2)
