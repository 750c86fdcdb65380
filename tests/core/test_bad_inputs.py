"""The bad-input corpus (tests/fixtures/bad_inputs/*.yaml), each case through the SDK and through the CLI.

SDK: the typed error and its message fragment, and nothing written. CLI: exit 1 and exactly one line of output,
`error: <class>: <message>`, no traceback, no blank line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

import skewless as sk
from skewless import errors
from skewless.cli.main import app
from skewless.ingest import read_file

from tests.support.paths import FIXTURES

CORPUS = FIXTURES / "bad_inputs"
INGEST = yaml.safe_load((CORPUS / "ingest.yaml").read_text())
DEFINITIONS = yaml.safe_load((CORPUS / "definitions.yaml").read_text())
runner = CliRunner(env={"COLUMNS": "250"})
LOAN = 'loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)\n'


def cli_error(args: list) -> str:
    """The CLI's output for a failing command, checked to be one typed error line with exit 1."""
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.output.count("\n") == 1 and r.output.startswith("error: "), r.output
    return r.output


def write_case(case: dict, folder: Path) -> Path:
    path = folder / case["file"]
    if "bytes" in case:
        path.write_bytes(bytes.fromhex(case["bytes"]))
    elif "columns" in case:  # [[name, values], ...]: a Parquet file (names may repeat), types as pyarrow infers
        pq.write_table(pa.Table.from_arrays([pa.array(v) for _, v in case["columns"]],
                                            names=[n for n, _ in case["columns"]]), path)
    else:
        path.write_text(case["text"])
    return path


@pytest.fixture(scope="module")
def loans_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("bad_inputs")
    store = sk.init_repo(repo)
    loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)
    store.apply([loan, sk.FeatureView("loans", [loan], [
        sk.Field("amount", sk.Float64), sk.Field("n", sk.Int64), sk.Field("status", sk.String),
        sk.Field("when", sk.UnixTimestamp)])])
    return repo


@pytest.mark.parametrize("case", INGEST, ids=[c["id"] for c in INGEST])
def test_ingest_corpus_sdk(case, loans_repo, tmp_path):
    store = sk.FeatureStore(loans_repo)
    path = write_case(case, tmp_path)
    with pytest.raises(getattr(errors, case["error"])) as info:
        store.ingest("loans", read_file(path), date_format=case.get("date_format"))
    assert case["message"] in str(info.value)
    assert "\n" not in str(info.value)
    assert store.offline.version("loans") is None  # nothing written (no case of the corpus ingests a row)


@pytest.mark.parametrize("case", INGEST, ids=[c["id"] for c in INGEST])
def test_ingest_corpus_cli(case, loans_repo, tmp_path):
    path = write_case(case, tmp_path)
    fmt = ["--date-format", case["date_format"]] if "date_format" in case else []
    out = cli_error(["ingest", "loans", path, "--repo", loans_repo, *fmt])
    assert out.startswith(f"error: {case['error']}: ") and case["message"] in out, out


def _definitions(code: str) -> list:
    scope = {"sk": sk}
    exec(LOAN + code, scope)  # noqa: S102 - the corpus is this repo's own test data
    return [v for v in scope.values()
            if isinstance(v, (sk.Entity, sk.FeatureView, sk.OnDemandTransform, sk.FeatureService, sk.Principal,
                              sk.Role, sk.Grant, sk.Stage, sk.ModelStage))]


@pytest.mark.parametrize("case", DEFINITIONS, ids=[c["id"] for c in DEFINITIONS])
def test_definitions_corpus_sdk(case, tmp_path):
    with pytest.raises(getattr(errors, case["error"])) as info:
        sk.init_repo(tmp_path).apply(_definitions(case["code"]), prune=True)
    assert case["message"] in str(info.value)


@pytest.mark.parametrize("case", DEFINITIONS, ids=[c["id"] for c in DEFINITIONS])
def test_definitions_corpus_cli(case, tmp_path):
    sk.init_repo(tmp_path)
    (tmp_path / "features.py").write_text("import skewless as sk\n" + LOAN + textwrap.dedent(case["code"]))
    out = cli_error(["apply", "--repo", tmp_path])
    assert out.startswith(f"error: {case['error']}: ") and case["message"] in out, out
    assert sk.FeatureStore(tmp_path).list_feature_views() == []  # nothing committed


SOURCES = yaml.safe_load((CORPUS / "sources.yaml").read_text())


def _source_repo(case: dict, path: Path, monkeypatch) -> Path:
    for k, v in case.get("env", {}).items():
        monkeypatch.setenv(k, v)
    store = sk.init_repo(path)
    for name, text in case.get("files", {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)
    source = eval(case["source"], {"sk": sk})  # noqa: S307 - the corpus is this repo's own test data
    store.apply([loan, sk.FeatureView("loans", [loan], [sk.Field("amount", sk.Float64)], source=source)])
    return path


@pytest.mark.parametrize("case", SOURCES, ids=[c["id"] for c in SOURCES])
def test_sources_corpus_sdk(case, tmp_path, monkeypatch):
    store = sk.FeatureStore(_source_repo(case, tmp_path, monkeypatch))
    with pytest.raises(getattr(errors, case["error"])) as info:
        store.ingest("loans")
    assert case["message"] in str(info.value)
    assert "\n" not in str(info.value)
    assert store.offline.version("loans") is None


@pytest.mark.parametrize("case", SOURCES, ids=[c["id"] for c in SOURCES])
def test_sources_corpus_cli(case, tmp_path, monkeypatch):
    repo = _source_repo(case, tmp_path, monkeypatch)
    out = cli_error(["ingest", "loans", "--repo", repo])
    assert out.startswith(f"error: {case['error']}: ") and case["message"] in out, out
