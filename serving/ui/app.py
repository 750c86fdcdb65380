"""The web UI's routes: server-rendered pages (Jinja2) over the catalogue, a little JS, uPlot for charts.

Reading needs no token. Routes that change something (under ``/actions/``) need ``Authorization: Bearer <token>``
(or the bare token); with no token configured they are off (403), so a UI started without one is read-only.
The one action today empties the cache of parsed registry versions; the write actions to come use the same gate.

Permissions (``skewless.permissions``, ``gate``): once the registry declares any, every page but ``/health`` and
the static files needs ``view_ui`` on the project: the caller's token (``Authorization: Bearer <token>``, or the
``skewless_token`` cookie a ``?token=`` link sets) names the principal. A denial is 403 (the usual error body) and
audited; a registry without permissions is open, as before.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import threading
from pathlib import Path
from typing import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .catalogue import SECTIONS, Catalogue
from .audit_page import audit_page
from .monitor_page import monitor_page
from .stats_pages import statistics_page

HERE = Path(__file__).parent
KIND_OF_SECTION = {s: k for s, (k, _) in SECTIONS.items()}
KINDS_SHOWN = ("source", "feature_view", "aggregated_view", "transform", "feature", "feature_service",
               "training_set", "stage", "model", "endpoint")  # skewless.lineage.KINDS, in flow order


NO_TARGET = "endpoints are shown when the UI is started with a deploy target (skewless ui -t TARGET)"


def _authorized(request: Request, tokens: tuple[str, ...]) -> bool:
    got = request.headers.get("authorization", "")
    got = got[7:] if got.lower().startswith("bearer ") else got
    return any(hmac.compare_digest(got.encode(), t.encode()) for t in tokens)


TOKEN_COOKIE = "skewless_token"


def request_token(request: Request) -> str | None:
    """The caller's token: ``Authorization`` (Bearer or bare), else ``?token=``, else the cookie a link set."""
    token = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
    auth = request.headers.get("authorization", "")
    if auth:
        token = auth[7:] if auth.lower().startswith("bearer ") else auth
    return token


class _Gate:
    """ASGI middleware: ``check(token)`` (raising PermissionDenied) before every route but /health and /static."""

    def __init__(self, app, check: Callable[[str | None], None]):
        self.app, self.check = app, check

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == "/health" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        from skewless.errors import PermissionDenied

        request = Request(scope)
        given = request.query_params.get("token")
        token = request_token(request)
        try:
            self.check(token)
        except PermissionDenied as exc:
            body = {"error": "PermissionDenied", "message": str(exc).splitlines()[0]}
            await JSONResponse(body, status_code=403)(scope, receive, send)
            return
        if not given:
            await self.app(scope, receive, send)
            return

        async def send_cookie(message):  # a link with the token: kept as a cookie for the next pages
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [(b"set-cookie", (
                    f"{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/").encode())]
            await send(message)
        await self.app(scope, receive, send_cookie)


def create_app(catalogue: Catalogue, tokens: tuple[str, ...] = (), lineage_graph: Callable | None = None,
               statistics: Callable | None = None, endpoints: Callable | None = None, store=None,
               gate: Callable[[str | None], None] | None = None) -> Starlette:
    """``lineage_graph``: builds the current ``skewless.lineage.Graph`` and a note on its endpoints (None when they
    are drawn; else why not) (None: no lineage page content). ``statistics``: ``FeatureStore.get_statistics``
    (None: no statistics pages). ``endpoints``: a deploy target's endpoints and a note (None: no target), for the
    models page's endpoints and traffic splits. ``store``: the ``FeatureStore`` whose models' prediction logs the
    skew and drift pages read (None: no such pages). ``gate``: called with the caller's token before every page,
    raises PermissionDenied to refuse it (``view_ui``; None: no check)."""
    def viewer(request: Request):
        """(the caller's principal, what it may not see of personal data: ``skewless.pii.Masking``)."""
        from skewless import permissions as perms
        from skewless.pii import Masking

        state = store._registry_state() if store is not None else catalogue.registry.state()
        token = request_token(request)
        who = perms.principal_for_token(state, token) if token else None
        return who, Masking(state, who)

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)

    def page(request: Request, template: str, status: int = 200, **ctx):
        ctx.update(sections=SECTIONS, lineage=lineage_graph is not None, latest=catalogue.latest(),
                   statistics=statistics is not None)
        return templates.TemplateResponse(request, template, ctx, status_code=status)

    async def index(request: Request):
        q = request.query_params.get("q", "")
        section = request.query_params.get("section") or None
        section = section if section in SECTIONS else None
        rows = catalogue.search(q, section)
        return page(request, "catalogue.html", title="Catalogue", q=q, section=section, rows=rows)

    async def listing(request: Request):
        section = request.path_params["section"]
        if section not in SECTIONS:
            return PlainTextResponse("no such page", status_code=404)
        rows = [r for r in catalogue.rows() if r.section == section]
        return page(request, "listing.html", title=SECTIONS[section][1], section=section, rows=rows)

    async def detail(request: Request):
        kind, name = request.path_params["kind"], request.path_params["name"]
        entry = catalogue.entry(kind, name)
        if entry is None:
            return page(request, "missing.html", 404, title="Not found", what=f"{kind} {name}")
        history = catalogue.history(kind, name)
        return page(request, "detail.html", title=name, kind=kind, name=name, entry=entry, history=history)

    async def versions(request: Request):
        vs = catalogue.versions()
        # Oldest first for the chart: objects per section at each registry version.
        chart = {"x": [v["version"] for v in reversed(vs)],
                 "series": {SECTIONS[s][1]: [v["counts"][s] for v in reversed(vs)] for s in SECTIONS}}
        return page(request, "versions.html", title="Registry versions", versions=vs, chart=chart)

    async def version_diff(request: Request):
        latest = catalogue.latest()
        try:
            a = int(request.query_params.get("a", max(latest - 1, 0)))
            b = int(request.query_params.get("b", latest))
        except ValueError:
            return PlainTextResponse("a and b must be registry version numbers", status_code=400)
        known = set(catalogue.registry.store.versions()) | {0}
        if a not in known or b not in known:
            return page(request, "missing.html", 404, title="Not found", what=f"registry version {a if a not in known else b}")
        return page(request, "diff.html", title=f"Diff v{a} → v{b}", a=a, b=b, plan=catalogue.diff(a, b))

    async def models(request: Request):
        eps, note = endpoints() if endpoints is not None else (None, NO_TARGET)
        return page(request, "models.html", title="Models", models=catalogue.model_rows(),
                    have_models=catalogue.models is not None, endpoints=eps, endpoints_note=note,
                    monitor=store is not None)

    async def lineage(request: Request):
        """Both directions from one node (``?name=``: a node id, a ``view:feature`` ref or a bare name), as edge
        tables whose node ids link to their own lineage; without a name, the node counts per kind."""
        from skewless.errors import NotFoundError, ValidationError

        name = request.query_params.get("name", "").strip()
        if lineage_graph is None:
            return page(request, "lineage.html", title="Lineage", name=name)
        g, note = lineage_graph()
        counts = {k: len(g.of_kind(k)) for k in KINDS_SHOWN if g.of_kind(k)}
        if not name:
            return page(request, "lineage.html", title="Lineage", name=name, counts=counts, note=note)
        try:
            up, down = g.upstream(name).to_dict(), g.downstream(name).to_dict()
        except (NotFoundError, ValidationError) as exc:
            status = 404 if isinstance(exc, NotFoundError) else 400
            return page(request, "lineage.html", status, title="Lineage", name=name, counts=counts, error=str(exc),
                        note=note)
        return page(request, "lineage.html", title=f"Lineage of {name}", name=name, counts=counts,
                    upstream=up["edges"], downstream=down["edges"], note=note)

    async def clear_cache(request: Request):
        if not tokens:
            return JSONResponse({"error": "no token configured: the UI is read-only"}, status_code=403)
        if not _authorized(request, tokens):
            return JSONResponse({"error": "a valid token is needed"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        catalogue.clear()
        return JSONResponse({"cleared": True})

    async def health(request: Request):
        return JSONResponse({"status": "ok", "registry_version": catalogue.latest()})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Parse every registry version once in the background, so the first visit of /versions or of an object's
        # history does not pay for it (about 2-3 s for 110 versions of 1,000 views, bench/ui_bench.py).
        threading.Thread(target=catalogue.warm, name="skewless-ui-warm", daemon=True).start()
        yield

    app = Starlette(lifespan=lifespan, routes=[
        Route("/", index),
        Route("/versions", versions),
        Route("/diff", version_diff),
        Route("/models", models),
        Route("/lineage", lineage),
        Route("/health", health),
        Route("/actions/clear-cache", clear_cache, methods=["POST"]),
        Route("/object/{kind}/{name}", detail),
        *([Route("/statistics/{view}", statistics_page(page, statistics, viewer, store))] if statistics is not None
          else []),
        *([Route("/monitor/{model}", monitor_page(page, store, viewer))] if store is not None else []),
        *([Route("/audit/{model}", audit_page(page, store, viewer))] if store is not None else []),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
        Route("/{section}", listing),
    ])
    if gate is not None:
        app.add_middleware(_Gate, check=gate)
    return app
