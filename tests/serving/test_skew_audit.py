"""`skewless audit`: a real model server (uvicorn, the `transactions` template on a real redis-server) logs its
predictions; the audit replays them through the training path and the registered artifact.

Phases, each served and audited in its own time range:
1. clean traffic -> every row exact, aggregations and transform outputs included;
2. faults, one card each: a Redis value edited by hand, a key written to Redis by hand that the history lacks, a
   materialization skipped (history only), an event written to the history after serving although created before
   it, a late event (created after serving) -> each caught and attributed (the late event only in event mode: no
   serving fault);
3. a model artifact swapped on disk under the registered version -> the prediction check catches it;
4. a transform changed in the registry without redeploying the server -> its output attributed to transform_hash.
"""

from __future__ import annotations

import json
import os
import struct
import time
from datetime import timedelta

import pandas as pd
import pytest
import redis
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from skewless.cli.main import app
from skewless.repo import load_objects
from skewless.serving import ModelRegistry, audit, package_model, read_log
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.serving.test_serving import running
from tests.support.transactions_repo import requests
from tests.support.transactions_repo import trained as trained_repo

EDITED_LAT = 12.345
ONLINE_ONLY = 10_000_002


@pytest.fixture(scope="module")
def fraud(tmp_path_factory, redis_url):
    prefix = f"audit{os.getpid()}"
    t = trained_repo(tmp_path_factory.mktemp("audit") / "repo",
                     online_yaml=f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}")
    assert type(t["store"].online).__name__ == "RedisOnlineStore"
    reg = ModelRegistry(t["store"])
    t["version"] = reg.register(t["artifact"], stage="production").version
    t["prefix"], t["redis_url"] = prefix, redis_url
    t["cards"] = pd.read_parquet(t["repo"] / "data" / "cards.parquet")
    rows = requests(t, 14)
    t["clean"], t["faulty"], t["rest"] = rows[:6] + rows[-1:], rows[6:10], rows[10:-1]
    t["phases"] = phases(t)
    return t


def serve(cfg: ServeConfig, rows: list[dict]) -> None:
    with running(cfg) as (client, _):
        r = client.post("/invocations", json={"instances": rows})
        assert r.status_code == 200, r.text


def card_row(t, card: int, lat: float, event, created) -> pd.DataFrame:
    home = t["cards"].set_index("card_id").loc[card]
    return pd.DataFrame({"card_id": [card], "home_lat": [lat], "home_lon": [float(home.home_lon)],
                         "event_timestamp": [pd.Timestamp(event)], "created_timestamp": [pd.Timestamp(created)]})


def edit_redis(t, card: int, lat: float, *, copy_to: int | None = None) -> None:
    """Overwrite the card's home_lat in its Redis value by hand (the order header kept: same event time); or copy
    its value to the key of card ``copy_to``, which the history does not have."""
    r = redis.Redis.from_url(t["redis_url"])
    [key] = list(r.scan_iter(match=f"{t['prefix']}:cards:{{{card}}}*"))
    value = bytearray(r.get(key))
    if copy_to is not None:
        r.set(key.replace(b"{%d}" % card, b"{%d}" % copy_to), bytes(value))
        return
    value[41:49] = struct.pack("<d", lat)  # header 32 + layout id 8 + null bitmap 1, then home_lat (Float64)
    r.set(key, bytes(value))


def phases(t) -> dict:
    store, repo = t["store"], t["repo"]
    cfg = ServeConfig(repo=str(repo), model="fraud", stage="production", log_flush_seconds=0.2)
    out = {"start": utc_now()}
    serve(cfg, t["clean"])
    out["clean"] = utc_now()
    time.sleep(0.01)
    a, b, c, d = (r["card_id"] for r in t["faulty"])
    edit_redis(t, a, EDITED_LAT)
    edit_redis(t, t["clean"][0]["card_id"], 0.0, copy_to=ONLINE_ONLY)  # a key online that the history lacks
    assert store.get_online_features(["cards:home_lat"], [{"card_id": a}]).values["home_lat"] == [EDITED_LAT]
    before = utc_now()
    store.ingest("cards", card_row(t, b, 1.5, before - timedelta(seconds=2), before - timedelta(seconds=2)),
                 online=False)  # materialization skipped: the history has it, the online store not
    time.sleep(1.0)  # a lag the audit can measure
    served_at = utc_now()
    serve(cfg, t["faulty"] + [{"card_id": ONLINE_ONLY, "amount": 10.0, "lat": 40.0, "lon": -74.0}])
    after = utc_now()
    # written after serving, but stamped as created before it (a late write, not a late event)
    store.ingest("cards", card_row(t, c, 2.5, served_at - timedelta(seconds=30), served_at - timedelta(seconds=20)))
    # a late event: it happened before serving, and was known only after it
    store.ingest("cards", card_row(t, d, 3.5, served_at - timedelta(seconds=30), after + timedelta(seconds=5)))
    out["faults"] = after
    time.sleep(0.01)
    # a model artifact swapped on disk: the registered version's folder, another model in it
    folder = repo.parent / "swapped"
    art = ModelRegistry(store).download("fraud", t["version"], dest=folder)
    other = HistGradientBoostingClassifier(max_iter=3, random_state=1).fit(
        t["train"][t["features"]].astype(float), 1 - t["train"].is_fraud)
    repacked = package_model(other, name="fraud", store=store, feature_service="fraud",
                             snapshot=t["artifact"].manifest.training["snapshot"], path=repo.parent / "other")
    for f in (repacked.path / "model").iterdir():
        (art.path / "model" / f.name).write_bytes(f.read_bytes())
    serve(ServeConfig(repo=str(repo), model_dir=str(art.path), log_flush_seconds=0.2), t["rest"][:2])
    out["swapped"] = utc_now()
    time.sleep(0.01)
    # a transform changed in the registry while the server runs (it keeps the code it loaded)
    with running(cfg) as (client, _):
        features = (repo / "features.py").read_text()
        assert "2 * 6371.0 *" in features
        (repo / "features.py").write_text(features.replace("2 * 6371.0 *", "2 * 6371.5 *"))
        store.apply(load_objects(repo))
        r = client.post("/invocations", json={"instances": t["rest"][2:]})
        assert r.status_code == 200, r.text
    out["transform"] = utc_now()
    # audited while the registry holds the changed code, which is then re-applied as it was
    out["transform_report"] = audit(store, "fraud", since=out["swapped"], until=out["transform"])
    (repo / "features.py").write_text(features)
    store.apply(load_objects(repo))
    return out


def test_clean_traffic_is_exact_including_aggregations_and_transforms(fraud):
    p = fraud["phases"]
    report = audit(fraud["store"], "fraud", since=p["start"], until=p["clean"])
    assert report.rows == report.logged == len(fraud["clean"])
    assert report.exact == report.rows and report.causes == {} and not report.breached, json.dumps(report.to_dict(), default=str)
    assert report.prediction == {"rows": report.rows, "matched": report.rows, "mismatched": 0, "cause": None}
    assert [m["point_in_time"] for m in report.modes][:2] == ["available", "event"]
    # what was compared is not trivially empty: windows holding events, transform outputs computed
    log = read_log(fraud["store"], "fraud").to_pandas()
    clean = log[(log.event_timestamp >= p["start"]) & (log.event_timestamp < p["clean"])]
    assert (clean.txn_stats__count_7d > 0).sum() == len(clean) - 1  # all but the unknown card
    assert clean.spend__amount_vs_mean.notna().sum() == clean.distance__km_from_home.notna().sum() == len(clean) - 1
    assert report.late_events == {}


def test_each_fault_is_caught_and_attributed(fraud):
    p = fraud["phases"]
    report = audit(fraud["store"], "fraud", since=p["clean"], until=p["faults"])
    a, b, c, d = (r["card_id"] for r in fraud["faulty"])
    assert report.rows == 5 and report.exact == 1  # card d: exact in available mode
    assert report.features["cards:home_lat"] == {"online_value": 1, "online_only": 1, "materialization_lag": 1,
                                                 "ingest_after_serving": 1}
    assert report.features["cards:home_lon"] == {"online_only": 1}  # the others kept their longitude
    # the transform reading home_lat inherits its input's mismatch
    assert report.features["distance:km_from_home"] == {"upstream_input": 4}
    by_card = {}
    for ex in report.examples:
        by_card.setdefault(ex["feature"], []).append(ex)
    lat = {ex["cause"]: ex for ex in by_card["cards:home_lat"] if ex["cause"] != "late_event"}
    assert lat["online_value"]["served"] == EDITED_LAT
    assert lat["materialization_lag"]["offline"] == 1.5 and lat["materialization_lag"]["lag_seconds"] >= 1.0
    assert lat["ingest_after_serving"]["offline"] == 2.5 and lat["ingest_after_serving"]["lag_seconds"] > 0
    # the late event: equal in "available" mode (it was not known), different in "event" mode
    assert report.late_events == {"cards:home_lat": 1, "distance:km_from_home": 1}
    late = [ex for ex in report.examples if ex["cause"] == "late_event" and ex["feature"] == "cards:home_lat"]
    assert late[0]["offline"] == 3.5 and late[0]["lag_seconds"] > 0
    assert report.prediction["mismatched"] == 0  # the model, on the logged inputs, is the registered one
    assert report.breached and report.mismatch_rate == 0.8


def test_a_swapped_model_artifact_is_caught(fraud):
    p = fraud["phases"]
    report = audit(fraud["store"], "fraud", since=p["faults"], until=p["swapped"])
    assert report.rows == 2 and report.features == {}
    assert report.prediction["mismatched"] == 2 and report.prediction["cause"] == "model_artifact"
    assert report.causes == {"model_artifact": 2}


def test_a_transform_changed_without_redeploying_is_attributed(fraud):
    p = fraud["phases"]
    report = p["transform_report"]
    assert report.rows == len(fraud["rest"]) - 2
    assert report.features == {"distance:km_from_home": {"transform_hash": report.rows}}
    assert report.prediction["mismatched"] == 0


def test_cli_exit_codes_json_sample_and_metrics(fraud, tmp_path):
    p, repo = fraud["phases"], str(fraud["repo"])
    cli = CliRunner()
    r = cli.invoke(app, ["audit", "fraud", "--repo", repo, "--since", p["start"].isoformat(), "--until",
                         p["clean"].isoformat(), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["exact_rows"] == len(fraud["clean"])
    metrics = tmp_path / "audit.prom"
    r = cli.invoke(app, ["audit", "fraud", "--repo", repo, "--since", p["clean"].isoformat(), "--until",
                         p["faults"].isoformat(), "--metrics-file", str(metrics)])
    assert r.exit_code == 1, r.output
    assert "online_value" in r.output and "point_in_time=available" in r.output
    text = metrics.read_text()
    assert 'skewless_audit_mismatches{cause="materialization_lag",model="fraud",version="1"} 1.0' in text
    assert 'skewless_audit_breach{model="fraud",version="1"} 1.0' in text
    r = cli.invoke(app, ["audit", "fraud", "--repo", repo, "--since", p["clean"].isoformat(), "--until",
                         p["faults"].isoformat(), "--threshold", "0.8"])
    assert r.exit_code == 0, r.output  # 4 of 5 rows: not over 80 %
    r = cli.invoke(app, ["audit", "fraud", "--repo", repo, "--until", p["clean"].isoformat(), "--sample", "3",
                         "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["rows"] == 3
    halves = [cli.invoke(app, ["audit", "fraud", "--repo", repo, "--sample", "0.5", "--json"]) for _ in range(2)]
    picked = [sorted((e["request_id"], e["request_row"]) for e in json.loads(h.output)["examples"]) for h in halves]
    assert picked[0] == picked[1] and json.loads(halves[0].output)["rows"] < json.loads(halves[0].output)[
        "logged_rows"]  # a share: the same rows on every run
    for bad in (["audit", "nope", "--repo", repo], ["audit", "fraud", "--repo", repo, "--sample", "1.5"],
                ["audit", "fraud", "--repo", repo, "--since", "yesterday"]):
        r = cli.invoke(app, bad)
        assert r.exit_code == 2, (bad, r.output)


def test_the_ui_audit_page_shows_the_result(fraud):
    """``/audit/fraud`` in a real headless browser, reached from the models page: every phase's rows (the transform
    re-applied as pinned since, so its phase audits exact), the faults' causes and the swapped model's rows."""
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.support.ui_site import ARGS, CHROMIUM, serving as ui

    total = len(fraud["clean"]) + len(fraud["faulty"]) + 1 + len(fraud["rest"])
    with ui(fraud["repo"]) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/models")
        page.locator("table.models a", has_text="skew audit").first.click()
        page.wait_for_url(lambda u: "/audit/fraud" in u)
        summary = page.locator("#audit-summary").inner_text()
        assert f"{total} of {total} logged" in summary and "mismatches found" in summary
        assert page.locator("#audit-exact").inner_text() == str(total - 6)  # 4 faulty rows, 2 swapped-model rows
        rows = {tuple(r.split("\t")[:3]) for r in page.locator("#audit-causes tbody tr").all_inner_texts()}
        assert {("cards:home_lat", "online_value", "1"), ("cards:home_lat", "materialization_lag", "1"),
                ("cards:home_lat", "ingest_after_serving", "1"), ("prediction", "model_artifact", "2")} <= rows
        assert "point_in_time=available" in page.content()
        browser.close()
        assert httpx.get(f"{base}/audit/nope").status_code == 404
        assert httpx.get(f"{base}/audit/fraud", params={"period": "5m"}).status_code == 400
    assert errors == []


def test_the_model_server_publishes_audit_gauges(fraud):
    """SKEWLESS_AUDIT_SECONDS on: the server audits a sample of its own recent log in the background and its
    /metrics carries the audit's gauges (the fixture's faults included: they are within the lookback)."""
    cfg = ServeConfig(repo=str(fraud["repo"]), model="fraud", stage="production", log_flush_seconds=0.1,
                      audit_seconds=0.5)
    with running(cfg) as (client, _):
        assert client.post("/invocations", json={"instances": fraud["clean"]}).status_code == 200
        deadline = time.monotonic() + 60
        while True:
            text = client.get("/metrics").text
            if 'skewless_audit_mismatches{cause="online_value",model="fraud",version="1"} 1.0' in text:
                break
            assert time.monotonic() < deadline, text[-3000:]
            time.sleep(0.2)
        assert 'skewless_audit_mismatches{cause="model_artifact",model="fraud",version="1"} 2.0' in text
        assert 'skewless_audit_breach{model="fraud",version="1"} 1.0' in text
