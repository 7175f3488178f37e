"""The layering check (tools/check_layers.py): the package passes, violations are caught."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)


def test_flygnn_has_no_upward_import_and_no_cycle():
    assert check_layers.check(ROOT / "flygnn") == []


def write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_violations_are_reported(tmp_path):
    pkg = tmp_path / "flygnn"
    write(pkg, "__init__.py", "")
    for name in ("checkpoint.py", "build.py", "plotting.py", "pretrained.py", "config.py",
                 "task.py"):
        write(pkg, name, "")
    write(pkg, "train.py", "from flygnn import plotting\n")
    write(pkg, "pretrained.py", "from flygnn import build, config, task\n")
    write(pkg, "params.py", "def f():\n    from flygnn.train import x\n")  # inside a function
    write(pkg, "flat.py", "import importlib\nm = importlib.import_module('flygnn.simulate')\n")
    write(pkg, "sparse.py", "from flygnn import linsolve\n")
    write(pkg, "linsolve.py", "from flygnn import sparse\n")  # a cycle inside the core
    errors = "\n".join(check_layers.check(pkg))
    assert "flygnn.params (core) imports flygnn.train (train)" in errors
    assert "dynamic import (import_module)" in errors
    assert "import cycle: flygnn.linsolve -> flygnn.sparse -> flygnn.linsolve" in errors
    assert "flygnn.train (train) imports flygnn.plotting (apps)" in errors
    assert "pretrained" not in errors  # loading trained models sits above train
    assert errors.count("\n") == 3
