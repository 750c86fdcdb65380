"""Cloud-level least privilege from the registry's permissions: where skewless is not the gate, the stores are.

``cloud_policies(state, config)`` turns the principals, roles and grants (``permissions``) and the project's store
layout (``skewless.yaml``) into, per principal:

- **Redis / Tair ACL rules** (Redis >= 7 syntax: ``%R~`` read-only key patterns). The online store's keys of view
  V are ``<prefix>:<V>:{<entity>}``, rows and aggregation tiles alike (``adapters/redis/row_layout.py``,
  ``tiles.py``), so a view is the pattern ``<prefix>:<V>:{*``. ``read_online`` on V gives that pattern read-only
  with the read commands (MGET rows, HMGET tiles; EXHMGET on Tair); ``ingest`` gives it read-write with the write
  commands (the newest-wins scripts by EVALSHA, ``SCRIPT LOAD``). Two keys are shared by every view:
  ``<prefix>:__layouts`` (the row layouts readers decode with: read-only for readers, read-write for writers) and
  ``<prefix>:__meta`` (the materialize checkpoints of all views in one hash: writers only — so a writer of one view
  can move another view's checkpoint, never its rows). ``apply`` on the project (which drops a view's keys on a
  breaking change) gives ``<prefix>:*`` with SCAN and UNLINK.
- **S3 / OSS object-prefix policies**: a view's offline history is the Delta table ``<offline>/<V>/``;
  ``read_offline`` gives Get on its objects and List with that prefix; ``ingest`` adds Put and Delete there. Every
  principal with a data action reads the registry prefix; every principal creates audit records under
  ``<registry>/audit/`` (a governed registry audits every write and every denial); ``apply`` writes the registry.
- **IAM policy documents** (principals with ``aws_iam``) and **RAM policy documents** (``alibaba_ram``) holding
  those S3 / OSS statements, with the role or user they attach to.

Grants name views by glob; the rules list the views registered *now* (exact names, no key or object glob a later
view could fall into): regenerate after an apply that adds views (``skewless permissions export``). Pure: no cloud
import, nothing sent anywhere (``skewless.cli.permissions_cmd`` writes and applies them).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .permissions import PROJECT, allowed, governed, read_resources

DATA_ACTIONS = ("read_online", "read_offline", "ingest")
DEFAULT_KEY_PREFIX = "skewless"
# Commands per access (each also checked against the key patterns): what the Redis and Tair online stores send.
# Connection set-up (redis-py's CLIENT SETNAME, SELECT of the URL's db) and PING come with any access.
CONNECT = ("ping", "client|setname", "select")
READ = {"redis": ("mget", "hget", "hmget"), "tair": ("mget", "hget", "hmget", "exhget", "exhmget")}
# (multi, exec, rename, del: a first ingest's aggregation tiles staged and claimed, adapters/redis/tiles.py)
# getrange: not sent by this version (its row script reads by MGET), kept for a writer of an earlier version
# under a regenerated ACL: that script's pcall(GETRANGE) took NOPERM for an absent row and let an older row win.
WRITE = {"redis": ("set", "mset", "getrange", "hset", "hsetnx", "hdel", "hgetall", "exists", "hvals", "pexpiretime",
                   "pexpireat", "evalsha", "script|load", "multi", "exec", "rename", "del", "eval"),
         "tair": ("set", "mset", "getrange", "hset", "hsetnx", "hdel", "hgetall", "exists", "hvals", "pexpiretime",
                  "pexpireat", "evalsha", "script|load", "multi", "exec", "rename", "del", "eval", "exhset",
                  "exhdel")}
ADMIN = ("scan", "unlink")
S3_READ = ("s3:GetObject",)
S3_WRITE = ("s3:PutObject", "s3:DeleteObject")
OSS_READ = ("oss:GetObject",)
OSS_WRITE = ("oss:PutObject", "oss:DeleteObject")
_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:(role|user)/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")
_RAM = re.compile(r"^acs:ram::\d+:(role|user)/([\w.@-]+)$")


def view_access(state) -> dict[str, dict[str, list[str]]]:
    """Per principal, the registered views it may ``read_online``, ``read_offline`` and ``ingest``, decided by
    ``permissions.allowed`` (the one rule); a grant on a feature service gives ``read_online`` on its views."""
    views = sorted(state.objects.get("feature_view", {}))
    services = state.objects.get("feature_service", {})
    out: dict[str, dict[str, list[str]]] = {}
    for p in sorted(state.objects.get("principal", {})):
        acc = {a: [v for v in views if allowed(state, p, a, ("view", v))] for a in DATA_ACTIONS}
        for sname, entry in sorted(services.items()):
            if allowed(state, p, "read_online", ("service", sname)):
                acc["read_online"] += [v for _, v in read_resources(state, entry["spec"]["features"])]
        acc["read_online"] = sorted(set(acc["read_online"]) & set(views))
        acc["apply"] = allowed(state, p, "apply", PROJECT)
        out[p] = acc
    return out


def redis_rules(access: dict, prefix: str = DEFAULT_KEY_PREFIX, flavor: str = "redis") -> list[str]:
    """The ACL SETUSER rules (no password rule, no ``on``/``off``) of one principal's ``access``."""
    if flavor not in READ:
        raise ConfigError(f"unknown online store flavor {flavor!r}; known: {sorted(READ)}")
    # A new user (ElastiCache) or one just `reset` (apply-redis-acl) holds no key pattern; these make sure of the rest.
    rules = ["resetchannels", "-@all"]
    reads, writes = access.get("read_online", []), access.get("ingest", [])
    if access.get("apply"):
        cmds = CONNECT + READ[flavor] + WRITE[flavor] + ADMIN
        keys = [f"~{prefix}:*"]
    else:
        cmds = CONNECT + (READ[flavor] if reads or writes else ()) + (WRITE[flavor] if writes else ())
        keys = [f"~{prefix}:{v}:{{*" for v in writes]
        keys += [f"%R~{prefix}:{v}:{{*" for v in reads if v not in writes]
        if writes:
            keys += [f"~{prefix}:__layouts", f"~{prefix}:__meta"]
        elif reads:
            keys.append(f"%R~{prefix}:__layouts")
    return rules + [f"+{c}" for c in dict.fromkeys(cmds)] + keys


def _bucket_prefix(url: str | None, scheme: str) -> tuple[str, str] | None:
    """(bucket, key prefix without slashes) of an ``s3://`` / ``oss://`` URL, None for another store."""
    if not url or not url.startswith(f"{scheme}://"):
        return None
    parts = urlsplit(url)
    return parts.netloc, parts.path.strip("/")


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _object_statements(access: dict, offline: tuple[str, str] | None, registry: tuple[str, str] | None,
                       cloud: str) -> list[dict]:
    """The object-store statements (S3 or OSS) of one principal: per-view history prefixes and the registry."""
    if cloud == "aws":
        svc, read, write, arn = "s3", S3_READ, S3_WRITE, (lambda b, k="": f"arn:aws:s3:::{_join(b, k)}")
        list_action, prefix_key = "s3:ListBucket", "s3:prefix"
    else:
        svc, read, write, arn = "oss", OSS_READ, OSS_WRITE, (lambda b, k="": f"acs:oss:*:*:{_join(b, k)}")
        list_action, prefix_key = "oss:ListObjects", "oss:Prefix"
    statements: list[dict] = []

    def grant(sid: str, actions, bucket: str, prefixes: list[str]) -> None:
        statements.append({"Sid": sid, "Effect": "Allow", "Action": list(actions),
                           "Resource": [arn(bucket, _join(p, "*")) for p in prefixes]})
        statements.append({"Sid": sid + "List", "Effect": "Allow", "Action": [list_action],
                           "Resource": [arn(bucket)],
                           "Condition": {"StringLike": {prefix_key: [q for p in prefixes for q in (p, _join(p, "*"))]}}})

    if offline is not None:
        bucket, root = offline
        reads = sorted(set(access.get("read_offline", [])) - set(access.get("ingest", [])))
        writes = sorted(access.get("ingest", []))
        if reads:
            grant("ReadOfflineViews", read, bucket, [_join(root, v) for v in reads])
        if writes:
            grant("IngestOfflineViews", read + write, bucket, [_join(root, v) for v in writes])
    if registry is not None:
        bucket, root = registry
        if access.get("apply") or any(access.get(a) for a in DATA_ACTIONS):
            grant("ReadRegistry", read, bucket, [root])
        if access.get("apply"):
            statements.append({"Sid": "WriteRegistry", "Effect": "Allow", "Action": list(write),
                               "Resource": [arn(bucket, _join(root, "*"))]})
        else:  # audit records (created once, never deleted): every write, and every denial, of any principal
            statements.append({"Sid": "WriteAuditRecords", "Effect": "Allow", "Action": [f"{svc}:PutObject"],
                               "Resource": [arn(bucket, _join(root, "audit", "*"))]})
    return statements


def _identity(value: str | None, pattern: re.Pattern, what: str, principal: str) -> dict | None:
    if value is None:
        return None
    m = pattern.match(value)
    if not m:
        raise ConfigError(f"principal {principal!r}: {what} {value!r} is not a role or user identity "
                          f"({'arn:aws:iam::ACCOUNT:role/NAME or :user/NAME' if what == 'aws_iam' else 'acs:ram::ACCOUNT:role/NAME or :user/NAME'})")
    return {"kind": m.group(1), "name": m.group(2), "id": value}


def _flavor(online_url: str) -> str | None:
    scheme = online_url.partition("://")[0]
    return {"redis": "redis", "rediss": "redis", "tair": "tair", "tairs": "tair"}.get(scheme)


def redis_username(project: str, principal: str) -> str:
    """The Redis ACL user of a principal (ElastiCache user ids: lowercase letters, digits, hyphens, <= 40)."""
    base = f"{project}-{principal}".lower().replace("_", "-")
    base = re.sub(r"[^a-z0-9-]", "-", base)
    if len(base) > 40 or not base[0].isalpha():
        base = "u" + hashlib.sha256(f"{project}:{principal}".encode()).hexdigest()[:12] + "-" + base[:26]
    return base.rstrip("-")


def cloud_policies(state, config) -> dict[str, Any]:
    """Per principal: its view access, Redis ACL rules (when the online store is Redis / Tair), and IAM / RAM policy
    documents (when it has ``aws_iam`` / ``alibaba_ram`` and the offline store or the registry is on S3 / OSS).
    A registry without permissions is open: no policy is generated (``governed`` False)."""
    prefix = str(config.online.options.get("key_prefix", DEFAULT_KEY_PREFIX))
    flavor = _flavor(config.online.url)
    stores = {cloud: (_bucket_prefix(config.offline.url, scheme), _bucket_prefix(config.registry.url, scheme))
              for cloud, scheme in (("aws", "s3"), ("alibaba", "oss"))}
    principals: dict[str, Any] = {}
    specs = state.objects.get("principal", {})
    users: dict[str, str] = {}
    for name, access in view_access(state).items():
        spec = specs[name]["spec"]
        entry: dict[str, Any] = {**access, "redis_user": None, "redis_rules": None, "aws": None, "alibaba": None}
        if flavor is not None:
            user = redis_username(config.project, name)
            if user in users:
                raise ConfigError(f"principals {users[user]!r} and {name!r} map to one Redis user {user!r}")
            users[user] = name
            entry["redis_user"], entry["redis_rules"] = user, redis_rules(access, prefix, flavor)
        for cloud, field, pattern in (("aws", "aws_iam", _ARN), ("alibaba", "alibaba_ram", _RAM)):
            identity = _identity(spec.get(field), pattern, field, name)
            statements = _object_statements(access, *stores[cloud], cloud)
            if identity is not None and statements:
                version = "2012-10-17" if cloud == "aws" else "1"
                entry[cloud] = {"attach_to": identity,
                                "policy": {"Version": version, "Statement": statements}}
        principals[name] = entry
    return {"project": config.project, "governed": governed(state), "redis_key_prefix": prefix,
            "online_flavor": flavor, "principals": principals}


def tfvars(policies: dict) -> dict[str, Any]:
    """The ``skewless_permissions`` variable both Terraform stacks read (``*.auto.tfvars.json``): per principal,
    the Redis user and its access string, and the IAM / RAM policy JSON with the role or user it attaches to."""
    out: dict[str, Any] = {}
    for name, p in policies["principals"].items():
        item: dict[str, Any] = {"redis_user": p["redis_user"],
                                "redis_access_string": None if p["redis_rules"] is None
                                else " ".join(["on"] + p["redis_rules"])}
        for cloud in ("aws", "alibaba"):
            doc = p[cloud]
            item[f"{cloud}_attach_kind"] = doc and doc["attach_to"]["kind"]
            item[f"{cloud}_attach_name"] = doc and doc["attach_to"]["name"]
            item[f"{cloud}_policy_json"] = doc and _json(doc["policy"])
        out[name] = item
    return {"skewless_permissions": out}


def _json(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


__all__ = ["cloud_policies", "redis_rules", "redis_username", "tfvars", "view_access"]
