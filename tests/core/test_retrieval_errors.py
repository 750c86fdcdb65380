"""Bad input to historical and online retrieval: typed errors that name the problem."""

from datetime import datetime, timezone

import pandas as pd
import pytest

import skewless as sk
from skewless.errors import DefinitionError, NotFoundError, ValidationError

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(repo):
    e = sk.Entity("driver", join_keys=["driver_id"])
    v = sk.FeatureView("stats", entities=[e], schema=[sk.Field("driver_id", sk.Int64), sk.Field("rate", sk.Float64)])
    repo.apply([e, v, sk.FeatureService("svc", features=[v])])
    repo.ingest("stats", pd.DataFrame({"driver_id": [1], "event_timestamp": [T], "rate": [0.5]}))
    return repo


ENTS = pd.DataFrame({"driver_id": [1], "event_timestamp": [T]})


@pytest.mark.parametrize("features, error, match", [
    (["stats:nope"], DefinitionError, "has no features"),
    (["nope:rate"], DefinitionError, "not in the registry"),
    (["stats.rate"], DefinitionError, "view:feature"),
    (["stats:rate", "stats:rate"], DefinitionError, "twice"),
    ([], DefinitionError, "no features"),
    ("no_such_service", NotFoundError, "not in the registry"),
])
def test_bad_feature_references(store, features, error, match):
    with pytest.raises(error, match=match):
        store.get_historical_features(ENTS, features)
    with pytest.raises(error, match=match):
        store.get_online_features(features, [{"driver_id": 1}])


def test_bad_entity_rows_for_training_sets(store):
    with pytest.raises(ValidationError, match="timestamp column 'event_timestamp'"):
        store.get_historical_features(ENTS.drop(columns=["event_timestamp"]), ["stats:rate"])
    with pytest.raises(ValidationError, match="join key columns"):
        store.get_historical_features(ENTS.drop(columns=["driver_id"]), ["stats:rate"])
    with pytest.raises(ValidationError, match="point_in_time"):
        store.get_historical_features(ENTS, ["stats:rate"], point_in_time="created")
    with pytest.raises(ValidationError, match="unparseable timestamp"):
        store.get_historical_features(pd.DataFrame({"driver_id": [1], "event_timestamp": ["soon"]}), ["stats:rate"])
    with pytest.raises(ValidationError, match="entity rows"):
        store.get_historical_features(pd.DataFrame({"driver_id": ["x"], "event_timestamp": [T]}),
                                      ["stats:rate"]).to_pandas()
    with pytest.raises(ValidationError, match="DataFrame"):
        store.get_historical_features([{"driver_id": 1}], ["stats:rate"])
    with pytest.raises(ValidationError, match="snapshot has no version"):
        store.get_historical_features(ENTS, ["stats:rate"], snapshot={})
    with pytest.raises(NotFoundError):
        store.get_historical_features(ENTS, ["stats:rate"], snapshot={"stats": 99}).to_pandas()


def test_bad_entity_rows_for_online_reads(store):
    with pytest.raises(ValidationError, match="lacks join key 'driver_id'"):
        store.get_online_features(["stats:rate"], [{"driver": 1}])
    with pytest.raises(ValidationError, match="not a valid Int64"):
        store.get_online_features(["stats:rate"], [{"driver_id": "one"}])
    with pytest.raises(ValidationError, match="must be a dict"):
        store.get_online_features(["stats:rate"], [1])
    assert store.get_online_features("svc", [{"driver_id": 1}]).values == {"rate": [0.5]}
