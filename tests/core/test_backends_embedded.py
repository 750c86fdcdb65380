"""The embedded backends (SQLite online store, local registry folder, local Delta + DuckDB) pass the
conformance suites every backend must pass."""

import pytest
from tests.support.conformance.offline import OfflineConformance
from tests.support.conformance.online import OnlineStoreConformance
from tests.support.conformance.registry import RegistryStoreConformance

import skewless as sk
from skewless.online.sqlite import SQLiteOnlineStore
from skewless.registry import LocalRegistryStore


class TestSQLiteOnlineStore(OnlineStoreConformance):
    @pytest.fixture
    def store(self, tmp_path):
        s = SQLiteOnlineStore(str(tmp_path / "online.db"))
        yield s
        s.close()


class TestLocalRegistryStore(RegistryStoreConformance):
    @pytest.fixture
    def registry_store(self, tmp_path):
        return LocalRegistryStore(tmp_path / "registry")


class TestLocalDeltaDuckDB(OfflineConformance):
    @pytest.fixture
    def feature_store(self, tmp_path):
        return sk.init_repo(tmp_path / "repo")
