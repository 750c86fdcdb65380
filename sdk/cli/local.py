"""`skewless local up|down|status|config`: the local cloud (LocalStack, moto, Redis) on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import friendly

app = typer.Typer(no_args_is_help=True, help="The local cloud: LocalStack (S3/IAM/STS), moto, Redis on loopback.")
console = Console()
StateOpt = typer.Option(Path(".skewless-local"), "--state", help="Folder for the services' state, PIDs and logs")
ServicesArg = typer.Argument(None, help="Services (default: all): localstack moto redis")


def _cloud(state: Path):
    from ..localcloud import LocalCloud

    return LocalCloud(state)


@app.command()
@friendly
def up(services: Optional[list[str]] = ServicesArg, state: Path = StateOpt,
       config: Optional[Path] = typer.Option(None, help="Also write a skewless.yaml into this repo folder"),
       project: str = typer.Option("local", help="Project name for the generated skewless.yaml")):
    """Start the services (idempotent: healthy ones are reused)."""
    cloud = _cloud(state)
    started = cloud.up(services, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    _print_status(cloud)
    console.print(f"started now: {', '.join(started) or 'none (already running)'}")
    if config is not None:
        console.print(f"wrote {cloud.write_config(config, project)}")


@app.command()
@friendly
def down(services: Optional[list[str]] = ServicesArg, state: Path = StateOpt):
    """Stop the services this state folder started (SIGTERM, then SIGKILL)."""
    stopped = _cloud(state).down(services)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
@friendly
def status(state: Path = StateOpt):
    """Show each service's state and endpoint. Exit code 3 when any is not running."""
    cloud = _cloud(state)
    st = _print_status(cloud)
    if any(not s.startswith("running") for s in st.values()):
        raise typer.Exit(3)


@app.command()
@friendly
def config(repo: Path = typer.Argument(Path("."), help="Repo folder to write skewless.yaml into"),
           state: Path = StateOpt, project: str = typer.Option("local")):
    """Write a skewless.yaml pointing at the local cloud (S3 on LocalStack, Redis)."""
    console.print(f"wrote {_cloud(state).write_config(repo, project)}")


def _print_status(cloud) -> dict[str, str]:
    st = cloud.status()
    table = Table("service", "endpoint", "state", "log")
    for name, svc in cloud.services.items():
        table.add_row(name, svc.endpoint, st[name], str(svc.log_file(cloud.state / "run")))
    console.print(table)
    return st
