"""The UI's skew and drift page (``/monitor/{model}``) in a real headless browser, for a model with logged
predictions where the answer is known: served loans as trained, then loans with one feature shifted by +3 standard
deviations. The page marks that feature's breached metrics (and no other's), draws its skew chart (training-set
shares vs served shares) and the drift-over-time charts; the models page links to it; bad choices are 400s and an
unknown model a 404."""

from __future__ import annotations

import httpx
from playwright.sync_api import sync_playwright
from tests.serving.test_monitor import credit  # noqa: F401 - a fixture
from tests.support.monitor_site import ROWS, SHIFTED, log_replay_then_drift, serve
from tests.serving.test_serving import running
from tests.support.ui_site import ARGS, CHROMIUM, serving

from skewless.serving.server import ServeConfig

PIXELS = """(sel) => { const c = document.querySelector(sel + ' canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""


def test_drift_page_flags_the_shifted_feature_and_draws_its_charts(credit):  # noqa: F811
    repo = credit["repo"]
    log_replay_then_drift(credit)
    with serving(repo) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/models")
        page.locator("table.models a", has_text="skew and drift").first.click()
        page.wait_for_url(lambda u: "/monitor/credit" in u)
        assert "thresholds breached" in page.locator("#monitor-summary").inner_text()
        breached = {r.split("\t")[0]: r.split("\t")[-1].strip()
                    for r in page.locator("table.monitor tbody tr").all_inner_texts()}
        assert len(breached) == 11 and {f for f, b in breached.items() if b} == {SHIFTED}
        assert {"psi", "ks", "js"} <= set(breached[SHIFTED].split(", "))
        assert str(2 * ROWS) in page.locator("#monitor-summary").inner_text()
        skew = f".skew[data-feature='{SHIFTED}']"
        page.locator(skew + " canvas").wait_for(timeout=10_000)
        assert page.evaluate(PIXELS, skew) > 500
        legend = page.locator(skew + " .u-legend").inner_text()
        assert "training set" in legend and "served" in legend
        page.locator(".drift[data-metric='psi'] canvas").wait_for(timeout=10_000)
        assert page.evaluate(PIXELS, ".drift[data-metric='psi']") > 300
        assert SHIFTED in page.locator(".drift[data-metric='psi'] .u-legend").inner_text()
        browser.close()
    assert errors == []


def test_unknown_model_and_bad_choices(credit):  # noqa: F811
    with serving(credit["repo"]) as base:
        assert httpx.get(f"{base}/monitor/nope").status_code == 404
        bad = httpx.get(f"{base}/monitor/credit", params={"window": "5m"})
        assert bad.status_code == 400 and "window one of" in bad.text
        assert httpx.get(f"{base}/monitor/credit", params={"version": "x"}).status_code == 400
        assert httpx.get(f"{base}/monitor/credit", params={"version": "9"}).status_code == 404


def test_a_registry_with_training_sets_is_catalogued(credit):  # noqa: F811
    """Registered training sets (a registry kind of their own) are listed, not a crash of every catalogue page."""
    with serving(credit["repo"]) as base:
        assert httpx.get(f"{base}/").status_code == 200
        listing = httpx.get(f"{base}/training-sets")
        assert listing.status_code == 200 and "credit_train" in listing.text
        assert httpx.get(f"{base}/object/training_set/credit_train").status_code == 200
        assert httpx.get(f"{base}/versions").status_code == 200


def test_monitor_plot_draws_psi_over_windows_into_a_png(credit, tmp_path):  # noqa: F811
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from skewless.cli.main import app

    repo = str(credit["repo"])
    with running(ServeConfig(repo=repo, model="credit", stage="production", log_flush_seconds=0.2)) as (c, _):
        serve(c, credit["replay"][:600])
    png = tmp_path / "drift.png"
    r = CliRunner().invoke(app, ["monitor", "credit", "--window", "1h", "--plot", str(png), "--repo", repo])
    assert r.exit_code in (0, 1), r.output
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[1] > 600 and int((img.sum(axis=2) < 600).sum()) > 2000
    no_window = CliRunner().invoke(app, ["monitor", "credit", "--plot", str(tmp_path / "x.png"), "--repo", repo])
    assert no_window.exit_code == 2 and "--window" in no_window.output and not (tmp_path / "x.png").exists()
