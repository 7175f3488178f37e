"""moving_edge_responses on the public network against the flyvis edge fixture (slow: rendering)."""

from pathlib import Path

import numpy as np
import pytest

from flygnn.analysis import tuning
from flygnn.analysis.runners import moving_edge_responses
from flygnn.network import Network

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis"


@pytest.mark.slow
def test_moving_edge_responses_of_public_network_match_fixture():
    """Two of the fixture's 12 angles (rendering all of them takes ~100 s on 2 cores)."""
    net = Network.from_flyvis_checkpoint(REF / "flyvis_chkpt_public.pt")
    resp = moving_edge_responses(net, speeds=(13, 25), angles=(0, 90))
    data = np.load(REF / "edges_public.npz")
    rows = np.flatnonzero(np.isin(data["arg_df"][:, 0], [0, 90]))
    np.testing.assert_allclose(resp.params.to_numpy(dtype=float), data["arg_df"][rows], rtol=1e-12)
    ref = data["central_responses"][rows]
    ours = resp.responses[0]
    # NaN padding: flyvis's NaN reaches a cell a few steps after the first NaN frame; ours at once
    first_nan = np.isnan(ref).any(axis=2).argmax(axis=1)
    for k, start in enumerate(first_nan):
        stop = start if start > 0 else ref.shape[1]
        np.testing.assert_allclose(ours[k, :stop], ref[k, :stop], rtol=0, atol=1e-5)
        assert np.isnan(ours[k, stop:]).all()
    np.testing.assert_allclose(tuning.peak_responses(resp)[0], data["peak"][rows], atol=1e-5)
