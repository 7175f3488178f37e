"""Sintel loader on a tiny fixture written in the MPI-Sintel layout with known content."""

import numpy as np
import pytest
import torch
from PIL import Image

from flygnn.stimuli.sintel import SintelFlow, read_flo, split_windows

H, W, K, EXTENT = 100, 300, 13, 3  # BoxEye(3, 13) needs 79 px: no resize at this size
CENTRE = 18  # index of (0, 0) at extent 3


def _flow_of(j):
    """Constant flow of file j (1-based), Sintel convention: pixels, y down."""
    return np.array([0.5 * j, -0.25 * j], np.float32)


def _image(scene, j):
    """Frame j (1-based): a horizontal ramp shifted per frame and scene, uint8."""
    cols = np.arange(W)
    row = np.round(cols * 0.6 + 10 * j + 20 * scene).astype(np.uint8)
    return np.repeat(row[None], H, axis=0)


def _write_flo(path, field):
    h, w, _ = field.shape
    with open(path, "wb") as f:
        np.array([202021.25], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        field.astype("<f4").tofile(f)


def _write_sintel(root, scenes=("alley_1", "cave_4"), n=5, height=H, width=W):
    for s, scene in enumerate(scenes):
        final = root / "training" / "final" / scene
        flow = root / "training" / "flow" / scene
        final.mkdir(parents=True)
        flow.mkdir(parents=True)
        for j in range(1, n + 1):
            img = _image(s, j)[:height, :width] if height <= H else np.resize(_image(s, j),
                                                                            (height, width))
            Image.fromarray(img).convert("RGB").save(final / f"frame_{j:04d}.png")
            if j < n:
                _write_flo(flow / f"frame_{j:04d}.flo",
                           np.broadcast_to(_flow_of(j), (height, width, 2)).copy())
    return root


@pytest.fixture()
def sintel(tmp_path):
    return _write_sintel(tmp_path)


def test_split_windows_flyvis_numbers():
    assert split_windows(716, 3, 417) == [(0, 417), (149, 566), (298, 715)]
    assert split_windows(210, 3, 105) == [(0, 105), (52, 157), (104, 209)]
    assert split_windows(100, 3, 417) == [(0, 100)]
    assert split_windows(716, 1, 417) == [(0, 716)]


def test_read_flo_round_trip(tmp_path):
    field = np.random.default_rng(0).standard_normal((7, 9, 2)).astype(np.float32)
    _write_flo(tmp_path / "a.flo", field)
    assert np.array_equal(read_flo(tmp_path / "a.flo"), field)


def test_sequences_names_and_split(sintel):
    ds = SintelFlow(sintel, n_clip_frames=4, dt=None, extent=EXTENT)
    assert len(ds) == 6
    assert ds.names[:3] == [f"sequence_00_alley_1_split_{j:02d}" for j in range(3)]
    assert ds.names[3] == "sequence_01_cave_4_split_00"
    train, val = ds.original_split()
    assert train == [0, 1, 2] and val == [3]  # cave_4 splits 1 and 2 dropped, as flyvis


def test_luminance_crop_splits_and_frame_pairing(sintel):
    """Hexal (0,0) = box mean around the window centre of frame k+2 (independent numpy)."""
    ds = SintelFlow(sintel, n_clip_frames=4, dt=None, extent=EXTENT)
    crop_left = (W - int(0.7 * W)) // 2  # 45
    for index in range(6):
        scene, split = divmod(index, 3)
        start = crop_left + [0, 52, 104][split]
        item = ds[index]
        assert item["lum"].shape == (4, 37) and item["flow"].shape == (4, 2, 37)
        for k in range(4):
            img = _image(scene, k + 2).astype(np.float32) / np.float32(255)
            c = start + 105 // 2
            box = img[H // 2 - 6:H // 2 + 7, c - 6:c + 7]
            assert abs(float(item["lum"][k, CENTRE]) - float(box.mean())) < 1e-6


def test_flow_scaled_flipped_and_summed(sintel):
    ds = SintelFlow(sintel, n_clip_frames=4, dt=None, extent=EXTENT)
    item = ds[1]
    for k in range(4):  # luminance frame k+2 pairs with flow file k+1
        fx, fy = _flow_of(k + 1)
        expected = torch.tensor([fx / H * K**2, -fy / H * K**2], dtype=torch.float32)
        torch.testing.assert_close(item["flow"][k], expected[:, None].expand(2, 37), atol=1e-6,
                                   rtol=1e-6)


def test_resampling_and_transform(sintel):
    ds = SintelFlow(sintel, n_clip_frames=4, dt=1 / 48, extent=EXTENT)
    item = ds[0]
    assert item["lum"].shape == (8, 37)  # ceil(48 / 24 * 4)
    raw = SintelFlow(sintel, n_clip_frames=4, dt=None, extent=EXTENT)[0]
    assert torch.equal(item["lum"][::2], raw["lum"]) and torch.equal(item["lum"][1::2], raw["lum"])
    seen = []
    ds = SintelFlow(sintel, n_clip_frames=4, dt=None, extent=EXTENT,
                    transform=lambda it: seen.append(len(it["lum"])) or it)
    ds[0]
    assert seen == [4]  # the transform sees the whole scene (and crops it itself)


def test_small_frames_are_resized_by_boxeye(tmp_path):
    root = _write_sintel(tmp_path, scenes=("alley_2",), n=3, height=60, width=80)
    ds = SintelFlow(root, n_clip_frames=2, dt=None)  # extent 15: frames resized to 391 x 391
    assert len(ds) == 1 and ds[0]["lum"].shape == (2, 721)
    fx, fy = _flow_of(2)
    expected = torch.tensor([fx / 60 * K**2, -fy / 60 * K**2])
    interior = ds[0]["flow"][1][:, 360]
    torch.testing.assert_close(interior, expected, atol=1e-4, rtol=1e-4)


def test_short_scenes_are_skipped(sintel):
    ds = SintelFlow(sintel, n_clip_frames=None, dt=None, extent=EXTENT)
    assert ds[0]["lum"].shape[0] == 4
    with pytest.raises(ValueError, match="no scene"):
        SintelFlow(sintel, n_clip_frames=5, extent=EXTENT)


def test_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="Sintel folder not found"):
        SintelFlow(tmp_path / "nowhere")


def test_bad_flo_tag(sintel):
    path = sintel / "training" / "flow" / "alley_1" / "frame_0002.flo"
    raw = bytearray(path.read_bytes())
    raw[:4] = np.array([1.0], "<f4").tobytes()
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="frame_0002.flo.*tag"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT)


def test_truncated_flo(sintel):
    path = sintel / "training" / "flow" / "cave_4" / "frame_0003.flo"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="frame_0003.flo.*malformed"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT)


def test_flo_size_mismatch(sintel):
    _write_flo(sintel / "training" / "flow" / "alley_1" / "frame_0001.flo",
               np.zeros((H, W - 1, 2), np.float32))
    with pytest.raises(ValueError, match="frame_0001.flo"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT)


def test_unreadable_png(sintel):
    (sintel / "training" / "final" / "alley_1" / "frame_0003.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="frame_0003.png"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT)


def test_missing_flow_files(sintel):
    (sintel / "training" / "flow" / "cave_4" / "frame_0004.flo").unlink()
    with pytest.raises(ValueError, match="cave_4"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT)


def test_bad_dt_and_unknown_scene(sintel):
    with pytest.raises(ValueError, match="dt"):
        SintelFlow(sintel, dt=0.0, extent=EXTENT)
    with pytest.raises(ValueError, match="scenes"):
        SintelFlow(sintel, n_clip_frames=4, extent=EXTENT, scenes=["temple_9"])


def test_n_frames_is_a_deprecated_alias_of_n_clip_frames(sintel):
    new = SintelFlow(sintel, n_clip_frames=2, dt=None, extent=EXTENT)
    with pytest.warns(DeprecationWarning, match="'n_frames' is deprecated.*'n_clip_frames'"):
        old = SintelFlow(sintel, n_frames=2, dt=None, extent=EXTENT)
    assert old.n_clip_frames == 2 and torch.equal(old[0]["lum"], new[0]["lum"])
    with pytest.warns(DeprecationWarning):
        assert old.n_frames == 2
    with pytest.warns(DeprecationWarning):  # None still means the whole scene, as before
        whole = SintelFlow(sintel, n_frames=None, dt=None, extent=EXTENT)
    assert whole.n_clip_frames is None and whole[0]["lum"].shape[0] == 4
