"""Issue 12, items 7, 9, 11, 12, 13: no credentials in errors or log lines, no guessed dates, one-line typed errors
(SDK and CLI) for unreadable or ambiguous input, the whole config validated when it loads, and
materialize-incremental refusing an END before its checkpoint."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless import config, plugins
from skewless.cli.main import app
from skewless.errors import ConfigError, StoreUnavailable, ValidationError
from skewless.redact import redact, redact_url

UTC = timezone.utc
SECRET = "s3cr3t-Pa55"
runner = CliRunner(env={"COLUMNS": "250"})


def cli_error(args: list) -> str:
    """Output of a failing CLI command, checked: exit 1, one line `error: ...`, no traceback, no blank line."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1 and "Traceback" not in r.output, r.output
    return r.output


def write_config(repo: Path, **stores) -> None:
    doc = {"project": "p", **stores}
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "skewless.yaml").write_text(json.dumps(doc))  # JSON is YAML


# -- 7. credentials never in an error or a log line --------------------------------------------------------------
@pytest.mark.parametrize("url, shown", [
    (f"redis+ssl://:{SECRET}@cache.example.com:6380/0", "redis+ssl://:***@cache.example.com:6380/0"),
    (f"redis://alice:{SECRET}@h:6379/1", "redis://alice:***@h:6379/1"),
    (f"rediss://:{SECRET}@[::1:6379/0", "rediss://:***@[::1:6379/0"),  # unbalanced IPv6 bracket: urlsplit fails
    (f"redis://:{SECRET}@h:notaport/0", "redis://:***@h:notaport/0"),
    (f"redis://:p/a#s{SECRET}@h:1/0", "redis://:***@h:1/0"),  # a raw password holding '/' and '#'
    (f"https://{SECRET}@host/x", "https://***@host/x"),
    (f"oss://b/p?AccessKeySecret={SECRET}&region=cn", "oss://b/p?AccessKeySecret=***&region=cn"),
    (f"maxcompute://p?endpoint=http://e&access_id=id&secret_access_key={SECRET}",
     "maxcompute://p?endpoint=http%3A%2F%2Fe&access_id=id&secret_access_key=***"),
    (f"x://h/?password={SECRET}&token={SECRET}&access_key_secret={SECRET}&db=1",
     "x://h/?password=***&token=***&access_key_secret=***&db=1"),
    ("s3://bucket/a@b/c", "s3://bucket/a@b/c"),  # an '@' in a path is no credential
    ("sqlite:///data/online.db", "sqlite:///data/online.db"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown
    assert redact(f"store 'x' at '{url}' failed") == f"store 'x' at '{shown}' failed"


def test_every_error_redacts_its_message_and_endpoint():
    exc = StoreUnavailable(f"cannot reach redis://u:{SECRET}@h:1/0", endpoint=f"redis://u:{SECRET}@h:1")
    assert SECRET not in str(exc) and SECRET not in exc.endpoint and "u:***@h" in str(exc)
    assert SECRET not in str(ValidationError(f"bad value in oss://b/p?AccessKeySecret={SECRET}", column="c"))


UNKNOWN = ["redis+ssl", "mongodb", "postgresql", "http", "s3a"]


@pytest.mark.parametrize("scheme", UNKNOWN)
def test_unknown_scheme_error_hides_the_password(tmp_path, scheme):
    url = f"{scheme}://admin:{SECRET}@db.example.com:1234/x?password={SECRET}"
    with pytest.raises(ConfigError, match=re.escape(f"unknown online store scheme '{scheme}'")) as info:
        plugins.load("online", url)
    assert SECRET not in str(info.value) and "admin:***@db.example.com" in str(info.value)
    write_config(tmp_path, online=url)
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path)
    assert SECRET not in str(info.value)
    out = cli_error(["list", "--repo", tmp_path])
    assert SECRET not in out and f"unknown online store scheme '{scheme}'" in out


def registered(roles=("online", "offline", "registry", "source", "table")) -> list[tuple[str, str]]:
    """The schemes of the roles skewless.yaml or a view's source names (streams are named per command: tested
    below)."""
    return [(role, scheme) for role, schemes in plugins._ADAPTERS.items() if role in roles for scheme in schemes]


def test_the_roles_checked_through_the_config_are_every_role_but_engines_and_streams():
    # engine and submit are names, not URLs: their unknown names are checked in test_config_field_types_...; stage
    # is named by skewless.stages itself (the serving layer's scorer and model registry), never by a config
    assert set(plugins._ADAPTERS) == {"online", "offline", "registry", "source", "table", "engine", "stream",
                                      "submit", "stage"}


@pytest.mark.parametrize("role, scheme", registered(("stream",)))
def test_every_stream_scheme_with_a_bad_url_fails_without_the_password(tmp_path, role, scheme):
    import skewless as sk

    store = sk.init_repo(tmp_path)
    url = f"{scheme}://admin:{SECRET}@host.example.com:99999/x?token={SECRET}"
    with pytest.raises(ConfigError, match="invalid stream URL") as info:
        store.stream("v", url)
    assert SECRET not in str(info.value) and "admin:***@host.example.com:99999" in str(info.value)


@pytest.mark.parametrize("role, scheme", registered())
def test_every_registered_scheme_with_a_bad_url_fails_at_load_without_the_password(tmp_path, role, scheme):
    # a bad port in a URL with credentials in both places: the config check quotes the URL, redacted
    url = f"{scheme}://admin:{SECRET}@host.example.com:99999/x?token={SECRET}"
    with pytest.raises(ConfigError, match=f"invalid {role} URL") as info:
        if role in ("source", "table"):  # named by a view's source, not skewless.yaml: checked where it is read
            plugins.load(role, url)
        else:
            write_config(tmp_path, **{role: url})
            config.load(tmp_path)
    assert SECRET not in str(info.value) and "admin:***@host.example.com:99999" in str(info.value)


# The network stores, unreachable (port 1), with the secret in the URL: the StoreUnavailable names the store and
# its endpoint, never the secret. Options keep each attempt single and short.
UNREACHABLE = {
    "redis": (f"redis://:{SECRET}@127.0.0.1:1/0", {"retries": 0}),
    "rediss": (f"rediss://alice:{SECRET}@127.0.0.1:1/0", {"retries": 0}),
    "tair": (f"tair://:{SECRET}@127.0.0.1:1/0", {"retries": 0}),
    "tairs": (f"tairs://alice:{SECRET}@127.0.0.1:1/0", {"retries": 0}),
    "s3": (f"s3://AKIAEXAMPLE:{SECRET}@bucket/prefix", {"endpoint_url": "http://127.0.0.1:1", "max_attempts": 1,
                                                        "access_key_id": "a", "secret_access_key": "b",
                                                        "region": "us-east-1"}),
    "oss": (f"oss://bucket/prefix?AccessKeySecret={SECRET}", {"endpoint": "http://127.0.0.1:1", "max_attempts": 1,
                                                              "access_key_id": "a", "access_key_secret": "b",
                                                              "region": "cn-hangzhou"}),
}


@pytest.mark.parametrize("scheme", sorted(UNREACHABLE))
def test_store_unavailable_never_carries_the_password(scheme):
    url, options = UNREACHABLE[scheme]
    role = "online" if scheme.startswith(("redis", "tair")) else "offline"
    store = plugins.load(role, url)(url, Path("."), options)
    with pytest.raises(StoreUnavailable) as info:
        store.get_meta("x") if role == "online" else store.version("v")
    assert SECRET not in str(info.value) and SECRET not in str(info.value.endpoint or "")
    assert "127.0.0.1" in str(info.value) or "bucket" in str(info.value)


def test_maxcompute_url_with_its_secret_in_the_query_is_never_echoed():
    url = f"maxcompute://proj?access_id=id&secret_access_key={SECRET}"  # no endpoint: a ConfigError quoting it
    with pytest.raises(ConfigError) as info:
        plugins.load("offline", url)(url, Path("."), {})
    assert SECRET not in str(info.value) and "endpoint" in str(info.value)


def test_serving_log_lines_are_redacted():
    from serving.server import JsonFormatter

    try:
        raise StoreUnavailable("x") from ConnectionError(f"cannot connect to redis://:{SECRET}@h:1/0")
    except StoreUnavailable:
        import sys

        record = logging.LogRecord("skewless.serving", logging.ERROR, __file__, 1,
                                   "online store rediss://bob:%s@h:6380/0 down", (SECRET,), sys.exc_info())
    line = JsonFormatter().format(record)
    assert SECRET not in line and "bob:***@h:6380" in line and ":***@h:1/0" in line


# -- 11 / 12: config validated at load, one line ------------------------------------------------------------------
@pytest.mark.parametrize("url, fragment", [
    (f"redis://:{SECRET}@localhost:99999/0", "Port out of range"),
    (f"redis://:{SECRET}@localhost:abc/0", "Port could not be cast"),
    (f"redis://:{SECRET}@[::1:6379/0", "Invalid IPv6 URL"),
    (f"tair://:{SECRET}@[::1/0", "Invalid IPv6 URL"),
])
def test_bad_port_or_ipv6_literal_in_a_redis_url(tmp_path, url, fragment):
    write_config(tmp_path, online=url)
    with pytest.raises(ConfigError, match=fragment) as info:
        config.load(tmp_path)
    assert SECRET not in str(info.value)
    out = cli_error(["list", "--repo", tmp_path])
    assert "ConfigError" in out and SECRET not in out
    # and straight through the adapter, for stores built without a skewless.yaml
    with pytest.raises(ConfigError, match=fragment):
        plugins.load("online", url)(url, tmp_path, {})


def test_unknown_engine_fails_when_the_config_loads(tmp_path):
    write_config(tmp_path, offline={"url": "data/offline", "engine": "presto"})
    with pytest.raises(ConfigError, match="offline.engine: unknown engine 'presto'; known: duckdb, maxcompute, spark"):
        config.load(tmp_path)
    out = cli_error(["list", "--repo", tmp_path])  # not only at get-historical
    assert "unknown engine 'presto'" in out and "store scheme" not in out


@pytest.mark.parametrize("doc, fragment", [
    ({"offline": {"url": "data/offline", "engine": 3}}, "offline.engine must be a name"),
    ({"offline": {"url": "data/offline", "options": [1]}}, "offline.options must be a mapping"),
    ({"online": {"url": "sqlite:///x.db", "option": {}}}, "unknown keys under online: ['option']"),
    ({"registry": ""}, "registry must be a URL"),
    ({"registry": "ftp://host/x"}, "registry: unknown registry store scheme 'ftp'"),
    ({"submit": ["emr-serverless"]}, "submit must be a mapping"),
    ({"submit": {"application_id": "00f1"}}, "submit.target must name where jobs run"),
    ({"submit": {"target": "slurm"}}, "submit.target: unknown submit target 'slurm'; known: emr-serverless"),
])
def test_config_field_types_are_checked_at_load(tmp_path, doc, fragment):
    write_config(tmp_path, **doc)
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path)
    assert fragment in str(info.value)


def test_yaml_error_is_one_line(tmp_path):
    (tmp_path / "skewless.yaml").write_text("project: p\nonline: [unclosed\n")
    out = cli_error(["list", "--repo", tmp_path])
    assert "ConfigError" in out and "invalid YAML at line" in out


# -- 9 / 11: dates, CSV and Parquet through the SDK and the CLI ---------------------------------------------------
@pytest.fixture
def repo(tmp_path) -> Path:
    store = sk.init_repo(tmp_path / "repo")
    loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)
    store.apply([loan, sk.FeatureView("loans", [loan], [sk.Field("amount", sk.Float64)])])
    return tmp_path / "repo"


def test_day_first_dates_are_never_guessed_per_row(repo):
    store = sk.FeatureStore(repo)
    df = pd.DataFrame({"loan_id": [1, 2], "event_timestamp": ["13/01/2024", "12/01/2024"], "amount": [1.0, 2.0]})
    with pytest.raises(ValidationError, match=re.escape("timestamp '13/01/2024' at row 0 (not ISO 8601")) as info:
        store.ingest("loans", df)
    assert info.value.column == "event_timestamp" and info.value.row == 0
    store.ingest("loans", df, date_format="%d/%m/%Y")  # explicit: both are January, day first
    hist = store.get_historical_features(
        pd.DataFrame({"loan_id": [1, 2], "event_timestamp": ["2024-01-31", "2024-01-31"]}), ["loans:amount"],
        include_event_timestamps=True).to_pandas()
    assert list(hist["amount"]) == [1.0, 2.0]
    events = [t.to_pydatetime() for t in hist["loans__event_timestamp"]]
    assert events == [datetime(2024, 1, 13, tzinfo=UTC), datetime(2024, 1, 12, tzinfo=UTC)]


def test_duplicate_dataframe_columns_are_a_validation_error(repo):
    df = pd.DataFrame([[1, "2024-01-01", 1.0, 2.0]], columns=["loan_id", "event_timestamp", "amount", "amount"])
    with pytest.raises(ValidationError, match=r"duplicate column names \['amount'\]"):
        sk.FeatureStore(repo).ingest("loans", df)


def test_dtype_error_names_the_first_bad_row_of_a_dataframe(repo):
    df = pd.DataFrame({"loan_id": [1, 2, 3, 4], "event_timestamp": ["2024-01-01"] * 4,
                       "amount": ["1.5", "2", "3", "lots"]})
    with pytest.raises(ValidationError, match="value 'lots' at row 3") as info:
        sk.FeatureStore(repo).ingest("loans", df)
    assert info.value.row == 3


def test_entity_csv_dates_for_get_historical(repo, tmp_path):
    sk.FeatureStore(repo).ingest("loans", pd.DataFrame({"loan_id": [1], "event_timestamp": ["2024-01-01"],
                                                        "amount": [5.0]}))
    ents = tmp_path / "ents.csv"
    ents.write_text("loan_id,event_timestamp\n1,2024-01-05\n1,13/01/2024\n")
    out = cli_error(["get-historical", "--entities", ents, "--features", "loans:amount", "--repo", repo])
    assert "ValidationError: column 'event_timestamp': unparseable timestamp '13/01/2024' at row 1" in out
    assert "__skewless" not in out  # no engine internals
    ents.write_text("loan_id,event_timestamp\n1,05/01/2024\n1,13/01/2024\n")
    r = runner.invoke(app, ["get-historical", "--entities", str(ents), "--features", "loans:amount", "--repo",
                            str(repo), "--date-format", "%d/%m/%Y", "--out", str(tmp_path / "t.parquet")])
    assert r.exit_code == 0, r.output
    assert list(pd.read_parquet(tmp_path / "t.parquet")["amount"]) == [5.0, 5.0]
    ents.write_text("loan_id,event_timestamp\n1,yesterday\n")  # was a multi-line DuckDB cast error
    with pytest.raises(ValidationError, match="'yesterday' at row 0"):
        sk.FeatureStore(repo).get_historical_features(pd.read_csv(ents), ["loans:amount"])


def test_cli_ingest_of_a_non_parquet_file_is_one_line(repo, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    out = cli_error(["ingest", "loans", bad, "--repo", repo])
    assert "ValidationError" in out and "not a readable Parquet file" in out
    out = cli_error(["ingest", "loans", tmp_path / "missing.parquet", "--repo", repo])
    assert "no such file" in out


def test_cli_date_arguments_are_iso_or_formatted(repo):
    out = cli_error(["materialize", "01/02/2024", "now", "--repo", repo])
    assert "cannot parse '01/02/2024'" in out and "ISO 8601" in out and "--date-format" in out
    r = runner.invoke(app, ["materialize", "01/02/2024", "02/02/2024", "--date-format", "%d/%m/%Y", "--repo",
                            str(repo)])
    assert r.exit_code == 0, r.output


# -- 13. materialize-incremental never rewinds silently -----------------------------------------------------------
def test_incremental_end_before_the_checkpoint_is_refused(repo):
    store = sk.FeatureStore(repo)
    store.ingest("loans", pd.DataFrame({"loan_id": [1, 2], "event_timestamp": ["2021-12-20", "2022-01-10"],
                                        "amount": [1.0, 2.0]}))
    store.materialize_incremental(datetime(2022, 6, 1, tzinfo=UTC))
    out = cli_error(["materialize-incremental", "25/12/2021", "--repo", repo])  # day-first: not guessed
    assert "ISO 8601" in out
    out = cli_error(["materialize-incremental", "2021-12-25", "--repo", repo])
    assert "before the last materialized end of view 'loans'" in out and "--allow-rewind" in out
    with pytest.raises(ValidationError, match="allow_rewind"):
        store.materialize_incremental(datetime(2021, 12, 25, tzinfo=UTC))
    key = store.online.get_meta("materialized_end/loans")
    assert key.startswith("2022-06-01")  # nothing moved
    r = runner.invoke(app, ["materialize-incremental", "2021-12-25", "--allow-rewind", "--repo", str(repo)])
    assert r.exit_code == 0, r.output
    res = store.materialize_incremental(datetime(2021, 12, 26, tzinfo=UTC), allow_rewind=True)
    assert [(x.view, x.rows) for x in res] == [("loans", 1)]  # from the beginning to the end asked for




def test_unreadable_or_duplicated_entity_files_for_get_historical(repo, tmp_path):
    (tmp_path / "bad.parquet").write_text("not parquet")  # was a raw DuckDB InvalidInputException
    out = cli_error(["get-historical", "--entities", tmp_path / "bad.parquet", "--features", "loans:amount",
                     "--repo", repo])
    assert "ValidationError" in out and "not a readable Parquet file" in out
    (tmp_path / "dup.csv").write_text("loan_id,loan_id,event_timestamp\n1,1,2024-01-01\n")  # was accepted
    out = cli_error(["get-historical", "--entities", tmp_path / "dup.csv", "--features", "loans:amount",
                     "--repo", repo])
    assert "duplicate column names ['loan_id']" in out
    (tmp_path / "empty.csv").write_text("")
    out = cli_error(["get-historical", "--entities", tmp_path / "empty.csv", "--features", "loans:amount",
                     "--repo", repo])
    assert "not a readable CSV file" in out


def test_init_into_a_file_and_an_unwritable_out_path_are_one_line(repo, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "ConfigError" in cli_error(["init", tmp_path / "afile"])  # was a raw FileExistsError
    pd.DataFrame({"loan_id": [1], "event_timestamp": ["2024-01-13"]}).to_parquet(tmp_path / "e.parquet")
    out = cli_error(["get-historical", "--entities", tmp_path / "e.parquet", "--features", "loans:amount",
                     "--out", tmp_path / "afile" / "sub" / "t.parquet", "--repo", repo])
    assert "ValidationError: cannot write the training set to" in out  # was a raw FileExistsError


def test_sqlite_online_store_under_a_file_is_a_typed_error(tmp_path):
    """A SQLite path whose parent folder is a file: StoreUnavailable naming the path, not a raw FileExistsError."""
    from skewless.online.sqlite import SQLiteOnlineStore

    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(StoreUnavailable, match="cannot open SQLite online store"):
        SQLiteOnlineStore(str(tmp_path / "taken" / "online.db"))
