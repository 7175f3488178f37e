"""MovingEdges / MovingBars against flyvis's fixture and the verified numbers (section 7.2)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from flygnn.stimuli import HexEye, MovingBars, MovingEdges
from flygnn.stimuli.moving import bar_image, rotate_image
from flygnn.stimuli.render import hexagon_offsets

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis" / "edges_public.npz"


@pytest.fixture(scope="module")
def default_edges():
    return MovingEdges(height=80)


def test_hexeye_pixel_counts():
    counts = HexEye().pixel_counts
    # flyvis (section 6.2, verified on CPU): 513..545 pixels, mean 530.35, centre 541.
    assert counts[360] == 541 and counts.min() == 513 and counts.max() == 545
    assert abs(counts.double().mean().item() - 530.35) < 0.005
    assert counts.sum() == 382383


def test_hexagon_offsets_float16_rotation():
    # Vertex k = (f16(cos a16), f16(sin a16)) applied k times to (f16(R), 0), a16 = f16(pi/3).
    dx, dy = hexagon_offsets(25)
    assert dx.dtype == dy.dtype == torch.float16
    assert dx.tolist() == [14.4375, 7.2265625, -7.203125, -14.4375, -7.24609375, 7.18359375,
                           14.4375]
    a16 = np.float64(np.float16(np.pi / 3))
    phi = np.arctan2(np.float64(np.float16(np.sin(a16))), np.float64(np.float16(np.cos(a16))))
    k = np.arange(7)
    expected = (np.float64(np.float16(25 / np.sqrt(3))) * np.sin(k * phi)).astype(np.float16)
    np.testing.assert_array_equal(dy.numpy(), expected)


def test_hexeye_orientation():
    eye = HexEye()
    img = np.zeros((775, 775))
    img[387 + 40, 387] = 1.0  # 40 px below centre -> hexal (2, 0)
    img[387, 387 + 40] = 1.0  # 40 px right of centre -> hexal (-1, 2)
    out = eye(img)
    from flygnn import hexgrid
    u, v = hexgrid.disk(15)
    hit = set(zip(u[out.numpy() > 0], v[out.numpy() > 0]))
    assert hit == {(2, 0), (-1, 2)}


def test_edges_match_flyvis_fixture():
    ref = np.load(REF)
    ds = MovingEdges(speeds=[13, 25], height=80)
    assert list(ds.params.columns) == list(ref["arg_cols"])
    np.testing.assert_allclose(ds.params.to_numpy(np.float64), ref["arg_df"], rtol=0, atol=1e-12)
    stim = torch.stack([ds[i] for i in range(4)]).double().numpy()
    r = ref["stimuli_first_items"]
    assert stim.shape == r.shape == (4, 525, 721)
    np.testing.assert_array_equal(np.isnan(stim), np.isnan(r))
    err = np.abs(np.nan_to_num(stim - r)).max(axis=(0, 1))
    # Every hexal agrees to float32 rounding (the hexagon masks equal flyvis's).
    assert err.max() < 1e-6


def test_default_edge_positions_verified_numbers(default_edges):
    pos = default_edges.positions
    assert pos.shape == (24, 21, 721) and pos.dtype == torch.float64
    assert abs(pos.sum().item() - 181366.2781490038) < 1e-6 * 181366.2781490038
    centre = pos[1, :, 360].numpy()  # angle 0, intensity 1
    np.testing.assert_allclose(centre, [0.5] * 9 + [0.57671, 0.78466, 0.97597] + [1.0] * 9,
                               atol=5e-6)


def test_default_edge_items_time_structure(default_edges):
    ds = default_edges
    assert len(ds) == 144 and ds.n_frames == 1078
    first_nan = []
    for i in range(6):  # angle 0, intensity 0, the six speeds
        item = ds[i]
        assert item.shape == (1078, 721) and item.dtype == torch.float32
        assert (item[:200] == 0.5).all()
        nan_rows = torch.isnan(item).all(dim=1)
        first_nan.append(int(nan_rows.float().argmax()) if nan_rows.any() else None)
    assert first_nan == [None, 739, 567, 525, 485, 465]
    assert ds.frame_indices(ds.params.t_stim[4])[200:212].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1,
                                                                      2, 2, 2]
    rotated = ds[12 + 1]  # angle 30, intensity 0, speed 4.8
    assert abs(rotated[300, 0].item() - 127 / 255) < 1e-7 or abs(rotated[300, 720].item() - 127 / 255) < 1e-7
    np.testing.assert_allclose(ds.time[[0, 200]], [-1.0, 0.0])


@pytest.mark.parametrize("cls,angles", [(MovingEdges, (0, 90)), (MovingBars, (0, 180))])
def test_positions_keep_their_size_in_degrees_on_a_smaller_eye(cls, angles):
    """Each LED step is 2.25 deg on every eye: the central ommatidium of a 37-ommatidia eye
    sees, position by position, what the central ommatidium of the 721-ommatidia eye sees."""
    kw = dict(angles=angles, intensities=(1,), speeds=(25,), offsets=(-10, 11))
    if cls is MovingBars:
        kw["widths"] = (2,)
    big, small = cls(extent=15, **kw), cls(extent=3, **kw)
    centre_big = big.positions[..., 360]
    centre_small = small.positions[..., 18]
    assert centre_big.std() > 0.1  # the edge/bar does cross the centre
    torch.testing.assert_close(centre_small, centre_big, rtol=0, atol=2e-3)


def test_stimulus_frame_counts():
    ds = MovingBars(widths=[80], height=80, angles=[0])  # grey post padding: count motion frames
    counts = [int((ds.frame_indices(t) >= 0).sum()) for t in ds.params.t_stim[:6]]
    assert counts == [678, 339, 167, 125, 85, 65]


def test_bars_defaults_and_post_padding():
    ds = MovingBars(speeds=[19], angles=[0], widths=[1])
    assert len(ds) == 2 and list(ds.params.width) == [1, 1]
    item = ds[1]  # ON bar, post pad "value" -> grey after the motion
    n = int((2 * 1.0 + ds.t_stim_of(19)) / ds.dt)
    assert item.shape == (n, 721)
    assert (item[:200] == 0.5).all() and (item[200 + 85:] == 0.5).all()
    # a 10 px bar covers part of a ~29 px hexagon: 0.5 + 0.5 * k / n_pixels
    assert 0.7 < item[200:285].max() < 0.75


def test_bar_image_extent():
    img = bar_image(775, 9, 87, 387, 387, 1.0)
    rows, cols = np.nonzero(img == 1.0)
    assert (rows.min(), rows.max()) == (343, 430) and (cols.min(), cols.max()) == (382, 391)


def test_rotation_quantises_grey():
    img = np.full((775, 775), 0.5)
    assert np.all(rotate_image(img, 90) == 127 / 255)
    assert rotate_image(img, 360) is img


def test_rejects_intensity_outside_range():
    with pytest.raises(ValueError, match="intensities"):
        MovingEdges(intensities=[0, 1.5])


def test_rejects_bad_post_pad_mode():
    with pytest.raises(ValueError, match="post_pad_mode"):
        MovingBars(post_pad_mode="reflect")


def test_rejects_nonpositive_speed():
    with pytest.raises(ValueError, match="speeds"):
        MovingBars(speeds=[0])


def test_n_ommatidia_is_a_deprecated_alias_of_extent():
    kw = dict(speeds=[19], angles=[0], widths=[1])
    with pytest.warns(DeprecationWarning, match="n_ommatidia"):
        old = MovingBars(n_ommatidia=37, **kw)
    new = MovingBars(extent=3, **kw)
    assert old.n_hexals == new.n_hexals == 37 and old.eye.n_ommatidia == 37
    torch.testing.assert_close(old[0], new[0], equal_nan=True)
    assert repr(new.eye) == "HexEye(extent=3, ppo=25)"
