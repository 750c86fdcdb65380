"""An ingest whose rows are the whole history computes its tiles from the rows it holds (``own_rows.written_rows``)
instead of scanning the history; every other write scans. Each case checks the online values against the oracle,
so the shortcut taken where it must not be (a later batch with a late event in a tile of the first one, a view whose
``event_id`` makes a version in the batch a correction) would show as a wrong value, and the last test shows it
does: with the proof forced, the late event's tile misses the first batch's events."""

import threading
import time
from datetime import timedelta

import pytest
from tests.support.agg_online import T0, D, H, AggRepo, every_function, txn_view

from skewless.aggregation import own_rows, tile_states
from skewless.offline.duckdb_engine import DuckDBTileScan


@pytest.fixture
def taken(monkeypatch):
    """Counts of writes computed from their own rows and of history scans of events."""
    got = {"own": 0, "scans": 0}
    written, events = own_rows.Written, DuckDBTileScan.events

    class Counted(written):
        def __init__(self, *a, **k):
            got["own"] += 1
            super().__init__(*a, **k)

    def scan(self, ranges):
        got["scans"] += 1
        return events(self, ranges)
    monkeypatch.setattr(own_rows, "Written", Counted)
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


def numeric_view(event_id=None):
    """Outputs ``tile_states`` computes (no string column): the tiles an ingest computes ahead of its commit."""
    return txn_view([a for a in every_function() if a.column != "merchant"], event_id=event_id)


@pytest.fixture
def ahead(monkeypatch):
    """The states computed ahead (``own_rows.Ahead``, in its thread) and those ``refresh`` computes after the commit,
    counted by the thread that computed them."""
    got = {"ahead": 0, "after": 0}
    states = tile_states.encoded_states

    def counted(*a, **k):
        got["ahead" if threading.current_thread().name == "skewless-tiles-ahead" else "after"] += 1
        return states(*a, **k)
    monkeypatch.setattr(tile_states, "encoded_states", counted)
    return got


def test_a_first_ingest_computes_its_tiles_while_it_commits(tmp_path, monkeypatch, taken, ahead):
    r = AggRepo(tmp_path / "repo", None, view=numeric_view())
    r.clock = T0 + 12 * D
    append = type(r.fs.offline).append

    def slow(self, *a, **k):  # the commit outlasts the first part's states, however loaded the host
        deadline = time.monotonic() + 30
        while not ahead["ahead"] and time.monotonic() < deadline:
            time.sleep(0.005)
        return append(self, *a, **k)
    monkeypatch.setattr(type(r.fs.offline), "append", slow)
    r.ingest(_txns(1, T0, 40) + _txns(2, T0 + timedelta(minutes=30), 30) + _txns(3, T0 + D, 3))
    assert taken == {"own": 1, "scans": 0}  # one Written, the thread's, used by refresh
    assert ahead["ahead"] >= 1 and ahead["ahead"] + ahead["after"] >= 1
    r.check([1, 2, 3, 4], _nows(r))
    # a second ingest: a history already, so only the tiles it dirties are computed ahead (its own rows'), no
    # states; the events of those tiles are scanned, the touched scan is not needed
    touched = []
    monkeypatch.setattr(DuckDBTileScan, "touched", lambda self, where: touched.append(where))
    r.clock += H
    before = dict(ahead)
    r.ingest([{"card": 1, "ev": T0 + timedelta(hours=10, minutes=7), "amount": 1000.0, "qty": 5},
              {"card": 4, "ev": r.clock - H, "amount": 2.0}, {"card": 4, "ev": r.clock - 2 * H, "amount": 3.0}])
    assert ahead["ahead"] == before["ahead"] and taken["scans"] > 0 and not touched
    r.check([1, 2, 3, 4], _nows(r))


def test_tiles_computed_ahead_are_dropped_when_the_history_holds_other_rows(tmp_path, monkeypatch, taken, ahead):
    """A writer that committed between the look at the history and this commit: the thread computed the rows' own
    tiles (it saw no history), the committed snapshot does not prove them whole, so they are dropped and scanned."""
    r = AggRepo(tmp_path / "repo", None, view=numeric_view())
    r.clock = T0 + 12 * D
    r.ingest(_txns(1, T0, 40))
    version = type(r.fs.offline).version
    monkeypatch.setattr(type(r.fs.offline), "version",
                        lambda self, view: None if threading.current_thread().name == "skewless-tiles-ahead"
                        else version(self, view))
    before = dict(ahead)
    r.clock += H
    r.ingest([{"card": 1, "ev": T0 + timedelta(hours=10, minutes=7), "amount": 1000.0, "qty": 5}])
    assert ahead["ahead"] > before["ahead"] and taken["scans"] > 0
    r.check([1], _nows(r))


def test_tiles_computed_ahead_used_without_the_proof_give_wrong_values(tmp_path, monkeypatch):
    """The same, with the proof lying: the late event's tile misses the first batch's events (what the proof
    guards against)."""
    r = AggRepo(tmp_path / "repo", None, view=numeric_view())
    r.clock = T0 + 12 * D
    r.ingest(_txns(1, T0, 40))
    late = [{"card": 1, "ev": T0 + timedelta(hours=10, minutes=7), "amount": 1000.0, "qty": 5}]
    monkeypatch.setattr(type(r.fs.offline), "version", lambda self, view: None)
    monkeypatch.setattr(DuckDBTileScan, "count", lambda self, where: (len(late), len(late)))
    r.clock += H
    r.ingest(late)
    with pytest.raises(AssertionError, match="online"):
        r.check([1], _nows(r))


def test_a_failed_commit_stops_the_tiles_computed_ahead(tmp_path, monkeypatch):
    r = AggRepo(tmp_path / "repo", None, view=numeric_view())
    r.clock = T0 + 12 * D
    started = []
    start = own_rows.Ahead.start

    def spy(*a, **k):
        started.append(start(*a, **k))
        return started[-1]
    monkeypatch.setattr(own_rows.Ahead, "start", spy)

    def fail(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(type(r.fs.offline), "append", fail)
    with pytest.raises(OSError):
        r.ingest(_txns(1, T0, 40))
    assert started and started[0] is not None and not started[0]._thread.is_alive()
    monkeypatch.undo()
    r.ingest(_txns(1, T0, 40))
    r.check([1], _nows(r))
