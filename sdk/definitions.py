"""User-facing definitions: entities, fields, sources, feature views and feature services.

Definitions are plain values: they validate themselves on construction, serialise to a JSON-able dict for the
registry (``to_dict`` / ``from_dict``) and compare by that dict. They hold no connections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Sequence

from . import dtypes
from .dtypes import DType
from .drift import check_monitoring
from .errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names become store identifiers: a MaxCompute table (at most 128 characters, of which skewless's prefixes and
# suffixes take 23 plus the configured table_prefix), a Delta folder (255 bytes per path component), S3/OSS object
# keys (1024 bytes with the root prefix and the log file names), Redis keys. 64 fits all of them with room to spare.
MAX_NAME = 64
# Columns skewless itself stores beside the features of every view's history.
EVENT_TS = "event_timestamp"
CREATED_TS = "created_timestamp"
WRITE_BATCH = "_skewless_batch"
WRITE_ROW = "_skewless_row"
RESERVED = {EVENT_TS, CREATED_TS, WRITE_BATCH, WRITE_ROW}


def check_name(kind: str, name: Any) -> str:
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise DefinitionError(f"{kind} name {name[:20]!r}... is {len(name)} characters long; the limit is {MAX_NAME} "
                              "(names become table, folder and key names in every store)")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(f"{kind} name {name!r} is invalid: use letters, digits and _, not starting with a digit")
    if name.startswith("_skewless") or name.startswith("__"):
        raise DefinitionError(f"{kind} name {name!r} is reserved (names starting with _skewless or __)")
    return name


def _tags(tags: Any, owner_of: str) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise DefinitionError(f"{owner_of}: tags must be a dict of str to str")
    return dict(sorted(tags.items()))


# Data classifications a field may carry; the last two are personal data, masked in every output (skewless.pii).
CLASSIFICATIONS = ("public", "internal", "confidential", "pii", "sensitive")
PII_CLASSES = ("pii", "sensitive")


def _classification(pii: Any, classification: Any, owner_of: str) -> str | None:
    """The field's classification: ``pii=True`` alone means "pii"; a classification names its class; both must
    agree (pii=True with "public" is a contradiction, refused)."""
    if not isinstance(pii, bool):
        raise DefinitionError(f"{owner_of}: pii must be True or False")
    if classification is not None and classification not in CLASSIFICATIONS:
        raise DefinitionError(f"{owner_of}: classification {classification!r} is unknown; use one of "
                              f"{list(CLASSIFICATIONS)}")
    if pii and classification is not None and classification not in PII_CLASSES:
        raise DefinitionError(f"{owner_of}: pii=True contradicts classification {classification!r}; personal data "
                              f"is one of {list(PII_CLASSES)}")
    return classification if classification is not None else ("pii" if pii else None)


@dataclass(frozen=True)
class Field:
    """A named, typed column: a feature, or a join key when its name is one of the view's join keys.

    ``pii=True`` (or ``classification="pii"`` / ``"sensitive"``) marks personal data: its values are masked in the
    UI, CLI output, logs and error messages unless the caller holds ``read_pii`` (skewless.pii), and prediction logs
    redact it (``FeatureService(log_pii=...)``). Other classifications (public, internal, confidential) are labels."""

    name: str
    dtype: DType
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    pii: bool = False
    classification: str | None = None

    def __post_init__(self) -> None:
        check_name("field", self.name)
        if isinstance(self.dtype, str):
            object.__setattr__(self, "dtype", dtypes.by_name(self.dtype))
        if not isinstance(self.dtype, DType):
            raise DefinitionError(f"field {self.name!r}: dtype must be a skewless dtype such as skewless.Int64")
        object.__setattr__(self, "tags", _tags(self.tags, f"field {self.name!r}"))
        cls = _classification(self.pii, self.classification, f"field {self.name!r}")
        object.__setattr__(self, "classification", cls)
        object.__setattr__(self, "pii", cls in PII_CLASSES)

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype.name, "description": self.description, "tags": self.tags}
        if self.classification is not None:  # only when declared: registries written before it compare equal
            d["classification"] = self.classification
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Field":
        return cls(d["name"], dtypes.by_name(d["dtype"]), d.get("description", ""), d.get("tags", {}),
                   classification=d.get("classification"))


class Entity:
    """Something features describe, identified by one or more join keys (e.g. ``loan_id``)."""

    kind = "entity"

    def __init__(self, name: str, join_keys: Sequence[str] | None = None, *, dtype: DType | None = None,
                 description: str = "", owner: str = "", tags: dict[str, str] | None = None, pii: bool = False):
        """``pii=True``: the join keys identify a person (a customer id, an e-mail): masked wherever values are
        shown, as a PII field's (skewless.pii)."""
        self.name = check_name("entity", name)
        if not isinstance(pii, bool):
            raise DefinitionError(f"entity {name!r}: pii must be True or False")
        self.pii = pii
        keys = list(join_keys) if join_keys is not None else [name]
        if not keys:
            raise DefinitionError(f"entity {name!r}: join_keys must not be empty")
        for k in keys:
            check_name(f"entity {name!r} join key", k)
            if k in RESERVED:
                raise DefinitionError(f"entity {name!r}: join key {k!r} is a reserved column name")
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"entity {name!r}: duplicate join keys {keys}")
        if dtype is not None and not isinstance(dtype, DType):
            raise DefinitionError(f"entity {name!r}: dtype must be a skewless dtype")
        self.join_keys = keys
        self.dtype = dtype
        self.description, self.owner, self.tags = description, owner, _tags(tags, f"entity {name!r}")

    def to_dict(self) -> dict:
        d = {"name": self.name, "join_keys": self.join_keys, "dtype": self.dtype.name if self.dtype else None,
             "description": self.description, "owner": self.owner, "tags": self.tags}
        if self.pii:  # only when declared: registries written before it compare equal
            d["pii"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Entity":
        return cls(d["name"], d["join_keys"], dtype=dtypes.by_name(d["dtype"]) if d.get("dtype") else None,
                   description=d.get("description", ""), owner=d.get("owner", ""), tags=d.get("tags"),
                   pii=d.get("pii", False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(("entity", self.name))

    def __repr__(self) -> str:
        return f"Entity({self.name!r}, join_keys={self.join_keys})"


class DataSource:
    """A batch source a view's rows are read from (``skewless ingest VIEW`` without a file, ``store.ingest(view)``).

    ``timestamp_field`` holds the event time; ``created_timestamp_column`` (optional) the time the row became known.
    ``field_mapping`` renames source columns to feature names. ``watermark`` (optional) makes source ingests
    incremental: the name of a source column (a timestamp or an integer; usually the event or created time) whose
    newest ingested value is recorded in the history's commit, so the next ingest reads only rows above it.
    Subclasses say where the rows are: a file path or URL (``ParquetSource``, ``CsvSource``, ``DeltaSource``) or a
    query (``SqlSource``)."""

    type = ""
    _by_type: dict[str, type] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        DataSource._by_type[cls.type] = cls

    def __init__(self, *, timestamp_field: str = EVENT_TS, created_timestamp_column: str | None = None,
                 field_mapping: dict[str, str] | None = None, name: str | None = None, description: str = "",
                 watermark: str | None = None):
        kind = type(self).__name__
        if not isinstance(timestamp_field, str) or not timestamp_field:
            raise DefinitionError(f"{kind}: timestamp_field must be a column name")
        if field_mapping is not None and not (isinstance(field_mapping, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in field_mapping.items())):
            raise DefinitionError(f"{kind}: field_mapping must be a dict of source column to feature name")
        if watermark is not None and (not isinstance(watermark, str) or not watermark):
            raise DefinitionError(f"{kind}: watermark must be the name of a source column (or None)")
        self.timestamp_field = timestamp_field
        self.created_timestamp_column = created_timestamp_column or None
        self.field_mapping = dict(field_mapping or {})
        self.name = name or self._where()
        self.description = description
        self.watermark = watermark

    def _where(self) -> str:
        raise NotImplementedError

    def _spec(self) -> dict:
        """What says where the rows are (the subclass's own fields)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        d = {"type": self.type, **self._spec(), "timestamp_field": self.timestamp_field,
             "created_timestamp_column": self.created_timestamp_column, "field_mapping": self.field_mapping,
             "name": self.name, "description": self.description}
        if self.watermark is not None:  # absent when unset: registries written before it compare equal
            d["watermark"] = self.watermark
        return d

    @staticmethod
    def _common(d: dict) -> dict:
        return {"timestamp_field": d.get("timestamp_field", EVENT_TS),
                "created_timestamp_column": d.get("created_timestamp_column"), "field_mapping": d.get("field_mapping"),
                "name": d.get("name"), "description": d.get("description", ""), "watermark": d.get("watermark")}

    @classmethod
    def from_dict(cls, d: dict) -> "DataSource":
        sub = DataSource._by_type.get(d.get("type", "parquet"))
        if sub is None:
            raise DefinitionError(f"unknown source type {d.get('type')!r}; known: {sorted(DataSource._by_type)}")
        return sub._from_spec(d)

    @classmethod
    def _from_spec(cls, d: dict) -> "DataSource":
        return cls(d["path"], **cls._common(d))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataSource) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.type, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where()!r})"


class _PathSource(DataSource):
    """A source at a path or URL: a local path (relative to the repo), ``file://``, ``s3://bucket/key`` or
    ``oss://bucket/key``; the object stores are reached through the plugin table's ``source`` role."""

    def __init__(self, path: str, **kw):
        if not isinstance(path, str) or not path.strip():
            raise DefinitionError(f"{type(self).__name__}: path must be a non-empty string")
        self.path = path
        super().__init__(**kw)

    def _where(self) -> str:
        return self.path

    def _spec(self) -> dict:
        return {"path": self.path}


class ParquetSource(_PathSource):
    """Parquet: one file, a folder of files (read recursively) or a glob (``data/*/part-*.parquet``)."""

    type = "parquet"


class CsvSource(_PathSource):
    """CSV with a header row: one file, a folder of ``*.csv`` files or a glob. Timestamps are ISO 8601."""

    type = "csv"


class DeltaSource(_PathSource):
    """A Delta Lake table (its newest version), on a local path or ``s3://``."""

    type = "delta"


class SqlSource(DataSource):
    """Rows of a DuckDB SQL query. ``tables`` names path sources the query reads (``FROM orders``), wherever they
    live (local, S3, OSS); the query may also read local files itself (``read_parquet('data/*.parquet')``)."""

    type = "sql"

    def __init__(self, query: str, *, tables: dict[str, DataSource] | None = None, **kw):
        if not isinstance(query, str) or not query.strip():
            raise DefinitionError("SqlSource: query must be a non-empty SQL string")
        tables = dict(tables or {})
        for t, src in tables.items():
            if not isinstance(t, str) or not _NAME.match(t):
                raise DefinitionError(f"SqlSource: table name {t!r} is invalid: use letters, digits and _")
            if not isinstance(src, _PathSource):
                raise DefinitionError(f"SqlSource: table {t!r} must be a ParquetSource, CsvSource or DeltaSource")
        self.query, self.tables = query, tables
        super().__init__(**kw)

    def _where(self) -> str:
        return self.query.strip().splitlines()[0][:80]

    def _spec(self) -> dict:
        return {"query": self.query, "tables": {t: s.to_dict() for t, s in sorted(self.tables.items())}}

    @classmethod
    def _from_spec(cls, d: dict) -> "SqlSource":
        return cls(d["query"], tables={t: DataSource.from_dict(s) for t, s in d.get("tables", {}).items()},
                   **cls._common(d))


class MaxComputeSource(DataSource):
    """A MaxCompute table, or the rows of a MaxCompute SQL ``query``, in the project of ``project`` (else of the
    ``sources: {maxcompute: ...}`` options, else of a MaxCompute offline store). A table's rows can be limited by
    ``partition``, a MaxCompute SQL condition on its partition columns (``ds >= '20240101'``), so only those
    partitions are read. Read through one SQL task and the instance tunnel (Arrow), by the Alibaba adapter. A
    ``watermark`` here is an integer column (a load sequence, epoch milliseconds): MaxCompute's DATETIME is in the
    project's time zone, so it is not taken as one."""

    type = "maxcompute"

    def __init__(self, table: str | None = None, *, query: str | None = None, partition: str | None = None,
                 project: str | None = None, **kw):
        if (table is None) == (query is None):
            raise DefinitionError("MaxComputeSource: give a table or a query (one of them)")
        if table is not None and (not isinstance(table, str) or not _NAME.match(table)):
            raise DefinitionError(f"MaxComputeSource: table {table!r} is invalid: use letters, digits and _")
        if query is not None and (not isinstance(query, str) or not query.strip()):
            raise DefinitionError("MaxComputeSource: query must be a non-empty SQL string")
        if project is not None and (not isinstance(project, str) or not _NAME.match(project)):
            raise DefinitionError(f"MaxComputeSource: project {project!r} is invalid: use letters, digits and _")
        if partition is not None and (table is None or not isinstance(partition, str) or not partition.strip() or
                                      ";" in partition):
            raise DefinitionError("MaxComputeSource: partition must be one SQL condition on a table's partition "
                                  "columns (a query filters its own rows)")
        self.table, self.query, self.partition, self.project = table, query, partition, project
        super().__init__(**kw)

    @property
    def url(self) -> str:
        return f"maxcompute://{self.project or ''}"

    def _where(self) -> str:
        if self.query is not None:
            return self.query.strip().splitlines()[0][:80]
        return f"{self.project}.{self.table}" if self.project else self.table

    def _spec(self) -> dict:
        return {"table": self.table, "query": self.query, "partition": self.partition, "project": self.project}

    @classmethod
    def _from_spec(cls, d: dict) -> "MaxComputeSource":
        return cls(d.get("table"), query=d.get("query"), partition=d.get("partition"), project=d.get("project"),
                   **cls._common(d))


# Feast name, so Feast repos port with an import change.
FileSource = ParquetSource


def _ttl(ttl: Any, view: str) -> timedelta | None:
    if ttl is None:
        return None
    if not isinstance(ttl, timedelta):
        raise DefinitionError(f"feature view {view!r}: ttl must be a timedelta or None")
    if ttl < timedelta(0):
        raise DefinitionError(f"feature view {view!r}: ttl must not be negative")
    # timedelta(0) means "no TTL", as in Feast.
    return ttl if ttl > timedelta(0) else None


def _retention(value: Any, view: str) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise DefinitionError(f"feature view {view!r}: history_retention must be a non-negative timedelta or None")
    return value


class FeatureView:
    """A named group of features of one or more entities, with a history and an optional TTL."""

    kind = "feature_view"
    # Its columns are labels (skewless.labels.LabelView): requested as labels=, never as model inputs.
    is_label = False

    def __init__(self, name: str, entities: Sequence[Entity | str], schema: Sequence[Field],
                 source: DataSource | None = None, ttl: timedelta | None = None, *, owner: str = "",
                 tags: dict[str, str] | None = None, description: str = "", online: bool = True,
                 history_retention: timedelta | None = None):
        """``history_retention``: how long old versions of the view's history stay rebuildable (a retention run,
        ``FeatureStore.retention_run``, expires and vacuums older ones, except those a registered training set
        pins; docs/governance.md). None: kept until removed by hand."""
        self.name = check_name("feature view", name)
        if not entities:
            raise DefinitionError(f"feature view {name!r}: needs at least one entity")
        self.entities = [e.name if isinstance(e, Entity) else e for e in entities]
        for e in self.entities:
            if not isinstance(e, str):
                raise DefinitionError(f"feature view {name!r}: entities must be Entity objects or names")
        self._entity_objs = {e.name: e for e in entities if isinstance(e, Entity)}
        schema = list(schema or [])
        for f in schema:
            if not isinstance(f, Field):
                raise DefinitionError(f"feature view {name!r}: schema entries must be skewless.Field")
            if f.name in RESERVED:
                raise DefinitionError(f"feature view {name!r}: field {f.name!r} is a reserved column name")
        names = [f.name for f in schema]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DefinitionError(f"feature view {name!r}: duplicate fields {sorted(dup)}")
        self.schema = schema
        if source is not None and not isinstance(source, DataSource):
            raise DefinitionError(f"feature view {name!r}: source must be a source such as ParquetSource (or None "
                                  "for push-only)")
        self.source = source
        self.ttl = _ttl(ttl, name)
        self.history_retention = _retention(history_retention, name)
        self.owner, self.description, self.online = owner, description, bool(online)
        self.tags = _tags(tags, f"feature view {name!r}")
        self._join_key_dtypes: dict[str, DType] | None = None
        self._pii_keys: list[str] = []
        if all(e in self._entity_objs for e in self.entities):
            self.resolve({n: e for n, e in self._entity_objs.items()})
        if not self.features:
            raise DefinitionError(f"feature view {name!r}: schema has no features besides join keys")

    # -- keys -------------------------------------------------------------------------------------------------
    def resolve(self, entities: dict[str, Entity]) -> "FeatureView":
        """Fix join keys and their dtypes from the entity definitions (done at apply for views naming entities)."""
        keys: dict[str, DType] = {}
        by_field = {f.name: f.dtype for f in self.schema}
        for en in self.entities:
            ent = entities.get(en)
            if ent is None:
                raise DefinitionError(f"feature view {self.name!r}: unknown entity {en!r}")
            for k in ent.join_keys:
                dt = by_field.get(k) or ent.dtype
                if dt is None:
                    raise DefinitionError(f"feature view {self.name!r}: join key {k!r} has no dtype; add "
                                          f"Field({k!r}, <dtype>) to the schema or give Entity {en!r} a dtype")
                if k in keys:
                    raise DefinitionError(f"feature view {self.name!r}: join key {k!r} appears in two entities")
                keys[k] = dt
        self._join_key_dtypes = keys
        # Join keys of an entity declared pii=True are personal data in this view too (kept on the view's spec, so
        # a model's frozen copy and every output that has only the view know it).
        self._pii_keys = [k for en in self.entities if getattr(entities[en], "pii", False)
                          for k in entities[en].join_keys]
        return self

    @property
    def join_key_dtypes(self) -> dict[str, DType]:
        if self._join_key_dtypes is None:
            raise DefinitionError(f"feature view {self.name!r}: entities {self.entities} are not resolved; "
                                  f"apply them first")
        return dict(self._join_key_dtypes)

    @property
    def join_keys(self) -> list[str]:
        return list(self.join_key_dtypes)

    @property
    def features(self) -> list[Field]:
        keys = set(self._join_key_dtypes or {}) | {k for e in self._entity_objs.values() for k in e.join_keys}
        return [f for f in self.schema if f.name not in keys]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def pii_names(self) -> frozenset[str]:
        """The columns holding personal data: PII fields and the join keys of PII entities (skewless.pii)."""
        return frozenset([f.name for f in self.schema if f.pii] + list(getattr(self, "_pii_keys", ())))

    @property
    def stored_fields(self) -> list[Field]:
        """The columns the history stores besides keys and timestamps (a plain view stores its features)."""
        return self.features

    @property
    def stored_names(self) -> list[str]:
        return [f.name for f in self.stored_fields]

    def __getitem__(self, names: Iterable[str]) -> "FeatureViewProjection":
        if isinstance(names, str):
            names = [names]
        return FeatureViewProjection(self.name, list(names), self)

    def pin(self, version: str, names: Iterable[str] | None = None) -> "FeatureViewProjection":
        """This view's features (or ``names``) at one version of the stage writing it: ``"v2"`` or an alias
        (``"staging"``), for a FeatureService (docs/concepts/stages.md#versions-side-by-side)."""
        names = self.feature_names if names is None else [names] if isinstance(names, str) else list(names)
        return FeatureViewProjection(f"{self.name}@{version}", list(names), self)

    # -- serialisation ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name, "entities": self.entities,
            "join_keys": {k: d.name for k, d in self.join_key_dtypes.items()},
            "schema": [f.to_dict() for f in self.schema],
            "source": self.source.to_dict() if self.source else None,
            "ttl_seconds": self.ttl.total_seconds() if self.ttl else None,
            "owner": self.owner, "tags": self.tags, "description": self.description, "online": self.online,
            **({"pii_keys": list(self._pii_keys)} if getattr(self, "_pii_keys", None) else {}),
            # only when set: registry documents of views without it stay as they were (no plan change)
            **({"history_retention_seconds": self.history_retention.total_seconds()}
               if self.history_retention is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureView":
        # A view kind that extends this one (an aggregated view) is recognised by its spec; the subclass is defined
        # in its own module (imported by the package), so this module imports none of them.
        for sub in cls.__subclasses__():
            if sub.spec_marker in d:
                return sub.from_dict(d)
        return cls._base_from_dict(d)

    spec_marker = "schema"

    @classmethod
    def _base_from_dict(cls, d: dict) -> "FeatureView":
        fv = cls.__new__(cls)
        fv.name, fv.entities = d["name"], list(d["entities"])
        fv._entity_objs = {}
        fv.schema = [Field.from_dict(f) for f in d["schema"]]
        fv.source = DataSource.from_dict(d["source"]) if d.get("source") else None
        fv.ttl = timedelta(seconds=d["ttl_seconds"]) if d.get("ttl_seconds") else None
        fv.owner, fv.tags, fv.description = d.get("owner", ""), d.get("tags", {}), d.get("description", "")
        fv.online = d.get("online", True)
        hr = d.get("history_retention_seconds")
        fv.history_retention = None if hr is None else timedelta(seconds=hr)
        fv._join_key_dtypes = {k: dtypes.by_name(v) for k, v in d["join_keys"].items()}
        fv._pii_keys = list(d.get("pii_keys", ()))
        return fv

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(("feature_view", self.name))

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, features={self.feature_names})"


@dataclass
class FeatureViewProjection:
    """A subset of one view's features, as used in a FeatureService: ``view[["f1", "f2"]]``."""

    view_name: str
    feature_names: list[str]
    view: FeatureView | None = None

    def __post_init__(self) -> None:
        if self.view is not None:
            unknown = [f for f in self.feature_names if f not in self.view.feature_names]
            if unknown:
                raise DefinitionError(f"feature view {self.view_name!r} has no features {unknown}")


LOG_PII = ("redact", "hash", "keep")


class FeatureService:
    """A named, versioned list of features a model consumes; models are trained and served through one."""

    kind = "feature_service"

    def __init__(self, name: str, features: Sequence[FeatureView | FeatureViewProjection], *, owner: str = "",
                 tags: dict[str, str] | None = None, description: str = "", monitoring: dict | None = None,
                 log_pii: str = "redact"):
        """``monitoring``: skew/drift thresholds for the models served through this service (see
        ``skewless.drift.check_monitoring``; docs/monitoring.md), e.g. ``{"psi": 0.2, "features": {"v:f": {"ks":
        0.05}}}``; a model's own declaration wins over it.

        ``log_pii``: what the prediction log of a model served through this service stores for a PII feature
        (``Field(pii=True)``): ``"redact"`` (the default: the text ``<redacted>``), ``"hash"`` (a keyed HMAC-SHA256,
        ``hmac-sha256:<hex>``, equal for equal values: joins and counts still work) or ``"keep"`` (the value)."""
        self.name = check_name("feature service", name)
        if log_pii not in LOG_PII:
            raise DefinitionError(f"feature service {name!r}: log_pii must be one of {list(LOG_PII)}, not "
                                  f"{log_pii!r}")
        self.log_pii = log_pii
        if not features:
            raise DefinitionError(f"feature service {name!r}: needs at least one feature view")
        refs: list[str] = []
        for item in features:
            view = item if isinstance(item, FeatureView) else getattr(item, "view", None)
            if getattr(view, "is_label", False):
                raise DefinitionError(f"feature service {name!r}: {view.name!r} is a label view; labels are not "
                                      "model inputs (request them with labels=[...] in a training set)")
            if isinstance(item, FeatureView):
                refs += [f"{item.name}:{f}" for f in item.feature_names]
            elif isinstance(item, FeatureViewProjection):
                refs += [f"{item.view_name}:{f}" for f in item.feature_names]
            elif getattr(item, "kind", None) == "transform":  # an OnDemandTransform: all its outputs
                refs += [f"{item.name}:{f}" for f in item.output_names]
            else:
                raise DefinitionError(f"feature service {name!r}: features must be FeatureViews, transforms or "
                                      f"view[[...]] projections, got {type(item).__name__}")
        if len(set(refs)) != len(refs):
            raise DefinitionError(f"feature service {name!r}: a feature is listed twice")
        self.feature_refs = refs
        self.owner, self.description = owner, description
        self.tags = _tags(tags, f"feature service {name!r}")
        self.monitoring = check_monitoring(monitoring, f"feature service {name!r}")
        unknown = sorted(set((self.monitoring or {}).get("features", {})) - set(refs))
        if unknown:
            raise DefinitionError(f"feature service {name!r}: monitoring names features it does not list: {unknown}")

    def to_dict(self) -> dict:
        d = {"name": self.name, "features": self.feature_refs, "owner": self.owner, "tags": self.tags,
             "description": self.description}
        if self.monitoring is not None:  # only when declared: registries written before it show no change
            d["monitoring"] = self.monitoring
        if self.log_pii != "redact":  # likewise: the default is absent
            d["log_pii"] = self.log_pii
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureService":
        fs = cls.__new__(cls)
        fs.name, fs.feature_refs = d["name"], list(d["features"])
        fs.owner, fs.tags, fs.description = d.get("owner", ""), d.get("tags", {}), d.get("description", "")
        fs.monitoring = d.get("monitoring")
        fs.log_pii = d.get("log_pii", "redact")
        return fs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(("feature_service", self.name))

    def __repr__(self) -> str:
        return f"FeatureService({self.name!r}, features={self.feature_refs})"


KINDS = {"entity": Entity, "feature_view": FeatureView, "feature_service": FeatureService}
