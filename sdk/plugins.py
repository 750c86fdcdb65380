"""The plugin table: adapters chosen by role and URL scheme, imported only when used (so the core never imports a
cloud SDK). The roles:

    online:   sqlite://PATH | redis:// | rediss:// | tair:// | tairs://
    offline:  PATH | file://PATH | s3://bucket/prefix | oss://bucket/prefix | maxcompute://project
    registry: PATH | file://PATH | s3://... | oss://...   (stores of the feature registry, and of the model
              registry kept beside it)
    engine:   duckdb | maxcompute | spark
    source:   PATH | file://PATH | s3://bucket/key | oss://bucket/key   (where batch sources' files are read: a
              ``sources.Place``, a pyarrow filesystem and the path in it)
    table:    maxcompute://[project]   (batch sources that are warehouse tables: a reader of a source's rows)
    stream:   kinesis://STREAM | datahub://PROJECT/TOPIC | memory:///FOLDER   (sources of ``skewless stream``,
              skewless.streams.source)
    submit:   emr-serverless   (where ``skewless submit`` runs jobs: a name, like an engine; skewless.jobs)
    stage:    model | model-registry   (skewless.stages: how a model stage scores, ``run_model_stage(store, stage,
              entities) -> rows``; and the model registry whose records say what each model version was fit on)

An unknown scheme, or a scheme whose extra is not installed, is a ConfigError that says what to install.
Third parties add schemes to the table with ``register``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import redact_url


_NAMED = ("engine", "submit", "stage")  # roles chosen by a name, not by a URL's scheme


@dataclass(frozen=True)
class Adapter:
    target: str  # "module:factory"; the factory takes (url, repo_path, options)
    extra: str | None  # the pip extra that provides it


# The plugin table: role -> URL scheme -> adapter.
_ADAPTERS: dict[str, dict[str, Adapter]] = {
    "online": {
        "sqlite": Adapter("skewless.factories:sqlite_online", None),
        # the shared Redis adapter (ElastiCache, MemoryDB, any Redis): skewless[redis], also in [aws] and [alibaba]
        "redis": Adapter("skewless.adapters.redis.store:from_url", "redis"),
        "rediss": Adapter("skewless.adapters.redis.store:from_url", "redis"),
        "tair": Adapter("skewless.adapters.alibaba.tair:from_url", "alibaba"),
        "tairs": Adapter("skewless.adapters.alibaba.tair:from_url", "alibaba"),
    },
    "offline": {
        "file": Adapter("skewless.factories:local_offline", None),
        "s3": Adapter("skewless.adapters.aws.s3:offline_from_url", "aws"),
        "oss": Adapter("skewless.adapters.alibaba.oss_delta:offline_from_url", "alibaba"),
        "maxcompute": Adapter("skewless.adapters.alibaba.maxcompute:offline_from_url", "alibaba"),
    },
    "registry": {
        "file": Adapter("skewless.factories:local_registry", None),
        "s3": Adapter("skewless.adapters.aws.s3:registry_from_url", "aws"),
        "oss": Adapter("skewless.adapters.alibaba.oss:registry_from_url", "alibaba"),
    },
    "source": {
        "file": Adapter("skewless.factories:local_source", None),
        "s3": Adapter("skewless.adapters.aws.s3:source_from_url", "aws"),
        "oss": Adapter("skewless.adapters.alibaba.oss_fs:source_from_url", "alibaba"),
    },
    "table": {
        "maxcompute": Adapter("skewless.adapters.alibaba.maxcompute_source:reader_from_url", "alibaba"),
    },
    "stream": {
        "kinesis": Adapter("skewless.adapters.aws.kinesis:from_url", "aws"),
        "datahub": Adapter("skewless.adapters.alibaba.datahub:from_url", "alibaba"),
        "memory": Adapter("skewless.streams.memory:from_url", None),
    },
    "submit": {
        "emr-serverless": Adapter("skewless.adapters.aws.emr_serverless:submitter", "aws"),
    },
    # the serving layer's, reached by name so the core never imports it (skewless.stages)
    "stage": {
        "model": Adapter("skewless.serving.batch_score:run_model_stage", "serving"),
        "model-registry": Adapter("skewless.serving.model_registry:ModelRegistry", "serving"),
    },
    "engine": {
        "duckdb": Adapter("skewless.factories:duckdb_engine", None),
        "maxcompute": Adapter("skewless.adapters.alibaba.maxcompute:engine_from_url", "alibaba"),
        "spark": Adapter("skewless.adapters.spark.engine:engine_from_url", "spark"),
    },
}


def register(role: str, scheme: str, target: str, extra: str | None = None) -> None:
    """Add or replace the adapter for ``scheme`` in ``role`` of the plugin table ("online", "offline", "registry"
    (feature registry stores), "engine", "source": where batch sources are read, "table": warehouse tables read as
    batch sources)."""
    _ADAPTERS.setdefault(role, {})[scheme] = Adapter(target, extra)


def scheme_of(url: str) -> str:
    try:
        scheme = urlsplit(url).scheme
    except ValueError:  # e.g. an unbalanced IPv6 bracket: the scheme is still what precedes "://"
        scheme = url.partition("://")[0] if "://" in url else ""
    # A bare path (or a Windows drive letter) is a local file.
    return scheme if len(scheme) > 1 else "file"


def adapter_for(role: str, url: str) -> Adapter:
    """The plugin table's adapter for ``url`` in ``role`` (nothing imported): a ConfigError naming the known schemes,
    and the URL without its credentials, when there is none. Also checks the URL parses (port, IPv6 literal)."""
    scheme = url if role in _NAMED else scheme_of(url)
    adapters = _ADAPTERS.get(role, {})
    adapter = adapters.get(scheme)
    if adapter is None:
        known = ", ".join(sorted(adapters))
        if role in _NAMED:
            raise ConfigError(f"unknown {'submit target' if role == 'submit' else role} {scheme!r}; known: {known}")
        raise ConfigError(f"unknown {role} store scheme {scheme!r} in {redact_url(url)!r}; known: {known}")
    if role not in _NAMED and "://" in url:
        try:
            urlsplit(url).port  # noqa: B018 - parsing it is the check: a bad port or IPv6 literal raises
        except ValueError as exc:
            raise ConfigError(f"invalid {role} URL {redact_url(url)!r}: {exc}") from None
    return adapter


def load(role: str, url: str) -> Callable[..., Any]:
    """The factory for ``url`` in ``role``: a ConfigError that names the fix when it cannot be had."""
    adapter = adapter_for(role, url)
    module_name, _, attr = adapter.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f'pip install "skewless[{adapter.extra}]"' if adapter.extra else "reinstall skewless"
        scheme = url if role in _NAMED else scheme_of(url)
        raise ConfigError(f"the {role} adapter for {scheme}:// is not available ({exc.name or exc}); "
                          f"install it with: {hint}") from exc
    return getattr(module, attr)
