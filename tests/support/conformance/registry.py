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
