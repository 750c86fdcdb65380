"""The `transactions` template end to end, on real parts (the SQLite online store, DuckDB offline, a uvicorn model
server on loopback): `skewless init --template transactions` -> apply -> ingest cards and transactions -> a
training set from the labels with point_in_time="available" -> a scikit-learn model -> materialize -> package ->
serve -> invoke with request fields (amount, lat, lon) -> replay the prediction log through get_historical_features
to the same inputs (aggregations and transform outputs), and the online aggregations equal the training-set path at
t = now (the spec's invariant)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from skewless.cli.main import app
from skewless.repo import load_objects
from skewless.serving import read_log
from skewless.serving.server import ServeConfig
from skewless.timeutil import now as utc_now
from tests.serving.test_serving import running
from tests.support.agg_oracle import same_value
from tests.support.transactions_repo import AGGS, UNKNOWN_CARD, init, predicted, replay, requests
from tests.support.transactions_repo import trained as trained_repo

INPUT_COLUMNS = ([f"txn_stats__{a}" for a in AGGS] + ["cards__home_lat", "cards__home_lon", "request__amount",
                                                      "request__lat", "request__lon", "spend__amount_vs_mean",
                                                      "distance__km_from_home"])
N_SERVED = 8


def test_init_writes_the_template_deterministically(tmp_path):
    init(tmp_path / "a")
    init(tmp_path / "b")
    for name in ("cards", "transactions", "labels"):
        a, b = pq.read_table(tmp_path / "a" / "data" / f"{name}.parquet"), pq.read_table(
            tmp_path / "b" / "data" / f"{name}.parquet")
        assert a.num_rows > 0 and a.equals(b), name
    assert pq.read_table(tmp_path / "a" / "data" / "transactions.parquet").num_rows > 20_000  # with corrections
    objs = {o.name: type(o).__name__ for o in load_objects(tmp_path / "a")}
    assert objs == {"card": "Entity", "cards": "FeatureView", "txn_stats": "AggregatedView",
                    "spend": "OnDemandTransform", "distance": "OnDemandTransform", "fraud": "FeatureService"}
    r = CliRunner().invoke(app, ["init", str(tmp_path / "a"), "--template", "transactions"])
    assert r.exit_code != 0 and "already exists" in r.output


def test_the_cli_walk_through_reads_online_with_request_fields(tmp_path, monkeypatch):
    """The docs' commands: init, apply, ingest, get-online with decimal request fields (typed Float64, not text)."""
    repo = tmp_path / "fraud"
    init(repo)
    monkeypatch.chdir(repo)
    cli = CliRunner()
    for args in (["apply"], ["ingest", "cards"], ["ingest", "txn_stats"], ["materialize-incremental", "now"]):
        r = cli.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
    r = cli.invoke(app, ["get-online", "-e", "card_id=42,amount=250.0,lat=40.7,lon=-74.0", "--service", "fraud",
                         "--json"])
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.output)
    assert row["entity"] == {"card_id": 42, "amount": 250.0, "lat": 40.7, "lon": -74.0}
    values = {k: v["value"] for k, v in row["features"].items()}
    home = pd.read_parquet(repo / "data" / "cards.parquet").set_index("card_id").loc[42]
    p1, p2, dl = np.radians(home.home_lat), np.radians(40.7), np.radians(-74.0 - home.home_lon)
    km = 2 * 6371.0 * np.arcsin(np.sqrt(np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2))
    assert same_value(values["km_from_home"], float(km))
    # the sample history ends in January 2024: today's windows are empty, and so is the ratio to the 7-day mean
    assert values["count_7d"] == 0 and values["amount_mean_7d"] is None and values["amount_vs_mean"] is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_repo(tmp_path_factory.mktemp("transactions") / "repo")


def test_available_mode_leaves_out_the_labelled_transaction_itself(trained):
    """At its own time a label's transaction is not yet known (created 1-120 s later, or hours when late): the
    "available" training set never counts it; the "event" one does. So every row's 1-hour count differs by >= 1."""
    store, labels = trained["store"], trained["labels"].head(300)
    event = store.get_historical_features(labels[["card_id", "event_timestamp"]], ["txn_stats:count_1h"]).to_pandas()
    available = trained["train"].head(300)
    assert (event.count_1h - available.count_1h >= 1).all()
    assert available.count_1h.sum() > 0  # and the window is not simply empty


def test_served_predictions_replay_to_identical_inputs(trained):
    store = trained["store"]
    rows = requests(trained, N_SERVED)
    cfg = ServeConfig(repo=str(trained["repo"]), model_dir=str(trained["artifact"].path), log_flush_seconds=3600)
    with running(cfg) as (client, _model):
        r = client.post("/invocations", json={"instances": rows})
        assert r.status_code == 200, r.text
        served = [p["proba_1"] for p in r.json()["predictions"]]
        single = client.post("/invocations", json=rows[0])  # one row: the transforms' row-mode path
        assert single.status_code == 200 and single.json()["predictions"][0]["proba_1"] == served[0]
    log = read_log(store, "fraud").to_pandas().sort_values(["request_id", "request_row"]).reset_index(drop=True)
    assert len(log) == len(rows) + 1
    missing = [c for c in INPUT_COLUMNS if c not in log.columns]
    assert not missing, missing  # the aggregations, the transforms' inputs and outputs are all logged
    in_batch = log.groupby("request_id").request_row.transform("size") == len(rows)
    batch = log[in_batch].reset_index(drop=True)
    assert batch.card_id.tolist() == [r["card_id"] for r in rows]
    assert (batch.txn_stats__count_7d.iloc[:N_SERVED] > 0).all()  # the served cards have a history in the week
    assert batch.spend__amount_vs_mean.iloc[:N_SERVED].notna().all()
    assert batch.txn_stats__count_7d.iloc[-1] == 0 and pd.isna(batch.distance__km_from_home.iloc[-1])
    # replay: every logged request through the training-set path gives the logged inputs, value for value
    replayed = replay(trained, log)
    # and the served predictions are the model's on the replayed inputs
    expected = predicted(trained, replayed[in_batch.to_numpy()])
    assert all(same_value(a, b) for a, b in zip(served, expected))


def test_online_aggregations_equal_the_training_path_at_now(trained):
    store, txn = trained["store"], trained["txn"]
    keys = sorted(set(txn.card_id.sample(40, random_state=2).tolist()) | {UNKNOWN_CARD})
    rows = [{"card_id": int(k)} for k in keys]
    now = utc_now()
    refs = [f"txn_stats:{a}" for a in AGGS]
    online = store.get_online_features(refs, rows, now=now).values
    at_now = pd.DataFrame(rows).assign(event_timestamp=now)
    for mode in ("event", "available"):  # equal here: everything ingested was created by now
        offline = store.get_historical_features(at_now, refs, point_in_time=mode).to_arrow()
        for a in AGGS:
            left, right = online[a], offline.column(a).to_pylist()
            assert all(same_value(x, y) for x, y in zip(left, right)) and len(left) == len(right), (mode, a, left,
                                                                                                     right)
    assert sum(online["count_7d"]) > 0
