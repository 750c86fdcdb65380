"""``skewless serve``: the HTTP feature server (``skewless.serving.feature_server``) over a repo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import friendly
from .model import _serving, console


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
                                                                 "SKEWLESS_FS_MAX_PUSH_ROWS; default 100000)"),
          workers: Optional[int] = typer.Option(None, help="Server processes sharing the port (env "
                                                           "SKEWLESS_FS_WORKERS; default 1)")):
    """Serve online features over HTTP with feast serve's contract (/get-online-features, /push) until SIGTERM
    (pushes in flight are finished first). Tokens come from the environment or a secret file, never the command
    line (it is visible to every user of the machine)."""
    _serving()
    from skewless.serving.feature_server import FeatureServerConfig
    from skewless.serving.feature_server.server import run

    run(FeatureServerConfig.from_env(repo=str(repo) if repo else None, host=host, port=port,
                                     token_file=str(token_file) if token_file else None,
                                     max_body_bytes=max_body_bytes, max_entities=max_entities,
                                     max_push_rows=max_push_rows, workers=workers))


@friendly
def serve_image(tag: str = typer.Option(..., "--tag", "-t", help="Image name, e.g. localhost/features:1"),
                repo: Optional[Path] = typer.Option(None, "--repo", "-r", help="Add the extras this repo's stores "
                                                    "need (e.g. redis); the repo itself is mounted at /repo at run "
                                                    "time"),
                extra: list[str] = typer.Option([], help="More skewless extras in the image, e.g. aws"),
                context_only: Optional[Path] = typer.Option(None, help="Only write a docker build context here "
                                                            "(then: docker build --target feature-server)")):
    """Build the feature server's image (`skewless serve` in a container: the serving image's feature-server
    target) without Docker (podman; base image made once with debootstrap). Run it with the repo mounted at /repo,
    tokens in SKEWLESS_FS_TOKENS or a mounted SKEWLESS_FS_TOKEN_FILE, port 6566."""
    _serving()
    from skewless.serving.container import build as image_build

    store = None
    if repo is not None:
        from ..store import FeatureStore

        store = FeatureStore(repo)
    if context_only:
        extras = {*extra, *(image_build.store_extras(store.config) if store is not None else ())}
        ctx = image_build.build_context(context_only, extras=extras)
        console.print(f"wrote {ctx}: docker build --target feature-server -t {tag} {ctx}")
        return
    info = image_build.build_feature_server(tag, store, extras=extra,
                                            progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    size = f"{info['size_bytes'] / 1e6:.0f} MB" if info.get("size_bytes") else "?"
    console.print(f"Built [bold]{tag}[/bold] ({size}; base {info['base_image_s']}s, wheels {info['wheels_s']}s, "
                  f"build {info['build_s']}s)")


@friendly
def ui(repo: Optional[Path] = typer.Option(None, "--repo", "-r", help="Feature repo (env SKEWLESS_REPO; default .)"),
       host: Optional[str] = typer.Option(None, help="Address to listen on (env SKEWLESS_HOST; default 127.0.0.1)"),
       port: Optional[int] = typer.Option(None, help="Port (env SKEWLESS_UI_PORT; default 8890)"),
       token_file: Optional[Path] = typer.Option(None, help="Secret file of tokens, one per line, for the UI's "
                                                            "actions (env SKEWLESS_UI_TOKEN_FILE; or "
                                                            "SKEWLESS_UI_TOKENS); without one the UI is read-only"),
       target: Optional[str] = typer.Option(None, "--target", "-t", help="A deploy target (local | sagemaker | "
                                            "eas) whose endpoints the lineage draws, read at most every 30 s; "
                                            "default: none (the lineage stops at model versions)"),
       option: list[str] = typer.Option([], "--option", "-o", help="Target option key=value, as for `skewless "
                                        "endpoints`")):
    """Browse the catalogue, definitions, registry versions and diffs, models and lineage in a web browser (no
    internet needed: the page's scripts ship with skewless)."""
    _serving()
    try:
        import jinja2  # noqa: F401  (the pages' templates; only the `ui` extra brings it)
    except ImportError:
        from ..errors import ConfigError

        raise ConfigError('the web UI is not installed (jinja2); install it with: pip install "skewless[ui]"') from None
    from skewless.serving.ui.server import UIConfig, run

    cfg = UIConfig.from_env(repo=str(repo) if repo else None, host=host, port=port,
                            token_file=str(token_file) if token_file else None)
    if target is not None:
        from .model import _target

        cfg.endpoints = _target(target, option, Path(cfg.repo)).endpoints
    elif option:
        from ..errors import ValidationError

        raise ValidationError("--option is for a deploy target: give --target too")
    console.print(f"skewless ui on http://{cfg.host}:{cfg.port}/ ({'actions need a token' if cfg.tokens else 'read-only'})")
    run(cfg)
