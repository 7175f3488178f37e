"""Augmentations: lattice symmetries move luminance and flow consistently; resampling rules."""

import math

import numpy as np
import pytest
import torch

from flygnn import hexgrid
from flygnn.stimuli.augment import (
    Augment,
    AugmentParams,
    add_noise,
    check_item,
    contrast_brightness,
    interpolate,
    symmetry,
    temporal_crop,
)
from flygnn.stimuli.scenes import Layer, MovieParams, render_movie

EXTENT = 5
N = hexgrid.num_hexals(EXTENT)


def _xy():
    u, v = hexgrid.disk(EXTENT)
    x, y = hexgrid.to_cartesian(u, v)
    return torch.tensor(np.stack([x, y]), dtype=torch.float64)  # (2, N)


def _ramp_movie(gradient, velocity, T=4):
    """L(p, t) = g . (x_p - v t) on the hexals, with constant flow v (lattice units)."""
    xy = _xy()
    g, v = torch.tensor(gradient, dtype=torch.float64), torch.tensor(velocity, dtype=torch.float64)
    lum = torch.stack([g @ (xy - v[:, None] * t) for t in range(T)])
    flow = v[None, :, None].expand(T, 2, N).clone()
    return {"lum": lum, "flow": flow}


def _fit_motion(lum):
    """Least-squares gradient g and temporal slope of L(p, t) = g . x_p + c(t)."""
    xy = _xy()
    design = torch.cat([xy.T, torch.ones(N, 1, dtype=torch.float64)], dim=1)
    g = torch.linalg.lstsq(design, lum[0][:, None]).solution[:2, 0]
    dL = (lum[1] - lum[0]).mean()
    return g, dL


@pytest.mark.parametrize("n_rot, flip", [(n, f) for n in range(6) for f in range(4)])
def test_flow_transform_matches_the_luminance_transform(n_rot, flip):
    """For every symmetry the transformed flow still satisfies brightness constancy
    grad L' . v' + dL'/dt = 0 of the transformed movie, for two independent gradients."""
    v = (0.7, -0.3)
    for gradient in ((1.0, 0.2), (-0.3, 0.9)):
        movie = _ramp_movie(gradient, v)
        lum = symmetry(movie["lum"], n_rot, flip)
        flow = symmetry(movie["flow"], n_rot, flip, vector=True)
        g, dL = _fit_motion(lum)
        v_new = flow[0, :, 0]
        assert torch.allclose(flow, v_new[None, :, None].expand_as(flow))
        assert abs(float(g @ v_new + dL)) < 1e-6
        # and the vector is R(n 60deg) M(flip) v
        R = hexgrid.rotation_matrix(n_rot).double() @ hexgrid.flip_matrix(flip).double()
        torch.testing.assert_close(v_new, R @ torch.tensor(v, dtype=torch.float64), atol=1e-6,
                                   rtol=0)


def test_rotating_a_translation_movie_rotates_its_flow():
    """A rendered camera translation: the constant flow vector turns by n * 60 degrees."""
    vel = (2.0, 1.0)
    movie = render_movie(MovieParams((Layer(texture_seed=0, velocity=vel),), 160, 160, 3),
                         extent=EXTENT)
    base = torch.tensor(vel) * 169 / 160
    for n in range(6):
        flow = symmetry(movie["flow"], n, 0, vector=True)
        phi = math.radians(60 * n)
        expected = torch.tensor([base[0] * math.cos(phi) - base[1] * math.sin(phi),
                                 base[0] * math.sin(phi) + base[1] * math.cos(phi)])
        torch.testing.assert_close(flow, expected[None, :, None].expand_as(flow), atol=1e-5, rtol=0)
    for axis, angle in ((1, 90), (2, 150), (3, 210)):  # mirror about the axis at this angle
        flow = symmetry(movie["flow"], 0, axis, vector=True)[0, :, 0]
        a = math.radians(angle)
        d = torch.tensor([math.cos(a), math.sin(a)])
        expected = 2 * (base @ d) * d - base
        torch.testing.assert_close(flow, expected, atol=1e-5, rtol=0)


def test_six_rotations_and_double_flips_are_the_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, N, generator=g)
    y = x
    for _ in range(6):
        y = symmetry(y, 1, 0, vector=True)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)
    assert torch.equal(symmetry(x, 6, 0, vector=True), x)
    for axis in (1, 2, 3):
        torch.testing.assert_close(symmetry(symmetry(x, 0, axis, True), 0, axis, True), x,
                                   atol=1e-6, rtol=0)
    # one rotation is a permutation that moves content: (1, 0) -> (0, 1)
    u, v = hexgrid.disk(EXTENT)
    lum = torch.zeros(N)
    lum[np.flatnonzero((u == 1) & (v == 0))[0]] = 1.0
    assert symmetry(lum, 1)[np.flatnonzero((u == 0) & (v == 1))[0]] == 1.0


def test_flip_then_rotate_order():
    x = torch.rand(N, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(symmetry(x, 2, 1), symmetry(symmetry(x, 0, 1), 2, 0))


def test_photometric_formulas():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    c, b = 1.5, 0.1
    torch.testing.assert_close(contrast_brightness(x, c, b),
                               torch.clamp(c * (x - 0.5) + 0.5 + c * b, min=0))
    assert contrast_brightness(x, 3.0, -0.2)[0] == 0  # clipped at 0
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    noisy = add_noise(torch.full((200, N), 0.5), 0.08, g1)
    torch.testing.assert_close(noisy, (0.5 + 0.08 * torch.randn(200, N, generator=g2)).clamp_min(0))
    assert abs(float(noisy.std()) - 0.08) < 0.005


def test_interpolate_matches_the_flyvis_rules():
    n = 19
    lum = torch.arange(n, dtype=torch.float32)[:, None].expand(n, N)
    flow = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 2, N)
    out = interpolate({"lum": lum, "flow": flow}, dt=0.02)
    assert out["lum"].shape == (40, N) and out["flow"].shape == (40, 2, N)
    nearest = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
               12, 12, 13, 13, 14, 14, 14, 15, 15, 16, 16, 17, 17, 18, 18]
    assert out["lum"][:, 0].tolist() == nearest
    expected = torch.arange(40, dtype=torch.float32) * 18 / 39
    torch.testing.assert_close(out["flow"][:, 1, 3], expected)
    assert len(interpolate({"lum": lum}, dt=0.01)["lum"]) == 80


def test_augment_is_reproducible_and_uses_flyvis_defaults():
    aug = Augment()
    assert (aug.p_rot, aug.p_flip, aug.flip_axes) == (0.5, 0.5, (1, 2, 3))
    assert (aug.contrast_std, aug.brightness_std, aug.noise_std) == (0.2, 0.1, 0.08)
    item = _ramp_movie((1.0, 0.5), (0.5, 0.5), T=25)
    item = {k: v.float() for k, v in item.items()}
    a = Augment(n_clip_frames=19)(item, torch.Generator().manual_seed(5))
    b = Augment(n_clip_frames=19)(item, torch.Generator().manual_seed(5))
    assert a["lum"].shape == (19, N) and torch.equal(a["lum"], b["lum"])
    assert torch.equal(a["flow"], b["flow"])
    # the parameter draws cover the configured distribution
    draws = [Augment(n_clip_frames=19).sample(25, torch.Generator().manual_seed(s)) for s in range(400)]
    rot = np.array([d.n_rot for d in draws])
    flips = np.array([d.flip_axis for d in draws])
    assert 0.4 < (rot > 0).mean() < 0.6 and set(rot[rot > 0]) == {1, 2, 3, 4, 5}
    assert 0.4 < (flips > 0).mean() < 0.6 and set(flips[flips > 0]) == {1, 2, 3}
    assert abs(np.std([math.log(d.contrast) for d in draws]) - 0.2) < 0.03
    assert {d.crop_start for d in draws} == {0, 1, 2, 3, 4, 5}


def test_augment_apply_composes_the_steps():
    item = {k: v.float() for k, v in _ramp_movie((0.1, 0.05), (0.5, 0.5), T=6).items()}
    item["lum"] = item["lum"] + 0.5
    params = AugmentParams(n_rot=2, flip_axis=3, contrast=1.2, brightness=0.05, crop_start=1)
    aug = Augment(n_clip_frames=4, noise_std=0.0)
    out = aug.apply(item, params)
    lum = contrast_brightness(item["lum"][1:5], 1.2, 0.05)
    torch.testing.assert_close(out["lum"], symmetry(lum, 2, 3))
    torch.testing.assert_close(out["flow"], symmetry(item["flow"][1:5], 2, 3, vector=True))
    evaluation = Augment(n_clip_frames=4, enabled=False, dt=0.02)(item)
    torch.testing.assert_close(evaluation, interpolate(temporal_crop(item, 4), 0.02))


def _item(T=5):
    return {"lum": torch.rand(T, N), "flow": torch.rand(T, 2, N)}


def test_bad_lum_shape():
    with pytest.raises(ValueError, match="lum"):
        check_item({"lum": torch.rand(5, 2, N)})


def test_bad_hexal_count():
    with pytest.raises(ValueError, match="hexagonal lattice"):
        check_item({"lum": torch.rand(5, 100)})


def test_bad_flow_shape():
    with pytest.raises(ValueError, match="flow"):
        check_item({"lum": torch.rand(5, N), "flow": torch.rand(5, 3, N)})


def test_nan_luminance():
    item = _item()
    item["lum"][2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Augment()(item)


def test_nan_flow():
    item = _item()
    item["flow"][0, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_item(item)


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan"), float("inf")])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="dt"):
        interpolate(_item(), dt)
    with pytest.raises(ValueError, match="dt"):
        Augment(dt=dt)


def test_bad_probability_and_axes():
    with pytest.raises(ValueError, match="p_rot"):
        Augment(p_rot=1.5)
    with pytest.raises(ValueError, match="flip_axes"):
        Augment(flip_axes=(0, 4))
    with pytest.raises(ValueError, match="flip_axis"):
        symmetry(torch.rand(N), 0, 5)


def test_vector_input_needs_two_components():
    with pytest.raises(ValueError, match="vector"):
        symmetry(torch.rand(4, 3, N), 1, 0, vector=True)
