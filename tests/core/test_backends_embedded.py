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


def test_sqlite_views_of_one_integer_key_live_in_rowid_tables_and_older_tables_keep_working(tmp_path):
    """A view of one integer key gets a rowid table (its upserts rewrite rows in place); a table an earlier version
    made (WITHOUT ROWID) is kept as it is and still takes newest-wins upserts, staged writes, reads and deletes."""
    import sqlite3
    from datetime import timedelta

    from tests.support.conformance.online import T0, rows, view

    path = str(tmp_path / "online.db")
    con = sqlite3.connect(path)
    con.execute('CREATE TABLE "fv_old" ("k", __ev INTEGER NOT NULL, __cr INTEGER NOT NULL, __wb INTEGER NOT NULL, '
                '__wr INTEGER NOT NULL, PRIMARY KEY ("k")) WITHOUT ROWID')
    con.commit()
    con.close()
    store = SQLiteOnlineStore(path)
    try:
        now = T0 + timedelta(days=1)
        for name in ("old", "new"):
            v = view(name)
            store.write(v, rows(v, [{"k": k, "ev": T0 + timedelta(hours=1), "x": float(k)} for k in range(300)]))
            store.write(v, rows(v, [{"k": 1, "ev": T0, "x": -1.0}, {"k": 2, "ev": T0 + timedelta(hours=2), "x": 9.0}]))
            store.stage_write(v, lambda v=v: iter([rows(v, [{"k": 3, "ev": T0 + timedelta(hours=2), "x": 7.0}])])
                              ).commit()
            assert store.read([(v, ["x"], [(1,), (2,), (3,), (299,), (300,)])], now)[0].values == \
                [[1.0], [9.0], [7.0], [299.0], [None]]
            assert store.delete_entities(v, ["k"], [(2,), (300,)]) == 1
            assert store.read([(v, ["x"], [(2,)])], now)[0].values == [[None]]
        ddl = dict(store._con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        assert "WITHOUT ROWID" in ddl["fv_old"] and "INTEGER PRIMARY KEY" in ddl["fv_new"]
        strings = view("s", key_dtype=sk.String)
        store.write(strings, rows(strings, [{"k": "a", "ev": T0, "x": 1.0}]))
        assert "WITHOUT ROWID" in store._con.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'fv_s'").fetchone()[0]
    finally:
        store.close()
