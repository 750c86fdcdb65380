"""`skewless config from-terraform`: write skewless.yaml from a deployed stack's outputs in one step."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import friendly

app = typer.Typer(no_args_is_help=True, help="Write skewless.yaml from infrastructure outputs.")
console = Console()


@app.command("from-terraform")
@friendly
def from_terraform(
        directory: Optional[Path] = typer.Argument(
            None, help="Terraform root module whose state holds the outputs, e.g. infra/terraform/aws"),
        outputs_file: Optional[Path] = typer.Option(
            None, "--outputs-file", help="Read outputs from this JSON (`terraform output -json > FILE`) instead"),
        repo: Path = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder to write skewless.yaml into"),
        overrides: Optional[list[str]] = typer.Option(
            None, "--set", help="Override a key: KEY.PATH=VALUE, e.g. online.url=redis://127.0.0.1:6390/0"),
        force: bool = typer.Option(False, help="Replace an existing, different skewless.yaml"),
        show: bool = typer.Option(False, "--print", help="Print the document instead of writing it")):
    """Turn the stack's `skewless_config` output into skewless.yaml (secrets stay ${ENV} references)."""
    from ..errors import ConfigError
    from ..tfconfig import config_document, env_references, read_outputs_dir, read_outputs_file, render, write_config

    if (directory is None) == (outputs_file is None):
        raise ConfigError("give either a Terraform directory or --outputs-file")
    outputs = read_outputs_file(outputs_file) if outputs_file else read_outputs_dir(directory)
    doc = config_document(outputs, overrides or [])
    if show:
        typer.echo(render(doc), nl=False)
        return
    path = write_config(doc, repo, force=force)
    console.print(f"wrote {path}")
    for name in env_references(doc):
        console.print(f"[dim]set {name} in the environment of every process using this repo[/dim]")
