"""The web UI (``skewless ui``) in a real headless browser: Debian's chromium driven by Playwright, every request
that leaves localhost aborted (the UI must work with no internet). Each page loads with no console error; search
finds a view by tag and by owner; the registry-versions chart is drawn by uPlot (a canvas with pixels on it); the
diff between two registry versions names what changed; an action without the token is refused with 401."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright
from tests.support.ui_site import ARGS, CHROMIUM, free_port, serving, transactions_repo

TOKEN = "ui-secret-token"
PAGES = ["/", "/entities", "/views", "/aggregated", "/transforms", "/services", "/training-sets", "/versions",
         "/diff?a=1&b=2", "/models", "/lineage", "/lineage?name=feature_view/merchants", "/object/feature_view/merchants",
         "/object/feature_view/txn_stats"]


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    with serving(transactions_repo(tmp_path_factory.mktemp("ui") / "repo", model=True), tokens=(TOKEN,)) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _page(browser, blocked: list, errors: list):
    context = browser.new_context(viewport={"width": 1200, "height": 800})

    def only_localhost(route):
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_localhost)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def test_every_page_loads_offline_with_no_console_error(ui, browser):
    blocked, errors = [], []
    page = _page(browser, blocked, errors)
    for path in PAGES:
        resp = page.goto(f"{ui}{path}")
        page.wait_for_load_state("load")
        assert resp.status == 200, path
        assert page.locator("h1").inner_text().strip(), path
    assert errors == [] and blocked == []


def test_search_finds_a_view_by_tag_and_by_owner(ui, browser):
    page = _page(browser, [], [])
    page.goto(f"{ui}/")
    assert page.locator("table.rows tbody tr").count() > 5  # the whole catalogue
    page.fill("input[name=q]", "domain=payments")
    page.click("button[type=submit]")
    page.wait_for_url("**/?q=domain*")
    names = [t.strip() for t in page.locator("table.rows tbody td:nth-child(2)").all_inner_texts()]
    assert names == ["merchants"]
    page.goto(f"{ui}/?q=fraud&section=views")  # the template's views tagged team=fraud, aggregated ones apart
    names = [t.strip() for t in page.locator("table.rows tbody td:nth-child(2)").all_inner_texts()]
    assert "cards" in names and "txn_stats" not in names and "merchants" not in names
    page.goto(f"{ui}/?q=risk-team")
    assert [t.strip() for t in page.locator("table.rows tbody td:nth-child(2)").all_inner_texts()] == ["merchants"]


def test_the_versions_chart_is_drawn(ui, browser):
    errors = []
    page = _page(browser, [], errors)
    page.goto(f"{ui}/versions")
    canvas = page.locator("#versions-chart canvas")
    canvas.wait_for(timeout=10_000)
    # Pixels actually drawn: count non-transparent pixels of the uPlot canvas.
    drawn = page.evaluate("""() => { const c = document.querySelector('#versions-chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert drawn > 500
    legend = page.locator("#versions-chart .u-legend").inner_text()
    assert "Feature views" in legend and "Aggregated views" in legend
    assert errors == []


def test_the_diff_between_versions_names_the_added_view(ui, browser):
    page = _page(browser, [], [])
    page.goto(f"{ui}/diff?a=1&b=2")
    assert [t.strip() for t in page.locator("ul.diff li").all_inner_texts()] == ["+ feature view merchants",
                                                                              "+ feature service merchant_risk"]
    page.goto(f"{ui}/object/feature_view/merchants")
    assert '"domain": "payments"' in page.locator("pre.spec").inner_text()


def test_models_page_lists_the_model_and_its_stage(ui, browser):
    page = _page(browser, [], [])
    page.goto(f"{ui}/models")
    rows = [t.split("\t") for t in page.locator("table.models tbody tr").all_inner_texts()]
    assert [[c.strip() for c in r] for r in rows] == [["risk", "1", "production: v1", "lineage · skew and drift · skew audit"]]
    page.locator("table.models a", has_text="lineage").click()
    page.wait_for_url(lambda url: "lineage" in url)
    assert "model/risk@1" in page.locator("h1").inner_text() + page.content()


def test_lineage_page_traces_a_view_to_its_service_and_model_and_back(ui, browser):
    """skewless.lineage drawn as edge tables: downstream of a view reaches its service and the registered model
    version; following the model's link shows, upstream, the view it reads; an unknown name is a 404."""
    page = _page(browser, [], [])
    page.goto(f"{ui}/lineage?name=feature_view/merchants")

    def rows(table: str) -> set[tuple[str, ...]]:
        return {tuple(c.strip() for c in t.split("\t")) for t in page.locator(f"table.{table} tbody tr").all_inner_texts()}
    down = rows("lineage-downstream")
    assert ("feature_service/merchant_risk", "trained_on", "model/risk@1") in down
    assert any(r[0] == "feature_view/merchants" and r[1] == "has_feature" for r in down)
    assert not rows("lineage-upstream") - {r for r in rows("lineage-upstream") if r[2] == "feature_view/merchants"}
    page.locator("table.lineage-downstream a", has_text="model/risk@1").first.click()
    page.wait_for_url(lambda url: "risk" in url)
    assert any(r[0].startswith("feature/merchants:") for r in rows("lineage-upstream"))
    assert rows("lineage-downstream") == set()  # started without a deploy target: no endpoints (tests/serving/test_ui_endpoints.py)
    missing = httpx.get(f"{ui}/lineage", params={"name": "nope"})
    assert missing.status_code == 404 and "nope" in missing.text


def test_actions_need_the_token(ui):
    assert httpx.post(f"{ui}/actions/clear-cache").status_code == 401
    assert httpx.post(f"{ui}/actions/clear-cache", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = httpx.post(f"{ui}/actions/clear-cache", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"cleared": True}
    assert httpx.get(f"{ui}/views").status_code == 200  # reading needs none
    assert httpx.get(f"{ui}/static/uplot.iife.min.js").status_code == 200
    assert httpx.get(f"{ui}/object/feature_view/nope").status_code == 404


def test_skewless_ui_command_serves_the_repo_with_tokens_from_the_environment(tmp_path):
    repo = transactions_repo(tmp_path / "repo")
    port = free_port()
    env = {**os.environ, "SKEWLESS_UI_TOKENS": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "skewless", "ui", "--repo", str(repo), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"{base}/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "registry_version": 2}
        assert "merchants" in httpx.get(f"{base}/?q=payments").text
        assert httpx.post(f"{base}/actions/clear-cache").status_code == 401
        assert httpx.post(f"{base}/actions/clear-cache", headers={"Authorization": TOKEN}).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def test_without_a_token_the_ui_is_read_only(tmp_path):
    with serving(transactions_repo(tmp_path / "repo")) as base:
        assert httpx.post(f"{base}/actions/clear-cache", headers={"Authorization": TOKEN}).status_code == 403
        assert httpx.get(f"{base}/versions").status_code == 200


def test_hostile_text_is_escaped_not_run(ui, browser):
    errors = []
    page = _page(browser, [], errors)
    page.goto(f"{ui}/object/feature_view/%3Cimg%20src%3Dx%20onerror%3D%22window.pwned%3D1%22%3E")
    page.goto(f"{ui}/?q=%3Cscript%3Ewindow.pwned%3D1%3C%2Fscript%3E")
    assert page.evaluate("() => window.pwned === undefined")
    assert "<script>window.pwned=1</script>" in page.locator("input[name=q]").input_value()
    r = httpx.get(f"{ui}/object/feature_view/%3Cb%3Ebold")
    assert r.status_code == 404 and "&lt;b&gt;bold" in r.text and "<b>bold" not in r.text
