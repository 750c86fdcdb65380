"""``skewless.yaml``: which project, and which adapters (by URL) hold the registry, histories and online values.

    project: credit_scoring
    registry: data/registry              # folder, file://, s3://bucket/prefix, oss://bucket/prefix
                                         # (or {url: ..., options: {...}})
    offline:
      url: data/offline                  # where histories live (Delta tables)
      engine: duckdb                     # what computes over them
      options: {memory_limit: 2GB}      # the engine's options
      storage_options: {}                # the store's (e.g. S3 endpoint_url, region, profile)
    online:
      url: sqlite:///data/online.db      # sqlite://, redis://, rediss://, tair://
      options: {}
    statistics: true                     # optional: per-feature statistics computed at every write (docs/statistics.md)
    submit:                              # optional: where `skewless submit` runs jobs (docs/emr-serverless.md)
      target: emr-serverless             # the plugin table's `submit` role; the other keys are the target's
      application_id: 00f...
    sources:                             # optional: options of batch sources (and entity tables, training sets)
      s3: {region: us-east-1}            # at s3:// / oss:// URLs (default: the offline store's storage_options
      oss: {region: cn-hangzhou}         # when it is on the same scheme, else the environment's)

Relative paths are relative to the folder holding skewless.yaml. ``${VAR}`` is replaced from the environment, so
secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError

FILE_NAME = "skewless.yaml"
# Where each store is when skewless.yaml does not say (relative to its folder).
DEFAULT_URLS = {"registry": "data/registry", "offline": "data/offline", "online": "sqlite:///data/online.db"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class StoreConfig:
    url: str
    options: dict = field(default_factory=dict)


@dataclass
class Config:
    project: str
    registry: StoreConfig
    offline: StoreConfig
    engine: str
    engine_options: dict
    online: StoreConfig
    repo_path: Path
    source_options: dict = field(default_factory=dict)  # URL scheme -> options (``sources:``)
    submit: dict = field(default_factory=dict)  # ``submit:``: the job target and its settings (empty: none)
    statistics: bool = True  # ``statistics:``: write-time statistics recorded with every append (docs/statistics.md)

    @classmethod
    def default(cls, repo_path: Path, project: str = "default") -> "Config":
        return cls(project, StoreConfig("data/registry"), StoreConfig("data/offline"), "duckdb", {},
                   StoreConfig("sqlite:///data/online.db"), repo_path)

    def to_yaml(self) -> str:
        doc = {"project": self.project, "registry": self.registry.url,
               "offline": {"url": self.offline.url, "engine": self.engine,
                           **({"options": self.engine_options} if self.engine_options else {}),
                           **({"storage_options": self.offline.options} if self.offline.options else {})},
               "online": {"url": self.online.url, **({"options": self.online.options} if self.online.options else {})}}
        if self.source_options:
            doc["sources"] = self.source_options
        if not self.statistics:
            doc["statistics"] = False
        return yaml.safe_dump(doc, sort_keys=False)


def _expand(value):
    if isinstance(value, str):
        def sub(m):
            if m.group(1) not in os.environ:
                raise ConfigError(f"skewless.yaml uses ${{{m.group(1)}}} but it is not set in the environment")
            return os.environ[m.group(1)]
        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


def _store(doc: dict, key: str, default: str) -> StoreConfig:
    v = doc.get(key, default)
    if isinstance(v, str) and v:
        return StoreConfig(v)
    if isinstance(v, dict) and isinstance(v.get("url"), str) and v["url"]:
        opts = v.get("options") or {}
        if not isinstance(opts, dict):
            raise ConfigError(f"skewless.yaml: {key}.options must be a mapping")
        return StoreConfig(v["url"], opts)
    raise ConfigError(f"skewless.yaml: {key} must be a URL or a mapping with 'url'")


def validate(cfg: Config, where: str = FILE_NAME) -> Config:
    """The whole config checked when it loads, so a typo fails here and not at the first command that uses it:
    every store URL's scheme is registered for its role and parses, the engine is known (plugins.adapter_for;
    nothing is imported, so a missing extra is still reported only where that adapter is used)."""
    from . import plugins

    if not isinstance(cfg.engine, str) or not cfg.engine:
        raise ConfigError(f"{where}: offline.engine must be a name such as duckdb")
    if not isinstance(cfg.engine_options, dict):
        raise ConfigError(f"{where}: offline.options must be a mapping")
    for role, store in (("registry", cfg.registry), ("offline", cfg.offline), ("online", cfg.online)):
        try:
            plugins.adapter_for(role, store.url)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {role}: {exc}") from None
    try:
        plugins.adapter_for("engine", cfg.engine)
    except ConfigError as exc:
        raise ConfigError(f"{where}: offline.engine: {exc}") from None
    if cfg.submit:
        target = cfg.submit.get("target")
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{where}: submit.target must name where jobs run, e.g. emr-serverless")
        try:
            plugins.adapter_for("submit", target)
        except ConfigError as exc:
            raise ConfigError(f"{where}: submit.target: {exc}") from None
    return cfg


def load(repo_path: str | os.PathLike) -> Config:
    repo = Path(repo_path)
    path = repo / FILE_NAME if repo.is_dir() else repo
    if not path.exists():
        raise ConfigError(f"no {FILE_NAME} in {repo}; create one with `skewless init`")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        # one line: the problem and where (PyYAML's message spans several, with the offending text quoted)
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    doc = _expand(doc)
    unknown = set(doc) - {"project", "registry", "offline", "online", "sources", "submit", "statistics"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)} (known: project, registry, offline, online, "
                          "sources, submit, statistics)")
    statistics = doc.get("statistics", True)
    if not isinstance(statistics, bool):
        raise ConfigError(f"{path}: statistics must be true or false, not {statistics!r}")
    submit = doc.get("submit") or {}
    if not isinstance(submit, dict):
        raise ConfigError(f"{path}: submit must be a mapping (target: emr-serverless, ...)")
    sources = doc.get("sources") or {}
    if not isinstance(sources, dict) or not all(isinstance(v, dict) for v in sources.values()):
        raise ConfigError(f"{path}: sources must map a URL scheme (s3, oss, maxcompute) to its options")
    project = doc.get("project")
    if not isinstance(project, str) or not project:
        raise ConfigError(f"{path}: 'project' must be a non-empty string")
    offline = _store(doc, "offline", DEFAULT_URLS["offline"])
    raw_off = doc.get("offline") if isinstance(doc.get("offline"), dict) else {}
    bad = set(raw_off) - {"url", "engine", "options", "storage_options"}
    if bad:
        raise ConfigError(f"{path}: unknown keys under offline: {sorted(bad)} (known: url, engine, options, "
                          "storage_options)")
    engine = raw_off.get("engine", "duckdb")
    storage = raw_off.get("storage_options") or {}
    if not isinstance(storage, dict):
        raise ConfigError(f"{path}: offline.storage_options must be a mapping")
    for key in ("registry", "online"):
        raw = doc.get(key)
        extra = set(raw) - {"url", "options"} if isinstance(raw, dict) else set()
        if extra:
            raise ConfigError(f"{path}: unknown keys under {key}: {sorted(extra)} (known: url, options)")
    return validate(Config(project, _store(doc, "registry", DEFAULT_URLS["registry"]), StoreConfig(offline.url, storage),
                           engine, offline.options, _store(doc, "online", DEFAULT_URLS["online"]), path.parent,
                           sources, submit, statistics),
                    str(path))
