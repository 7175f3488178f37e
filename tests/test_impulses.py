"""Dots / CentralImpulses / SpatialImpulses: exact item orders, frame counts and positions."""

import numpy as np
import pytest
import torch

from flygnn import hexgrid
from flygnn.stimuli import CentralImpulses, Dots, SpatialImpulses


def test_dots_defaults():
    ds = Dots()
    assert len(ds) == 1442
    assert ds.params.intensity.tolist()[:4] == [0.0, 1.0, 0.0, 1.0]
    assert ds.params.coordinate_index.tolist()[::2] == list(range(721))
    item = ds[2 * 360 + 1]  # ON dot at the centre
    assert item.shape == (1400, 721)
    assert (item[:400] == 0.5).all()
    assert (item[400:, 360] == 1).all() and int((item[400] != 0.5).sum()) == 1


def test_dots_offset_differs_from_coordinate_index():
    ds = Dots(max_extent=1)
    assert ds.params.offset.tolist()[::2] == list(range(7))
    u, v = hexgrid.disk(15)
    idx = ds.params.coordinate_index.tolist()[::2]
    assert [(u[i], v[i]) for i in idx] == list(zip(*hexgrid.disk(1)))


def test_central_impulses_analysis_setting():
    ds = CentralImpulses(t_stim=2, t_pre=1.0)
    assert len(ds) == 12
    assert ds.params.intensity.tolist() == [0.0] * 6 + [1.0] * 6
    np.testing.assert_allclose(ds.params.t_impulse[:6], [0.005, 0.02, 0.05, 0.1, 0.2, 0.3])
    for i, n_on in zip(range(6, 12), [1, 4, 10, 20, 40, 60]):
        item = ds[i]
        assert item.shape == (600, 721)
        on = torch.nonzero(item[:, 360] == 1).ravel()
        assert on.tolist() == list(range(200, 200 + n_on))
        assert (item[:, :360] == 0.5).all() and (item[:, 361:] == 0.5).all()
    assert (ds[0][200, 360] == 0).item()
    np.testing.assert_allclose(ds.time[[0, 200]], [-1.0, 0.0])


def test_spatial_impulses():
    ds = SpatialImpulses(t_stim=2, t_pre=1.0)
    assert len(ds) == 244
    row = ds.params.iloc[3]  # position 0, ON, 20 ms
    assert (row.intensity, row.t_impulse) == (1.0, 0.02)
    item = ds[3]
    k = int(row.coordinate_index)
    assert torch.nonzero(item[:, k] == 1).ravel().tolist() == list(range(200, 204))


def test_dot_radius():
    ds = Dots(dot_column_radius=2, max_extent=0)
    assert int((ds[1][-1] == 1).sum()) == 19


def test_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        Dots(mode="flash")


def test_rejects_intensity_outside_range():
    with pytest.raises(ValueError, match="intensity"):
        Dots(intensity=2.0)


def test_rejects_bad_max_extent():
    with pytest.raises(ValueError, match="max_extent"):
        Dots(max_extent=16)


def test_n_ommatidia_is_a_deprecated_alias_of_extent():
    with pytest.warns(DeprecationWarning, match="extent=3"):
        old = SpatialImpulses(t_stim=0.1, t_pre=0.05, max_extent=1, n_ommatidia=37)
    new = SpatialImpulses(t_stim=0.1, t_pre=0.05, max_extent=1, extent=3)
    assert old.n_hexals == new.n_hexals == 37 and torch.equal(old[3], new[3])
    with pytest.raises(ValueError, match="contradicts"), pytest.warns(DeprecationWarning):
        Dots(extent=4, n_ommatidia=37)
