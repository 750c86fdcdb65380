"""`skewless local up|down|status|config`: the local cloud (LocalStack, moto, Redis; the OSS shim, the MaxCompute
and Tair emulators) on loopback.

The one door from the CLI into ``skewless.localcloud`` (the import contracts in pyproject.toml allow no other): the
local cloud is a test harness shipped with the ``local`` extra, imported only when one of these commands runs, and
a missing extra is a one-line ConfigError naming it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from .common import JsonOpt, friendly, print_json, print_table

# What the local cloud imports of the `local` extra (its emulators and clients), by import name.
LOCAL_EXTRA_MODULES = ("boto3", "hiredis", "moto", "odps", "oss2")

app = typer.Typer(no_args_is_help=True, help="The local cloud on loopback: LocalStack (S3/IAM/STS), moto, Redis; "
                  "the OSS, MaxCompute and Tair emulators.")
console = Console()
# SKEWLESS_LOCAL_STATE: the same variable the test suite's local cloud reads, so a terminal shares its services.
StateOpt = typer.Option(Path(".skewless-local"), "--state", envvar="SKEWLESS_LOCAL_STATE",
                        help="Folder for the services' state, PIDs and logs")
ServicesArg = typer.Argument(None, help="Services (default: all): localstack moto redis oss maxcompute tair datahub")
CloudOpt = typer.Option("aws", "--cloud", help="Which cloud the generated skewless.yaml uses: aws (S3, Redis) or "
                        "alibaba (OSS, MaxCompute, Tair)")
EngineOpt = typer.Option(None, "--engine", help="alibaba only: maxcompute (default) or duckdb over OSS")


def localcloud():
    """``skewless.localcloud``, or a ConfigError naming the ``local`` extra when its packages are not installed."""
    def absent(names) -> ConfigError:
        return ConfigError(f'the local cloud needs the local extra ({", ".join(names)} not installed): '
                           f'pip install "skewless[local]"')

    missing = [m for m in LOCAL_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise absent(missing)
    try:
        import skewless.localcloud
    except ImportError as exc:  # a package of the extra not listed above
        raise absent([exc.name or str(exc)]) from exc
    return skewless.localcloud


def oci_registry_credentials(state: Path) -> tuple[str, str]:
    """The login (user, token) of the local OCI registry kept in ``state`` (`skewless model push --local-state`)."""
    return localcloud().OciRegistry(state).credentials()


def _cloud(state: Path):
    return localcloud().LocalCloud(state)


@app.command()
@friendly
def up(services: Optional[list[str]] = ServicesArg, state: Path = StateOpt,
       config: Optional[Path] = typer.Option(None, help="Also write a skewless.yaml into this repo folder"),
       project: str = typer.Option("local", help="Project name for the generated skewless.yaml"),
       cloud: str = CloudOpt, engine: Optional[str] = EngineOpt):
    """Start the services (idempotent: healthy ones are reused)."""
    cloud_ = _cloud(state)
    started = cloud_.up(services, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    _print_status(cloud_)
    console.print(f"started now: {', '.join(started) or 'none (already running)'}")
    if config is not None:
        console.print(f"wrote {cloud_.write_config(config, project, cloud, engine)}")


@app.command()
@friendly
def down(services: Optional[list[str]] = ServicesArg, state: Path = StateOpt):
    """Stop the services this state folder started (SIGTERM, then SIGKILL)."""
    stopped = _cloud(state).down(services)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
@friendly
def status(state: Path = StateOpt, as_json: bool = JsonOpt):
    """Show each service's state and endpoint. Exit code 3 when any is not running."""
    cloud = _cloud(state)
    st = _print_status(cloud, as_json)
    if any(not s.startswith("running") for s in st.values()):
        raise typer.Exit(3)


@app.command()
@friendly
def config(repo: Path = typer.Argument(Path("."), help="Repo folder to write skewless.yaml into"),
           state: Path = StateOpt, project: str = typer.Option("local"), cloud: str = CloudOpt,
           engine: Optional[str] = EngineOpt):
    """Write a skewless.yaml pointing at the local cloud (aws: S3 on LocalStack, Redis; alibaba: OSS, MaxCompute,
    Tair)."""
    console.print(f"wrote {_cloud(state).write_config(repo, project, cloud, engine)}")


def _print_status(cloud, as_json: bool = False) -> dict[str, str]:
    st = cloud.status()
    rows = [(name, svc.endpoint, st[name], str(svc.log_file(cloud.state / "run")))
            for name, svc in cloud.services.items()]
    if as_json:
        print_json([dict(zip(("service", "endpoint", "state", "log"), row)) for row in rows])
        return st
    table = Table("service", "endpoint", "state", "log")
    for row in rows:
        table.add_row(*row)
    print_table(console, table)
    return st
