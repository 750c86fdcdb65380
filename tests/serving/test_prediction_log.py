"""The prediction log writer (issue 12, item 1): a row it cannot write is dead-lettered and never blocks the rest;
the retry back-off holds at any backlog; shutdown with the store down spills to disk and the next start commits
the spill exactly once. Real local Delta histories; "store down" is the history made unreachable."""

from __future__ import annotations

import json
import logging
import time

import pytest

import skewless as sk
from skewless.serving.prediction_log import PredictionLogWriter

from tests.support.predlog_helpers import committed_keys, history_down, manifest, rows

BIG = 2**70


@pytest.fixture
def store(tmp_path):
    return sk.init_repo(tmp_path / "repo", project="t")


def writer(store, tmp_path, **kw) -> PredictionLogWriter:
    kw.setdefault("flush_seconds", 3600)
    return PredictionLogWriter(store, manifest(), spill_dir=tmp_path / "spill", **kw)


def test_a_row_the_log_cannot_hold_goes_to_the_dead_letter_file_and_the_rest_commit(store, tmp_path):
    w = writer(store, tmp_path)
    try:
        keys = list(range(1000))
        w.add(rows(manifest(), keys[:400]))
        w.add(rows(manifest(), [BIG], request="bad"))  # past the request edge somehow: must not poison the log
        w.add(rows(manifest(), keys[400:], request="s"))
        assert w.flush(20) and w.pending == 0 and w.last_error is None
        assert w.dead_lettered == 1 and w.written == 1000
        assert committed_keys(store) == keys
        lines = (tmp_path / "spill" / w.view.name / "dead-letter.jsonl").read_text().splitlines()
        assert len(lines) == 1
        dead = json.loads(lines[0])
        assert dead["row"]["k"] == BIG and dead["row"]["request_id"] == "bad0" and "Overflow" in dead["error"]
        w.add(rows(manifest(), [5000, 5001], request="later"))  # and the log goes on
        assert w.flush(20) and committed_keys(store) == keys + [5000, 5001]
        many = [BIG + i if i % 3 == 0 else 10_000 + i for i in range(3000)]  # a third bad: still one flush
        t0 = time.perf_counter()
        w.add(rows(manifest(), many, request="many"))
        assert w.flush(20) and w.dead_lettered == 1 + 1000 and time.perf_counter() - t0 < 10
        assert committed_keys(store) == keys + [5000, 5001] + [k for k in many if k < BIG]
        assert len((tmp_path / "spill" / w.view.name / "dead-letter.jsonl").read_text().splitlines()) == 1001
    finally:
        w.close(5)


def test_retry_back_off_holds_at_any_backlog(store, tmp_path, caplog):
    """Before: at >= 5,000 pending rows the writer retried in a tight loop (~4,000 ERROR lines/s)."""
    w = writer(store, tmp_path, flush_rows=5000, flush_seconds=0.05, max_retry_seconds=0.4)
    fails: list[int] = []
    w._on_event = lambda kind, n: fails.append(n) if kind == "failed" else None
    try:
        with history_down(store, w.view.name), caplog.at_level(logging.ERROR, "skewless.serving"):
            for i in range(4):
                w.add(rows(manifest(), list(range(i * 5000, (i + 1) * 5000))))
            time.sleep(2.0)
            attempts = len(fails)
            # 0.2 + 0.4 + 0.4 + ... seconds apart: at most ~7 in 2 s (the tight loop made thousands)
            assert 2 <= attempts <= 8, attempts
            assert len([r for r in caplog.records if "flush failed" in r.getMessage()]) == attempts
            assert w.pending == 20_000 and w.dropped == 0
        assert w.flush(30) and committed_keys(store) == list(range(20_000))
    finally:
        w.close(5)


def test_shutdown_with_the_store_down_spills_and_the_next_start_commits_once(store, tmp_path):
    """Before: close() retried until its timeout, then the rows were gone (prediction_log_complete false)."""
    w = writer(store, tmp_path)
    w.add(rows(manifest(), list(range(300))))
    assert w.flush(20)
    with history_down(store, w.view.name):
        w.add(rows(manifest(), list(range(300, 800))))
        assert w.close(timeout=0.5) is True  # nothing lost: on disk
        assert w.spilled == 500 and w.written == 300
        assert list(w.spill_dir.glob("*.arrow"))
    assert committed_keys(store) == list(range(300))
    again = writer(store, tmp_path)  # the next start (store back)
    try:
        assert again.pending == 500
        assert again.flush(20), again.last_error
        assert again.written == 500 and again.spilled == 0
        assert committed_keys(store) == list(range(800))
    finally:
        assert again.close(5)
    assert committed_keys(store) == list(range(800))  # and nothing twice
    assert not list((tmp_path / "spill").rglob("*.arrow")) and not w.spill_dir.exists()


def test_two_live_writers_never_take_each_others_journals(store, tmp_path):
    a = writer(store, tmp_path)
    with history_down(store, a.view.name):
        a.add(rows(manifest(), [1, 2, 3]))
        assert a.flush(0.2) is False and a.spilled == 3  # journaled, not committed
        b = writer(store, tmp_path)  # a second server on the same folder: a's journal is not an orphan
        assert b.pending == 0
    try:
        assert a.flush(20) and b.flush(20)
        assert committed_keys(store) == [1, 2, 3]
    finally:
        a.close(5), b.close(5)


def test_journal_folder_falls_back_to_temp_for_a_read_only_repo_and_a_bad_setting_is_a_config_error(
        store, tmp_path, monkeypatch):
    import tempfile

    from skewless.errors import ConfigError

    (store.repo_path / ".skewless").write_text("not a folder")  # mkdir fails there, as in a read-only mount
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    w = PredictionLogWriter(store, manifest())  # the server still starts
    try:
        assert w.spill_dir.is_relative_to(tmp_path / "tmp")
        w.add(rows(manifest(), [1]))
        assert w.flush(20) and committed_keys(store) == [1]
    finally:
        w.close(5)
    monkeypatch.setenv("SKEWLESS_PREDICTION_LOG_DIR", str(store.repo_path / ".skewless" / "log"))
    with pytest.raises(ConfigError, match="SKEWLESS_PREDICTION_LOG_DIR"):
        PredictionLogWriter(store, manifest())
