"""`skewless permissions export | apply-redis-acl`: the registry's permissions as cloud-level least privilege
(``skewless.cloud_policies``; docs/governance.md)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .common import friendly

app = typer.Typer(no_args_is_help=True, help="Cloud policies (Redis ACLs, IAM / RAM) from the registry's permissions.")
console = Console(stderr=True)
PASSWORD_ENV = "SKEWLESS_REDIS_PASSWORD_"  # + the principal's name in capitals: that principal's Redis password


def _policies(repo: Path) -> dict:
    from ..cloud_policies import cloud_policies
    from ..store import FeatureStore

    store = FeatureStore(repo)
    return cloud_policies(store.registry.state(), store.config)


@app.command("export")
@friendly
def export(fmt: str = typer.Option("tfvars", "--format", help="tfvars: the `skewless_permissions` variable of the "
                                                                 "Terraform stacks; json: everything, readable"),
           output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here (e.g. "
                                                 "infra/terraform/aws/skewless_permissions.auto.tfvars.json); "
                                                 "default: stdout"),
           repo: Path = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder")):
    """Per principal: Redis ACL rules, IAM / RAM policy documents for the views it may read or ingest."""
    from ..cloud_policies import tfvars
    from ..errors import ConfigError

    if fmt not in ("tfvars", "json"):
        raise ConfigError(f"--format must be tfvars or json, not {fmt!r}")
    policies = _policies(repo)
    if not policies["governed"]:
        console.print("note: the registry declares no permissions (open): no principal, no policy")
    doc = tfvars(policies) if fmt == "tfvars" else policies
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text)
        tmp.replace(output)  # whole or not at all
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from exc
    console.print(f"wrote {output} ({len(policies['principals'])} principals)")


@app.command("apply-redis-acl")
@friendly
def apply_redis_acl(url: Optional[str] = typer.Option(None, help="Redis URL of an admin connection (default: the "
                                                       "repo's online store, with its options)"),
                    repo: Path = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder")):
    """ACL SETUSER each principal's Redis user on a self-managed Redis (ElastiCache: the Terraform stack creates
    them). Passwords come from SKEWLESS_REDIS_PASSWORD_<PRINCIPAL> and are sent only as SHA-256 (`#` rules)."""
    from .. import plugins
    from ..cloud_policies import cloud_policies
    from ..errors import ConfigError
    from ..store import FeatureStore

    store = FeatureStore(repo)
    policies = cloud_policies(store.registry.state(), store.config)
    if policies["online_flavor"] is None:
        raise ConfigError(f"the online store {store.config.online.url.partition('://')[0]}:// is not Redis or Tair")
    users = {n: p for n, p in policies["principals"].items() if p["redis_rules"] is not None}
    missing = [PASSWORD_ENV + n.upper() for n in users if not os.environ.get(PASSWORD_ENV + n.upper())]
    if missing:
        raise ConfigError(f"set each principal's Redis password in the environment: {', '.join(missing)}")
    online = store.online if url is None else plugins.load("online", url)(url, store.config.repo_path,
                                                                          store.config.online.options)
    try:
        for name, p in sorted(users.items()):
            digest = hashlib.sha256(os.environ[PASSWORD_ENV + name.upper()].encode()).hexdigest()
            args = ["ACL", "SETUSER", p["redis_user"], "reset", "on", f"#{digest}", *p["redis_rules"]]
            online.call("acl setuser", lambda a=args: online.client.execute_command(*a))
            console.print(f"{p['redis_user']}: {' '.join(p['redis_rules'])}", highlight=False, markup=False)
    finally:
        online.close()
    typer.echo(f"{len(users)} Redis users set on {online.url}")
