"""A stand-in for ``skewless.serving.batch_score:run_model_stage`` (the plugin table's ``stage`` / ``model`` entry,
built on its own branch of issue 20) with the same signature, for the model-stage tests until it lands: the model
version the stage names is downloaded from the model registry, scores the entity rows' features read through its
feature service, and its outputs are ingested into the stage's output view under the run's ``stage.batch_id``."""

from __future__ import annotations

import pyarrow as pa

from skewless import plugins
from skewless.serving import ModelRegistry

TARGET = "tests.support.stage_scorer:run_model_stage"


def run_model_stage(store, stage, entities) -> int:
    artifact = ModelRegistry(store).download(stage.model, stage.version)
    m = artifact.manifest
    frame = store.get_historical_features(entities, m.feature_service).to_pandas()
    out = artifact.load().predict(frame[[i["name"] for i in m.inputs]])
    keys = list(m.request_keys)
    table = pa.table({**{k: pa.array(frame[k]) for k in keys}, "event_timestamp": pa.array(frame["event_timestamp"]),
                      **{name: pa.array(values) for name, values in out.items()}})
    return store.ingest(stage.output, table, batch_id=stage.batch_id).rows


def install():
    """Put this scorer in the plugin table; returns what to restore."""
    prior = plugins._ADAPTERS["stage"]["model"]
    plugins.register("stage", "model", TARGET)
    return prior


def restore(prior) -> None:
    plugins._ADAPTERS["stage"]["model"] = prior
