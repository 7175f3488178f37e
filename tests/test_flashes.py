"""Flashes against the flyvis fixture and exact frame structure."""

from pathlib import Path

import numpy as np
import pytest
import torch

from flygnn.stimuli import Flashes

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis" / "flashes_public.npz"


@pytest.fixture(scope="module")
def ref():
    return np.load(REF)


def test_flashes_equal_flyvis(ref):
    ds = Flashes()
    assert list(ds.params.columns) == list(ref["arg_cols"])
    np.testing.assert_array_equal(ds.params.to_numpy(dtype=np.float64), ref["arg_df"])
    stim = ds.stack()
    assert stim.dtype == torch.float32 and stim.shape == (4, 600, 721)
    np.testing.assert_array_equal(stim.numpy(), ref["stimuli"])


def test_flash_structure_and_time_axis():
    ds = Flashes()
    item = ds[3]  # intensity 1, radius 6
    assert (item[:200] == 0.5).all() and (item[400:] == 0.5).all()
    assert int((item[200] == 1).sum()) == 127 and item[200, 360] == 1
    assert len(ds.time) == 600 and ds.time.dtype == np.float64
    assert ds.time[0] == -1.0 and ds.time[200] == 0.0


def test_dt_change_rederives_items():
    ds = Flashes()
    ds.dt = 1 / 100
    assert ds[0].shape == (300, 721)
    np.testing.assert_allclose(ds.time[[0, 100]], [-1.0, 0.0])


def test_alternations_pattern():
    ds = Flashes(alternations=(0, 1, 0, 1), t_pre=0.5, t_stim=0.25, dt=0.05, radius=(-1,))
    item = ds[1]
    assert item.shape == (10 + 5 + 10 + 5, 721)
    assert (item[10:15] == 1).all() and (item[15:25] == 0.5).all() and (item[25:] == 1).all()


def test_rejects_nonpositive_dt():
    with pytest.raises(ValueError, match="dt"):
        Flashes(dt=0)
    ds = Flashes()
    with pytest.raises(ValueError, match="dt"):
        ds.dt = -0.01


def test_rejects_bad_alternations():
    with pytest.raises(ValueError, match="alternations"):
        Flashes(alternations=(1, 0))


def test_rejects_bad_radius():
    with pytest.raises(ValueError, match="radius"):
        Flashes(radius=(-2,))


def test_index_out_of_range():
    with pytest.raises(IndexError):
        Flashes()[4]
