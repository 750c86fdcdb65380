"""``skewless serve``: the HTTP feature server (``skewless.serving.feature_server``) over a repo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import friendly
from .model import _serving


@friendly
def serve(repo: Optional[Path] = typer.Option(None, "--repo", "-r", help="Feature repo (env SKEWLESS_REPO; "
                                                                          "default .)"),
          host: Optional[str] = typer.Option(None, help="Address to listen on (env SKEWLESS_HOST; default "
                                                        "127.0.0.1, 0.0.0.0 to accept other machines)"),
          port: Optional[int] = typer.Option(None, help="Port (env SKEWLESS_FS_PORT; default 6566, feast serve's)"),
          token_file: Optional[Path] = typer.Option(None, help="Secret file of bearer tokens, one per line (env "
                                                               "SKEWLESS_FS_TOKEN_FILE; or SKEWLESS_FS_TOKENS)"),
          max_body_bytes: Optional[int] = typer.Option(None, help="Largest request body, else 413 (env "
                                                                  "SKEWLESS_FS_MAX_BODY_BYTES; default 16 MiB)"),
          max_entities: Optional[int] = typer.Option(None, help="Entities per online read, else 422 (env "
                                                                "SKEWLESS_FS_MAX_ENTITIES; default 1000)"),
          max_push_rows: Optional[int] = typer.Option(None, help="Rows per push, else 422 (env "
                                                                 "SKEWLESS_FS_MAX_PUSH_ROWS; default 100000)")):
    """Serve online features over HTTP with feast serve's contract (/get-online-features, /push) until SIGTERM
    (pushes in flight are finished first). Tokens come from the environment or a secret file, never the command
    line (it is visible to every user of the machine)."""
    _serving()
    from skewless.serving.feature_server import FeatureServerConfig
    from skewless.serving.feature_server.server import run

    run(FeatureServerConfig.from_env(repo=str(repo) if repo else None, host=host, port=port,
                                     token_file=str(token_file) if token_file else None,
                                     max_body_bytes=max_body_bytes, max_entities=max_entities,
                                     max_push_rows=max_push_rows))
