"""Figures: each saves a PNG and shows the values it was given."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from flygnn import hexgrid, plotting
from flygnn.analysis import known


def test_hex_map_values_positions_and_png(tmp_path):
    values = np.linspace(-1, 1, 721)
    fig = plotting.hex_map(values, path=tmp_path / "map.png", title="ramp")
    assert (tmp_path / "map.png").stat().st_size > 1000
    coll = fig.axes[0].collections[0]
    np.testing.assert_array_equal(coll.get_array(), values)
    assert coll.get_clim() == (-1.0, 1.0)
    # each hexagon is centred on hexgrid.to_cartesian and its neighbours touch (circumradius 1)
    u, v = hexgrid.disk(15)
    x, y = hexgrid.to_cartesian(u, v)
    centres = np.array([p.vertices[:6].mean(axis=0) for p in coll.get_paths()])
    np.testing.assert_allclose(centres, np.stack([x, y], axis=1), atol=1e-9)


def test_hex_map_small_lattice_with_coordinates():
    u, v = hexgrid.disk(1)
    fig = plotting.hex_map(np.arange(7.0), u=u, v=v, cmap="viridis", colorbar=False)
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_array(), np.arange(7.0))


def test_hex_map_rejects_length_mismatch():
    with pytest.raises(ValueError, match="equal lengths"):
        plotting.hex_map(np.zeros(7), u=np.zeros(6), v=np.zeros(7))


def test_traces_lines_hold_the_data(tmp_path):
    t = np.arange(50) * 0.01
    data = np.stack([np.sin(t), np.cos(t)])
    fig = plotting.traces(t, data, labels=["sin", "cos"], path=tmp_path / "t.png")
    assert (tmp_path / "t.png").exists()
    lines = fig.axes[0].lines
    np.testing.assert_array_equal(lines[1].get_xdata(), t)
    np.testing.assert_array_equal(lines[1].get_ydata(), np.cos(t))
    with pytest.raises(ValueError, match="frames"):
        plotting.traces(t, np.zeros((2, 49)))


def test_index_bars_coloured_by_known_polarity(tmp_path):
    values = pd.Series([0.5, -0.2, 0.1], index=["L5", "Mi9", "Mi2"])
    fig = plotting.index_bars(values, known.polarity(), path=tmp_path / "fri.png")
    assert (tmp_path / "fri.png").exists()
    bars = fig.axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], values.to_numpy())
    colours = [to_hex(b.get_facecolor()) for b in bars]
    assert colours == [plotting.POLARITY_COLORS[p] for p in (1, -1, 0)]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["L5", "Mi9", "Mi2"]


def test_dsi_bars_heights(tmp_path):
    dsi = pd.DataFrame({"OFF": [0.1, 0.7], "ON": [0.6, 0.2]}, index=["T4a", "T5a"])
    fig = plotting.dsi_bars(dsi, path=tmp_path / "dsi.png")
    heights = [b.get_height() for b in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [0.6, 0.2, 0.1, 0.7])  # ON bars, then OFF bars
    assert (tmp_path / "dsi.png").exists()
    with pytest.raises(ValueError, match="intensity columns"):
        plotting.dsi_bars(dsi[["OFF"]])


def test_polar_tuning_closed_curves(tmp_path):
    curves = known.tuning_curves()
    fig = plotting.polar_tuning(curves.index, curves, path=tmp_path / "polar.png")
    assert fig.axes[0].name == "polar" and (tmp_path / "polar.png").exists()
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), np.radians(list(range(0, 360, 30)) + [0]))
    np.testing.assert_allclose(line.get_ydata(), list(curves["T4a"]) + [curves["T4a"].iloc[0]])
    norm = plotting.polar_tuning([0, 90, 180], np.array([[1.0, 2.0, 4.0]]), normalize=True)
    np.testing.assert_allclose(norm.axes[0].lines[0].get_ydata(), [0.25, 0.5, 1.0, 0.25])


def test_direction_arrows(tmp_path):
    angles = pd.Series([0.5, 2.0], index=["T4a", "T4b"])
    fig = plotting.direction_arrows(angles, known.preferred_directions(radians=True),
                                    path=tmp_path / "pd.png")
    lines = fig.axes[0].lines
    np.testing.assert_allclose(lines[0].get_xdata(), [0.5, 0.5])  # T4a arrow
    np.testing.assert_allclose(lines[1].get_xdata(), [np.pi, np.pi])  # T4a reference (180 deg)
    assert (tmp_path / "pd.png").exists()


def test_connectivity_matrix_image(tmp_path):
    m = pd.DataFrame([[1.0, 0.0], [10.0, np.nan]], index=["A", "B"], columns=["A", "B"])
    fig = plotting.connectivity_matrix(m, log=True, path=tmp_path / "c.png")
    arr = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(arr.filled(np.nan), [[0.0, np.nan], [1.0, np.nan]])
    assert (tmp_path / "c.png").exists()
    with pytest.raises(ValueError, match="DataFrame"):
        plotting.connectivity_matrix(np.eye(2))


def test_no_pyplot_and_no_matplotlib_at_import():
    code = (
        "import sys, numpy as np\n"
        "import flygnn.plotting as p\n"
        "assert 'matplotlib' not in sys.modules\n"
        "p.hex_map(np.zeros(19))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
