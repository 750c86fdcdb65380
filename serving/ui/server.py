"""Settings and the uvicorn process of ``skewless ui``."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PORT = 8890


@dataclass
class UIConfig:
    repo: str = "."
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens: tuple[str, ...] = ()  # gate the write actions; none: the UI is read-only

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

    return app_for_store(FeatureStore(cfg.repo), cfg.tokens)


def app_for_store(store, tokens: tuple[str, ...] = ()):
    """The UI over an open ``FeatureStore``: its registry, the model registry beside it, and their lineage."""
    from skewless import lineage

    from ..model_registry import ModelRegistry
    from .app import create_app
    from .catalogue import Catalogue

    models = ModelRegistry(store)
    # Model versions from the model registry; endpoints need a deploy target's cloud calls: not drawn yet.
    return create_app(Catalogue(store.registry, models), tokens,
                      lineage_graph=lambda: lineage.graph(store, models=models.records()))


def run(cfg: UIConfig) -> None:
    import uvicorn

    uvicorn.run(build_app(cfg), host=cfg.host, port=cfg.port, log_level="warning")
