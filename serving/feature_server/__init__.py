"""The HTTP feature server: ``feast serve``'s contract (``/get-online-features``, ``/push``) over a skewless repo,
with tokens, limits, a circuit breaker in front of the online store, Prometheus metrics and an OpenAPI document.

    skewless serve --repo REPO                       # the CLI
    skewless.serving.feature_server.serve("REPO")    # the same from Python (blocks until SIGTERM)
    create_app(FeatureStore("REPO"), FeatureServerOptions(...))   # the ASGI app, for your own server

Modules: ``app`` (routes, auth, limits, breaker, draining pushes at shutdown), ``feast_json`` (Feast's request and
answer shapes), ``openapi`` (the document; /docs reuses the model server's Swagger UI files), ``metrics``,
``server`` (settings from the environment, uvicorn).
"""

from __future__ import annotations

from .app import FeatureServerOptions, create_app
from .server import FeatureServerConfig


def serve(repo: str = ".", **settings) -> None:
    """Serve ``repo`` until SIGTERM/SIGINT: ``settings`` are ``FeatureServerConfig`` fields (host, port, tokens,
    token_file, max_body_bytes, max_entities, max_push_rows), over the environment's ``SKEWLESS_*`` variables."""
    from .server import run

    run(FeatureServerConfig.from_env(repo=repo, **settings))


__all__ = ["FeatureServerConfig", "FeatureServerOptions", "create_app", "serve"]
