"""resample / pad: exact index patterns and padding modes."""

import numpy as np
import pytest
import torch

from flygnn.stimuli.temporal import n_frames, pad, resample, resample_indices


def test_frame_counts_truncate():
    assert n_frames(0.25, 0.02) == 12
    speeds = [2.4, 4.8, 9.7, 13, 19, 25]
    counts = [n_frames(21 * 2.25 / (5.8 * s), 1 / 200) for s in speeds]
    assert counts == [678, 339, 167, 125, 85, 65]


def test_resample_indices_speed19():
    idx = resample_indices(21, 21 * 2.25 / (5.8 * 19), 1 / 200)
    assert len(idx) == 85
    assert idx[:12].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert idx[0] == 0 and idx[-1] == 20
    # independent float32 linspace, truncated
    ref = np.linspace(0, 20, 85, dtype=np.float32).astype(np.int64)
    assert np.abs(idx.numpy() - ref).max() <= 1


def test_resample_torch_and_numpy_agree():
    x = np.arange(5 * 3).reshape(5, 3).astype(np.float32)
    out_np = resample(x, 0.1, 0.01)
    out_t = resample(torch.as_tensor(x), 0.1, 0.01)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (10, 3)
    np.testing.assert_array_equal(out_np, out_t.numpy())
    np.testing.assert_array_equal(out_np[:, 0], 3 * np.array([0, 0, 0, 1, 1, 2, 2, 3, 3, 4]))


def test_resample_other_dim():
    x = torch.arange(4.0).reshape(1, 4)
    # linspace(0, 3, 8) = 0, .43, .86, 1.29, 1.71, 2.14, 2.57, 3 -> truncated
    assert resample(x, 8, 1, dim=1).tolist() == [[0, 0, 0, 1, 1, 2, 2, 3]]


def test_pad_value_end_and_start():
    x = torch.arange(1.0, 4.0)
    assert pad(x, 5, 1, value=0.5).tolist() == [1, 2, 3, 0.5, 0.5]
    assert pad(x, 5, 1, value=0.5, where="start").tolist() == [0.5, 0.5, 1, 2, 3]
    out = pad(x, 6, 1, value=float("nan"))
    assert torch.isnan(out[3:]).all() and out[:3].tolist() == [1, 2, 3]


def test_pad_continue_and_reflect_match_numpy():
    x = np.arange(4.0)
    np.testing.assert_array_equal(pad(x, 7, 1, mode="continue"), np.pad(x, (0, 3), mode="edge"))
    np.testing.assert_array_equal(pad(x, 7, 1, mode="continue", where="start"),
                                  np.pad(x, (3, 0), mode="edge"))
    np.testing.assert_array_equal(pad(x, 12, 1, mode="reflect"), np.pad(x, (0, 8), mode="reflect"))
    np.testing.assert_array_equal(pad(torch.as_tensor(x), 12, 1, mode="reflect", where="start").numpy(),
                                  np.pad(x, (8, 0), mode="reflect"))


def test_pad_noop_when_long_enough_and_other_dim():
    x = torch.rand(2, 5, 3)
    assert pad(x, 0.04, 0.01, dim=1) is x
    y = pad(x, 0.07, 0.01, mode="continue", dim=1)
    assert y.shape == (2, 7, 3) and torch.equal(y[:, 5], x[:, 4]) and torch.equal(y[:, 6], x[:, 4])


def test_pad_rejects_unknown_mode():
    with pytest.raises(ValueError, match="pad mode"):
        pad(np.zeros(3), 5, 1, mode="wrap")


def test_pad_rejects_unknown_where():
    with pytest.raises(ValueError, match="where"):
        pad(np.zeros(3), 5, 1, where="middle")


def test_rejects_nonpositive_dt():
    with pytest.raises(ValueError, match="dt"):
        resample(np.zeros(3), 1.0, 0.0)
