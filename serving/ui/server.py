"""Settings and the uvicorn process of ``skewless ui``."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

DEFAULT_PORT = 8890
ENDPOINTS_TTL_S = 30.0  # a deploy target's endpoint list is a cloud call: read at most this often
log = logging.getLogger("skewless.ui")


@dataclass
class UIConfig:
    repo: str = "."
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens: tuple[str, ...] = ()  # gate the write actions; none: the UI is read-only
    endpoints: Callable[[], list] | None = None  # a deploy target's ``endpoints`` (the lineage draws them)

    @classmethod
    def from_env(cls, *, repo=None, host=None, port=None, token_file=None) -> "UIConfig":
        """Tokens from SKEWLESS_UI_TOKENS (comma-separated) or a file of one token per line, never the command line
        (it is visible to every user of the machine), as ``skewless serve`` does."""
        tokens = [t for t in os.environ.get("SKEWLESS_UI_TOKENS", "").split(",") if t.strip()]
        token_file = token_file or os.environ.get("SKEWLESS_UI_TOKEN_FILE")
        if token_file:
            with open(token_file) as f:
                tokens += [line.strip() for line in f if line.strip()]
        return cls(repo=repo or os.environ.get("SKEWLESS_REPO", "."), host=host or os.environ.get("SKEWLESS_HOST",
                   "127.0.0.1"), port=int(port or os.environ.get("SKEWLESS_UI_PORT", DEFAULT_PORT)),
                   tokens=tuple(t.strip() for t in tokens))


def build_app(cfg: UIConfig):
    from skewless.store import FeatureStore

    return app_for_store(FeatureStore(cfg.repo), cfg.tokens, endpoints=cfg.endpoints)


class CachedEndpoints:
    """A deploy target's endpoints, read at most every ``ttl`` seconds (listing them is a cloud call, and the
    lineage page is drawn on every visit). A failed read leaves the lineage drawn without endpoints and says why
    (``note``), rather than failing the page: the registry's part of the graph does not depend on the cloud."""

    def __init__(self, read: Callable[[], list], ttl: float = ENDPOINTS_TTL_S):
        self.read, self.ttl = read, ttl
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._value: list = []
        self.note: str | None = None

    def __call__(self) -> list:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                try:
                    self._value, self.note = list(self.read()), None
                except Exception as exc:  # noqa: BLE001 - any target's failure: drawn without endpoints, said why
                    log.warning("ui: reading the deploy target's endpoints failed: %s", exc)
                    self._value, self.note = [], f"endpoints unavailable: {type(exc).__name__}: {exc}"
                self._at = time.monotonic()
            return self._value


def app_for_store(store, tokens: tuple[str, ...] = (), endpoints: Callable[[], list] | None = None):
    """The UI over an open ``FeatureStore``: its registry, the model registry beside it, and their lineage, with
    the endpoints of ``endpoints`` (a deploy target's ``endpoints``; None: drawn without endpoints)."""
    from skewless import lineage

    from ..model_registry import ModelRegistry
    from .app import NO_TARGET, create_app
    from .catalogue import Catalogue

    models = ModelRegistry(store)
    cached = CachedEndpoints(endpoints) if endpoints is not None else None

    def graph():
        eps = cached() if cached is not None else ()
        return lineage.graph(store, models=models.records(), endpoints=eps), cached.note if cached else NO_TARGET
    def gate(token: str | None) -> None:
        """``view_ui`` on the project for the token's principal (PermissionDenied, audited); open registries pass."""
        from skewless import permissions as perms
        from skewless.errors import PermissionDenied

        state = store._registry_state()
        if not perms.governed(state):
            return
        who = perms.principal_for_token(state, token)
        try:
            perms.check(state, who, "view_ui", perms.PROJECT)
        except PermissionDenied as exc:
            store.audit_log.append(who, "view_ui", exc.resource, "denied", str(exc))
            raise

    return create_app(Catalogue(store.registry, models), tokens, lineage_graph=graph, gate=gate,
                      statistics=store.get_statistics, store=store,
                      endpoints=(lambda: (cached(), cached.note)) if cached is not None else None)


def run(cfg: UIConfig) -> None:
    import uvicorn

    uvicorn.run(build_app(cfg), host=cfg.host, port=cfg.port, log_level="warning")
