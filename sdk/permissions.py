"""Permissions: who may do what, declared in the feature repo and decided in one place (``check``).

Three registry kinds, declared in a repo's Python like views and applied with ``skewless apply``:

    Principal(name, token_hashes=[...], aws_iam=..., alibaba_ram=...)   who: a service token (only its SHA-256
                                                                         is stored, never the secret) and/or cloud
                                                                         identities (names, for later cloud policies)
    Role(name, actions=[...])                                            a named set of actions (``ACTIONS``)
    Grant(name, role=..., principals=[...], resources=[...])             the role's actions, to those principals,
                                                                         on those resources

A resource pattern is ``"*"`` (the whole project: every resource) or ``KIND:NAME`` with KIND one of ``view``,
``service``, ``model`` and NAME a name or a glob (``view:loan_*``).

**The rule** (``check``): a registry without any principal, role or grant is *open* — every call is allowed, as
before permissions existed. Once one exists, access is *denied by default*: a call is allowed only when the calling
principal is registered and a grant names it, with a role holding the action, on a pattern matching the resource.
An unknown or missing principal is denied. ``PermissionDenied`` says who, what and on which resource.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .definitions import check_name
from .errors import DefinitionError, PermissionDenied

# read_pii: see the values of PII fields where outputs mask them (skewless.pii), on the views it is granted on
ACTIONS = ("read_online", "read_offline", "ingest", "apply", "deploy", "view_ui", "read_pii")
RESOURCE_KINDS = ("view", "service", "model", "project")
PERMISSION_KINDS = ("principal", "role", "grant")
PROJECT = ("project", "*")  # the resource of project-wide actions (apply, view_ui)
PRINCIPAL_ENV = "SKEWLESS_PRINCIPAL"
TOKEN_ENV = "SKEWLESS_TOKEN"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def hash_token(secret: str) -> str:
    """The SHA-256 (hex) a ``Principal`` stores for a service token: what to put in ``token_hashes``."""
    if not isinstance(secret, str) or not secret:
        raise DefinitionError("a token must be a non-empty string")
    return hashlib.sha256(secret.encode()).hexdigest()


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise DefinitionError(f"{what} must be a list of non-empty strings")
    if len(set(value)) != len(value):
        raise DefinitionError(f"{what} lists a value twice")
    return tuple(value)


def _optional_text(value: Any, what: str) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise DefinitionError(f"{what} must be a non-empty string or None")
    return value


@dataclass(frozen=True)
class Principal:
    """Who calls: a service token (``token_hashes``: SHA-256 hex of each valid token, several for rotation; make one
    with ``skewless.permissions.hash_token``), an AWS IAM role/user ARN and/or an Alibaba RAM identity (kept as
    names, for cloud policies)."""

    name: str
    token_hashes: Sequence[str] = ()
    aws_iam: str | None = None
    alibaba_ram: str | None = None
    description: str = ""
    kind = "principal"

    def __post_init__(self) -> None:
        check_name("principal", self.name)
        hashes = _strings(list(self.token_hashes), f"principal {self.name!r}: token_hashes")
        bad = [h for h in hashes if not _SHA256.match(h)]
        if bad:
            # A raw secret in a repo file would be committed to git and to the registry: refuse it.
            raise DefinitionError(f"principal {self.name!r}: token_hashes must be SHA-256 hex digests (64 lowercase "
                                  "hex characters, skewless.permissions.hash_token(secret)), never the token itself")
        object.__setattr__(self, "token_hashes", hashes)
        _optional_text(self.aws_iam, f"principal {self.name!r}: aws_iam")
        _optional_text(self.alibaba_ram, f"principal {self.name!r}: alibaba_ram")

    def to_dict(self) -> dict:
        return {"name": self.name, "token_hashes": list(self.token_hashes), "aws_iam": self.aws_iam,
                "alibaba_ram": self.alibaba_ram, "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "Principal":
        return cls(d["name"], tuple(d.get("token_hashes", ())), d.get("aws_iam"), d.get("alibaba_ram"),
                   d.get("description", ""))


@dataclass(frozen=True)
class Role:
    """A named set of actions (``ACTIONS``)."""

    name: str
    actions: Sequence[str] = ()
    description: str = ""
    kind = "role"

    def __post_init__(self) -> None:
        check_name("role", self.name)
        actions = _strings(list(self.actions) if not isinstance(self.actions, str) else self.actions,
                           f"role {self.name!r}: actions")
        unknown = [a for a in actions if a not in ACTIONS]
        if unknown:
            raise DefinitionError(f"role {self.name!r}: unknown action(s) {unknown}; actions are {list(ACTIONS)}")
        object.__setattr__(self, "actions", tuple(sorted(actions)))

    def to_dict(self) -> dict:
        return {"name": self.name, "actions": list(self.actions), "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "Role":
        return cls(d["name"], tuple(d["actions"]), d.get("description", ""))


def _check_pattern(pattern: str, where: str) -> str:
    if pattern == "*":
        return pattern
    kind, sep, name = pattern.partition(":")
    if not sep or kind not in RESOURCE_KINDS or kind == "project" or not name:
        raise DefinitionError(f"{where}: resource {pattern!r} must be '*' (the project) or KIND:NAME with KIND one "
                              "of view, service, model and NAME a name or glob (e.g. 'view:loan_*')")
    return pattern


@dataclass(frozen=True)
class Grant:
    """``role``'s actions to ``principals`` on ``resources`` (``"*"`` or ``KIND:NAME-or-glob``)."""

    name: str
    role: str
    principals: Sequence[str] = ()
    resources: Sequence[str] = ("*",)
    description: str = ""
    kind = "grant"

    def __post_init__(self) -> None:
        check_name("grant", self.name)
        if not isinstance(self.role, str):
            raise DefinitionError(f"grant {self.name!r}: role must be a role's name")
        check_name(f"grant {self.name!r}: role", self.role)
        principals = _strings(list(self.principals) if not isinstance(self.principals, str) else self.principals,
                              f"grant {self.name!r}: principals")
        resources = _strings(list(self.resources) if not isinstance(self.resources, str) else self.resources,
                             f"grant {self.name!r}: resources")
        for r in resources:
            _check_pattern(r, f"grant {self.name!r}")
        object.__setattr__(self, "principals", tuple(sorted(principals)))
        object.__setattr__(self, "resources", tuple(resources))

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "principals": list(self.principals),
                "resources": list(self.resources), "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "Grant":
        return cls(d["name"], d["role"], tuple(d["principals"]), tuple(d["resources"]), d.get("description", ""))


KINDS = {"principal": Principal, "role": Role, "grant": Grant}


def check_references(specs: dict[str, dict[str, dict]]) -> None:
    """A grant names a registered role and registered principals (called on every plan/apply)."""
    roles, principals = specs.get("role", {}), specs.get("principal", {})
    for gname, g in specs.get("grant", {}).items():
        if g["role"] not in roles:
            raise DefinitionError(f"grant {gname!r} names unknown role {g['role']!r}; known: {sorted(roles)}")
        missing = [p for p in g["principals"] if p not in principals]
        if missing:
            raise DefinitionError(f"grant {gname!r} names unknown principal(s) {missing}; known: {sorted(principals)}")
    owners: dict[str, str] = {}
    for pname, p in principals.items():
        for h in p.get("token_hashes", ()):
            if h in owners:
                raise DefinitionError(f"principals {owners[h]!r} and {pname!r} share a token: a token must identify "
                                      "one principal")
            owners[h] = pname


_CACHE_LIMIT = 10_000  # decisions kept per registry state (names in requests are the caller's: bounded)


class _Index:
    """What the gates ask of one (immutable) registry state, computed once: on the feature server's path a check
    is a dict lookup, not a walk over every grant."""

    __slots__ = ("governed", "tokens", "decisions")

    def __init__(self, state):
        objects = state.objects
        self.governed = any(objects.get(k) for k in PERMISSION_KINDS)
        self.tokens = {h: name for name, e in objects.get("principal", {}).items()
                       for h in e["spec"].get("token_hashes", ())}
        self.decisions: dict[tuple, bool] = {}


def _index(state) -> _Index:
    index = state.__dict__.get("_permissions")
    if index is None:
        index = state.__dict__["_permissions"] = _Index(state)
    return index


def governed(state) -> bool:
    """Whether any permission object exists: then access is denied by default (else open, as before)."""
    return _index(state).governed


def principal_for_token(state, token: str | None) -> str | None:
    """The registered principal whose ``token_hashes`` hold this token's hash (None: no such principal). A lookup by
    the hash: what an attacker could time is the hash of their own guess, not a stored secret."""
    if not token:
        return None
    return _index(state).tokens.get(hashlib.sha256(token.encode()).hexdigest())


def principal_from_env(state, env=None) -> str | None:
    """The SDK's caller: ``SKEWLESS_TOKEN`` (a token, matched by hash) else ``SKEWLESS_PRINCIPAL`` (a name)."""
    env = os.environ if env is None else env
    token = env.get(TOKEN_ENV)
    if token:
        return principal_for_token(state, token) or f"<unknown token {hash_token(token)[:8]}>"
    return env.get(PRINCIPAL_ENV) or None


def read_resources(state, refs) -> list[tuple[str, str]]:
    """The views a read of ``refs`` (``view:feature`` / ``transform:output``) reads: a transform's output reads its
    input views, so ``read_online`` is checked on those (a transform is no resource of its own)."""
    transforms = state.objects.get("transform", {})
    views: dict[str, None] = {}
    for ref in refs:
        name = ref.partition(":")[0].partition("@")[0]  # a pinned stage version (view@v2) is read as its view
        t = transforms.get(name)
        for v in ([i.partition(":")[0] for i in t["spec"]["inputs"].values()] if t is not None else [name]):
            views[v] = None
    return [("view", v) for v in views]


def needed_for_read(state, principal: str | None, action: str, features) -> list[tuple[str, str]]:
    """What a read of ``features`` (a feature service's name, or ``view:feature`` refs) must be allowed ``action``
    on: nothing more when the principal holds it on the service it names; else each view it reads (a service that
    does not exist: the service itself, so the denial names it). A ``FeatureService`` object is judged by its
    name and its own refs (it may be one not applied yet)."""
    if hasattr(features, "feature_refs"):
        if allowed(state, principal, action, ("service", features.name)):
            return []
        return read_resources(state, features.feature_refs)
    if isinstance(features, str):
        if allowed(state, principal, action, ("service", features)):
            return []
        services = state.objects.get("feature_service", {})
        if features not in services:
            return [("service", features)]
        features = state.get("feature_service", features).feature_refs
    return read_resources(state, features)


def resource_text(resource: tuple[str, str]) -> str:
    return "*" if resource == PROJECT else f"{resource[0]}:{resource[1]}"


def _matches(pattern: str, resource: tuple[str, str]) -> bool:
    if pattern == "*":
        return True
    kind, _, glob = pattern.partition(":")
    return kind == resource[0] and fnmatch.fnmatchcase(resource[1], glob)


def allowed(state, principal: str | None, action: str, resource: tuple[str, str]) -> bool:
    """``check`` as a bool (see the module's rule)."""
    if action not in ACTIONS:
        raise DefinitionError(f"unknown action {action!r}; actions are {list(ACTIONS)}")
    index = _index(state)
    if not index.governed:
        return True
    if principal is None or principal not in state.objects.get("principal", {}):
        return False
    key = (principal, action, resource)
    hit = index.decisions.get(key)
    if hit is None:
        if len(index.decisions) >= _CACHE_LIMIT:
            index.decisions.clear()
        hit = index.decisions[key] = _decide(state, principal, action, resource)
    return hit


def _decide(state, principal: str, action: str, resource: tuple[str, str]) -> bool:
    roles = state.objects.get("role", {})
    for entry in state.objects.get("grant", {}).values():
        g = entry["spec"]
        if principal not in g["principals"]:
            continue
        role = roles.get(g["role"])
        if role is None or action not in role["spec"]["actions"]:
            continue
        if any(_matches(p, resource) for p in g["resources"]):
            return True
    return False


def check(state, principal: str | None, action: str, resource: tuple[str, str]) -> None:
    """None when ``principal`` may do ``action`` on ``resource`` (``(kind, name)``, or ``PROJECT``) in registry
    ``state``; else ``PermissionDenied``. The one decision function every gate calls."""
    if not allowed(state, principal, action, resource):
        who = f"principal {principal!r}" if principal else "an anonymous caller (no principal or token given)"
        raise PermissionDenied(f"{who} may not {action} on {resource_text(resource)}", principal=principal,
                               action=action, resource=resource_text(resource))


def check_all(state, principal: str | None, action: str, resources: Iterable[tuple[str, str]]) -> None:
    for r in resources:
        check(state, principal, action, r)


def permission_objects(objects: Iterable) -> list:
    return [o for o in objects if isinstance(o, (Principal, Role, Grant))]


__all__ = ["ACTIONS", "Grant", "PROJECT", "Principal", "Role", "allowed", "check", "governed", "hash_token",
           "principal_for_token", "principal_from_env"]
