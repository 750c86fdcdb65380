"""Batch scoring (issue 20): a registered model version over entity rows through the training-set path.

The key check: rows served by a real model server (uvicorn, its prediction log) and the same entities scored in
batch at the logged read times are equal column for column (features, view event times and statuses, key lookups,
request fields, outputs); on the credit model (a loan -> zipcode key lookup, SQLite online) and on the
`transactions` template's fraud model (aggregations, on-demand transforms, request fields, Redis online).
Then: predictions written to a view and read back as features, a rerun appending nothing, window scoring, the
pipeline entry point, the CLI, the typed errors and the bad-entity-file corpus, a TTL's EXPIRED status as online,
and PII features stored as the log stores them."""

from __future__ import annotations

import os
from datetime import timedelta
from types import SimpleNamespace

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from skewless import errors
from skewless.cli.main import app
from skewless.ingest import read_file
from skewless.errors import DefinitionError, NotFoundError, ValidationError
from skewless.serving import ModelRegistry, read_log
from skewless.serving import prediction_log
from skewless.serving.batch_score import prediction_view, run_model_stage, score, window_entities
from skewless.serving.server import ServeConfig
from skewless.skew_audit import equal
from tests.core.test_bad_inputs import cli_error, write_case
from tests.serving.test_serving import running, trained_credit
from tests.support.paths import FIXTURES
from tests.support.transactions_repo import requests
from tests.support.transactions_repo import trained as trained_repo


def served_log(t: dict, model: str, rows: list[dict]) -> pd.DataFrame:
    """``rows`` predicted by a real model server (the production version), its log read back in request order."""
    cfg = ServeConfig(repo=str(t["repo"]), model=model, stage="production", log_flush_seconds=0.2)
    with running(cfg) as (client, _):
        r = client.post("/invocations", json={"instances": rows})
        assert r.status_code == 200, r.text
    log = read_log(t["store"], model).to_pandas()
    return log[log.request_id == r.json()["request_id"]].sort_values("request_row").reset_index(drop=True), r.json()


def assert_rows_equal(store, model: str, log: pd.DataFrame, batch: pa.Table, unknown: list[str] = (),
                      tolerant: tuple[str, ...] = ()) -> None:
    """Every column of the prediction log but the request id, row for row (outputs to the 1e-9 the audit allows:
    a model's float arithmetic may differ with the batch it runs in). ``unknown``: columns batch rows leave null
    (an aggregated view's newest event time: docs/batch-scoring.md, "Limits"). Columns starting with one of
    ``tolerant`` compare to 1e-9 relative too: float sums of aggregations, which the spec lets engines add in
    another order (transformations.md), and transform outputs computed from them (the audit's rule)."""
    m = ModelRegistry(store).get(model).manifest
    cols = [*prediction_log.log_view(m).join_keys, "event_timestamp", *prediction_log.columns(m)]
    online = pa.Table.from_pandas(log[cols], preserve_index=False)
    assert batch.num_rows == online.num_rows
    for c in cols:
        if c == "request_id":
            continue
        if c in unknown:
            assert batch.column(c).null_count == batch.num_rows and online.column(c).null_count < online.num_rows
            continue
        ok = equal(online.column(c), batch.column(c), tolerant=c.startswith(("output__", *tolerant)))
        assert ok.all(), (c, online.column(c).take(np.flatnonzero(~ok)[:3]).to_pylist(),
                          batch.column(c).take(np.flatnonzero(~ok)[:3]).to_pylist())


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    t = trained_credit(tmp_path_factory.mktemp("score") / "repo", sample=30, random_state=5)
    rows = [{"loan_id": int(i)} for i in t["loans"].loan_id] + [{"loan_id": 999_999_999}]  # one unknown loan
    t["log"], t["answer"] = served_log(t, "credit", rows)
    return t


def test_batch_scores_equal_online_predictions_row_for_row_with_key_lookups(credit):
    log = credit["log"]
    result = score(credit["store"], "credit", log[["loan_id", "event_timestamp"]])
    assert result.rows == len(log) == 31 and result.view is None and result.written == 0
    assert_rows_equal(credit["store"], "credit", log, result.table)
    # the answers the client got, too
    served = [p["proba_1"] for p in credit["answer"]["predictions"]]
    np.testing.assert_allclose(result.table.column("output__proba_1").to_numpy(), served, rtol=1e-9)
    statuses = result.table.column("loan_features__status").to_pylist()
    assert statuses[-1] == "NOT_FOUND" and statuses[:-1] == ["PRESENT"] * 30  # not vacuous
    assert result.table.column("zipcode").null_count == 1  # the lookup's key, read at the row's time


@pytest.fixture(scope="module")
def fraud(tmp_path_factory, redis_url):
    prefix = f"score{os.getpid()}"
    t = trained_repo(tmp_path_factory.mktemp("score-fraud") / "repo",
                     online_yaml=f"url: {redis_url}\n  options: {{key_prefix: {prefix}}}")
    ModelRegistry(t["store"]).register(t["artifact"], stage="production")
    t["log"], _ = served_log(t, "fraud", requests(t, 8))
    return t


def test_batch_scores_equal_online_predictions_with_aggregations_transforms_and_request_fields(fraud):
    log = fraud["log"]
    entity = log[["card_id", "event_timestamp"]].assign(amount=log.request__amount, lat=log.request__lat,
                                                        lon=log.request__lon)
    result = score(fraud["store"], "fraud", entity)
    assert_rows_equal(fraud["store"], "fraud", log, result.table, unknown=["txn_stats__event_timestamp"],
                      tolerant=("txn_stats__amount_", "spend__"))
    t = result.table
    assert pa.compute.sum(pa.compute.greater(t.column("txn_stats__count_7d"), 0)).as_py() == len(log) - 1
    assert t.column("spend__amount_vs_mean").null_count == 1  # transform outputs computed (but the unknown card)


def test_window_over_an_aggregated_view_finds_the_cards_with_events_in_it(fraud):
    txn = fraud["txn"]
    end = txn.event_timestamp.max()
    start = end - timedelta(hours=2)
    expected = sorted(txn[(txn.event_timestamp >= start) & (txn.event_timestamp <= end)].card_id.unique())
    assert 2 <= len(expected) < txn.card_id.nunique()
    assert window_entities(fraud["store"], "txn_stats", start, end).column("card_id").to_pylist() == expected
    # the fraud model takes request fields: a window cannot give them
    with pytest.raises(ValidationError, match=r"takes request fields \['lat', 'lon', 'amount'\]"):
        score(fraud["store"], "fraud", start=start, end=end)


def test_a_transform_changed_since_packaging_is_refused_as_the_server_refuses_it(fraud):
    from skewless.repo import load_objects

    repo, store = fraud["repo"], fraud["store"]
    features = (repo / "features.py").read_text()
    entity = fraud["log"][["card_id", "event_timestamp"]].assign(amount=1.0, lat=40.0, lon=-74.0)
    try:
        (repo / "features.py").write_text(features.replace("2 * 6371.0 *", "2 * 6371.5 *"))
        store.apply(load_objects(repo))
        with pytest.raises(DefinitionError, match=r"transform distance: pinned [0-9a-f]{12}, registry [0-9a-f]{12}"):
            score(store, "fraud", entity)
    finally:
        (repo / "features.py").write_text(features)
        store.apply(load_objects(repo))
    assert score(store, "fraud", entity).rows == len(entity)


def rows_in(store, view: str) -> int:
    files = store.offline.files(view, store.offline.version(view))
    return sum(pq.read_metadata(u.removeprefix("file://")).num_rows for u in files.uris)


def test_predictions_written_to_a_view_read_as_features_and_a_rerun_appends_nothing(credit):
    store, log = credit["store"], credit["log"]
    entity = log[["loan_id", "event_timestamp"]]
    first = score(store, "credit", entity, output_view="credit_scores")
    assert (first.view, first.written, first.already_written) == ("credit_scores", 31, False)
    view = store.get_feature_view("credit_scores")
    assert view.tags == {"skewless.kind": "batch_predictions", "skewless.model": "credit"} and not view.online
    again = score(store, "credit", entity, output_view="credit_scores")
    assert (again.written, again.already_written, again.batch_id) == (0, True, first.batch_id)
    assert rows_in(store, "credit_scores") == 31
    # predictions as features of a later model: joined point in time like any view, lineage included
    later = entity.assign(event_timestamp=pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=1))
    got = store.get_historical_features(later, ["credit_scores:output__proba_1", "credit_scores:model_version"]
                                        ).to_pandas()
    np.testing.assert_array_equal(got.output__proba_1.to_numpy(), first.table.column("output__proba_1").to_numpy())
    assert got.model_version.tolist() == [1] * 31
    # an earlier time sees no prediction yet
    before = entity.assign(event_timestamp=entity.event_timestamp - pd.Timedelta(seconds=1))
    assert store.get_historical_features(before, ["credit_scores:output__proba_1"]).to_pandas() \
        .output__proba_1.isna().all()


def test_window_scores_the_entities_with_rows_in_it_as_of_its_end(credit):
    store = credit["store"]
    loans = pd.read_parquet(credit["repo"] / "data" / "loan_table.parquet", columns=["loan_id", "event_timestamp"])
    start = loans.event_timestamp.sort_values().iloc[1000]
    end = start + timedelta(hours=12)
    expected = sorted(loans[(loans.event_timestamp >= start) & (loans.event_timestamp <= end)].loan_id.unique())
    assert 3 <= len(expected) < 1000  # a window, not everything
    ents = window_entities(store, "loan_features", start, end)
    assert ents.column("loan_id").to_pylist() == expected
    assert set(ents.column("event_timestamp").to_pylist()) == {end.to_pydatetime()}
    result = score(store, "credit", start=start, end=end)
    assert result.table.column("loan_id").to_pylist() == expected
    explicit = score(store, "credit", pd.DataFrame({"loan_id": expected, "event_timestamp": end}))
    assert result.table.drop_columns(["request_id"]).equals(explicit.table.drop_columns(["request_id"]))
    # a service's views by the same keys: the same entities
    assert window_entities(store, "credit_model_v1", start, end, keys=["loan_id"]).equals(ents)


def test_the_pipeline_entry_point_writes_once(credit):
    store = credit["store"]
    stage = SimpleNamespace(model="credit", version=1, output="credit_stage_out")
    entity = credit["log"][["loan_id", "event_timestamp"]].head(5)
    assert run_model_stage(store, stage, entity) == 5
    assert run_model_stage(store, stage, entity) == 0
    loans = pd.read_parquet(credit["repo"] / "data" / "loan_table.parquet", columns=["event_timestamp"])
    start = loans.event_timestamp.sort_values().iloc[2000]
    assert run_model_stage(store, stage, (start, start + timedelta(hours=6))) > 0
    assert rows_in(store, "credit_stage_out") > 5


def test_typed_errors(credit):
    store = credit["store"]
    entity = credit["log"][["loan_id", "event_timestamp"]]
    with pytest.raises(NotFoundError, match="nosuch"):
        score(store, "nosuch", entity)
    with pytest.raises(NotFoundError, match="no version 42"):
        score(store, "credit", entity, version=42)
    with pytest.raises(ValidationError, match=r"lack columns \['loan_id'\]") as e:
        score(store, "credit", entity[["event_timestamp"]])
    assert e.value.column == "loan_id"
    with pytest.raises(ValidationError, match="lack columns"):
        score(store, "credit", entity[["loan_id"]])
    with pytest.raises(ValidationError, match="not both"):
        score(store, "credit", entity, start="2021-01-01", end="2021-01-02")
    with pytest.raises(ValidationError, match="window"):
        score(store, "credit")
    with pytest.raises(ValidationError, match="after its end"):
        score(store, "credit", start="2021-01-02", end="2021-01-01")
    with pytest.raises(DefinitionError, match="not a batch prediction view"):
        score(store, "credit", entity, output_view="loan_features")
    with pytest.raises(DefinitionError, match="prediction log"):
        prediction_view(store, "credit", "predictions_credit")
    assert "loan_features" in {v.name for v in store.list_feature_views()}  # untouched


def test_cli_scores_a_file_and_a_window(credit, tmp_path):
    path = tmp_path / "entities.parquet"
    credit["log"][["loan_id", "event_timestamp"]].head(7).to_parquet(path)
    repo = str(credit["repo"])
    r = CliRunner().invoke(app, ["score", "credit", "--entities", str(path), "--output", "cli_scores", "--repo",
                                 repo, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["rows"], doc["written"], doc["view"], doc["version"]) == (7, 7, "cli_scores", 1)
    r = CliRunner().invoke(app, ["score", "credit", "--entities", str(path), "--output", "cli_scores", "--repo",
                                 repo])
    assert r.exit_code == 0 and "already written" in r.output, r.output
    out = tmp_path / "scores.parquet"
    loans = pd.read_parquet(credit["repo"] / "data" / "loan_table.parquet", columns=["event_timestamp"])
    start = loans.event_timestamp.sort_values().iloc[3000]
    r = CliRunner().invoke(app, ["score", "credit", "--start", start.isoformat(), "--end",
                                 (start + timedelta(hours=6)).isoformat(), "--out", str(out), "--repo", repo])
    assert r.exit_code == 0, r.output
    scored = pq.read_table(out)
    assert scored.num_rows >= 1 and set(scored.column("model_name").to_pylist()) == {"credit"}
    # an empty window is no error: nothing scored
    r = CliRunner().invoke(app, ["score", "credit", "--start", "1990-01-01", "--end", "1990-01-02", "--repo", repo])
    assert r.exit_code == 0 and "0 rows scored" in r.output, r.output
    r = CliRunner().invoke(app, ["score", "credit", "--repo", repo])
    assert r.exit_code == 1 and "window" in r.output
    r = CliRunner().invoke(app, ["score", "credit", "--version", "9", "--entities", str(path), "--repo", repo])
    assert r.exit_code == 1 and "no version 9" in r.output


BAD = yaml.safe_load((FIXTURES / "bad_inputs" / "batch_score.yaml").read_text())


@pytest.mark.parametrize("case", BAD, ids=[c["id"] for c in BAD])
def test_bad_entity_files_sdk_and_cli(case, credit, tmp_path):
    store = credit["store"]
    path = write_case(case, tmp_path)
    with pytest.raises(getattr(errors, case["error"])) as info:
        score(store, "credit", read_file(path), output_view="bad_scores")
    assert case["message"] in str(info.value) and "\n" not in str(info.value)
    out = cli_error(["score", "credit", "--entities", path, "--output", "bad_scores", "--repo", credit["repo"]])
    assert out.startswith(f"error: {case['error']}: ") and case["message"] in out, out
    assert "bad_scores" not in {v.name for v in store.list_feature_views()}  # nothing declared, nothing written


def test_a_value_past_its_ttl_reads_expired_as_online(tmp_path):
    """A view with a TTL: a row whose newest value is older than the TTL at the scoring time is EXPIRED (the online
    store's status, not the training path's plain null), one with no value NOT_FOUND; values null in both."""
    import skewless as sk
    from sklearn.ensemble import HistGradientBoostingClassifier

    from skewless.serving import package_model

    store = sk.init_repo(tmp_path / "repo")
    acct = sk.Entity("acct", ["acct_id"], dtype=sk.Int64)
    bal = sk.FeatureView("balance", [acct], [sk.Field("amount", sk.Float64)], ttl=timedelta(hours=1))
    store.apply([acct, bal, sk.FeatureService("bal_svc", [bal])])
    t0 = pd.Timestamp("2026-01-01T12:00:00Z")
    rows = pd.DataFrame({"acct_id": [1, 2, 4], "amount": [10.0, 20.0, 30.0],
                         "event_timestamp": [t0, t0 - timedelta(hours=3), t0 - timedelta(minutes=10)]})
    store.ingest("balance", rows.assign(created_timestamp=rows.event_timestamp))
    train = store.get_historical_features(rows[["acct_id", "event_timestamp"]].assign(y=[0, 1, 0]), "bal_svc")
    frame = train.to_pandas()
    model = HistGradientBoostingClassifier(max_iter=2, min_samples_leaf=1).fit(frame[["amount"]], frame.y)
    ModelRegistry(store).register(package_model(model, name="bal", store=store, feature_service="bal_svc",
                                                training_set=train))
    at = t0 + timedelta(minutes=30)
    keys = [{"acct_id": k} for k in (1, 2, 3, 4)]
    online = store.get_online_features(["balance:amount"], keys, now=at.to_pydatetime())
    result = score(store, "bal", pd.DataFrame({"acct_id": [1, 2, 3, 4], "event_timestamp": at}))
    assert result.table.column("balance__status").to_pylist() == online.statuses["amount"] == \
        ["PRESENT", "EXPIRED", "NOT_FOUND", "PRESENT"]
    assert result.table.column("balance__amount").to_pylist() == online.values["amount"] == [10.0, None, None, 30.0]
    # the view's TTL changed in the registry since packaging: the server keeps the frozen one, so batch refuses
    store.apply([sk.FeatureView("balance", [acct], [sk.Field("amount", sk.Float64)], ttl=timedelta(hours=2))])
    with pytest.raises(DefinitionError, match=r"balance.ttl_seconds: 3600.0 -> 7200.0"):
        score(store, "bal", pd.DataFrame({"acct_id": [1], "event_timestamp": at}))


def test_pii_features_are_stored_as_the_log_stores_them_while_the_model_gets_their_values(tmp_path, monkeypatch):
    """log_pii="hash": the served log and the batch rows hold the same HMACs of the PII features, and the same
    outputs (the model read the values: its score is computed from the PII income)."""
    from skewless.pii import HASH_KEY_ENV, HASH_PREFIX
    from tests.serving.test_pii_outputs import pii_repo, serve_and_log

    monkeypatch.setenv(HASH_KEY_ENV, "k1")
    store = pii_repo(tmp_path / "repo", log_pii="hash")
    log = serve_and_log(tmp_path, store).reset_index(drop=True)
    entity = log[["customer_id", "event_timestamp"]].assign(amount=log.request__amount, delay=log.request__delay)
    result = score(store, "scorer", entity)
    assert_rows_equal(store, "scorer", log, result.table)
    assert all(v.startswith(HASH_PREFIX) for v in result.table.column("customer_profile__email").to_pylist())
    assert result.table.column("output__score").to_pylist()[0] == 102001.0


def test_an_online_prediction_view_serves_the_scores_as_features(credit):
    store = credit["store"]
    view = prediction_view(store, "credit", "credit_scores_online", online=True)
    assert view.online
    entity = credit["log"][["loan_id", "event_timestamp"]].head(4)
    result = score(store, "credit", entity, output_view="credit_scores_online")
    assert store.get_feature_view("credit_scores_online").online  # score kept the declaration
    got = store.get_online_features(["credit_scores_online:output__proba_1"],
                                    [{"loan_id": int(i)} for i in entity.loan_id])
    assert got.values["output__proba_1"] == result.table.column("output__proba_1").to_pylist()
    assert got.statuses["output__proba_1"] == ["PRESENT"] * 4
