"""Smoke test of an installed flygnn wheel, run from outside the source tree (see .ci/run):
the shipped connectome, known tables and a shipped model load, and a network simulates."""

import sys
import tempfile
from pathlib import Path

import torch

import flygnn
from flygnn.analysis import known

here = Path(flygnn.__file__).resolve().parent
assert "site-packages" in here.parts, f"flygnn imported from {here}, not from the installed wheel"
with tempfile.TemporaryDirectory() as root:
    data = flygnn.FlyVisConnectome(root=root, extent=3)[0]
    assert data.num_nodes == 2345, data.num_nodes
    assert len(known.known_dsi()) > 0
    names = flygnn.available_models()
    assert names, "no shipped models in the wheel"
    model = flygnn.load_pretrained(names[0], data)
    movie = torch.rand(1, 5, 37)  # 5 frames on the 37 hexals of extent 3
    responses = flygnn.simulate(model.network, movie, dt=0.02, t_pre=0.1)
    assert responses.shape == (1, 5, 2345) and torch.isfinite(responses).all()
    ensembles = flygnn.pretrained.available_ensembles()
    for name in ensembles:  # every shipped ensemble loads with one call
        assert len(flygnn.load_ensemble(name, data=data)) >= 1, name
print(f"wheel smoke ok: flygnn from {here}; models {names}; ensembles {ensembles}",
      file=sys.stderr)
