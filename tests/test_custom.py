"""CustomMovie: Cartesian and hexal arrays, resampling, file errors and bad input."""

import importlib.util

import numpy as np
import pytest
import torch

from flygnn.stimuli import BoxEye, CustomMovie


def _video(seed=0, shape=(2, 5, 40, 50)):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_cartesian_batch_goes_through_boxeye():
    video = _video()
    ds = CustomMovie(video)
    assert len(ds) == 2 and ds[1].shape == (5, 721)
    np.testing.assert_array_equal(ds[1].numpy(), BoxEye()(video)[1].numpy())
    assert ds.params.n_source_frames.tolist() == [5, 5]


def test_single_cartesian_movie_other_boxfilter():
    video = _video(shape=(4, 30, 30))
    ds = CustomMovie(video.numpy(), boxfilter=(2, 5))
    assert len(ds) == 1
    np.testing.assert_array_equal(ds[0].numpy(), BoxEye(2, 5)(video[None])[0].numpy())


def test_hexal_movie_resampled():
    hexal = torch.arange(3.0)[:, None].expand(3, 721) / 3
    ds = CustomMovie(hexal, source_dt=0.05, dt=0.01)
    item = ds[0]
    assert item.shape == (15, 721)
    # trunc of torch's float32 linspace(0, 2, 15): k = 7 gives 0.99999994 -> 0 (numpy's
    # float32 linspace would give exactly 1.0 there)
    expected = np.array([0] * 8 + [1] * 6 + [2]) / 3
    np.testing.assert_allclose(item[:, 0].numpy(), expected, rtol=0, atol=1e-7)
    ds.dt = 0.025
    assert ds[0].shape == (6, 721)
    np.testing.assert_allclose(ds.time, np.arange(6) * 0.025)


def test_without_source_dt_frames_are_used_as_given():
    hexal = torch.rand(2, 7, 721, generator=torch.Generator().manual_seed(3))
    ds = CustomMovie(hexal, dt=0.02)
    assert torch.equal(ds[1], hexal[1]) and ds.dt == 0.02


def test_rejects_nan():
    video = _video()
    video[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        CustomMovie(video)


def test_rejects_values_outside_dynamic_range():
    with pytest.raises(ValueError, match="dynamic range"):
        CustomMovie(_video() * 2)


def test_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        CustomMovie(np.zeros((5, 100)))


def test_rejects_nonpositive_dt():
    with pytest.raises(ValueError, match="dt"):
        CustomMovie(np.zeros((5, 721)), dt=-1)


def test_rejects_nonpositive_source_dt():
    with pytest.raises(ValueError, match="source_dt"):
        CustomMovie(np.zeros((5, 721)), source_dt=0)


@pytest.mark.skipif(importlib.util.find_spec("imageio") is not None, reason="imageio installed")
def test_video_file_without_imageio_names_pip_install(tmp_path):
    path = tmp_path / "movie.mp4"
    path.write_bytes(b"not a video")
    with pytest.raises(ImportError, match="pip install imageio"):
        CustomMovie(path)


@pytest.mark.skipif(importlib.util.find_spec("imageio") is None, reason="imageio not installed")
def test_unreadable_video_file(tmp_path):
    path = tmp_path / "movie.mp4"
    path.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="movie.mp4"):
        CustomMovie(path)


@pytest.mark.skipif(importlib.util.find_spec("imageio") is None, reason="imageio not installed")
def test_missing_video_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        CustomMovie(tmp_path / "missing.mp4")
