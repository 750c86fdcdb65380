"""skewless — the features a model sees in serving are, provably, the ones it was trained on.

Public API (Feast-familiar)::

    import skewless as sk
    store = sk.FeatureStore(".")
    store.apply([entity, view, service]); store.plan([...])
    store.ingest("view", df)
    store.get_historical_features(entity_df, ["view:feature"]).to_pandas()
    store.materialize(start, end); store.materialize_incremental(end)
    store.get_online_features(["view:feature"], [{"key": 1}]).to_dict()
"""

from .aggregation import AggregatedView, Aggregation
from .definitions import (CsvSource, DataSource, DeltaSource, Entity, FeatureService, FeatureView, Field, FileSource,
                          MaxComputeSource, ParquetSource, SqlSource)
from .dtypes import Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp
from .labels import LabelView
from .splits import Split
from .errors import (ConfigError, ConflictError, DefinitionError, EngineError, LeakageError, NotFoundError,
                     PermissionDenied, SkewlessError, StoreUnavailable, TransformError, ValidationError)
from .permissions import Grant, Principal, Role
from .stages import ModelStage, Stage
from .online.base import EXPIRED, NOT_FOUND, PRESENT
from .store import FeatureStore, init_repo
from .transforms import OnDemandTransform, on_demand

__version__ = "0.1.0"

__all__ = [
    "AggregatedView", "Aggregation", "Bool", "Bytes", "ConfigError", "ConflictError", "CsvSource", "DataSource", "DefinitionError", "DeltaSource", "EngineError", "EXPIRED", "Entity", "FeatureService",
    "FeatureStore", "FeatureView", "Field", "Grant", "LabelView", "LeakageError", "ModelStage", "Split", "Stage", "PermissionDenied", "Principal", "Role", "FileSource", "Float32", "Float64", "Int32", "Int64", "NOT_FOUND",
    "MaxComputeSource", "NotFoundError", "OnDemandTransform", "PRESENT", "ParquetSource", "SkewlessError", "StoreUnavailable", "SqlSource", "String", "UnixTimestamp",
    "TransformError", "ValidationError", "init_repo", "on_demand",
]
