"""Model serving: package a model with the feature service it was trained on, keep versions in a model registry,
and serve it over HTTP (SageMaker and PAI-EAS contracts) with online feature lookup and a prediction log.

    art = package_model(model, name="credit", store=store, feature_service="credit_model_v1", training_set=job)
    ModelRegistry(store).register(art, stage="staging")
    skewless model serve --model credit --stage production      # or: python -m skewless.serving serve
    skewless monitor credit --stage production                  # skew of its predictions vs its training set
    skewless audit credit --since 24h                             # its logged rows replayed through the training path
    skewless score credit --entities loans.parquet --output credit_scores   # batch scoring (serving.batch_score)
"""

from .artifact import ModelArtifact, ModelManifest, package_model
from .flavors import Flavor, LoadedModel, register as register_flavor
from .prediction_log import log_view, read_log
from .model_registry import ModelRegistry, ModelVersion
from .monitor import Report as MonitorReport, monitor
from .skew_audit import AuditReport, audit

__all__ = ["AuditReport", "Flavor", "LoadedModel", "ModelArtifact", "ModelManifest", "ModelRegistry", "ModelVersion", "MonitorReport",
           "audit", "log_view", "monitor", "package_model", "read_log", "register_flavor"]
