"""RegistryStoreConformance: every registry backend (local folder, S3, OSS, ...) must pass this.

Subclass it and define a ``registry_store`` fixture yielding a fresh, empty RegistryStore."""

from __future__ import annotations

import threading

import pytest

from skewless.errors import ConflictError, NotFoundError


class RegistryStoreConformance:
    @pytest.fixture
    def registry_store(self):  # pragma: no cover
        raise NotImplementedError

    def test_empty(self, registry_store):
        assert registry_store.versions() == [] and registry_store.latest() == 0
        with pytest.raises(NotFoundError):
            registry_store.read(1)

    def test_create_and_read_back(self, registry_store):
        registry_store.create(1, b'{"a": 1}')
        registry_store.create(2, b'{"a": 2}')
        assert registry_store.versions() == [1, 2] and registry_store.latest() == 2
        assert registry_store.read(1) == b'{"a": 1}'

    def test_create_existing_version_conflicts_and_keeps_the_first(self, registry_store):
        registry_store.create(1, b"first")
        with pytest.raises(ConflictError):
            registry_store.create(1, b"second")
        assert registry_store.read(1) == b"first"

    def test_concurrent_creates_exactly_one_wins(self, registry_store):
        results: list[str] = []
        barrier = threading.Barrier(8)

        def attempt(i):
            barrier.wait()
            try:
                registry_store.create(1, f"writer-{i}".encode())
                results.append(f"writer-{i}")
            except ConflictError:
                results.append("conflict")
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r for r in results if r != "conflict"]
        assert len(winners) == 1 and results.count("conflict") == 7
        assert registry_store.read(1).decode() == winners[0]

    def test_large_document_is_never_seen_partially(self, registry_store):
        doc = b"x" * 5_000_000
        registry_store.create(1, doc)
        assert registry_store.read(1) == doc

    # -- records (the audit log lives in them: skewless.audit) ----------------------------------------------------
    def test_records_are_created_once_and_never_rewritten(self, registry_store):
        registry_store.create(1, b"v1")
        registry_store.put_record("audit/2026-01-01/a.json", b"first")
        with pytest.raises(ConflictError):
            registry_store.put_record("audit/2026-01-01/a.json", b"second")
        assert registry_store.read_record("audit/2026-01-01/a.json") == b"first"
        registry_store.put_record("audit/2026-01-02/b.json", b"other")
        assert registry_store.record_keys("audit/") == ["audit/2026-01-01/a.json", "audit/2026-01-02/b.json"]
        assert registry_store.versions() == [1]  # records are not versions
        with pytest.raises(NotFoundError):
            registry_store.read_record("audit/nope.json")

    def test_a_record_can_be_replaced_whole(self, registry_store):
        registry_store.put_record("training_sets/t/v0000000001.rows.parquet", b"all rows")
        registry_store.replace_record("training_sets/t/v0000000001.rows.parquet", b"fewer")
        assert registry_store.read_record("training_sets/t/v0000000001.rows.parquet") == b"fewer"
        registry_store.replace_record("training_sets/t/v0000000001.rows.parquet", b"fewer")  # idempotent
        registry_store.replace_record("training_sets/u/v0000000001.rows.parquet", b"new")  # absent: created
        assert registry_store.record_keys("training_sets/") == ["training_sets/t/v0000000001.rows.parquet",
                                                                "training_sets/u/v0000000001.rows.parquet"]
        assert registry_store.read_record("training_sets/u/v0000000001.rows.parquet") == b"new"
        with pytest.raises(ConflictError):  # put_record still never overwrites
            registry_store.put_record("training_sets/t/v0000000001.rows.parquet", b"again")

    def test_audit_log_appends_and_filters(self, registry_store):
        from datetime import datetime, timezone

        from skewless.audit import AuditLog

        log = AuditLog(registry_store)
        t0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
        log.append("alice", "apply", "*", "allowed", "v1", at=t0)
        log.append(None, "ingest", "view:a", "denied", "no", at=t0.replace(day=2))
        log.append("bob", "ingest", "view:a", "allowed", "3 rows", at=t0.replace(day=2, hour=13))
        assert [r.principal for r in log.records()] == ["alice", None, "bob"]
        assert [r.detail for r in log.records(since=t0.replace(day=2, hour=12, minute=30))] == ["3 rows"]
        assert [r.principal for r in log.records(action="ingest", outcome="allowed")] == ["bob"]
        assert [r.action for r in log.records(principal="alice")] == ["apply"]
