"""The UI's lineage with a deploy target's endpoints (``skewless ui -t TARGET``): a model version deployed on a
real local target is drawn down to its endpoint in a real browser, and back up from the endpoint to the view; the
endpoint list is read at most every ``ttl`` seconds; a target whose endpoints cannot be read leaves the page drawn
without them, saying why (the registry's part of the graph does not depend on the cloud)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pandas as pd
import pytest
from playwright.sync_api import sync_playwright
from tests.support.ui_site import ARGS, CHROMIUM, free_port, serving, transactions_repo

from skewless.serving.deploy import get_target
from skewless.serving.ui.server import CachedEndpoints
from skewless.store import FeatureStore


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui-ep")
    repo = transactions_repo(root / "repo", model=True)
    store = FeatureStore(repo)
    # the model server is ready once the online store holds rows of the model's view
    store.ingest("merchants", pd.DataFrame({"card_id": [1, 2], "merchant_risk": [0.2, 0.7],
                                            "event_timestamp": pd.Timestamp.now(tz="UTC").floor("s")}))
    target = get_target("local", store, state_dir=root / "deploy")
    target.deploy("risk", 1, "risk-ep")
    yield {"repo": repo, "state": root / "deploy", "target": target}
    for ep in target.endpoints():
        target.delete(ep.name)


def _edges(page, table: str) -> set[tuple[str, ...]]:
    return {tuple(c.strip() for c in t.split("\t")) for t in page.locator(f"table.{table} tbody tr").all_inner_texts()}


def test_skewless_ui_with_a_target_draws_the_endpoint_both_ways_in_a_browser(deployed):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "skewless", "ui", "--repo", str(deployed["repo"]), "--port",
                             str(port), "-t", "local", "-o", f"state_dir={deployed['state']}"],
                            env={**os.environ, "SKEWLESS_UI_TOKENS": ""}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/health")
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/lineage?name=feature_view/merchants")
            down = _edges(page, "lineage-downstream")
            assert ("model/risk@1", "deployed", "endpoint/risk-ep") in down
            assert page.locator("#lineage-endpoints").count() == 0  # drawn: no note about endpoints
            page.locator("table.lineage-downstream a", has_text="endpoint/risk-ep").first.click()
            page.wait_for_url(lambda url: "risk-ep" in url)
            up = _edges(page, "lineage-upstream")
            assert ("model/risk@1", "deployed", "endpoint/risk-ep") in up
            assert any(r[0] == "feature_view/merchants" for r in up)  # back up to the view the model reads
            assert _edges(page, "lineage-downstream") == set()
            # the models page: the endpoint with its traffic split
            page.goto(f"{base}/models")
            (row,) = [r.split("\t") for r in page.locator("table.endpoints tbody tr").all_inner_texts()]
            assert row[0] == "risk-ep" and row[1] == "local" and row[3] == "risk" and "(v1): 100%" in row[4]
            browser.close()
        assert errors == []
    finally:
        proc.terminate()
        proc.wait(10)


def test_without_a_target_the_page_says_how_to_draw_endpoints(deployed):
    with serving(deployed["repo"]) as base:
        page = httpx.get(f"{base}/lineage", params={"name": "model/risk@1"})
        assert page.status_code == 200 and "endpoint/risk-ep" not in page.text
        assert "skewless ui -t TARGET" in page.text
        models = httpx.get(f"{base}/models")
        assert "risk-ep" not in models.text and "skewless ui -t TARGET" in models.text


def test_a_target_that_cannot_be_read_leaves_the_graph_and_says_why(deployed, tmp_path):
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("a file where the target's state folder should be")
    broken = get_target("local", FeatureStore(deployed["repo"]), state_dir=not_a_dir)
    with pytest.raises(OSError):
        broken.endpoints()
    with serving(deployed["repo"], endpoints=broken.endpoints) as base:
        page = httpx.get(f"{base}/lineage", params={"name": "feature_view/merchants"})
        assert page.status_code == 200
        assert "model/risk@1" in page.text and "endpoint/" not in page.text
        assert "endpoints unavailable: NotADirectoryError" in page.text
        models = httpx.get(f"{base}/models")
        assert models.status_code == 200 and "endpoints unavailable: NotADirectoryError" in models.text


def test_endpoints_are_read_at_most_once_per_ttl_and_a_deploy_shows_after_it(deployed):
    calls = []

    def read():
        calls.append(1)
        return deployed["target"].endpoints()
    cached = CachedEndpoints(read, ttl=3600)
    assert [e.name for e in cached()] == ["risk-ep"] and [e.name for e in cached()] == ["risk-ep"]
    assert len(calls) == 1  # the second visit did not call the target
    fresh = CachedEndpoints(read, ttl=0)
    fresh()
    fresh()
    assert len(calls) == 3


def test_option_without_target_is_a_typed_error(deployed):
    out = subprocess.run([sys.executable, "-m", "skewless", "ui", "--repo", str(deployed["repo"]), "-o", "x=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--target" in (out.stdout + out.stderr)
