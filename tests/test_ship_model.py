"""tools/ship_model.py: shipped model folders carry no paths of the machine that trained them."""

import importlib.util
import json
from pathlib import Path

from flygnn.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("ship_model", ROOT / "tools" / "ship_model.py")
ship_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ship_model)


def test_init_inside_the_run_is_written_relative_to_it_and_outside_kept(tmp_path):
    run = tmp_path / "run"
    outside = tmp_path / "elsewhere" / "network.pt"
    config = TrainConfig.from_dict({
        "network": {"init": str(run / "stages" / "3_refine" / "network.pt")},
        "decoder": {"init": str(outside)}})
    shipped = ship_model.relative_inits(config, run)
    assert shipped.network.init == "stages/3_refine/network.pt"
    assert shipped.decoder.init == str(outside)
    assert shipped.optim == config.optim and shipped.data == config.data
    untouched = TrainConfig.from_dict({})
    assert ship_model.relative_inits(untouched, run) == untouched


def test_shipped_model_configs_hold_no_absolute_paths():
    files = sorted((ROOT / "data" / "models").rglob("config.json"))
    assert len(files) >= 9  # flow_cpu_threshold, flow_cpu (4), flow_cpu_rewired (4)
    for file in files:
        config = json.loads(file.read_text())
        for section in ("network", "decoder"):
            init = config.get(section, {}).get("init")
            assert init is None or not Path(init).is_absolute(), (file, section, init)
