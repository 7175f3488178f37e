"""Every report figure: what it draws equals the tables it was made from, and it explains itself
(legend, axis labels with units, titles that name the model or the ensemble size)."""

import numpy as np
import pandas as pd
import pytest
import torch

from flygnn import plotting
from flygnn.analysis import known
from flygnn.analysis.report import write_report

TYPES = known.cell_types()
T4 = ["T4a", "T4b", "T4c", "T4d"]
T5 = ["T5a", "T5b", "T5c", "T5d"]


def _tables(n_models, seed):
    rng = np.random.default_rng(seed)
    names = [f"m{i}" for i in range(n_models)]
    fri = pd.DataFrame(rng.uniform(-1, 1, (n_models, 65)), columns=TYPES,
                       index=pd.Index(names, name="model"))
    dsi = rng.uniform(0, 0.3, (n_models, 65, 2))
    dsi[:, [TYPES.index(t) for t in T4], 1] = 0.7
    pdir = rng.uniform(-np.pi, np.pi, (n_models, 65, 2))
    cols = pd.Index(["OFF", "ON"], name="intensity")
    if n_models == 1:
        return (fri.iloc[0].rename("m0"), pd.DataFrame(dsi[0], index=TYPES, columns=cols),
                pd.DataFrame(pdir[0], index=TYPES, columns=cols))
    multi = pd.MultiIndex.from_product([names, ["OFF", "ON"]], names=["model", "intensity"])
    flat = lambda a: a.transpose(1, 0, 2).reshape(65, -1)  # noqa: E731
    return (fri, pd.DataFrame(flat(dsi), index=TYPES, columns=multi),
            pd.DataFrame(flat(pdir), index=TYPES, columns=multi))


@pytest.fixture
def captured(monkeypatch):
    """The figures write_report saves, by file name."""
    figures = {}
    from flygnn.plotting import _common

    finish = _common._finish

    def keep(fig, path, dpi):
        if path is not None:
            figures[path.name] = fig
        return finish(fig, path, dpi)

    monkeypatch.setattr(_common, "_finish", keep)
    return figures


def _legend_texts(ax):
    legend = ax.get_legend()
    assert legend is not None, ax.get_title()
    return [t.get_text() for t in legend.get_texts()]


def test_model_figures_show_the_model_and_its_reference_beside_it(tmp_path, captured):
    fri, dsi, pdir = _tables(1, seed=0)
    rfri, rdsi, rpd = _tables(1, seed=1)
    out = write_report(fri, dsi, pdir, out_dir=tmp_path / "r", model_name="trained",
                       reference={"name": "untrained network", "fri": rfri, "dsi": rdsi,
                                  "pd": rpd})
    assert set(captured) == {"fri.png", "dsi.png", "preferred_directions.png"}
    for name in captured:
        assert (out / name).stat().st_size > 0
    pol = pd.read_csv(out / "polarity.csv", index_col="cell_type")
    ds = pd.read_csv(out / "direction_selectivity.csv", index_col="cell_type")
    corr = pd.read_csv(out / "correlations.csv", index_col="model")
    assert list(corr.index) == ["trained", "untrained network"]

    ax = captured["fri.png"].axes[0]
    heights = [b.get_height() for b in ax.patches]
    np.testing.assert_allclose(heights, pol.fri_mean.to_numpy())  # the model alone, not a mean
    np.testing.assert_allclose(heights, fri.to_numpy())
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), rfri.to_numpy())  # reference markers
    assert "untrained network" in _legend_texts(ax) and "known ON" in _legend_texts(ax)
    assert "trained" in ax.get_title() and "FRI" in ax.get_ylabel()

    ax = captured["dsi.png"].axes[0]
    heights = np.array([b.get_height() for b in ax.patches])
    np.testing.assert_allclose(heights, np.r_[ds.dsi_on_mean, ds.dsi_off_mean])
    np.testing.assert_allclose(heights, np.r_[dsi["ON"], dsi["OFF"]])
    np.testing.assert_allclose(ax.lines[-1].get_ydata(), np.r_[rdsi["ON"], rdsi["OFF"]])
    assert {"ON edges", "OFF edges", "untrained network"} <= set(_legend_texts(ax))
    assert "DSI" in ax.get_ylabel()

    fig = captured["preferred_directions.png"]
    assert len(fig.axes) == 2
    truth = known.preferred_directions(radians=True)
    for ax, types, contrast in zip(fig.axes, (T4, T5), ("on", "off")):
        legend = _legend_texts(ax)
        assert "untrained network" in legend
        for k, t in enumerate(types):
            arrow, dashed = ax.lines[2 * k], ax.lines[2 * k + 1]
            # the arrow ends at (preferred direction, DSI) of the table
            angle = np.radians(ds.loc[t, f"pd_{contrast}_deg"])
            assert arrow.get_xdata()[1] == pytest.approx(angle)
            assert arrow.get_ydata()[1] == pytest.approx(ds.loc[t, f"dsi_{contrast}_mean"])
            assert dashed.get_xdata()[0] == pytest.approx(truth[t])
            assert dashed.get_linestyle() == "--"
            assert f"{t} (known)" in legend
            assert any(txt.get_text() == f"{t}\nknown" for txt in ax.texts)  # labelled on the plot
    assert "DSI" in fig._suptitle.get_text()


def test_ensemble_figures_say_ensemble_and_size(tmp_path, captured):
    fri, dsi, pdir = _tables(3, seed=2)
    out = write_report(fri, dsi, pdir, out_dir=tmp_path / "e")
    pol = pd.read_csv(out / "polarity.csv", index_col="cell_type")
    ds = pd.read_csv(out / "direction_selectivity.csv", index_col="cell_type")
    ax = captured["fri.png"].axes[0]
    np.testing.assert_allclose([b.get_height() for b in ax.patches], pol.fri_mean)
    assert "ensemble of 3 models" in ax.get_title()
    assert "std over 3 models" in _legend_texts(ax)
    ax = captured["dsi.png"].axes[0]
    np.testing.assert_allclose([b.get_height() for b in ax.patches],
                               np.r_[ds.dsi_on_mean, ds.dsi_off_mean])
    assert "ensemble of 3 models" in ax.get_title()
    assert "ensemble of 3 models" in captured["preferred_directions.png"]._suptitle.get_text()
    assert "An ensemble of 3 models" in (out / "summary.md").read_text()


def test_no_text_is_clipped(tmp_path, captured):
    """Every title, label and legend lies inside the saved image."""
    from PIL import Image

    fri, dsi, pdir = _tables(1, seed=3)
    write_report(fri, dsi, pdir, out_dir=tmp_path / "c", model_name="a rather long model name")
    for name, fig in captured.items():
        box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, all artists
        with Image.open(tmp_path / "c" / name) as image:
            width, height = image.size
        assert width >= box.width * fig.dpi - 1 and height >= box.height * fig.dpi - 1, name


def test_other_figures_label_their_axes(tmp_path):
    fig = plotting.hex_map(torch.arange(7.0), label="luminance (0 to 1)")
    assert fig.axes[1].get_ylabel() == "luminance (0 to 1)"  # the colour bar
    fig = plotting.traces(np.arange(5) * 0.01, np.ones((2, 5)), labels=["L1", "Mi1"])
    assert _legend_texts(fig.axes[0]) == ["L1", "Mi1"] and "(s)" in fig.axes[0].get_xlabel()
    log = pd.DataFrame({"iteration": [0, 1, 2], "loss": [3.0, 2.0, 1.0],
                        "val_epe": [np.nan, np.nan, 1.5]})
    fig = plotting.loss_curve(log)
    assert set(_legend_texts(fig.axes[0])) >= {"train l2norm", "val EPE"}


def test_ensemble_comparison_legend_covers_no_panel():
    """The legend lies outside every panel, so it hides no model, median or median index."""
    from flygnn.plotting.ensembles import ensemble_comparison

    rng = np.random.default_rng(4)
    columns = ["fri_correlation", "dsi_correlation", "task_error"]
    table = pd.DataFrame(rng.uniform(0, 1, (6, 3)), columns=columns)
    table["ensemble"] = ["true"] * 4 + ["rewired"] * 2
    # median indices at the panels' top left, where a legend inside a panel would sit
    summary = pd.DataFrame([[0.99] * 3, [0.5] * 3], columns=columns,
                           index=pd.MultiIndex.from_tuples([("true", "median_indices"),
                                                            ("rewired", "median_indices")]))
    fig = ensemble_comparison(table, summary, columns=columns)
    renderer = fig.canvas.get_renderer()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["model", "median", "median indices"]
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()
