"""Procedural optic-flow movies: exact flow fields against analytic solutions."""

import math

import numpy as np
import pytest
import torch

from flygnn.stimuli.opticflow import OpticFlowMovies
from flygnn.stimuli.render import box_centers
from flygnn.stimuli.scenes import (
    Layer,
    MotionPrior,
    MovieParams,
    _pixel_grid,
    render_movie,
    render_points,
)

H = W = 160  # BoxEye(extent=5, kernel 13) needs 131 px: no resizing, no border effects
EXTENT, K = 5, 13
SMALL = dict(height=H, width=W, extent=EXTENT)


def _centres() -> torch.Tensor:
    """Screen coordinates (x right, y up) of the hexal box centres."""
    rows, cols = box_centers(EXTENT, K)
    return torch.tensor(np.stack([cols, -rows], axis=1), dtype=torch.float64)


def _rot(phi):
    return np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])


def test_camera_translation_gives_constant_flow():
    v = (2.5, -1.25)
    movie = MovieParams((Layer(texture_seed=1, velocity=v),), H, W, n_frames=6)
    out = render_movie(movie, EXTENT, K)
    expected = torch.tensor(v, dtype=torch.float32) * K**2 / H
    assert out["flow"].shape == (6, 2, 91)
    torch.testing.assert_close(out["flow"], expected[None, :, None].expand(6, 2, 91),
                               atol=1e-5, rtol=0)
    # the luminance really moves: frame k+1 is frame k shifted, not a still image
    assert (out["lum"][1] - out["lum"][0]).abs().max() > 1e-3


def test_camera_rotation_and_expansion_give_the_affine_field():
    """flow(s) = e^e R(w) (s - v k) + v (k + 1) - s; BoxEye sum of a linear field = 169 x centre."""
    w, e, v = 0.03, -0.01, np.array([1.0, 0.5])
    movie = MovieParams((Layer(texture_seed=2, velocity=tuple(v), rotation=w, expansion=e),),
                        H, W, n_frames=4)
    out = render_movie(movie, EXTENT, K)
    s = _centres().numpy()
    for k in range(4):  # flow of luminance frame k+1 = motion from source frame k
        field = (math.exp(e) * _rot(w) @ (s - v * k).T).T + v * (k + 1) - s
        expected = torch.tensor(field.T * K**2 / H, dtype=torch.float32)
        torch.testing.assert_close(out["flow"][k], expected, atol=2e-5, rtol=1e-5)


def test_pure_rotation_is_zero_at_the_centre_hexal():
    movie = MovieParams((Layer(texture_seed=3, rotation=0.05),), H, W, n_frames=2)
    flow = render_movie(movie, EXTENT, K)["flow"]
    centre = 45  # (0, 0) at extent 5
    assert flow[:, :, centre].abs().max() < 1e-5
    s = _centres().numpy()
    expected = ((_rot(0.05) - np.eye(2)) @ s.T) * K**2 / H
    torch.testing.assert_close(flow[1], torch.tensor(expected, dtype=torch.float32), atol=2e-5,
                               rtol=1e-5)


def test_occluding_object_carries_its_own_motion():
    vo = np.array([3.0, 1.0])
    a = 40.0
    obj = Layer(texture_seed=5, position=(-10.0, 5.0), velocity=tuple(vo), radius=(a, a),
                roundness=2.0)
    movie = MovieParams((Layer(texture_seed=4), obj), H, W, n_frames=3)
    out = render_movie(movie, EXTENT, K)
    rows, cols = box_centers(EXTENT, K)
    grid = _pixel_grid(H, W).reshape(H, W, 2).numpy()
    for k in range(3):
        # independent occlusion map: the disk at its analytic centre in source frame k
        centre = np.array([-10.0, 5.0]) + vo * k
        inside = ((grid - centre) ** 2).sum(-1) <= a**2
        frac = np.array([inside[H // 2 + r - 6:H // 2 + r + 7, W // 2 + c - 6:W // 2 + c + 7].sum()
                         for r, c in zip(rows, cols)])
        expected = torch.tensor(np.outer(vo, frac) / H, dtype=torch.float32)
        torch.testing.assert_close(out["flow"][k], expected, atol=1e-5, rtol=1e-5)
        assert (frac == K**2).sum() > 5 and (frac == 0).sum() > 5  # covered and free hexals


def test_brightness_constancy_of_every_visible_point():
    """lum_{k+1}(s + flow_k(s)) == lum_k(s) wherever the same layer is visible: exact warping."""
    ego = Layer(texture_seed=6, velocity=(1.5, -0.7), rotation=0.02, expansion=0.01,
                texture_size=512)
    objects = tuple(Layer(texture_seed=7 + i, position=(30.0 * i - 30, 10.0 - 15 * i),
                          velocity=(2.0 - i, 1.0 + i), angle=0.3 * i, rotation=0.03 - 0.02 * i,
                          expansion=0.01 * (i - 1), radius=(35.0, 25.0), roundness=1.5 + i)
                    for i in range(3))
    movie = MovieParams((ego, *objects), H, W, n_frames=3)
    points = (torch.rand(4000, 2, generator=torch.Generator().manual_seed(0)) - 0.5) * 150
    now = render_points(movie, points.double(), [0.0, 1.0, 2.0])
    for k in range(2):
        later = render_points(movie, (points + now["flow"][k]).double(), [k + 1.0])
        same = later["layer"][0] == now["layer"][k]
        assert same.float().mean() > 0.8
        torch.testing.assert_close(later["lum"][0][same], now["lum"][k][same], atol=2e-4, rtol=0)
    assert set(now["layer"].unique().tolist()) == {0, 1, 2, 3}


def test_items_are_reproducible_from_seed_and_index():
    a = OpticFlowMovies(3, n_source_frames=3, seed=7, **SMALL)
    b = OpticFlowMovies(3, n_source_frames=3, seed=7, **SMALL)
    item = b[2]  # accessed first in b, after another item in a: no dependence on order
    a[0]
    for key in ("lum", "flow"):
        assert torch.equal(a[2][key], item[key])
    other = OpticFlowMovies(3, n_source_frames=3, seed=8, **SMALL)[2]
    assert not torch.equal(other["lum"], item["lum"])
    train, val = OpticFlowMovies.split(3, 2, n_source_frames=3, seed=7, **SMALL)
    assert torch.equal(train[2]["lum"], item["lum"])
    assert val.movie_params(0) == OpticFlowMovies(5, n_source_frames=3, seed=7, **SMALL).movie_params(3)
    assert val.movie_params(0) != train.movie_params(0)
    assert a.params(2).equals(b.params(2))


def test_params_frame_describes_the_movie():
    ds = OpticFlowMovies(3, n_source_frames=2, seed=1, n_objects=(2, 3), **SMALL)
    for i in range(3):
        df = ds.params(i)
        movie = ds.movie_params(i)
        assert list(df.kind) == ["background"] + ["object"] * (len(df) - 1)
        assert 3 <= len(df) <= 4
        assert df.vx.tolist() == [layer.velocity[0] for layer in movie.layers]
        assert (df.sequence == i).all() and (df.seed == 1).all()


def test_resampled_item_and_no_ego_motion():
    ds = OpticFlowMovies(1, n_source_frames=19, seed=0, n_objects=(0, 0), ego_motion=False, **SMALL)
    item = ds[0]
    assert item["lum"].shape == (40, 91) and item["flow"].shape == (40, 2, 91)
    assert item["lum"].dtype == torch.float32
    assert item["flow"].abs().max() == 0  # static background, no objects
    # a still scene: every frame the same
    assert torch.equal(item["lum"], item["lum"][:1].expand(40, 91))
    assert len(OpticFlowMovies(1, n_source_frames=19, dt=None, **SMALL)[0]["lum"]) == 19


def test_default_movies_have_natural_statistics():
    torch.manual_seed(0)
    item = OpticFlowMovies(1, n_source_frames=4, dt=None, seed=3)[0]
    assert item["lum"].shape == (4, 721)
    assert 0.15 < float(item["lum"].mean()) < 0.85
    assert 0.02 < float(item["lum"].std()) < 0.4
    speed_px = item["flow"].norm(dim=1) * 436 / 169  # back to pixels per source frame
    assert 0.2 < float(speed_px.mean()) < 15


def test_disk_cache_round_trip(tmp_path):
    a = OpticFlowMovies(2, n_source_frames=2, seed=2, root=tmp_path, **SMALL)
    first = a[1]
    files = list((tmp_path / "processed").rglob("*.pt"))
    assert len(files) == 1
    b = OpticFlowMovies(2, n_source_frames=2, seed=2, root=tmp_path, **SMALL)
    assert torch.equal(b[1]["flow"], first["flow"])
    # cached tensors are not handed out for in-place edits
    b[1]["lum"].zero_()
    assert torch.equal(b[1]["lum"], first["lum"])



def test_disk_cache_is_written_atomically(tmp_path, monkeypatch):
    import flygnn.checkpoint as checkpoint

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        OpticFlowMovies(1, n_source_frames=2, seed=2, root=tmp_path, **SMALL)[0]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial item, no temp file


def test_transform_is_applied_before_resampling():
    seen = []

    def transform(item):
        seen.append(item["lum"].shape[0])
        return {"lum": item["lum"] * 0 + 0.5, "flow": item["flow"]}

    ds = OpticFlowMovies(1, n_source_frames=5, seed=0, transform=transform, **SMALL)
    assert (ds[0]["lum"] == 0.5).all() and seen == [5]


@pytest.mark.parametrize("kwargs, match", [
    (dict(dt=0.0), "dt"),
    (dict(dt=-0.02), "dt"),
    (dict(dt=float("nan")), "dt"),
    (dict(n_source_frames=0), "n_source_frames"),
    (dict(n_objects=(3, 1)), "n_objects"),
    (dict(height=10.5), "height"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OpticFlowMovies(2, **kwargs)


def test_index_out_of_range():
    with pytest.raises(IndexError):
        OpticFlowMovies(2, **SMALL)[2]


def test_prior_is_configurable():
    slow = OpticFlowMovies(1, n_source_frames=2, dt=None, seed=0, n_objects=(0, 0), **SMALL,
                           prior=MotionPrior(speed=0.0, rotation_std=0.0, expansion_std=0.0))
    assert slow[0]["flow"].abs().max() == 0
