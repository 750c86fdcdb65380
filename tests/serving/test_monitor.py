"""Training-serving skew on data where the answer is known, end to end: the credit repo, a model packaged with a
registered training set (its write-time statistics are the reference), a real model server on loopback whose
prediction log is read back by `skewless monitor` and by the server's own background refresh (its /metrics
gauges, scraped and parsed with prometheus_client's parser).

1. An identical replay (loans drawn from the training set, features as trained) is not flagged.
2. Injected drift: one feature of other loans shifted by +3 standard deviations, ingested and served: that feature
   is flagged (PSI and KS over their thresholds), no other.
3. A burst of unknown loans (NOT_FOUND): the missing share is flagged; the distributions of the rows that were
   found are not.
"""

from __future__ import annotations

import json
import math
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app as cli
from skewless.demo import _model
from skewless.serving import ModelRegistry, monitor, package_model
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.serving.test_serving import running
from tests.support.monitor_site import MONITORING, ROWS, SERVICE, SHIFTED, credit_model, inject_drift, serve  # noqa: F401



@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    return credit_model(tmp_path_factory.mktemp("monitor") / "repo")


def gauges(client, rows: int, timeout: float = 60.0) -> dict:
    """The skew gauges once the server's refresh has seen ``rows`` logged predictions: metric -> feature -> value."""
    deadline = time.monotonic() + timeout
    while True:
        fams = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
        seen = [s.value for s in fams["skewless_monitor_rows"].samples]
        if seen == [rows]:
            break
        assert time.monotonic() < deadline, f"the monitor never saw {rows} rows (saw {seen})"
        time.sleep(0.2)
    out: dict = {}
    for m in ("psi", "ks", "js", "missing_share", "drift_breach"):
        for s in fams[f"skewless_feature_{m}"].samples:
            assert s.labels["model"] == "credit" and s.labels["version"] == "1"
            out.setdefault(m, {})[s.labels["feature"]] = s.value
    return out


def run_cli(*args) -> tuple[int, dict]:
    res = CliRunner().invoke(cli, ["monitor", *args])
    return res.exit_code, json.loads(res.stdout) if "--json" in args and res.exit_code in (0, 1) else res.output


def test_identical_replay_passes_injected_drift_and_missing_burst_are_flagged(credit):
    store, repo = credit["store"], str(credit["repo"])
    cfg = ServeConfig(repo=repo, model="credit", stage="production", monitor_seconds=0.3, log_flush_seconds=0.2)
    with running(cfg) as (c, _):
        # 1. Identical replay.
        t0 = utc_now()
        serve(c, credit["replay"])
        g = gauges(c, ROWS)
        refs = sorted(g["psi"])
        assert len(refs) == 11 and SHIFTED in refs  # every feature the model reads
        assert all(v == 0 for v in g["drift_breach"].values()), g
        assert max(g["psi"].values()) < 0.1 and max(g["js"].values()) < 0.1
        assert max(v for v in g["ks"].values() if not math.isnan(v)) < 0.1
        assert max(g["missing_share"].values()) == 0
        code, rep = run_cli("credit", "--stage", "production", "--json", "--repo", repo)
        assert code == 0 and not rep["breached"] and rep["windows"][0]["rows"] == ROWS
        assert rep["training_set"] == {"name": "credit_train", "version": 1}

        # 2. Injected drift: +3 sd on one feature of other loans, ingested (history and online) and served.
        inject_drift(credit)
        t1 = utc_now()
        serve(c, credit["drifted"])
        g = gauges(c, 2 * ROWS)  # the last hour: half identical, half drifted
        assert {f for f, v in g["drift_breach"].items() if v} == {SHIFTED}
        assert g["psi"][SHIFTED] > 0.2 and g["ks"][SHIFTED] > 0.1

        code, rep = run_cli("credit", "--json", "--since", t1.isoformat(), "--repo", repo)
        assert code == 1 and rep["breached"]
        (w,) = rep["windows"]
        assert w["rows"] == ROWS and set(w["breaches"]) == {SHIFTED}
        assert {"psi", "ks", "js"} <= set(w["breaches"][SHIFTED])
        shifted = w["features"][SHIFTED]
        assert shifted["ks"] > 0.8 and shifted["psi"] > 2  # +3 sd moves nearly all of it past the top decile
        code, rep = run_cli("credit", "--json", "--since", t0.isoformat(), "--until", t1.isoformat(),
                            "--repo", repo)
        assert code == 0 and rep["windows"][0]["rows"] == ROWS  # the replay alone, still clean

        # 3. A burst of unknown loans (NOT_FOUND in every view) among known ones.
        t2 = utc_now()
        serve(c, list(range(-1, -601, -1)) + [int(x) for x in credit["replay"][:400]])
        g = gauges(c, 2 * ROWS + 1000)
        assert g["missing_share"][SHIFTED] == pytest.approx(600 / (2 * ROWS + 1000))
        assert all(v == 1 for v in g["drift_breach"].values())  # missing share over 0.05 everywhere
    code, rep = run_cli("credit", "--json", "--since", t2.isoformat(), "--repo", repo)
    assert code == 1
    (w,) = rep["windows"]
    assert w["rows"] == 1000
    for ref, d in w["features"].items():
        assert d["missing_share"] == pytest.approx(0.6) and d["not_found_share"] == pytest.approx(0.6)
        assert w["breaches"][ref] == ["missing_share"], (ref, d)  # the 400 found rows are as trained

    # Drift over time: hour windows over the whole log give the same rows in total; the table form prints them.
    rep = monitor(store, "credit", window=timedelta(hours=1))
    assert sum(w.rows for w in rep.windows) == 2 * ROWS + 1000 and rep.breached
    code, out = run_cli("credit", "--window", "1h", "--repo", repo)
    assert code == 1 and "BREACH:" in out and SHIFTED in out


def test_bad_input_is_a_typed_error_with_exit_2(credit):
    repo = str(credit["repo"])
    for args, message in [
        (["nope"], "NotFoundError: no model named 'nope' is registered"),
        (["credit", "--since", "yesterday"], "ValidationError: --since 'yesterday': expected an ISO 8601 time"),
        (["credit", "--window", "0h"], "ValidationError: --window '0h': expected a positive duration"),
        (["credit", "--version", "1", "--stage", "production"], "give --version or --stage, not both"),
        (["credit", "--version", "9"], "NotFoundError: model 'credit' has no version 9"),
    ]:
        code, out = run_cli(*args, "--repo", repo)
        assert code == 2, (args, out)
        assert message in out and "Traceback" not in out, (args, out)


def test_a_model_without_a_registered_training_set_has_nothing_to_compare(credit, tmp_path):
    store, repo = credit["store"], str(credit["repo"])
    loans = credit["loans"]
    job = store.get_historical_features(loans[["loan_id", "zipcode", "event_timestamp", "loan_status"]].head(200),
                                        SERVICE)
    train = job.to_pandas()
    model = _model().fit(train[[r.split(":")[1] for r in job.features]], train["loan_status"])
    with pytest.raises(sk.DefinitionError, match=r"monitoring names features it does not read: \['loan_features:x'\]"):
        package_model(model, name="plain", store=store, feature_service=SERVICE, snapshot=job.snapshot,
                      key_lookups={"zipcode": "loan_zipcode:zipcode"}, path=tmp_path / "bad",
                      monitoring={"features": {"loan_features:x": {"psi": 1}}})
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    art = package_model(model, name="plain", store=store, feature_service=SERVICE, snapshot=job.snapshot,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"})
    ModelRegistry(store).register(art)
    code, out = run_cli("plain", "--repo", repo)
    assert code == 2 and "ValidationError: model 'plain' version 1 was not packaged with a registered training set" \
        in out
    cfg = ServeConfig(repo=repo, model="plain", monitor_seconds=0.1)
    with running(cfg) as (c, _):
        serve(c, credit["replay"][:10])
        time.sleep(0.5)  # a few refresh periods: the refresher ended at its first run
        fams = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
    assert fams["skewless_feature_psi"].samples == [] and fams["skewless_monitor_rows"].samples == []


def test_windows_split_drift_over_time(credit):
    """``evaluate`` in windows: rows of three hours, the middle one drifted, judged hour by hour."""
    from skewless.serving.monitor import evaluate, monitored, read_rows
    from skewless.definitions import EVENT_TS

    store = credit["store"]
    mv = ModelRegistry(store).get("credit", stage="production")
    mon = monitored(store, mv.manifest, mv.version)
    cols = list(mon.features) + sorted({s for _, s in mon.features.values()})
    if len(read_rows(store, "credit", mv.version, cols)) < ROWS:  # run alone: log an identical replay first
        with running(ServeConfig(repo=str(credit["repo"]), model="credit", monitor_seconds=0)) as (c, _):
            serve(c, credit["replay"])
    replay = read_rows(store, "credit", mv.version, cols).slice(0, ROWS)  # the replay phase: the first rows logged
    assert len(replay) == ROWS
    t0 = pd.Timestamp("2026-12-01T10:00:00Z")
    hours = [replay.set_column(replay.schema.get_field_index(EVENT_TS), EVENT_TS,
                               pa.array([t0 + pd.Timedelta(hours=h, seconds=i) for i in range(ROWS)],
                                        pa.timestamp("us", "UTC"))) for h in range(3)]
    col = next(c for c, (ref, _) in mon.features.items() if ref == SHIFTED)
    i = hours[1].schema.get_field_index(col)
    hours[1] = hours[1].set_column(i, col, pc.add(hours[1].column(col), 10.0))
    windows = evaluate(mon, pa.concat_tables(hours), window=timedelta(hours=1))
    assert [w.start for w in windows] == [t0 + pd.Timedelta(hours=h) for h in range(3)]
    assert [w.rows for w in windows] == [ROWS] * 3
    assert [sorted(w.breaches) for w in windows] == [[], [SHIFTED], []]


def test_transform_outputs_have_no_view_status_and_no_statistics(tmp_path):
    """A model taking on-demand transform outputs: their log columns have no view status (never counted missing) and
    the training set has no statistics of them (missing shares only); the views' features are compared as usual."""
    from skewless.serving.model import ServedModel
    from tests.serving.test_serving_transforms import INPUTS
    from tests.support.odt_repo import T0, make_repo

    store = make_repo(tmp_path / "repo")
    store.materialize(T0, utc_now())
    rng = np.random.default_rng(1)
    ent = pd.DataFrame({"driver_id": np.arange(20).repeat(5), "amount": rng.uniform(0, 200, 100).round(2),
                        "event_timestamp": pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 48, 100), unit="h")})
    job = store.get_historical_features(ent, "svc")
    job.register("odt_train")
    train = job.to_pandas()
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(train[INPUTS].astype(float), (train.amount > 100).astype(int))
    art = package_model(model, name="odt", store=store, feature_service="svc", training_set=job,
                        monitoring={"min_rows": 1})
    mv = ModelRegistry(store).register(art)
    served = ServedModel(art, store, version=mv.version)
    served.load()
    (answer,) = served.predict_batch([served.parse([{"driver_id": i % 20, "amount": 10.0 * i} for i in range(30)])])
    assert isinstance(answer, dict) and served.close()
    rep = monitor(store, "odt")
    (w,) = rep.windows
    assert w.rows == 30
    ratio, trips = w.features["ratios:ratio"], w.features["stats:trips"]
    assert ratio.kind == "none" and ratio.missing_share == 0 and ratio.values == 0
    assert ratio.null_share == 0.0  # all 30 rows count as present (no view status to say otherwise)
    assert trips.kind == "numeric" and trips.values == 30 and trips.ks is not None


def test_the_refreshers_file_cache_gives_what_a_full_read_gives(credit):
    """read_rows with the refresher's cache: a later ``since`` drops the rows that left the range from cached files,
    and the answer equals a read without the cache."""
    from skewless.definitions import EVENT_TS
    from skewless.serving.monitor import _columns, monitored, read_rows

    store = credit["store"]
    mv = ModelRegistry(store).get("credit", stage="production")
    cols = _columns(monitored(store, mv.manifest, mv.version))
    if len(read_rows(store, "credit", mv.version, cols)) < 2 * ROWS:  # run alone: two flushes' worth of rows
        with running(ServeConfig(repo=str(credit["repo"]), model="credit", monitor_seconds=0,
                                 log_flush_seconds=0.2)) as (c, _):
            serve(c, credit["replay"])
            time.sleep(0.5)
            serve(c, credit["replay"])
    cache: dict = {}
    full = read_rows(store, "credit", mv.version, cols, since=pd.Timestamp("2000-01-01", tz="UTC"), cache=cache)
    assert len(cache) > 1 and len(full) >= 2 * ROWS
    ts = full.column(EVENT_TS).to_pylist()
    mid = ts[len(ts) // 2]
    later = read_rows(store, "credit", mv.version, cols, since=mid, cache=cache)
    assert later.equals(read_rows(store, "credit", mv.version, cols, since=mid))
    assert len(later) == sum(1 for t in ts if t >= mid) < len(full)
    assert sum(len(t) for t, _ in cache.values()) == len(later)  # the rows before ``mid`` are gone from the cache


def test_read_rows_on_an_s3_history(tmp_path, local_cloud, moto_endpoint):
    """The log read where it lives: an S3 history (moto) through the store's pyarrow filesystem, the model version
    and time range pushed into the scan, the refresher's cache equal to a plain read."""
    from datetime import timedelta as td

    from skewless.serving.monitor import read_rows
    from skewless.serving.prediction_log import PredictionLogWriter
    from tests.support.object_store import object_store_repo
    from tests.support.predlog_helpers import T0, manifest, rows

    local_cloud.ensure_bucket("skewless-tests", moto_endpoint)
    options = {"endpoint_url": moto_endpoint, "region": "us-east-1", "access_key_id": "test",
               "secret_access_key": "test"}
    store = object_store_repo(tmp_path / "repo", "s3://skewless-tests", options, "t")
    m = manifest()
    w = PredictionLogWriter(store, m, spill_dir=tmp_path / "spill", flush_seconds=3600)
    w.add(rows(m, list(range(10))))
    assert w.flush(30)
    other = rows(m, list(range(10, 15)), request="o")
    other["model_version"] = [2] * 5  # another version of the model: never its rows
    w.add(other)
    assert w.flush(30) and w.close(10)
    cols = ["v__x", "v__status"]
    got = read_rows(store, "m", 1, cols, since=T0 + td(seconds=4))
    assert got.column_names == ["event_timestamp", *cols]
    assert got.column("v__x").to_pylist() == [float(i) for i in range(4, 10)]
    cache: dict = {}
    assert read_rows(store, "m", 1, cols, since=T0, cache=cache).num_rows == 10 and len(cache) == 2
    assert read_rows(store, "m", 1, cols, since=T0 + td(seconds=4), cache=cache).equals(got)
    assert read_rows(store, "m", 2, cols).num_rows == 5
