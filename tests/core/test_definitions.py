from datetime import timedelta

import pytest

import skewless as sk
from skewless.errors import DefinitionError


def ent():
    return sk.Entity("driver", join_keys=["driver_id"])


def test_feature_view_serialises_round_trip():
    fv = sk.FeatureView("stats", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64),
                                                            sk.Field("rate", sk.Float64, tags={"unit": "pct"})],
                        ttl=timedelta(hours=3), owner="me@x", tags={"team": "a"}, description="d",
                        source=sk.FileSource("data/x.parquet", created_timestamp_column="created"))
    back = sk.FeatureView.from_dict(fv.to_dict())
    assert back == fv and back.join_keys == ["driver_id"] and back.feature_names == ["rate"]
    assert back.ttl == timedelta(hours=3) and back.source.created_timestamp_column == "created"


@pytest.mark.parametrize("make, match", [
    (lambda: sk.Entity("1bad"), "invalid"),
    (lambda: sk.Entity("e", join_keys=[]), "must not be empty"),
    (lambda: sk.Entity("e", join_keys=["event_timestamp"]), "reserved"),
    (lambda: sk.Entity("e", join_keys=["a", "a"]), "duplicate"),
    (lambda: sk.Field("x", "NotAType"), "unknown dtype"),
    (lambda: sk.Field("x", int), "dtype must be"),
    (lambda: sk.FeatureView("v", entities=[], schema=[sk.Field("x", sk.Int64)]), "at least one entity"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64)]), "no features"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("x", sk.Int64)]), "has no dtype"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64),
                                                           sk.Field("x", sk.Float64)]), "duplicate fields"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64),
                                                           sk.Field("created_timestamp", sk.Int64)]), "reserved"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)],
                            ttl=timedelta(seconds=-1)), "negative"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)],
                            ttl=5), "timedelta"),
    (lambda: sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)],
                            tags={"a": 1}), "tags"),
    (lambda: sk.FeatureService("s", features=[]), "at least one"),
    (lambda: sk.FeatureService("s", features=["v:x"]), "must be FeatureViews"),
])
def test_bad_definitions_raise_definition_error(make, match):
    with pytest.raises(DefinitionError, match=match):
        make()


def test_projection_of_unknown_feature_is_rejected():
    fv = sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)])
    with pytest.raises(DefinitionError, match="no features"):
        fv[["y"]]
    assert sk.FeatureService("s", features=[fv[["x"]]]).feature_refs == ["v:x"]


def test_zero_ttl_means_no_ttl_like_feast():
    fv = sk.FeatureView("v", entities=[ent()], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)],
                        ttl=timedelta(0))
    assert fv.ttl is None


def test_dtypes_and_views_unpickle_to_the_modules_own_types():
    """A view pickled to another process (Spark's executors write materialize's rows) keeps ``dt is String`` true:
    the Redis/Tair value codecs branch on identity (a copied String type was encoded as Bytes, read back with a
    leading NUL)."""
    import pickle

    from skewless import dtypes

    for dt in dtypes.ALL.values():
        assert pickle.loads(pickle.dumps(dt)) is dt
    ent = sk.Entity("e", join_keys=["k"])
    view = sk.FeatureView("v", entities=[ent], schema=[sk.Field("k", sk.Int64), sk.Field("s", sk.String)])
    copy = pickle.loads(pickle.dumps(view))
    assert [f.dtype for f in copy.features] == [sk.String] and copy.features[0].dtype is dtypes.String
