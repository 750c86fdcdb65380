"""The core of the skew audit (``skewless.skew_audit``) on a real offline store, with served rows written by hand
for the causes a model server cannot be made to produce on demand: a TTL bound applied differently online, and a
served row the history says was created after the read (a clock off). And the spec's equality."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

import skewless as sk
from skewless.skew_audit import AuditSpec, audit_features, equal

T = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
US = pa.timestamp("us", "UTC")


def test_ttl_boundary_and_clock_skew_are_attributed(repo):
    loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)
    repo.apply([loan, sk.FeatureView("loans", [loan], [sk.Field("amount", sk.Float64)], ttl=timedelta(hours=1))])
    repo.ingest("loans", pa.table({"loan_id": [1, 2], "amount": [10.0, 20.0], "event_timestamp": pa.array([T, T], US),
                                   "created_timestamp": pa.array([T, T + timedelta(hours=2)], US)}), online=False)
    reads = [T + timedelta(hours=1, seconds=1), T + timedelta(minutes=30), T + timedelta(minutes=10)]
    served = pa.table({"loan_id": [1, 2, 1], "event_timestamp": pa.array(reads, US),
                       "loans__amount": [10.0, 20.0, 10.0], "loans__event_timestamp": pa.array([T, T, T], US),
                       "loans__status": ["PRESENT"] * 3})
    spec = AuditSpec(features={"loans__amount": "loans:amount"}, entity=["loan_id"],
                     view_ts={"loans": "loans__event_timestamp"}, view_status={"loans": "loans__status"})
    audit = audit_features(repo, served, spec)
    assert audit.row_ok.tolist() == [False, False, True]
    causes = {m.row: (m.cause, m.lag_seconds) for m in audit.mismatches}
    # row 0: served 1 h 1 s after its event with a 1 h TTL; the history says expired
    assert causes[0] == ("ttl_boundary", None)
    # row 1: served at T + 30 min a row the history says was created at T + 2 h
    assert causes[1] == ("clock_skew", 5400.0)
    # in event mode (created times ignored) row 1 equals: it is no late event, the verdict is available mode's
    assert audit.late == []


def test_equality_is_the_spec_s():
    a = pa.array([0.1 + 0.2, float("nan"), None, 1.0, None, 2.0])
    b = pa.array([0.3, float("nan"), None, 1.0, 0.0, 2.0 * (1 + 1e-12)])
    assert equal(a, b).tolist() == [False, True, True, True, False, False]  # bit for bit; NaN = NaN; null = null
    assert equal(a, b, tolerant=True).tolist() == [True, True, True, True, False, True]  # 1e-9 relative
    assert equal(pa.array(["x", None]), pa.array(["x", "y"])).tolist() == [True, False]
