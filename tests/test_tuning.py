"""Tuning indices: parity with the flyvis fixtures and exact synthetic cases."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flygnn.analysis import comparison, known, tuning
from flygnn.analysis.responses import Responses

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis"


def _fixture(name: str, **attrs) -> tuple[Responses, dict]:
    data = dict(np.load(REF / name))
    params = pd.DataFrame(data["arg_df"], columns=[str(c) for c in data["arg_cols"]])
    resp = Responses(
        data["central_responses"], params, float(data["dt"]), 1.0,
        [str(c) for c in data["cell_types"]], attrs=attrs,
    )
    return resp, data


def _assert_index_close(ours: np.ndarray, ref: np.ndarray, atol: float, rtol: float, floor: float):
    """Absolute tolerance everywhere and a relative one on the entries that are not tiny."""
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)
    big = np.abs(ref) > floor
    assert big.sum() > 10, "too few non-tiny entries to make the relative check meaningful"
    np.testing.assert_allclose(ours[big], ref[big], rtol=rtol, atol=0)


# --------------------------------------------------------------------------- fixture parity


def test_fri_matches_flyvis_fixture():
    resp, data = _fixture("flashes_public.npz", t_stim=1.0)
    for row, radius in enumerate(data["radii"]):
        fri = tuning.flash_response_index(resp, radius=int(radius))
        assert list(fri.index) == resp.cell_types
        _assert_index_close(fri.to_numpy(), data["fri"][row], 1e-6, 1e-4, 1e-3)


def test_edge_fixture_time_axis_and_masks():
    resp, data = _fixture("edges_public.npz", offsets=(-10, 11))
    # T = int((t_stim(13) + t_pre + t_post) / dt), t_stim(s) = 21 * 2.25 / (5.8 s)
    t_stim = 21 * 2.25 / (5.8 * np.array([13.0, 25.0]))
    assert resp.shape[2] == int((t_stim[0] + 2.0) / 0.005) == 525
    np.testing.assert_allclose(resp.params.t_stim.to_numpy()[:2], t_stim, rtol=1e-12)
    mask = tuning.time_mask(resp)
    for sample, (first, last) in zip((0, 1), ((200, 325), (200, 265))):
        np.testing.assert_array_equal(np.flatnonzero(mask[sample]), np.arange(first, last + 1))
    # speed-25 items end with NaN frames (from frame int((t_stim(25) + 2) / dt) = 465), off the mask
    nan_frames = np.flatnonzero(np.isnan(resp.responses[0, 1, :, 0]))
    np.testing.assert_array_equal(nan_frames, np.arange(465, 525))
    assert not mask[1, nan_frames].any()


def test_peak_dsi_and_preferred_direction_match_flyvis_fixture():
    resp, data = _fixture("edges_public.npz", offsets=(-10, 11))
    peak = tuning.peak_responses(resp)
    assert peak.shape == (1, 48, 65)
    np.testing.assert_allclose(peak[0], data["peak"], rtol=1e-6, atol=1e-7)
    dsi = tuning.direction_selectivity_index(resp)
    assert list(dsi.columns) == ["OFF", "ON"] and list(dsi.index) == resp.cell_types
    _assert_index_close(dsi.to_numpy().T, data["dsi"], 1e-8, 1e-4, 1e-5)
    pd_ = tuning.preferred_direction(resp)
    # directions of (numerically) isotropic cells are noise: compare where the DSI is not tiny
    diff = np.angle(np.exp(1j * (pd_.to_numpy().T - data["preferred_direction"])))
    selective = data["dsi"] > 1e-6
    assert selective.sum() > 50
    assert np.abs(diff[selective]).max() < 1e-4


def test_comparisons_on_fixture_equal_independent_recomputation():
    flashes, _ = _fixture("flashes_public.npz", t_stim=1.0)
    fri = tuning.flash_response_index(flashes)
    truth = known.known_polarity()
    expected = np.corrcoef(fri[truth.index].to_numpy(), truth.to_numpy())[0, 1]
    assert comparison.fri_correlation_to_known(fri) == pytest.approx(expected, abs=1e-12)

    edges, _ = _fixture("edges_public.npz")
    dsi = tuning.direction_selectivity_index(edges)
    types = known.known_dsi_types()
    gt = [1.0 if t.startswith(("T4", "T5")) else 0.0 for t in types]
    expected = np.corrcoef(dsi.loc[types].max(axis=1).to_numpy(), gt)[0, 1]
    assert comparison.dsi_correlation_to_known(dsi) == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------- Responses


def test_time_axis_is_k_dt_minus_t_pre_in_float64():
    params = pd.DataFrame({"a": [0, 1]})
    resp = Responses(np.zeros((2, 600, 3)), params, 1 / 200, 1.0, ["x", "y", "z"])
    assert resp.time.dtype == np.float64
    np.testing.assert_array_equal(resp.time, np.arange(600) * (1 / 200) - 1.0)
    assert resp.time[199] == -0.0050000000000000044 and resp.time[199] < -1 / 200


# --------------------------------------------------------------------------- exact synthetic cases


def _flash_responses(on, off, n_frames=600, t_pre=1.0, dt=1 / 200):
    """Two flashes (radius 6): responses (2, n_frames, n_cells) with given traces."""
    params = pd.DataFrame({"baseline": [0.5, 0.5], "intensity": [0.0, 1.0], "radius": [6, 6]})
    r = np.stack([off, on])
    cells = [f"c{i}" for i in range(r.shape[-1])]
    return Responses(r, params, dt, t_pre, cells, attrs={"t_stim": 1.0})


def test_fri_window_is_frames_200_to_400_inclusive():
    base = np.zeros((600, 4), dtype=np.float32)
    on, off = base.copy(), base.copy()
    on[199, 0] = 5.0  # before the window (time -0.005000...04 < -dt)
    on[200, 1] = 2.0  # first frame of the window
    on[400, 2] = 3.0  # last frame (time 1.0)
    on[401, 3] = 7.0  # after the window
    fri = tuning.flash_response_index(_flash_responses(on, off))
    # zero minimum -> no shift; FRI = (on - 0) / (on + 0) = 1 where the peak is inside the window
    np.testing.assert_allclose(fri.to_numpy(), [0.0, 1.0, 1.0, 0.0], atol=1e-7)


def test_fri_nonnegative_shift_adds_abs_min():
    on = np.full((600, 2), -1.0, dtype=np.float32)
    off = np.full((600, 2), -1.0, dtype=np.float32)
    on[300, 0], off[300, 0] = 1.0, 0.0  # min -1 -> on 2, off 1 -> FRI 1/3
    on[:, 1], off[:, 1] = 3.0, 2.0  # min 2 (positive) -> |min| added: on 5, off 4 -> FRI 1/9
    resp = _flash_responses(on, off)
    fri = tuning.flash_response_index(resp)
    np.testing.assert_allclose(fri.to_numpy(), [1 / 3, 1 / 9], rtol=1e-6)
    raw = tuning.flash_response_index(resp, shift_nonnegative=False)
    np.testing.assert_allclose(raw.to_numpy(), [1.0, 1 / 5], rtol=1e-6)


def _edge_responses(peaks: np.ndarray, angles=tuple(range(0, 360, 30)), speeds=(13.0, 25.0)):
    """Edges whose cell c responds with a single frame of value peaks[angle, intensity, c]."""
    rows, traces = [], []
    for a, angle in enumerate(angles):
        for i, intensity in enumerate((0, 1)):
            for speed in speeds:
                rows.append((angle, 80.0, float(intensity), 21 * 2.25 / (5.8 * speed), speed))
                trace = np.zeros((525, peaks.shape[-1]), dtype=np.float32)
                trace[250] = peaks[a, i]
                trace[100] = 9.0  # pre-stimulus frame: outside the mask, must not count
                traces.append(trace)
    params = pd.DataFrame(rows, columns=["angle", "width", "intensity", "t_stim", "speed"])
    cells = [f"c{i}" for i in range(peaks.shape[-1])]
    return Responses(np.stack(traces), params, 1 / 200, 1.0, cells, attrs={"offsets": (-10, 11)})


def test_dsi_and_preferred_direction_exact_cases():
    peaks = np.zeros((12, 2, 4))
    peaks[3, 1, 0] = 1.0  # only ON edges at 90 degrees
    peaks[:, :, 1] = 0.7  # isotropic
    peaks[0, 1, 2], peaks[6, 0, 2] = 1.0, 0.5  # ON at 0, weaker OFF at 180: shared denominator
    peaks[2, 0, 3], peaks[4, 0, 3] = 1.0, 1.0  # OFF at 60 and 120: |e^{i60} + e^{i120}| / 2
    resp = _edge_responses(peaks)
    dsi = tuning.direction_selectivity_index(resp)
    expected = np.array([[0, 1], [0, 0], [0.5, 1], [np.sqrt(3) / 2, 0]])
    np.testing.assert_allclose(dsi.to_numpy(), expected, atol=1e-12)
    pd_ = tuning.preferred_direction(resp)
    assert pd_.loc["c0", "ON"] == pytest.approx(np.pi / 2)
    assert pd_.loc["c2", "ON"] == pytest.approx(0.0) and abs(pd_.loc["c2", "OFF"]) == pytest.approx(np.pi)
    assert pd_.loc["c3", "OFF"] == pytest.approx(np.pi / 2)
    np.testing.assert_allclose(tuning.peak_responses(resp)[0, :, 1], 0.7, rtol=1e-6)


def test_peak_responses_rectify_and_normalise():
    peaks = np.zeros((12, 2, 2))
    peaks[:, :, 0] = -2.0  # negative responses: peak 0 (rectified, zeros outside the window)
    peaks[:, :, 1] = 3.0
    resp = _edge_responses(peaks)
    out = tuning.peak_responses(resp, norm=np.array([1.0, 2.0]))
    np.testing.assert_allclose(out[0, :, 0], 0.0)
    np.testing.assert_allclose(out[0, :, 1], 1.5)
    with pytest.raises(ValueError, match="norm"):
        tuning.peak_responses(resp, norm=np.ones(3))


def test_time_mask_default_speed_19_frames_200_to_285():
    params = pd.DataFrame({"speed": [19.0, 25.0]})
    resp = Responses(np.zeros((2, 700, 1)), params, 1 / 200, 1.0, ["x"])
    mask = tuning.time_mask(resp)
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), np.arange(200, 286))
    np.testing.assert_array_equal(np.flatnonzero(mask[1]), np.arange(200, 266))


def test_several_models_layouts():
    peaks = np.zeros((12, 2, 1))
    peaks[3, 1, 0] = 1.0
    one = _edge_responses(peaks)
    two = Responses(
        np.concatenate([one.responses, 0.5 * one.responses]), one.params, one.dt, one.t_pre,
        one.cell_types, model_names=["a", "b"], attrs=one.attrs,
    )
    dsi = tuning.direction_selectivity_index(two)
    assert dsi.columns.names == ["model", "intensity"]
    assert dsi.loc["c0", ("a", "ON")] == pytest.approx(1.0)
    assert dsi.loc["c0", ("b", "ON")] == pytest.approx(1.0)
    flashes = _flash_responses(np.ones((600, 3)), np.zeros((600, 3)))
    fri = tuning.flash_response_index(
        Responses(np.stack([flashes.responses[0]] * 2), flashes.params, flashes.dt, 1.0,
                  flashes.cell_types, model_names=["a", "b"], attrs=flashes.attrs)
    )
    assert list(fri.index) == ["a", "b"] and fri.shape == (2, 3)


# --------------------------------------------------------------------------- comparisons


def test_fri_correlation_perfect_and_nan_dropped():
    pol = known.polarity()
    fri = 0.3 * pol.astype(float)
    assert comparison.fri_correlation_to_known(fri) == pytest.approx(1.0)
    fri["L1"] = np.nan
    assert comparison.fri_correlation_to_known(fri) == pytest.approx(1.0)
    two = pd.DataFrame([fri, -fri], index=["a", "b"])
    np.testing.assert_allclose(comparison.fri_correlation_to_known(two).to_numpy(), [1.0, -1.0])


def test_dsi_correlation_and_missing_types():
    types = known.cell_types()
    truth = known.known_dsi()
    dsi = pd.DataFrame(0.1, index=pd.Index(types, name="cell_type"), columns=["OFF", "ON"])
    dsi.loc[truth.index[truth == 1], "ON"] = 0.8
    assert comparison.dsi_correlation_to_known(dsi) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lacks cell types"):
        comparison.dsi_correlation_to_known(dsi.drop(index="T4a"))


def test_tuning_curve_correlation_exact():
    curves = known.tuning_curves()
    types = [*curves.columns, "other"]
    peaks = np.zeros((12, 2, len(types)))
    for k, t in enumerate(curves.columns):
        intensity = 1 if t.startswith("T4") else 0
        peaks[:, intensity, k] = 2.0 * curves[t].to_numpy() + 0.1  # affine -> correlation 1
    resp = _edge_responses(peaks)
    resp.cell_types = types
    corr = comparison.correlation_to_known_tuning_curves(resp)
    np.testing.assert_allclose(corr.to_numpy(), 1.0, atol=1e-12)
    # flat responses -> NaN correlation -> 0
    flat = _edge_responses(np.ones((12, 2, len(types))))
    flat.cell_types = types
    np.testing.assert_allclose(comparison.correlation_to_known_tuning_curves(flat).to_numpy(), 0.0)


def test_angular_distance_to_known():
    truth = known.preferred_directions(radians=True)
    table = pd.DataFrame(0.0, index=pd.Index(known.cell_types(), name="cell_type"), columns=["OFF", "ON"])
    for t, angle in truth.items():
        table.loc[t, "ON" if t.startswith("T4") else "OFF"] = angle
    np.testing.assert_allclose(comparison.angular_distance_to_known(table).to_numpy(), 0.0, atol=1e-12)
    table.loc["T4a", "ON"] = -np.pi + 0.1  # known 180 deg -> distance 0.1 across the wrap
    table.loc["T5b", "OFF"] = 2 * np.pi - 0.2  # known 0 deg -> 0.2
    table.loc["T4c", "OFF"] = 1.0  # wrong intensity column is ignored
    dist = comparison.angular_distance_to_known(table)
    assert dist["T4a"] == pytest.approx(0.1) and dist["T5b"] == pytest.approx(0.2)
    assert dist["T4c"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- bad inputs


def test_fri_requires_t_stim():
    resp = _flash_responses(np.ones((600, 1)), np.zeros((600, 1)))
    resp.attrs = {}
    with pytest.raises(ValueError, match="t_stim"):
        tuning.flash_response_index(resp)


def test_fri_rejects_missing_radius():
    with pytest.raises(ValueError, match="radius=3"):
        resp = _flash_responses(np.ones((600, 1)), np.zeros((600, 1)))
        tuning.flash_response_index(resp, radius=3)


def test_dsi_rejects_incomplete_grid():
    resp = _edge_responses(np.ones((12, 2, 1)))
    with pytest.raises(ValueError, match="exactly once"):
        tuning.direction_selectivity_index(
            Responses(resp.responses[:, 1:], resp.params.iloc[1:], resp.dt, 1.0, resp.cell_types)
        )


def test_dsi_rejects_missing_column():
    resp = _edge_responses(np.ones((12, 2, 1)))
    resp.params = resp.params.drop(columns="width")
    with pytest.raises(ValueError, match="width"):
        tuning.direction_selectivity_index(resp)


def test_peak_requires_speed_column():
    resp = _flash_responses(np.ones((600, 1)), np.zeros((600, 1)))
    with pytest.raises(ValueError, match="speed"):
        tuning.peak_responses(resp)


def test_stimulus_window_rejects_bad_offsets_and_speeds():
    with pytest.raises(ValueError, match="offsets"):
        tuning.stimulus_window([13.0], (5, 5))
    with pytest.raises(ValueError, match="speeds"):
        tuning.stimulus_window([0.0], (-10, 11))


def test_indices_reject_other_inputs():
    with pytest.raises(ValueError, match="Responses, a Network"):
        tuning.flash_response_index(np.zeros((2, 600, 65)))


def test_stimulus_kwargs_only_with_a_network():
    resp = _flash_responses(np.ones((600, 1)), np.zeros((600, 1)))
    with pytest.raises(ValueError, match="only apply when given a network"):
        tuning.flash_response_index(resp, dt=0.01)
