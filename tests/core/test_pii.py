"""Personal data (issue 19): PII declarations and their plan, masking in the CLI's output and in error messages
(one module, skewless.pii, decides), an unmasking principal (read_pii) sees values, and the read_offline gates of the
SDK (historical features, statistics, training sets): a denial raises, is audited and does nothing."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless import training_sets
from skewless.cli.main import app as cli
from skewless.errors import DefinitionError, PermissionDenied, ValidationError
from skewless.pii import MASK

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
EMAILS = ["ann@example.com", "bob@example.com", "cy@example.com"]


def objects(pii: bool = True) -> list:
    customer = sk.Entity("customer", join_keys=["customer_id"], pii=pii)
    profile = sk.FeatureView("customer_profile", entities=[customer], schema=[
        sk.Field("customer_id", sk.Int64), sk.Field("email", sk.String, pii=pii),
        sk.Field("income", sk.Float64, classification="sensitive" if pii else None),
        sk.Field("segment", sk.String, classification="internal")])
    return [customer, profile, sk.FeatureService("profile_service", features=[profile])]


def pii_repo(path) -> sk.FeatureStore:
    store = sk.init_repo(path, project="pii")
    store.apply(objects())
    store.ingest("customer_profile", pd.DataFrame({
        "customer_id": [101, 102, 103], "email": EMAILS, "income": [51000.0, 62000.0, 73000.0],
        "segment": ["gold", "gold", "silver"], "event_timestamp": [T0] * 3}))
    return store


def govern(store: sk.FeatureStore) -> None:
    """analyst: read_offline on the view; auditor: also read_pii; intruder: nothing; admin: everything."""
    store.apply([*objects(), sk.Principal("analyst"), sk.Principal("auditor"), sk.Principal("intruder"),
                 sk.Principal("admin"), sk.Role("offline", ["read_offline", "read_online"]),
                 sk.Role("pii", ["read_offline", "read_online", "read_pii"]),
                 sk.Role("all", ["read_online", "read_offline", "ingest", "apply", "deploy", "view_ui"]),
                 sk.Grant("analysts", role="offline", principals=["analyst"], resources=["view:customer_*"]),
                 sk.Grant("auditors", role="pii", principals=["auditor"], resources=["view:customer_profile"]),
                 sk.Grant("admins", role="all", principals=["admin"])], prune=True)


@pytest.fixture
def store(tmp_path):
    return pii_repo(tmp_path / "repo")


# -- declarations ---------------------------------------------------------------------------------------------------
def test_pii_fields_and_entities_are_declared_validated_and_serialized():
    f = sk.Field("email", sk.String, pii=True)
    assert f.pii and f.classification == "pii" and f.to_dict()["classification"] == "pii"
    assert sk.Field.from_dict(f.to_dict()) == f
    assert sk.Field("income", sk.Float64, classification="sensitive").pii
    assert not sk.Field("segment", sk.String, classification="internal").pii
    plain = sk.Field("x", sk.Int64)
    assert "classification" not in plain.to_dict()  # registries written before it compare equal
    with pytest.raises(DefinitionError, match="contradicts"):
        sk.Field("email", sk.String, pii=True, classification="public")
    with pytest.raises(DefinitionError, match="classification 'secret' is unknown"):
        sk.Field("email", sk.String, classification="secret")
    customer, view, _ = objects()
    assert customer.to_dict()["pii"] is True and sk.Entity.from_dict(customer.to_dict()) == customer
    assert "pii" not in sk.Entity("e", join_keys=["k"]).to_dict()
    # the entity's keys are personal data in every view keyed by it, and the view's spec says so
    assert view.pii_names == {"customer_id", "email", "income"}
    assert sk.FeatureView.from_dict(view.to_dict()).pii_names == view.pii_names
    with pytest.raises(DefinitionError, match="log_pii"):
        sk.FeatureService("s", features=[view], log_pii="encrypt")


def test_plan_shows_pii_changes_as_non_breaking(tmp_path):
    store = sk.init_repo(tmp_path / "repo", project="pii")
    store.apply(objects(pii=False))
    svc = sk.FeatureService("profile_service", features=[objects()[1]], log_pii="hash")
    plan = store.plan([*objects()[:2], svc])
    text = str(plan)
    assert not plan.breaking, text
    assert "field email classification: None -> pii" in text
    assert "field income classification: None -> sensitive" in text
    assert "pii: False -> True" in text  # the entity
    assert "pii_keys" in text  # the view keyed by it
    assert "log_pii: redact -> hash" in text
    store.apply([*objects()[:2], svc])  # and it applies without allow_breaking
    assert store.get_feature_view("customer_profile").pii_names == {"customer_id", "email", "income"}


# -- CLI output -----------------------------------------------------------------------------------------------------
def run(args, repo, env=None):
    r = CliRunner().invoke(cli, [*args, "-r", str(repo)], env=env or {})
    return r


def test_stats_masks_pii_in_an_open_registry_and_for_a_principal_without_read_pii(store, tmp_path):
    repo = tmp_path / "repo"
    r = run(["stats", "customer_profile", "--json"], repo)
    assert r.exit_code == 0, r.output
    feats = json.loads(r.output)["features"]
    assert feats["email"]["top"] == [{"value": MASK, "count": 3}] and feats["email"]["distinct"] == 3
    assert feats["income"]["min"] == MASK and feats["income"]["max"] == MASK and feats["income"]["mean"] == MASK
    assert set(feats["income"]["quantiles"].values()) == {MASK} and feats["income"]["count"] == 3
    assert {t["value"] for t in feats["segment"]["top"]} == {"gold", "silver"}  # not personal data
    table = run(["stats", "customer_profile"], repo).output
    assert "ann@example.com" not in table and "51000" not in table and MASK in table and "gold" in table
    govern(store)
    for who in ("analyst", "auditor"):
        r = run(["stats", "customer_profile", "--json"], repo, {"SKEWLESS_PRINCIPAL": who})
        assert r.exit_code == 0, r.output
        feats = json.loads(r.output)["features"]
        if who == "analyst":  # may read offline, but not personal data
            assert feats["income"]["min"] == MASK and "ann@example.com" not in r.output
        else:  # read_pii on the view: the values
            assert feats["income"]["min"] == 51000.0 and feats["income"]["max"] == 73000.0
            assert {t["value"] for t in feats["email"]["top"]} == set(EMAILS) and "masked" not in feats["email"]


def test_get_online_and_get_historical_print_pii_masked_unless_read_pii(store, tmp_path):
    repo = tmp_path / "repo"
    ents = tmp_path / "entities.csv"
    pd.DataFrame({"customer_id": [101, 103], "event_timestamp": ["2025-02-01", "2025-02-01"]}).to_csv(ents,
                                                                                                      index=False)
    online = run(["get-online", "-e", "customer_id=101", "--service", "profile_service", "--json"], repo)
    assert online.exit_code == 0, online.output
    got = json.loads(online.output)[0]
    assert got["entity"] == {"customer_id": MASK}
    assert got["features"]["email"]["value"] == MASK and got["features"]["income"]["value"] == MASK
    assert got["features"]["segment"]["value"] == "gold" and got["features"]["email"]["status"] == "PRESENT"
    hist = run(["get-historical", "--entities", str(ents), "--service", "profile_service", "--json"], repo)
    assert hist.exit_code == 0, hist.output
    head = json.loads(hist.output)["head"]
    assert [(h["customer_id"], h["email"], h["income"], h["segment"]) for h in head] == [
        (MASK, MASK, MASK, "gold"), (MASK, MASK, MASK, "silver")]
    text = run(["get-historical", "--entities", str(ents), "--service", "profile_service"], repo).output
    assert "ann@example.com" not in text and "51000" not in text
    out = tmp_path / "train.parquet"  # written data is not a display: the values
    assert run(["get-historical", "--entities", str(ents), "--service", "profile_service", "--out", str(out)],
               repo).exit_code == 0
    assert pd.read_parquet(out)["email"].tolist() == ["ann@example.com", "cy@example.com"]
    govern(store)
    seen = run(["get-historical", "--entities", str(ents), "--service", "profile_service", "--json"], repo,
               {"SKEWLESS_PRINCIPAL": "auditor"})
    assert [h["email"] for h in json.loads(seen.output)["head"]] == ["ann@example.com", "cy@example.com"]
    seen = run(["get-online", "-e", "customer_id=101", "--features", "customer_profile:email", "--json"], repo,
               {"SKEWLESS_PRINCIPAL": "auditor"})
    assert json.loads(seen.output)[0]["features"]["email"]["value"] == "ann@example.com"
    hidden = run(["get-online", "-e", "customer_id=101", "--features", "customer_profile:email"], repo,
                 {"SKEWLESS_PRINCIPAL": "analyst"})
    assert hidden.exit_code == 0 and "ann@example.com" not in hidden.output and MASK in hidden.output


# -- error messages -------------------------------------------------------------------------------------------------
def test_errors_quote_a_pii_value_as_masked_and_other_values_as_they_are(store):
    with pytest.raises(ValidationError) as exc:
        store.get_online_features(["customer_profile:segment"], [{"customer_id": "ann@example.com"}])
    assert "ann@example.com" not in str(exc.value) and f"customer_id={MASK}" in str(exc.value)
    bad = pd.DataFrame({"customer_id": [1], "email": ["x"], "income": ["n/a-secret"], "segment": ["s"],
                        "event_timestamp": [T0]})
    with pytest.raises(ValidationError) as exc:
        store.ingest("customer_profile", bad)
    assert "n/a-secret" not in str(exc.value) and f"value {MASK} at row 0" in str(exc.value)
    store.apply([sk.Entity("person", join_keys=["person_id"]), sk.FeatureView("births", entities=["person"], schema=[
        sk.Field("person_id", sk.Int64), sk.Field("born", sk.UnixTimestamp, pii=True)])])
    with pytest.raises(ValidationError) as exc:
        store.ingest("births", pd.DataFrame({"person_id": [1, 2], "born": ["1990-01-02", "02/01/1990"],
                                             "event_timestamp": [T0] * 2}))
    assert "02/01/1990" not in str(exc.value) and "row 1" in str(exc.value) and exc.value.column == "born"
    store.apply([sk.Entity("plain", join_keys=["plain_id"]), sk.FeatureView("plain_view", entities=["plain"], schema=[
        sk.Field("plain_id", sk.Int64), sk.Field("score", sk.Float64)])])
    with pytest.raises(ValidationError, match="plain_id='abc'"):  # not personal data: quoted as before
        store.get_online_features(["plain_view:score"], [{"plain_id": "abc"}])


# -- read_offline ---------------------------------------------------------------------------------------------------
def test_read_offline_gates_raise_are_audited_and_do_nothing(store, tmp_path):
    entity = pd.DataFrame({"customer_id": [101], "event_timestamp": [T0]})
    assert len(store.get_historical_features(entity, "profile_service").to_pandas()) == 1  # open: as before
    govern(store)
    repo = tmp_path / "repo"
    job = sk.FeatureStore(repo, principal="admin").get_historical_features(entity, "profile_service")
    job.register("ts_open")
    base = store.registry.store.latest()
    intruder = sk.FeatureStore(repo, principal="intruder")
    calls = [lambda: intruder.get_historical_features(entity, "profile_service"),
             lambda: intruder.get_historical_features(entity, ["customer_profile:email"]),
             lambda: intruder.get_statistics("customer_profile"),
             lambda: intruder.get_training_set_statistics("ts_open"),
             lambda: sk.FeatureStore(repo, principal="intruder").get_historical_features(entity, "nope_service")]
    for call in calls:
        with pytest.raises(PermissionDenied) as exc:
            call()
        assert exc.value.action == "read_offline"
    # registering a training set needs read_offline on its views: denied, nothing committed
    with pytest.raises(PermissionDenied):
        training_sets.register(intruder, training_sets.from_job(job, "ts_intruder"))
    assert store.registry.store.latest() == base
    assert "ts_intruder" not in {t.name for t in store.list_training_sets()}
    denied = [(r.principal, r.action, r.resource) for r in store.audit_log.records(outcome="denied")]
    assert denied == [("intruder", "read_offline", "view:customer_profile"),
                      ("intruder", "read_offline", "view:customer_profile"),
                      ("intruder", "read_offline", "view:customer_profile"),
                      ("intruder", "read_offline", "view:customer_profile"),
                      ("intruder", "read_offline", "service:nope_service"),
                      ("intruder", "read_offline", "view:customer_profile")]
    assert [r.action for r in store.audit_log.records(outcome="allowed", action="read_offline")] == []
    svc = store.get_feature_service("profile_service")  # an object: judged by its own refs
    with pytest.raises(PermissionDenied):
        intruder.get_historical_features(entity, svc)
    analyst = sk.FeatureStore(repo, principal="analyst")  # read_offline on view:customer_* covers the service
    assert analyst.get_historical_features(entity, svc).to_pandas()["email"].tolist() == [EMAILS[0]]
    assert analyst.get_historical_features(entity, "profile_service").to_pandas()["email"].tolist() == [EMAILS[0]]
    assert analyst.get_statistics("customer_profile").features["email"].count == 3
    assert analyst.get_training_set_statistics("ts_open")["customer_profile:income"].count == 3
    analyst.get_historical_features(entity, "profile_service").register("ts_analyst")
    assert "ts_analyst" in {t.name for t in store.list_training_sets()}
