"""Gratings on hexal centres: period, direction and drift speed checked exactly."""

import math

import numpy as np
import pytest

from flygnn import hexgrid
from flygnn.stimuli import Gratings
from flygnn.stimuli.gratings import hexal_degrees


def test_hexal_degrees_neighbour_spacing():
    x, y = hexal_degrees()
    u, v = hexgrid.disk(15)
    c, right = 360, int(np.flatnonzero((u == -1) & (v == 2))[0])  # (-1, 2): 2 columns right
    assert abs(x[right] - x[c] - 3 * 5.8 / math.sqrt(3)) < 1e-12 and abs(y[right] - y[c]) < 1e-12
    down = int(np.flatnonzero((u == 1) & (v == 0))[0])
    assert abs(math.hypot(x[down] - x[c], y[down] - y[c]) - 5.8) < 1e-12 and y[down] < 0


def test_sine_grating_values_and_structure():
    ds = Gratings(angles=[0], periods=[20.0], temporal_frequencies=[2.0], waveforms=["sine"],
                  contrasts=[0.5], t_pre=0.5, t_stim=1.0, t_post=0.25, dt=0.01)
    item = ds[0].numpy()
    assert item.shape == (175, 721) and (item[:50] == 0.5).all() and (item[150:] == 0.5).all()
    x, _ = hexal_degrees()
    k = 7
    expected = 0.5 + 0.25 * np.sin(2 * np.pi * (x / 20.0 - 2.0 * k * 0.01))
    np.testing.assert_allclose(item[50 + k], expected, atol=1e-6)
    np.testing.assert_allclose(ds.time[[0, 50]], [-0.5, 0.0])


def test_drift_is_a_translation_by_speed_times_time():
    # 90 deg (upward): after 1 / f seconds the pattern repeats; after half a period it inverts.
    ds = Gratings(angles=[90], periods=[30.0], temporal_frequencies=[1.0], waveforms=["sine"],
                  t_pre=0, t_stim=1.0, t_post=0, dt=0.05)
    item = ds[0].numpy() - 0.5
    np.testing.assert_allclose(item[10], -item[0], atol=1e-6)  # t = 0.5 s, half a cycle
    assert ds.params.speed[0] == 30.0


def test_square_wave_levels_and_speed_argument():
    ds = Gratings(angles=[0, 45], periods=[40.0], speeds=[20.0], t_pre=0, t_post=0, t_stim=0.1,
                  dt=0.05)
    assert ds.params.temporal_frequency.tolist() == [0.5, 0.5]
    item = ds[1].numpy()
    assert set(np.unique(item)) == {0.0, 1.0}
    x, y = hexal_degrees()
    d = (x + y) * math.cos(math.pi / 4)
    np.testing.assert_array_equal(item[0], np.where(np.sin(2 * np.pi * d / 40) >= 0, 1.0, 0.0))


def test_rejects_contrast_outside_range():
    with pytest.raises(ValueError, match="contrasts"):
        Gratings(contrasts=[1.5])


def test_rejects_bad_waveform():
    with pytest.raises(ValueError, match="waveforms"):
        Gratings(waveforms=["triangle"])


def test_rejects_nonpositive_period():
    with pytest.raises(ValueError, match="periods"):
        Gratings(periods=[0])
