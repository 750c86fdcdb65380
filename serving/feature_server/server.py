"""Running the feature server: settings from the environment (checked at startup, one ConfigError naming each bad
variable), the tokens, and uvicorn with the model server's one-write-per-answer protocol (``http_protocol``).

    SKEWLESS_REPO                 the feature repo (folder with skewless.yaml; default .)
    SKEWLESS_HOST                 address to listen on (default 127.0.0.1; 0.0.0.0 to accept other machines)
    SKEWLESS_FS_PORT              port, 1-65535 (default 6566, ``feast serve``'s)
    SKEWLESS_FS_TOKENS            comma-separated bearer tokens (several: rotation)
    SKEWLESS_FS_TOKEN_FILE        or a secret file holding them, one per line (a mounted Kubernetes secret, ...)
    SKEWLESS_FS_MAX_BODY_BYTES    largest request body, an integer >= 1 (default 16 MiB): 413 past it
    SKEWLESS_FS_MAX_ENTITIES      entities per online read, >= 1 (default 1000): 422 past it
    SKEWLESS_FS_MAX_PUSH_ROWS     rows per push, >= 1 (default 100000): 422 past it
    SKEWLESS_FS_WORKERS           server processes sharing the port, 1-64 (default 1): a second one uses a second
                                  core (each has its own event loop, store connections and /metrics counters)
    SKEWLESS_LOG_LEVEL            DEBUG | INFO (default) | WARNING | ERROR
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from skewless.errors import ConfigError

from ..settings import LOG_LEVELS, _Bad, _choice, _integer, _path, _shown, _text
from .app import FeatureServerOptions, create_app

DEFAULT_PORT = 6566

PARSERS = {
    "SKEWLESS_REPO": ("repo", _path),
    "SKEWLESS_HOST": ("host", _text("an address to listen on, e.g. 127.0.0.1 or 0.0.0.0 (no spaces)")),
    "SKEWLESS_FS_PORT": ("port", _integer(1, 65535)),
    "SKEWLESS_FS_TOKENS": ("tokens", lambda v: _tokens(v.split(","), "SKEWLESS_FS_TOKENS")),
    "SKEWLESS_FS_TOKEN_FILE": ("token_file", _path),
    "SKEWLESS_FS_MAX_BODY_BYTES": ("max_body_bytes", _integer(1)),
    "SKEWLESS_FS_MAX_ENTITIES": ("max_entities", _integer(1)),
    "SKEWLESS_FS_MAX_PUSH_ROWS": ("max_push_rows", _integer(1)),
    "SKEWLESS_FS_WORKERS": ("workers", _integer(1, 64)),
    "SKEWLESS_LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
}


def _tokens(parts, where: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in parts if t.strip())
    if not tokens:  # an empty secret is a deployment that lost it, not a wish to serve without a token
        raise _Bad(f"at least one non-empty token ({where}; unset it to serve without tokens)")
    return tokens


@dataclass
class FeatureServerConfig:
    repo: str = "."
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tokens: tuple[str, ...] = ()
    token_file: str | None = None
    max_body_bytes: int = FeatureServerOptions.max_body_bytes
    max_entities: int = FeatureServerOptions.max_entities
    max_push_rows: int = FeatureServerOptions.max_push_rows
    log_level: str = "INFO"
    workers: int = 1
    limit_concurrency: int = 4096
    extra: dict = field(default_factory=dict)  # more FeatureServerOptions

    @classmethod
    def from_env(cls, env=None, **overrides) -> "FeatureServerConfig":
        """The environment's settings, then ``overrides`` (the CLI's options) where not None."""
        env = os.environ if env is None else env
        cfg, errors = cls(), []
        for name, (attr, parse) in PARSERS.items():
            if name not in env or (env[name] == "" and name != "SKEWLESS_FS_TOKENS"):
                continue
            try:
                setattr(cfg, attr, parse(env[name]))
            except _Bad as exc:
                shown = "<hidden>" if "TOKEN" in name else _shown(name, env[name])
                errors.append(f"{name}={shown}: expected {exc}")
        if errors:
            raise ConfigError("bad feature server settings in the environment:\n  " + "\n  ".join(errors))
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cfg

    def all_tokens(self) -> tuple[str, ...]:
        """The tokens given, plus the secret file's (read at startup)."""
        tokens = tuple(self.tokens)
        if self.token_file:
            try:
                text = Path(self.token_file).read_text()
            except OSError as exc:
                raise ConfigError(f"SKEWLESS_FS_TOKEN_FILE {self.token_file}: cannot read it ({exc.strerror})") \
                    from None
            try:
                tokens += _tokens(text.splitlines(), f"the file {self.token_file}")
            except _Bad as exc:
                raise ConfigError(f"SKEWLESS_FS_TOKEN_FILE {self.token_file}: expected {exc}") from None
        return tokens

    def options(self) -> FeatureServerOptions:
        return FeatureServerOptions(tokens=self.all_tokens(), max_body_bytes=self.max_body_bytes,
                                    max_entities=self.max_entities, max_push_rows=self.max_push_rows, **self.extra)


def build(cfg: FeatureServerConfig):
    """(FeatureStore, app) for ``cfg``; nothing is listening yet."""
    from skewless import FeatureStore

    store = FeatureStore(cfg.repo)
    return store, create_app(store, cfg.options())


def uvicorn_config(app, cfg: FeatureServerConfig):
    import uvicorn

    from ..http_protocol import PROTOCOL_PATH, protocol_class

    http = protocol_class() and (PROTOCOL_PATH if isinstance(app, str) else protocol_class())
    return uvicorn.Config(app, host=cfg.host, port=cfg.port, log_config=None, access_log=False,
                          limit_concurrency=cfg.limit_concurrency, timeout_graceful_shutdown=30, lifespan="on",
                          http=http or "auto", workers=cfg.workers, factory=isinstance(app, str))


_WORKER_CONFIG = "_SKEWLESS_FS_WORKER_CONFIG"  # the parent's settings, for its worker processes


def worker_app():
    """A worker process's app (``workers`` > 1: uvicorn starts each worker fresh and calls this factory), from
    the settings the parent resolved (its CLI options included)."""
    import json

    cfg = FeatureServerConfig(**json.loads(os.environ[_WORKER_CONFIG]))
    _process_setup(cfg)
    return build(cfg)[1]


def _process_setup(cfg: FeatureServerConfig) -> None:
    from ..server import configure_logging

    sys.setswitchinterval(0.0005)  # as the model server (serving/server.py): the loop gets the GIL back sooner
    configure_logging(cfg.log_level)


def run(cfg: FeatureServerConfig) -> None:
    """Serve until SIGTERM/SIGINT; then finish the pushes in flight and exit. With ``workers`` > 1, that many
    processes accept on the one listening socket (uvicorn's supervisor: SIGTERM reaches each, each drains)."""
    import logging

    import uvicorn

    _process_setup(cfg)
    log = logging.getLogger("skewless.serving")
    if cfg.workers == 1:
        _, app = build(cfg)
        log.info("feature server starting", extra={"repo": cfg.repo, "port": cfg.port})
        uvicorn.Server(uvicorn_config(app, cfg)).run()
        return
    import json
    from dataclasses import asdict

    from uvicorn.supervisors import Multiprocess

    build(cfg)  # the repo and settings checked once, here, before any worker starts
    os.environ[_WORKER_CONFIG] = json.dumps(asdict(cfg))
    config = uvicorn_config(f"{__name__}:worker_app", cfg)
    log.info("feature server starting", extra={"repo": cfg.repo, "port": cfg.port, "workers": cfg.workers})
    Multiprocess(config, sockets=[config.bind_socket()]).run()
