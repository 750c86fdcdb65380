"""An ingest whose rows are the whole history computes its tiles from the rows it holds (``maintain._written_rows``)
instead of scanning the history; every other write scans. Each case checks the online values against the oracle,
so the shortcut taken where it must not be (a later batch with a late event in a tile of the first one, a view whose
``event_id`` makes a version in the batch a correction) would show as a wrong value, and the last test shows it
does: with the proof forced, the late event's tile misses the first batch's events."""

from datetime import timedelta

import pytest
from tests.support.agg_online import T0, D, H, AggRepo, txn_view

from skewless.aggregation import maintain
from skewless.offline.duckdb_engine import DuckDBTileScan


@pytest.fixture
def taken(monkeypatch):
    """Counts of writes computed from their own rows and of history scans of events."""
    got = {"own": 0, "scans": 0}
    written, events = maintain._Written, DuckDBTileScan.events

    class Counted(written):
        def __init__(self, *a, **k):
            got["own"] += 1
            super().__init__(*a, **k)

    def scan(self, ranges):
        got["scans"] += 1
        return events(self, ranges)
    monkeypatch.setattr(maintain, "_Written", Counted)
    monkeypatch.setattr(DuckDBTileScan, "events", scan)
    return got


def _txns(card, start, n, step=timedelta(hours=5), tag="a"):
    return [{"card": card, "ev": start + step * i, "amount": None if i % 7 == 3 else 1.5 * i - 4.25,
             "qty": i, "merchant": f"m{i % 3}", "txn": f"{tag}{card}-{i}"} for i in range(n)]


def _nows(r):
    return [r.clock, r.clock + timedelta(minutes=59), r.clock + 3 * D, r.clock + 8 * D]


def test_first_ingest_uses_its_rows_a_later_one_with_a_late_event_scans(tmp_path, taken):
    r = AggRepo(tmp_path / "repo", None, view=txn_view(event_id=None))
    r.clock = T0 + 12 * D
    r.ingest(_txns(1, T0, 40) + _txns(2, T0 + timedelta(minutes=30), 30))
    assert taken == {"own": 1, "scans": 0}
    r.check([1, 2, 3], _nows(r))
    # a late event in a tile the first batch filled, and a new entity: the history holds other rows now
    r.clock += H
    r.ingest([{"card": 1, "ev": T0 + timedelta(hours=10, minutes=7), "amount": 1000.0, "qty": 5},
              {"card": 3, "ev": r.clock - H, "amount": 2.0}])
    assert taken["own"] == 1 and taken["scans"] > 0
    r.check([1, 2, 3], _nows(r))


def test_a_view_with_event_ids_always_scans(tmp_path, taken):
    """Versions of one event in the first batch: the newest (by created time) counts at its own event time."""
    r = AggRepo(tmp_path / "repo", None, view=txn_view(event_id="txn"))
    r.clock = T0 + 12 * D
    first = _txns(1, T0, 20)
    moved = dict(first[4], ev=T0 + 3 * D, amount=99.0, cr=T0 + 11 * D)  # a correction of txn a1-4, later created
    r.ingest(first + [moved])
    assert taken == {"own": 0, "scans": 1}
    r.check([1], _nows(r))


def test_the_shortcut_forced_on_a_history_with_other_rows_gives_wrong_values(tmp_path, monkeypatch):
    r = AggRepo(tmp_path / "repo", None, view=txn_view(event_id=None))
    r.clock = T0 + 12 * D
    r.ingest(_txns(1, T0, 40))
    late = [{"card": 1, "ev": T0 + timedelta(hours=10, minutes=7), "amount": 1000.0, "qty": 5}]
    monkeypatch.setattr(DuckDBTileScan, "count", lambda self, where: (len(late), len(late)))  # the proof, lying
    r.clock += H
    r.ingest(late)
    with pytest.raises(AssertionError, match="online"):
        r.check([1], _nows(r))
