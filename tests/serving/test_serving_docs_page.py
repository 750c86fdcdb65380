"""The /docs page in a real headless browser (Debian's chromium, driven by Playwright) with every request that
leaves localhost aborted: Swagger UI renders the model's operations from the server's own files, no request ever
tries to leave, and the page's files are behind the same token as /docs. On the code before issue 14 the page
loaded Swagger UI from a CDN: offline it stayed blank."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import sync_playwright
from tests.serving.test_serving import TOKEN, running, trained_credit

from skewless.serving.server import ServeConfig

CHROMIUM = "/usr/bin/chromium"  # Debian's (./run installs it); Playwright's own browser download is not reachable
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
LOCAL = ("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    credit = trained_credit(tmp_path_factory.mktemp("docs") / "repo", sample=2, random_state=13)
    cfg = ServeConfig(repo=str(credit["repo"]), model_dir=str(credit["artifact"].path), contract="both", token=TOKEN,
                      extra={"service": "credit_v1"})
    with running(cfg) as (client, _):
        yield str(client.base_url)


def test_swagger_ui_renders_the_models_operations_offline(server):
    requested, blocked = [], []

    def only_localhost(route):
        if urlsplit(route.request.url).hostname in LOCAL:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            # The token on every request of the page, as a user's browser extension or gateway would add it.
            context = browser.new_context(extra_http_headers={"Authorization": TOKEN})
            context.route("**/*", only_localhost)
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            assert page.goto(f"{server}/docs").status == 200
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = sorted({t.strip() for t in page.locator(".opblock-summary-path").all_inner_texts()})
            methods = sorted(t.strip() for t in page.locator(".opblock-summary-method").all_inner_texts())
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert paths == sorted(["/live", "/ready", "/metrics", "/ping", "/invocations", "/api/predict/credit_v1"])
    assert methods.count("POST") == 2 and methods.count("GET") == 5
    assert title.startswith("skewless model credit")
    assert errors == []
    assert blocked == [] and all(urlsplit(u).hostname in LOCAL for u in requested), (blocked, requested)
    assert {urlsplit(u).path for u in requested} >= {"/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css",
                                                    "/openapi.json"}


def test_the_page_files_need_the_token_as_docs_does(server):
    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"):
        assert httpx.get(f"{server}{path}").status_code == 401
        assert httpx.get(f"{server}{path}", headers={"Authorization": "nope"}).status_code == 401
    js = httpx.get(f"{server}/docs/swagger-ui-bundle.js", headers={"Authorization": f"Bearer {TOKEN}"})
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "SwaggerUIBundle" in js.text
    css = httpx.get(f"{server}/docs/swagger-ui.css", headers={"Authorization": TOKEN})
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # Only Swagger UI's two files are served there: no path into the package folder or beyond.
    for name in ("index.html", "..%2F..%2Fopenapi.py", "swagger-ui.js"):
        assert httpx.get(f"{server}/docs/{name}", headers={"Authorization": TOKEN}).status_code == 404
