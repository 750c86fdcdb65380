"""The main job, end to end on embedded defaults: scaffold -> apply -> ingest -> point-in-time training set ->
train -> materialize -> online read -> predict -> report. Run it with ``skewless demo``."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .repo import load_objects
from .scaffold import scaffold
from .store import FeatureStore
from .timeutil import now as utc_now

SERVICE = "credit_model_v1"
LABEL = "loan_status"


@dataclass
class DemoReport:
    repo: Path
    steps: list[tuple[str, float, str]] = field(default_factory=list)  # (step, seconds, summary)
    training_rows: int = 0
    test_auc: float = 0.0
    test_accuracy: float = 0.0
    online: pd.DataFrame | None = None
    skew_free: bool = False


def _model():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    cats = ["person_home_ownership", "loan_intent", "location_type"]
    enc = ColumnTransformer([("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                                    encoded_missing_value=-1), cats)],
                            remainder="passthrough")
    return Pipeline([("enc", enc), ("clf", HistGradientBoostingClassifier(max_iter=100, random_state=0))])


def run(repo: str | Path | None = None, *, log=print, sample: int = 5) -> DemoReport:
    """Run the demo in ``repo`` (kept), or in a temporary folder removed at the end, also on error or Ctrl-C."""
    if repo:
        return _run(Path(repo), log, sample, temporary=False)
    tmp = Path(tempfile.mkdtemp(prefix="skewless-demo-"))
    try:
        return _run(tmp, log, sample, temporary=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(repo: Path, log, sample: int, temporary: bool) -> DemoReport:
    from sklearn.metrics import accuracy_score, roc_auc_score

    report = DemoReport(repo)

    def step(name, fn):
        t0 = time.perf_counter()
        out, summary = fn()
        report.steps.append((name, time.perf_counter() - t0, summary))
        log(f"[{len(report.steps)}] {name}: {summary}")
        return out

    where = f"temporary repo at {repo} (removed at the end)" if temporary else f"repo at {repo}"
    step("init", lambda: (scaffold(repo, force=True), where))
    store = FeatureStore(repo)
    objects = load_objects(repo)
    step("apply", lambda: (store.apply(objects, prune=True), f"{len(objects)} definitions"))
    views = [v.name for v in store.list_feature_views()]
    step("ingest", lambda: (None, ", ".join(f"{v} v{store.ingest_source(v).version}" for v in views)))

    loans = pd.read_parquet(repo / "data" / "loan_table.parquet",
                            columns=["loan_id", "zipcode", "event_timestamp", LABEL])
    job = store.get_historical_features(loans, SERVICE)
    train_df = step("training set", lambda: (df := job.to_pandas(),
                                             f"{len(df):,} rows, point-in-time, snapshot {job.snapshot}"))
    report.training_rows = len(train_df)
    features = [r.split(":")[1] for r in job.features]

    cut = train_df["event_timestamp"].quantile(0.8)
    tr, te = train_df[train_df["event_timestamp"] <= cut], train_df[train_df["event_timestamp"] > cut]
    model = _model()

    def train():
        model.fit(tr[features], tr[LABEL])
        p = model.predict_proba(te[features])[:, 1]
        report.test_auc = float(roc_auc_score(te[LABEL], p))
        report.test_accuracy = float(accuracy_score(te[LABEL], p > 0.5))
        return model, f"{len(tr)} train / {len(te)} test rows, AUC {report.test_auc:.3f}"
    step("train", train)

    now = utc_now()
    step("materialize", lambda: (r := store.materialize_incremental(now),
                                 ", ".join(f"{x.view} {x.rows} rows" for x in r)))
    picks = loans.sort_values("event_timestamp").tail(sample)
    rows = [{"loan_id": int(r.loan_id), "zipcode": int(r.zipcode)} for r in picks.itertuples()]
    resp = step("online read", lambda: (store.get_online_features(SERVICE, rows, now=now),
                                        f"{len(rows)} loans x {len(features)} features"))
    online_df = pd.DataFrame(resp.values)

    def predict():
        # The promise, checked: the same loans through the training-set path at t = now give the same inputs.
        online_pred = model.predict_proba(online_df[features])[:, 1]
        at_now = pd.DataFrame(rows).assign(event_timestamp=now)
        offline_df = store.get_historical_features(at_now, SERVICE).to_pandas()
        offline_pred = model.predict_proba(offline_df[features])[:, 1]
        report.skew_free = bool(offline_df[features].astype(object).where(offline_df[features].notna(), None)
                                .equals(online_df[features].astype(object).where(online_df[features].notna(), None))
                                and (online_pred == offline_pred).all())
        report.online = pd.DataFrame({
            "loan_id": [r["loan_id"] for r in rows], "zipcode": [r["zipcode"] for r in rows],
            "p_default(online)": online_pred.round(4), "p_default(training path)": offline_pred.round(4),
            "statuses": [",".join(sorted({resp.statuses[f][i] for f in features})) for i in range(len(rows))]})
        return None, f"online inputs == training-set inputs at t=now: {report.skew_free}"
    step("predict", predict)
    return report
