"""The web UI over a small real repo, served by uvicorn in a thread: shared by tests/serving/test_ui.py and the
docs' screenshots (``python -m tests.support.ui_site docs/img``, which rewrites docs/img/ui-*.png)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from skewless.repo import load_objects
from skewless.scaffold import scaffold
from skewless.serving.ui.server import UIConfig, build_app
from skewless.store import FeatureStore

CHROMIUM = "/usr/bin/chromium"  # Debian's (./run installs it); Playwright's own browser download is not reachable
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
MERCHANTS = '''
import skewless as sk
from features import card
merchants = sk.FeatureView("merchants", entities=[card],
    schema=[sk.Field("card_id", sk.Int64), sk.Field("merchant_risk", sk.Float64)],
    source=sk.ParquetSource("data/merchants.parquet", timestamp_field="event_timestamp"),
    owner="risk-team", tags={"domain": "payments"}, description="merchant risk per card")
merchant_risk = sk.FeatureService("merchant_risk", features=[merchants], description="the risk model's inputs")
'''
SCREENSHOTS = {"catalogue": "/?q=fraud", "versions": "/versions", "diff": "/diff?a=1&b=2",
               "definition": "/object/feature_view/txn_stats", "models": "/models",
               "statistics": "/statistics/merchants", "lineage": "/lineage?name=feature_view/merchants"}


def transactions_repo(repo: Path, model: bool = False) -> Path:
    """The transactions template applied twice: v1 the template, v2 + a ``merchants`` view tagged domain=payments
    and its service. ``model``: also a scikit-learn model ``risk`` registered on that service (its prediction-log
    view makes registry version 3) and promoted to production."""
    scaffold(repo, template="transactions")
    store = FeatureStore(repo)
    store.apply(load_objects(repo), prune=True, message="the template")
    (repo / "merchants.py").write_text(MERCHANTS)
    store.apply(load_objects(repo), prune=True, message="add merchants")
    if model:
        from sklearn.linear_model import LogisticRegression

        from skewless.serving.artifact import package_model
        from skewless.serving.model_registry import ModelRegistry

        lr = LogisticRegression().fit([[0.1], [0.9], [0.2], [0.8]], [0, 1, 0, 1])
        art = package_model(lr, name="risk", store=store, feature_service="merchant_risk", snapshot={"merchants": 0},
                            path=repo / "models" / "risk")
        reg = ModelRegistry(store)
        reg.promote("risk", reg.register(art, message="first").version, "production")
    return repo


def merchants_rows(store: FeatureStore, n: int = 2000) -> None:
    """Rows for the ``merchants`` view (a skewed risk, 5% missing), so its statistics page has something to draw."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    risk = rng.beta(2, 5, n)
    risk[: n // 20] = np.nan
    now = pd.Timestamp.now(tz="UTC").floor("s")
    store.ingest("merchants", pd.DataFrame({"card_id": np.arange(n), "merchant_risk": risk,
                                            "event_timestamp": now - pd.to_timedelta(np.arange(n), unit="s")}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(repo: Path, tokens: tuple[str, ...] = (), endpoints=None):
    """The UI over ``repo`` on a free port (``endpoints``: a deploy target's ``endpoints``); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(UIConfig(repo=str(repo), tokens=tokens, endpoints=endpoints)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def screenshots(out: Path, work: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written = []
    repo = transactions_repo(work / "repo", model=True)
    merchants_rows(FeatureStore(repo))
    with serving(repo) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        for name, path in SCREENSHOTS.items():
            page.goto(f"{base}{path}")
            page.wait_for_load_state("load")
            target = out / f"ui-{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    written.append(monitor_screenshot(out / "ui-monitor.png", work / "credit"))
    return written


def monitor_screenshot(target: Path, repo: Path) -> Path:
    """The drift page of a model whose log holds an identical replay then one drifted feature (the known-answer
    data of tests/serving/test_monitor.py), served by a real model server."""
    from playwright.sync_api import sync_playwright

    from tests.support.monitor_site import credit_model, log_replay_then_drift

    log_replay_then_drift(credit_model(repo))
    with serving(repo) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(f"{base}/monitor/credit")
        page.locator(".skew canvas").first.wait_for(timeout=10_000)
        page.screenshot(path=str(target))
        browser.close()
    return target


if __name__ == "__main__":  # pragma: no cover - the docs' screenshots, by hand
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for f in screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"), Path(tmp)):
            print(f)
