"""`skewless stats VIEW --plot FILE`: the distributions as a PNG (skewless.plots, matplotlib on Agg): one panel per
feature with a chart (numbers: the KLL histogram the UI draws; strings and bools: top values), actually drawn; a
name not ending in .png is a typed error that writes nothing; a view whose features have no distribution says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from skewless.cli.main import app
from tests.core.test_statistics import batch, make


def _drawn(path) -> tuple[tuple[int, int], int]:
    img = np.asarray(Image.open(path).convert("RGB"))
    return img.shape[:2], int((img.sum(axis=2) < 600).sum())  # pixels clearly not white


def test_stats_plot_writes_a_png_with_a_panel_per_charted_feature(tmp_path):
    store = make(tmp_path)
    store.ingest("v", batch(1, 2000))
    png = tmp_path / "out" / "v.png"
    r = CliRunner().invoke(app, ["stats", "v", "--repo", str(store.repo_path), "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote" in r.output
    (h, w), dark = _drawn(png)
    # x, i (histograms), s, b (top values); t (a timestamp) has neither: 4 panels in 2 columns, 2 rows
    assert w > 900 and h > 500 and dark > 5000
    assert r.output.count("\n") > 5  # the table is still printed


def test_a_name_without_png_is_a_typed_error_and_writes_nothing(tmp_path):
    store = make(tmp_path)
    store.ingest("v", batch(1, 200))
    r = CliRunner().invoke(app, ["stats", "v", "--repo", str(store.repo_path), "--plot", str(tmp_path / "v.jpg")])
    assert r.exit_code != 0 and ".png" in r.output and not list(tmp_path.glob("v.*"))


def test_nothing_to_plot_says_so(tmp_path):
    store = make(tmp_path)
    one = batch(1, 1).assign(x=[1.0], i=[3], s=[None], b=pd.array([pd.NA], dtype="boolean"))
    store.ingest("v", one)
    r = CliRunner().invoke(app, ["stats", "v", "--repo", str(store.repo_path), "--plot", str(tmp_path / "v.png")])
    assert r.exit_code != 0 and "nothing to plot" in r.output and not (tmp_path / "v.png").exists()
    assert np.isfinite(store.get_statistics("v").features["x"].mean)
