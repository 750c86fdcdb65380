"""The UI's statistics page in a real headless browser: a view's write-time statistics at a history version (the
counts exactly as written, the quantiles from the stored sketch), each number feature's histogram drawn by uPlot
with as many estimated rows as values, a string feature's top values; an unknown view or version is a 404, a
version written without statistics a 404 that says so, a bad version a 400."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from playwright.sync_api import sync_playwright
from tests.support.ui_site import ARGS, CHROMIUM, serving, transactions_repo

import httpx

from skewless.store import FeatureStore

ROWS = 500


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = transactions_repo(tmp_path_factory.mktemp("ui-stats") / "repo")
    store = FeatureStore(repo)
    rng = np.random.default_rng(7)
    risk = rng.normal(0.5, 0.1, ROWS)
    risk[:25] = np.nan  # 5% missing
    now = pd.Timestamp.now(tz="UTC").floor("s")
    first = store.ingest("merchants", pd.DataFrame({"card_id": np.arange(ROWS), "merchant_risk": risk,
                                                    "event_timestamp": now - pd.to_timedelta(np.arange(ROWS),
                                                                                             unit="s")}))
    # a second append, written with statistics off: its version has none
    cfg = repo / "skewless.yaml"
    doc = yaml.safe_load(cfg.read_text())
    cfg.write_text(yaml.safe_dump({**doc, "statistics": False}))
    second = FeatureStore(repo).ingest("merchants", pd.DataFrame({"card_id": [1], "merchant_risk": [0.9],
                                                                  "event_timestamp": [now]}))
    cfg.write_text(yaml.safe_dump(doc))
    return {"path": repo, "with": first.version, "without": second.version}


def test_statistics_page_shows_exact_counts_and_draws_each_histogram(repo):
    store = FeatureStore(repo["path"])
    v1 = store.get_statistics("merchants", repo["with"])
    with serving(repo["path"]) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{base}/object/feature_view/merchants")
        page.locator("#statistics-link").click()
        page.wait_for_url(lambda u: "/statistics/merchants" in u)
        # the newest version was written with statistics off: the page says so (a 404), and offers a version
        assert "statistics" in page.locator("#statistics-error").inner_text().lower()
        assert errors and all("/statistics/merchants" in e or "Failed to load resource" in e for e in errors)
        errors.clear()
        page.fill("input[name=version]", str(repo["with"]))
        page.click("form.search button")
        page.wait_for_url(lambda u: f"version={repo['with']}" in u)
        cells = {r.split("\t")[0]: r.split("\t") for r in page.locator("table.statistics tbody tr").all_inner_texts()}
        risk = cells["merchant_risk"]
        assert risk[2] == str(ROWS) and risk[3] == "5.00%"  # count and null rate, exact
        assert float(risk[5]) == pytest.approx(v1.features["merchant_risk"].quantile(0.5), rel=1e-5)
        canvas = page.locator(".histogram[data-feature='merchant_risk'] canvas")
        canvas.wait_for(timeout=10_000)
        drawn = page.evaluate("""() => { const c = document.querySelector(".histogram[data-feature='merchant_risk'] canvas");
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
        assert drawn > 500
        browser.close()
    assert errors == []


def test_histogram_holds_every_value_once():
    from skewless.plots import histogram

    class F:  # the statistics of 1..1000 as the store would return them, the sketch a real KLL sketch
        import datasketches as ds
        kll = ds.kll_doubles_sketch(200)
        for v in range(1, 1001):
            kll.update(float(v))
        name, count, nulls, min, max = "x", 1010, 10, 1.0, 1000.0
    h = histogram(F)
    assert len(h["x"]) == len(h["series"]["rows"]) == 30
    assert sum(h["series"]["rows"]) == pytest.approx(1000, abs=1)
    assert h["x"][0] > 1.0 and h["x"][-1] < 1000.0


def test_missing_views_versions_and_statistics_are_clear_errors(repo):
    with serving(repo["path"]) as base:
        assert httpx.get(f"{base}/statistics/nope").status_code == 404
        bad = httpx.get(f"{base}/statistics/merchants", params={"version": "x"})
        assert bad.status_code == 400 and "version" in bad.text
        none = httpx.get(f"{base}/statistics/merchants", params={"version": str(repo["without"])})
        assert none.status_code == 404 and "statistics" in none.text.lower()
        assert httpx.get(f"{base}/statistics/merchants", params={"version": "99"}).status_code == 404
