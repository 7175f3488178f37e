"""BoxEye / HexEye against flyvis fixtures and independent re-computations."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flygnn import hexgrid
from flygnn.stimuli.render import BoxEye, box_centers

REF = Path(__file__).resolve().parent / "fixtures" / "flyvis"


@pytest.fixture(scope="module")
def render_ref():
    path = REF / "render_public.npz"
    return np.load(path)


def _conv_reference(x: torch.Tensor, extent: int, k: int) -> torch.Tensor:
    """Zero-pad, k x k all-ones conv over the whole image, divide, sample (flyvis's recipe)."""
    B, T, H, W = x.shape
    y = F.conv2d(x.reshape(B * T, 1, H, W).double(), torch.ones(1, 1, k, k, dtype=torch.float64),
                 padding=k // 2) / k**2
    y = y.reshape(B, T, *y.shape[-2:])
    rows, cols = box_centers(extent, k)
    return y[:, :, H // 2 + rows, W // 2 + cols].float()


def test_centers_truncate_toward_zero():
    rows, cols = box_centers(15, 13)
    u, v = hexgrid.disk(15)
    i = np.flatnonzero((u == -15) & (v == 1))[0]
    assert (rows[i], cols[i]) == (-188, 13)
    assert rows.min() == -195 and rows.max() == 195 and cols.min() == -195 and cols.max() == 195
    assert BoxEye().min_frame_size == (391, 391)
    assert BoxEye(7, 9).min_frame_size == (127, 127)


def test_boxeye_big_matches_flyvis(render_ref):
    out = BoxEye()(render_ref["big"])
    assert out.dtype == torch.float32 and out.shape == (2, 3, 721)
    np.testing.assert_allclose(out.numpy(), render_ref["big_hex"][:, :, 0], atol=1e-5, rtol=0)


def test_boxeye_small_is_resized_then_matches_flyvis(render_ref):
    out = BoxEye()(torch.as_tensor(render_ref["small"]))
    np.testing.assert_allclose(out.numpy(), render_ref["small_hex"][:, :, 0], atol=1e-5, rtol=0)


def test_boxeye_other_extent_kernel_matches_flyvis(render_ref):
    out = BoxEye(extent=7, kernel_size=9)(render_ref["big"])
    assert out.shape == (2, 3, 169)
    np.testing.assert_allclose(out.numpy(), render_ref["eye7"][:, :, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("extent,k,shape", [(3, 5, (37, 41)), (2, 4, (30, 26)), (15, 13, (400, 393))])
def test_boxeye_equals_full_convolution(extent, k, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, *shape, generator=g)
    np.testing.assert_allclose(BoxEye(extent, k)(x).numpy(), _conv_reference(x, extent, k).numpy(),
                               atol=1e-6, rtol=0)


def test_sum_mode_is_mean_times_box_area(render_ref):
    x = render_ref["big"]
    np.testing.assert_allclose(BoxEye(mode="sum")(x).numpy(), 169 * BoxEye()(x).numpy(),
                               rtol=1e-6, atol=1e-5)


def test_median_mode_equals_brute_force():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 2, 21, 23, generator=g)
    out = BoxEye(extent=2, kernel_size=5, mode="median")(x)
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    rows, cols = box_centers(2, 5)
    for i, (r, c) in enumerate(zip(rows + 10, cols + 11)):
        patch = xp[:, :, r:r + 5, c:c + 5].reshape(1, 2, -1)
        np.testing.assert_array_equal(out[:, :, i].numpy(), np.median(patch, axis=-1))


def test_integer_input_and_resize_exact_size():
    x = np.full((1, 1, 50, 60), 3, dtype=np.int64)
    out = BoxEye()(x)
    # interior boxes of a constant image resized to 391 stay constant; border boxes lose pixels
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, 0, hexgrid.center_index(15)], torch.tensor(3.0))


def test_boxeye_rejects_wrong_ndim():
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        BoxEye()(np.zeros((10, 400, 400)))


def test_boxeye_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        BoxEye(mode="max")


def test_boxeye_rejects_bad_kernel():
    with pytest.raises(ValueError, match="kernel_size"):
        BoxEye(kernel_size=0)
