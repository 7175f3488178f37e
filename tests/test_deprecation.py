"""Renamed arguments, config fields and JSON keys: each old spelling warns and gives the same
result as the new one for one release; both spellings with different values are an error."""

import json
import warnings

import pytest
import torch

from flygnn._deprecation import canonical_dict, canonical_key
from flygnn.config import DataConfig, DecoderConfig, PenaltyConfig, TrainConfig
from flygnn.recipes import _canonical, _stored, load_recipe, stage_configs
from flygnn.stimuli.augment import Augment
from flygnn.stimuli.opticflow import OpticFlowMovies
from flygnn.task import FlowDecoder, activity_penalty, zero_flow_baseline, zero_flow_error

SHIPPED = "data/models/flow_cpu_threshold/config.json"
#: old spelling -> new, as dotted config keys
OLD_KEYS = {"decoder.baseline": "decoder.input_reference",
            "optim.penalty.baseline": "optim.penalty.target",
            "data.n_frames": "data.augment.n_clip_frames"}


def _rename(d: dict, table: dict) -> dict:
    """A copy of ``d`` with the dotted keys of ``table`` renamed or moved (values kept)."""
    d = json.loads(json.dumps(d))
    for src, dst in table.items():
        *path, key = src.split(".")
        node = d
        for part in path:
            node = node[part]
        *dst_path, dst_key = dst.split(".")
        target = d
        for part in dst_path:
            target = target.setdefault(part, {})
        target[dst_key] = node.pop(key)
    return d


def test_shipped_config_and_recipes_use_the_new_keys_only():
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=DeprecationWarning, module="flygnn")
        cfg = TrainConfig.from_json(SHIPPED)
        for name in ("tiny", "cpu", "flyvis"):
            stage_configs(load_recipe(name))
    assert cfg.decoder.input_reference == "rest_positive" and cfg.optim.penalty.target == 5.0
    assert cfg.data.augment.n_clip_frames == 19


def test_old_config_file_loads_with_warnings_and_the_same_result(tmp_path):
    new = TrainConfig.from_json(SHIPPED)
    old_file = tmp_path / "config.json"
    old_file.write_text(json.dumps(_rename(new.to_dict(), {v: k for k, v in OLD_KEYS.items()})))
    assert "baseline" in old_file.read_text() and "n_clip_frames" not in old_file.read_text()
    with pytest.warns(DeprecationWarning) as record:
        old = TrainConfig.from_json(old_file)
    assert old == new
    messages = " ".join(str(w.message) for w in record)
    for src, dst in OLD_KEYS.items():
        assert f"'{src}' is deprecated" in messages and f"'{dst}'" in messages


def test_old_and_new_key_disagreeing_is_an_error():
    d = {"decoder": {"baseline": "rest", "input_reference": "none"}}
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="decoder.input_reference"):
        TrainConfig.from_dict(d)
    with pytest.warns(DeprecationWarning):  # the same value twice is accepted
        cfg = TrainConfig.from_dict({"decoder": {"baseline": "rest", "input_reference": "rest"}})
    assert cfg.decoder.input_reference == "rest"


def test_old_override_keys_warn_and_win_over_the_current_value():
    base = TrainConfig()
    with pytest.warns(DeprecationWarning, match="'decoder.baseline'"):
        old = base.with_overrides(["decoder.baseline=rest", "optim.penalty.baseline=3.5",
                                   "data.n_frames=7"])
    new = base.with_overrides(["decoder.input_reference=rest", "optim.penalty.target=3.5",
                               "data.augment.n_clip_frames=7"])
    assert old == new and new.data.augment.n_clip_frames == 7
    assert canonical_key(TrainConfig, "optim.lr_net.start") == "optim.lr_net.start"
    with pytest.raises(ValueError, match="unknown keys"):  # unknown keys still fail loudly
        base.with_overrides(["decoder.basline=rest"])


def test_config_sections_accept_and_read_the_old_field_names():
    with pytest.warns(DeprecationWarning, match="DecoderConfig: 'baseline'"):
        old = DecoderConfig(baseline="rest")
    assert old == DecoderConfig(input_reference="rest")
    with pytest.warns(DeprecationWarning, match="'input_reference'"):
        assert old.baseline == "rest"
    with pytest.warns(DeprecationWarning):
        assert PenaltyConfig(baseline=2.0) == PenaltyConfig(target=2.0)
    with pytest.warns(DeprecationWarning):
        assert DataConfig(n_frames=7).augment.n_clip_frames == 7
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        DecoderConfig(baseline="rest", input_reference="none")
    with pytest.warns(DeprecationWarning):  # the checks name the new field
        with pytest.raises(ValueError, match="data.augment.n_clip_frames"):
            TrainConfig.from_dict({"data": {"n_frames": 30}})


def test_recipe_with_old_keys_gives_the_same_stages_and_resumes_a_new_one():
    recipe = load_recipe("tiny")
    old = json.loads(json.dumps(recipe))
    old["base"]["decoder"]["baseline"] = old["base"]["decoder"].pop("input_reference")
    old["base"]["data"]["n_frames"] = old["base"]["data"].pop("augment")["n_clip_frames"]
    old["stages"][1]["config"]["data"] = {"n_frames": 2}  # old key in a stage, new in the base
    new = json.loads(json.dumps(recipe))
    new["stages"][1]["config"]["data"] = {"augment": {"n_clip_frames": 2}}
    with pytest.warns(DeprecationWarning):
        old_stages = stage_configs(old, overrides=["optim.penalty.baseline=4.0"])
    new_stages = stage_configs(new, overrides=["optim.penalty.target=4.0"])
    assert old_stages == new_stages and new_stages[1].data.augment.n_clip_frames == 2
    with pytest.warns(DeprecationWarning):
        assert _canonical(_stored(old, 0, ["optim.penalty.baseline=4.0"])) == \
            _canonical(_stored(new, 0, ["optim.penalty.target=4.0"]))
    assert canonical_dict(TrainConfig, new["base"]) == new["base"]


def test_flow_decoder_baseline_is_input_reference(graph_small):
    torch.manual_seed(0)
    new = FlowDecoder(graph_small, const_weight=None, input_reference="rest_positive").eval()
    with pytest.warns(DeprecationWarning, match="FlowDecoder: 'baseline'"):
        old = FlowDecoder(graph_small, const_weight=None, baseline="rest_positive").eval()
    old.load_state_dict(new.state_dict())
    g = torch.Generator().manual_seed(1)
    responses = torch.randn(2, 3, graph_small.num_nodes, generator=g)
    rest = torch.randn(1, graph_small.num_nodes, generator=g)
    torch.testing.assert_close(old(responses, rest), new(responses, rest), rtol=0, atol=0)
    assert not torch.equal(new(responses, rest), new(responses, rest.abs() + 10))  # rest is read
    with pytest.warns(DeprecationWarning):
        assert old.baseline == "rest_positive"
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        FlowDecoder(graph_small, baseline="rest", input_reference="rest_positive")


def test_activity_penalty_baseline_is_target():
    g = torch.Generator().manual_seed(2)
    responses = 4 * torch.rand(2, 8, 5, generator=g)
    central = torch.tensor([0, 3])
    new = activity_penalty(responses, central, target=3.0)
    with pytest.warns(DeprecationWarning, match="'target'"):
        old = activity_penalty(responses, central, baseline=3.0)
    assert float(old) == float(new) != float(activity_penalty(responses, central))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        activity_penalty(responses, central, target=2.0, baseline=3.0)


def test_zero_flow_baseline_is_zero_flow_error():
    g = torch.Generator().manual_seed(3)
    dataset = [{"flow": torch.randn(4, 2, 7, generator=g)} for _ in range(3)]
    with pytest.warns(DeprecationWarning, match="'zero_flow_error'"):
        old = zero_flow_baseline(dataset)
    new = zero_flow_error(dataset)
    assert old == new
    expected = sum(float(d["flow"].pow(2).sum(1).sqrt().mean()) for d in dataset) / 3
    assert new["epe"] == pytest.approx(expected, rel=1e-6)


def test_augment_n_frames_is_n_clip_frames():
    item = {"lum": torch.rand(10, 7), "flow": torch.rand(10, 2, 7)}
    new = Augment(n_clip_frames=4)(item, torch.Generator().manual_seed(5))
    with pytest.warns(DeprecationWarning, match="Augment: 'n_frames'"):
        aug = Augment(n_frames=4)
    old = aug(item, torch.Generator().manual_seed(5))
    assert old["lum"].shape[0] == 4 and all(torch.equal(old[k], new[k]) for k in new)
    with pytest.warns(DeprecationWarning):
        assert aug.n_frames == 4 == aug.n_clip_frames


def test_optic_flow_movies_n_frames_is_n_source_frames(tmp_path):
    kwargs = dict(height=32, width=32, extent=2, dt=None, seed=4, root=tmp_path)
    new = OpticFlowMovies(1, n_source_frames=3, **kwargs)
    with pytest.warns(DeprecationWarning, match="'n_source_frames'"):
        old = OpticFlowMovies(1, n_frames=3, **kwargs)
    assert old.folder == new.folder  # the cache key is unchanged by the rename
    assert new[0]["lum"].shape[0] == 3 and torch.equal(old[0]["lum"], new[0]["lum"])
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="contradicts"):
        OpticFlowMovies(1, n_source_frames=4, n_frames=3, **kwargs)


def test_warnings_point_at_the_callers_line(tmp_path):
    """Attributed to the first frame outside flygnn, so Python's default filter shows them."""
    old_file = tmp_path / "config.json"
    old_file.write_text(json.dumps({"decoder": {"baseline": "rest"}}))
    with pytest.warns(DeprecationWarning) as record:
        TrainConfig.from_json(old_file)
        DecoderConfig(baseline="rest")
        activity_penalty(torch.zeros(1, 4, 2), torch.tensor([0]), baseline=1.0)
    assert len(record) == 3 and all(w.filename == __file__ for w in record)


def test_old_dynamics_names_warn_and_are_the_neuron_models():
    import flygnn.dynamics as old
    from flygnn import neurons

    pairs = {"Dynamics": neurons.NeuronModel, "GradedDynamics": neurons.Graded,
             "SynapticFilterDynamics": neurons.SynapticFilter, "DYNAMICS": neurons.MODELS,
             "register_dynamics": neurons.register_model, "make_dynamics": neurons.make_model}
    for name, new in pairs.items():
        with pytest.warns(DeprecationWarning, match=f"dynamics.{name} is deprecated"):
            assert getattr(old, name) is new
    with pytest.raises(AttributeError, match="no attribute 'Dynamic'"):
        old.Dynamic  # noqa: B018
