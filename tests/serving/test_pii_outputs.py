"""Personal data in the servers' outputs (issue 19), over real servers: the web UI's statistics page in headless
chromium (masked for everyone in an open registry, values for a viewer holding read_pii, 403 without read_offline),
the feature server's error bodies, the model server's log records, its prediction log on disk (redact / hash /
keep per feature service) and the skew report of a PII feature; registering a model needs ``deploy``."""

from __future__ import annotations

import importlib
import json
import re
import logging
import sys
from datetime import datetime, timezone

import pandas as pd
import pytest
from playwright.sync_api import sync_playwright
from tests.serving.test_serving import running
from tests.serving.test_serving_registry import SCORER
from tests.support.feature_server import running as fs_running
from tests.support.ui_site import ARGS, CHROMIUM
from tests.support.ui_site import serving as ui_serving

import skewless as sk
from skewless.errors import ConfigError, PermissionDenied
from skewless.permissions import hash_token
from skewless.pii import HASH_KEY_ENV, HASH_PREFIX, MASK, REDACTED, is_redacted
from skewless.serving import ModelRegistry, monitor, package_model, read_log
from skewless.serving.feature_server.server import FeatureServerConfig
from skewless.serving.server import ServeConfig

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
EMAILS = {101: "ann@example.com", 102: "bob@example.com", 103: "cy@example.com"}
INCOMES = {101: 51000.0, 102: 62000.0, 103: 73000.0}
AUDITOR, VIEWER, OUTSIDER = "auditor-token-1", "viewer-token-1", "outsider-token-1"


def pii_repo(path, log_pii: str = "redact") -> sk.FeatureStore:
    """customer (a PII entity) -> customer_profile: income (pii), email (pii), trips; service ``scoring``."""
    store = sk.init_repo(path, project="pii")
    customer = sk.Entity("customer", join_keys=["customer_id"], pii=True)
    profile = sk.FeatureView("customer_profile", entities=[customer], schema=[
        sk.Field("customer_id", sk.Int64), sk.Field("income", sk.Float64, pii=True),
        sk.Field("email", sk.String, pii=True), sk.Field("trips", sk.Int64)])
    store.apply([customer, profile, sk.FeatureService("scoring", features=[profile[["income", "email", "trips"]]],
                                                      log_pii=log_pii)])
    ids = list(EMAILS)
    store.ingest("customer_profile", pd.DataFrame({"customer_id": ids, "income": [INCOMES[i] for i in ids],
                                                   "email": [EMAILS[i] for i in ids], "trips": [1, 2, 3],
                                                   "event_timestamp": [T0] * 3}))
    return store


def govern(store) -> None:
    """auditor: the UI, read_offline and read_pii; viewer: the UI and read_offline; outsider: the UI only."""
    store.apply([sk.Principal("auditor", token_hashes=[hash_token(AUDITOR)]),
                 sk.Principal("viewer", token_hashes=[hash_token(VIEWER)]),
                 sk.Principal("outsider", token_hashes=[hash_token(OUTSIDER)]),
                 sk.Role("ui", ["view_ui"]), sk.Role("offline", ["read_offline", "read_online"]),
                 sk.Role("pii", ["read_pii"]),
                 sk.Grant("everyone_ui", role="ui", principals=["auditor", "viewer", "outsider"]),
                 sk.Grant("offline", role="offline", principals=["auditor", "viewer"], resources=["view:customer_*"]),
                 sk.Grant("pii", role="pii", principals=["auditor"], resources=["view:customer_profile"])])


def statistics_text(base: str, token: str | None) -> tuple[int, str, int]:
    """(status, the page's text, histograms drawn) of /statistics/customer_profile in headless chromium."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            url = f"{base}/statistics/customer_profile" + (f"?token={token}" if token else "")
            resp = page.goto(url)
            page.wait_for_load_state("networkidle")
            charts = page.locator(".histogram canvas").count()
            return resp.status, page.locator("body").inner_text(), charts
        finally:
            browser.close()


def test_ui_statistics_page_masks_pii_unless_the_viewer_holds_read_pii(tmp_path):
    repo = tmp_path / "repo"
    store = pii_repo(repo)
    secrets = [*EMAILS.values(), "51000", "73000", "62000"]
    with ui_serving(repo) as base:  # open registry: masked for everyone
        status, text, charts = statistics_text(base, None)
    assert status == 200 and MASK in text and "customer_profile" in text
    assert not [s for s in secrets if s in text], text
    assert charts == 1  # trips' histogram; none for income (its sketch holds values)
    govern(store)
    with ui_serving(repo) as base:
        status, text, _ = statistics_text(base, VIEWER)  # read_offline, not read_pii
        assert status == 200 and not [s for s in secrets if s in text] and MASK in text
        status, text, charts = statistics_text(base, AUDITOR)
        assert status == 200 and all(e in text for e in EMAILS.values()) and "51000" in text and "73000" in text
        assert charts == 2  # trips and income
        status, text, _ = statistics_text(base, OUTSIDER)  # the UI, but not the offline data
        assert status == 403 and "read_offline" in text and not [s for s in secrets if s in text]
    denied = [(r.principal, r.action, r.resource) for r in store.audit_log.records(outcome="denied")]
    assert denied == [("outsider", "read_offline", "view:customer_profile")]


def test_feature_server_error_bodies_mask_a_pii_key(tmp_path):
    repo = tmp_path / "repo"
    pii_repo(repo)
    with fs_running(FeatureServerConfig(repo=str(repo))) as (client, _):
        client.headers.pop("Authorization", None)
        r = client.post("/get-online-features", json={"features": ["customer_profile:trips"],
                                                      "entities": {"customer_id": ["ann@example.com"]}})
        assert r.status_code == 422 and r.json()["error"] == "ValidationError"
        assert "ann@example.com" not in r.text and f"customer_id={MASK}" in r.json()["message"]
        ok = client.post("/get-online-features", json={"features": ["customer_profile:email"],
                                                       "entities": {"customer_id": [101]}})
        assert ok.status_code == 200 and ok.json()["results"][1]["values"] == ["ann@example.com"]  # data: values


def scorer(tmp_path, store, job, **kw):
    code = tmp_path / "scorer_mod.py"
    code.write_text(SCORER)
    (tmp_path / "factor.txt").write_text("2.0")
    sys.path.insert(0, str(tmp_path))
    try:
        mod = importlib.reload(importlib.import_module("scorer_mod"))
    finally:
        sys.path.remove(str(tmp_path))
    return package_model(mod.Scorer, name="scorer", store=store, feature_service="scoring", training_set=job,
                         request_fields=[sk.Field("amount", sk.Float64), sk.Field("delay", sk.Float64)],
                         artifacts={"factor.txt": str(tmp_path / "factor.txt")}, **kw)


def serve_and_log(tmp_path, store, log_pii_override=None, caplog=None) -> pd.DataFrame:
    job = store.get_historical_features(pd.DataFrame({"customer_id": list(EMAILS), "event_timestamp": [T0] * 3}),
                                        "scoring")
    job.register("scoring_train")
    art = scorer(tmp_path, store, store.get_training_set("scoring_train"),
                 **({"log_pii": log_pii_override} if log_pii_override else {}))
    ModelRegistry(store).register(art)
    cfg = ServeConfig(repo=str(tmp_path / "repo"), model="scorer", log_flush_seconds=0.1)
    with running(cfg) as (c, _):
        r = c.post("/invocations", json=[{"customer_id": 101, "amount": 1.0}, {"customer_id": 102, "amount": 0.0},
                                         {"customer_id": 101, "amount": 2.0}])
        assert r.status_code == 200 and r.json()["predictions"][0] == {"score": 102001.0}
        bad = c.post("/invocations", json={"customer_id": "ann@example.com", "amount": 1.0})
        assert bad.status_code == 422 and "ann@example.com" not in bad.text and f"customer_id={MASK}" in bad.text
    return read_log(store, "scorer").to_pandas().sort_values("request_row")


def test_prediction_log_redacts_pii_by_default_and_no_log_record_holds_a_value(tmp_path, caplog):
    store = pii_repo(tmp_path / "repo")
    with caplog.at_level(logging.DEBUG):
        log = serve_and_log(tmp_path, store)
    assert log["customer_profile__income"].tolist() == [REDACTED] * 3
    assert log["customer_profile__email"].tolist() == [REDACTED] * 3
    assert log["customer_profile__trips"].tolist() == [1, 2, 1]  # not personal data
    assert log["customer_id"].tolist() == [101, 102, 101]  # the log's identity: kept (docs/governance.md)
    assert all(is_redacted(v) for v in log["customer_profile__email"])
    records = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records and not [s for s in [*EMAILS.values(), "51000.0", "62000.0"] if s in records]


def test_prediction_log_hashes_with_a_key_and_keeps_when_asked(tmp_path, monkeypatch):
    store = pii_repo(tmp_path / "repo", log_pii="hash")
    monkeypatch.delenv(HASH_KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=HASH_KEY_ENV):  # refused at start, not at the first prediction
        serve_and_log(tmp_path, store)
    monkeypatch.setenv(HASH_KEY_ENV, "k1")
    log = serve_and_log(tmp_path / "hash", pii_repo(tmp_path / "hash" / "repo", log_pii="hash"))
    emails = log["customer_profile__email"].tolist()
    assert all(e.startswith(HASH_PREFIX) and len(e) == len(HASH_PREFIX) + 64 for e in emails)
    assert emails[0] == emails[2] != emails[1]  # equal values, equal hashes: counts and joins still work
    assert not [e for e in emails if "example.com" in e]
    kept = serve_and_log(tmp_path / "keep", pii_repo(tmp_path / "keep" / "repo"), log_pii_override="keep")
    assert kept["customer_profile__email"].tolist() == [EMAILS[101], EMAILS[102], EMAILS[101]]
    assert kept["customer_profile__income"].tolist() == [51000.0, 62000.0, 51000.0]


def test_skew_report_leaves_out_redacted_features_and_masks_kept_pii_bins(tmp_path):
    store = pii_repo(tmp_path / "repo")
    serve_and_log(tmp_path, store)
    report = monitor(store, "scorer").to_dict()
    assert set(report["windows"][0]["features"]) == {"customer_profile:trips"}  # redacted: nothing to compare
    kept = pii_repo(tmp_path / "keep" / "repo")
    serve_and_log(tmp_path / "keep", kept, log_pii_override="keep")
    feats = monitor(kept, "scorer").to_dict()["windows"][0]["features"]
    assert set(feats) == {"customer_profile:income", "customer_profile:email", "customer_profile:trips"}
    for ref in ("customer_profile:income", "customer_profile:email"):
        assert feats[ref]["bins"] and set(feats[ref]["bins"]) == {MASK}, feats[ref]
    assert set(feats["customer_profile:trips"]["bins"]) != {MASK}
    assert "example.com" not in json.dumps(feats, default=str)


def skew_labels(base: str, token: str | None) -> tuple[int, dict[str, list]]:
    """(status, feature -> the skew chart's bin labels) of /monitor/scorer in headless chromium (charts drawn)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            resp = page.goto(f"{base}/monitor/scorer" + (f"?token={token}" if token else ""))
            page.wait_for_load_state("networkidle")
            assert not errors, errors
            charts = {el.get_attribute("data-feature"): json.loads(el.get_attribute("data-chart"))["labels"]
                      for el in page.locator(".chart.skew").all()}
            if charts:
                assert page.locator(".chart.skew canvas").count() >= len(charts)  # uPlot drew them
            return resp.status, charts
        finally:
            browser.close()


def test_ui_skew_page_masks_kept_pii_bins_unless_the_viewer_holds_read_pii(tmp_path):
    repo = tmp_path / "repo"
    store = pii_repo(repo)
    serve_and_log(tmp_path, store, log_pii_override="keep")
    with ui_serving(repo) as base:  # open registry
        status, charts = skew_labels(base, None)
    assert status == 200 and set(charts) >= {"customer_profile:email", "customer_profile:trips"}
    assert set(charts["customer_profile:email"]) == {MASK} and MASK not in charts["customer_profile:trips"]
    govern(store)
    with ui_serving(repo) as base:
        status, charts = skew_labels(base, VIEWER)
        assert status == 200 and set(charts["customer_profile:email"]) == {MASK}
        status, charts = skew_labels(base, AUDITOR)  # read_pii: the categories themselves
        assert status == 200 and set(charts["customer_profile:email"]) & set(EMAILS.values())
        status, charts = skew_labels(base, OUTSIDER)
        assert status == 403 and charts == {}


def test_registering_a_model_needs_deploy_and_a_denial_registers_nothing(tmp_path, monkeypatch):
    store = pii_repo(tmp_path / "repo")
    job = store.get_historical_features(pd.DataFrame({"customer_id": [101], "event_timestamp": [T0]}), "scoring")
    art = scorer(tmp_path, store, job)
    objs = [*store.list_entities(), *store.list_feature_views(), *store.list_feature_services()]
    store.apply([*objs, sk.Principal("ops"), sk.Principal("dev"), sk.Role("deployer", ["deploy", "apply"]),
                 sk.Grant("ops_deploys", role="deployer", principals=["ops"])], prune=True)
    reg = ModelRegistry(sk.FeatureStore(tmp_path / "repo", principal="dev"))
    with pytest.raises(PermissionDenied):
        reg.register(art)
    assert ModelRegistry(store).records() == []
    assert "predictions_scorer" not in {v.name for v in store.list_feature_views()}  # its log view not applied
    mv = ModelRegistry(sk.FeatureStore(tmp_path / "repo", principal="ops")).register(art)
    assert mv.version == 1
    got = [(r.principal, r.action, r.resource, r.outcome) for r in store.audit_log.records(action="deploy")]
    assert got == [("dev", "deploy", "model:scorer", "denied"), ("ops", "deploy", "model:scorer", "allowed")]


def audit_examples(base: str, token: str | None) -> tuple[int, str]:
    """(status, the example table's text) of /audit/scorer?period=all in headless chromium."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            resp = page.goto(f"{base}/audit/scorer?period=all" + (f"&token={token}" if token else ""))
            page.wait_for_load_state("networkidle")
            return resp.status, page.locator("body").inner_text()
        finally:
            browser.close()


def test_skew_audit_masks_pii_examples_in_the_cli_and_the_ui_and_skips_redacted_inputs(tmp_path):
    from typer.testing import CliRunner

    from skewless.cli.main import app
    from skewless.serving import audit

    redacted = pii_repo(tmp_path / "red" / "repo")
    serve_and_log(tmp_path / "red", redacted)
    rep = audit(redacted, "scorer")  # the log holds no values of the PII inputs: the model can't be re-run
    assert rep.prediction["cause"] == "skipped_redacted_inputs" and rep.prediction["rows"] == 0
    assert rep.rows == 3 and rep.exact == 3 and rep.features == {}  # the stand-ins are not compared as values

    repo = tmp_path / "repo"
    store = pii_repo(repo)
    serve_and_log(tmp_path, store, log_pii_override="keep")
    # a correction of 101's email and income at the served instant, ingested after serving: late events (equal in
    # available mode, different in event mode), each row an example with both values
    store.ingest("customer_profile", pd.DataFrame({"customer_id": [101], "income": [99000.0],
                                                   "email": ["zed@example.com"], "trips": [1],
                                                   "event_timestamp": [T0]}))
    rep = audit(store, "scorer")
    raw = json.dumps(rep.to_dict(), default=str)
    assert "zed@example.com" in raw and "ann@example.com" in raw  # the unmasked report: what a read_pii holder sees
    r = CliRunner().invoke(app, ["audit", "scorer", "--repo", str(repo), "--json"])
    out = json.loads(r.output)
    emails = [e for e in out["examples"] if e["feature"] == "customer_profile:email"]
    assert r.exit_code == 0 and out["late_events"]["customer_profile:email"] == 2, r.output
    assert emails and all(e["served"] == e["offline"] == MASK for e in emails), out
    # (the income as a number of its own: the report's timings are floats whose digits may hold "99000")
    assert "example.com" not in r.output and not re.search(r"(?<![0-9.])99000(\.0)?(?![0-9])", r.output)
    govern(store)
    with ui_serving(repo) as base:
        status, text = audit_examples(base, VIEWER)
        assert status == 200 and "customer_profile:email" in text and MASK in text and "example.com" not in text
        status, text = audit_examples(base, AUDITOR)  # read_pii: the values themselves
        assert status == 200 and "zed@example.com" in text and "ann@example.com" in text
        status, text = audit_examples(base, OUTSIDER)  # view_ui only: the audit reads the views offline
        assert status == 403 and "example.com" not in text
