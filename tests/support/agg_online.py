"""Checking the online aggregation invariant: a repo (local Delta + DuckDB) whose online store is the one under
test, a clock the test moves, and a comparison of every aggregation output with ``agg_oracle`` over the committed
history (read back from the Delta files, so the oracle sees the same write order the store assigned)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml
from tests.support.agg_oracle import Agg, aggregate, same_value
from tests.support.oracle import Row

import skewless as sk
from skewless.definitions import CREATED_TS, EVENT_TS, WRITE_BATCH, WRITE_ROW
from skewless.online.base import PRESENT

UTC = timezone.utc
# Events from 40 days before today: stores that evict old tiles (Redis expires a hash once its newest tile is older
# than the longest window) keep everything these tests write.
T0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=40)
H, D = timedelta(hours=1), timedelta(days=1)
CARD = sk.Entity("card", ["card"], dtype=sk.Int64)
SCHEMA = [sk.Field("card", sk.Int64), sk.Field("amount", sk.Float64), sk.Field("qty", sk.Int64),
          sk.Field("merchant", sk.String), sk.Field("paid", sk.UnixTimestamp), sk.Field("txn", sk.String)]


def every_function(windows=(H, D, 7 * D, 365 * D)) -> list[sk.Aggregation]:
    """Each function on a column it fits, over each window."""
    out = []
    for w in windows:
        out += [sk.Aggregation(None, "count", w), sk.Aggregation("amount", "count", w),
                sk.Aggregation("amount", "sum", w), sk.Aggregation("amount", "mean", w),
                sk.Aggregation("amount", "var", w), sk.Aggregation("amount", "stddev", w),
                sk.Aggregation("amount", "min", w), sk.Aggregation("amount", "max", w),
                sk.Aggregation("amount", "last", w), sk.Aggregation("amount", "last_k(3)", w),
                sk.Aggregation("qty", "sum", w), sk.Aggregation("qty", "mean", w),
                sk.Aggregation("merchant", "min", w), sk.Aggregation("merchant", "last_k(2)", w),
                sk.Aggregation("paid", "max", w), sk.Aggregation("paid", "last", w)]
    return out


def txn_view(aggs=None, hop=H, event_id="txn", name="txn") -> sk.AggregatedView:
    return sk.AggregatedView(name, [CARD], SCHEMA, aggs or every_function(), hop=hop, event_id=event_id)


class AggRepo:
    """A repo around ``online`` (the store under test; None: the repo's own SQLite file) with one aggregated view and
    a settable clock (None: the real one)."""

    # Also compare the online values with the training-set path at each ``now`` (the offline engine's own answer).
    compare_training = False

    def __init__(self, path: Path, online, view: sk.AggregatedView | None = None, clock: datetime | None = T0,
                 offline: dict | None = None):
        """``offline``: the repo's ``offline`` config section (default: local Delta + DuckDB)."""
        if offline is not None:
            path.mkdir(parents=True, exist_ok=True)
            (path / "skewless.yaml").write_text(yaml.safe_dump({"project": "aggs", "registry": "data/registry",
                                                                "offline": offline,
                                                                "online": "sqlite:///data/online.db"}))
        self.fs = sk.init_repo(path)
        if online is not None:
            self.fs.__dict__["online"] = online  # the store under test in place of the repo's own SQLite file
        self.clock = clock
        if clock is not None:
            self.fs.now = lambda: self.clock  # the write time ingest and materialize use
        self.view = view or txn_view()
        self.fs.apply([CARD, self.view])

    def ingest(self, records: list[dict], batch_id: str | None = None):
        """records: card, ev, and any of amount, qty, merchant, paid, txn, cr (created)."""
        import pyarrow as pa

        cols = {"card": pa.array([r["card"] for r in records], pa.int64()),
                "event_timestamp": pa.array([r["ev"] for r in records], pa.timestamp("us", tz="UTC"))}
        if any("cr" in r for r in records):
            cols["created_timestamp"] = pa.array([r.get("cr") for r in records], pa.timestamp("us", tz="UTC"))
        for f in SCHEMA[1:]:
            cols[f.name] = pa.array([r.get(f.name) for r in records], f.dtype.arrow)
        return self.fs.ingest(self.view.name, pa.table(cols), batch_id=batch_id)

    def history_rows(self, files) -> list[dict]:
        """The committed rows of the snapshot ``files`` (local Delta files; subclasses read other stores)."""
        return [r for uri in files.uris for r in pq.read_table(uri.split("://", 1)[-1]).to_pylist()]

    def history(self) -> list[Row]:
        files = self.fs.offline.files(self.view.name, self.fs.offline.version(self.view.name))
        out = []
        for r in self.history_rows(files):
            out.append(Row(key=(r["card"],), event_ts=r[EVENT_TS], created_ts=r[CREATED_TS],
                           write_order=(r[WRITE_BATCH], r[WRITE_ROW]),
                           values={f.name: r.get(f.name) for f in SCHEMA[1:]}))
        return out

    def expected(self, cards, now: datetime) -> dict[str, list]:
        rows = self.history()
        hop = self.view.hop
        return {a.name: [aggregate(rows, (c,), now, Agg(a.name, a.column, a.function, a.window, a.k), hop,
                                   event_id=self.view.event_id) for c in cards]
                for a in self.view.aggregations}

    def check(self, cards, nows) -> int:
        """Assert online == oracle for every output, card and ``now``; returns the number of values compared."""
        refs = [f"{self.view.name}:{a.name}" for a in self.view.aggregations]
        n = 0
        for now in nows:
            got = self.fs.get_online_features(refs, [{"card": c} for c in cards], now=now)
            want = self.expected(cards, now)
            for a in self.view.aggregations:
                for c, g, w in zip(cards, got.values[a.name], want[a.name]):
                    assert same_value(g, w), f"{a.name} card={c} now={now}: online {g!r} != oracle {w!r}"
                    n += 1
                assert set(got.statuses[a.name]) == {PRESENT}, got.statuses[a.name]
        if self.compare_training:
            n += self.check_training(cards, nows)
        return n

    def check_training(self, cards, nows) -> int:
        """Assert online == the training set at ``t = now`` (one entity row per card and ``now``)."""
        refs = [f"{self.view.name}:{a.name}" for a in self.view.aggregations]
        pairs = [(c, now) for now in nows for c in cards]
        entity = pd.DataFrame({"card": [c for c, _ in pairs], "event_timestamp": [t for _, t in pairs]})
        offline = self.fs.get_historical_features(entity, refs).to_arrow().to_pydict()
        n = 0
        for now in nows:
            got = self.fs.get_online_features(refs, [{"card": c} for c in cards], now=now)
            for a in self.view.aggregations:
                want = [v for (c, t), v in zip(pairs, offline[a.name]) if t == now]
                for c, g, w in zip(cards, got.values[a.name], want):
                    assert same_value(g, w), f"{a.name} card={c} now={now}: online {g!r} != training set {w!r}"
                    n += 1
        return n


def around(*instants: datetime) -> list[datetime]:
    """Each instant, and a microsecond before and after it."""
    out = []
    for t in instants:
        out += [t - timedelta(microseconds=1), t, t + timedelta(microseconds=1)]
    return sorted(set(out))
