"""A model with a registered training set on the credit repo, and what its prediction log is made of in the
monitoring tests and the docs' screenshot of the drift page: shared by tests/serving/test_monitor.py,
tests/serving/test_ui_monitor.py and ``python -m tests.support.ui_site``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from skewless.demo import _model
from skewless.sample_repo import credit_repo
from skewless.serving import ModelRegistry, package_model
from skewless.timeutil import now as utc_now

SERVICE = "credit_model_v1"
SHIFTED = "loan_features:loan_int_rate"
ROWS = 1500  # per phase: over min_rows (500), where sampling noise stays well under the thresholds
MONITORING = {"psi": 0.2, "ks": 0.1, "js": 0.1, "missing_share": 0.05, "min_rows": 500}
LOAN_COLUMNS = ["loan_id", "person_age", "person_income", "person_home_ownership", "person_emp_length", "loan_intent",
                "loan_amnt", "loan_int_rate", "event_timestamp", "created_timestamp"]


def credit_model(repo: Path) -> dict:
    """The credit repo at ``repo``, its training set registered as ``credit_train``, a model ``credit`` packaged
    on it (with ``MONITORING``) and promoted to production; loans split into a replay set and a set to drift."""
    store = credit_repo(repo)
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet")
    job = store.get_historical_features(loans[["loan_id", "zipcode", "event_timestamp", "loan_status"]], SERVICE)
    job.register("credit_train")
    train = job.to_pandas()
    features = [r.split(":")[1] for r in job.features]
    model = _model().fit(train[features], train["loan_status"])
    art = package_model(model, name="credit", store=store, feature_service=SERVICE, training_set=job,
                        key_lookups={"zipcode": "loan_zipcode:zipcode"}, monitoring=MONITORING)
    reg = ModelRegistry(store)
    reg.promote("credit", reg.register(art).version, "production")
    order = np.random.default_rng(18).permutation(loans.loan_id.to_numpy())
    return {"repo": repo, "store": store, "loans": loans, "replay": order[:ROWS], "drifted": order[ROWS:2 * ROWS]}


def serve(client, loan_ids) -> None:
    """Predictions for ``loan_ids`` from a running model server (``client``), 100 per request."""
    ids = [int(x) for x in loan_ids]
    for i in range(0, len(ids), 100):
        r = client.post("/invocations", json=[{"loan_id": x} for x in ids[i:i + 100]])
        assert r.status_code == 200, r.text


def inject_drift(credit: dict) -> None:
    """The drifted loans' ``loan_int_rate`` moved by +3 standard deviations, ingested now (history and online)."""
    loans = credit["loans"]
    drifted = loans[loans.loan_id.isin(credit["drifted"])].copy()
    drifted["loan_int_rate"] = drifted["loan_int_rate"] + 3 * loans.loan_int_rate.std()
    drifted["event_timestamp"] = drifted["created_timestamp"] = pd.Timestamp(utc_now())
    credit["store"].ingest("loan_features", drifted[LOAN_COLUMNS])


def log_replay_then_drift(credit: dict) -> None:
    """A real model server (production stage) logs an identical replay of ``ROWS`` loans, then, after
    ``inject_drift``, ``ROWS`` drifted ones; the log is flushed when the server stops."""
    from skewless.serving.server import ServeConfig
    from tests.serving.test_serving import running

    cfg = ServeConfig(repo=str(credit["repo"]), model="credit", stage="production", log_flush_seconds=0.2)
    with running(cfg) as (client, _):
        serve(client, credit["replay"])
        inject_drift(credit)
        serve(client, credit["drifted"])
