"""The DuckDB engine's small sessions (the write path's tie checks and micro-batch winners): cursors of one database
per process and settings, shared by every engine with those settings (a FeatureStore opened again reuses it
instead of paying a new database); temporary objects stay each cursor's own."""

from __future__ import annotations

from skewless.offline.duckdb_engine import DuckDBEngine


def test_engines_with_the_same_settings_share_one_database_and_others_do_not(tmp_path):
    first, second = DuckDBEngine(temp_directory=str(tmp_path / "spill")), DuckDBEngine(
        temp_directory=str(tmp_path / "spill"))
    other = DuckDBEngine(temp_directory=str(tmp_path / "spill"), memory_limit="512MB")
    a, b, c = first.small_session(), second.small_session(), other.small_session()
    try:
        a.execute("CREATE TABLE shared_marker AS SELECT 42 AS x")
        a.execute("CREATE TEMP TABLE own_marker AS SELECT 1 AS y")
        assert b.execute("SELECT x FROM shared_marker").fetchall() == [(42,)]  # the same database
        assert b.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'own_marker'").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'shared_marker'").fetchone() == (0,)
        limit = "SELECT current_setting('memory_limit')"
        assert c.execute(limit).fetchone() != a.execute(limit).fetchone()  # its own settings
        assert b.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    finally:
        a.execute("DROP TABLE shared_marker")
        for con in (a, b, c):
            con.close()
