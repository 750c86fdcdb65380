"""The CLI for scripts and pipes: `--json` on every command that prints data, tables that keep whole names when
stdout is not a terminal, and `skewless local` reading SKEWLESS_LOCAL_STATE as the tests do."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from skewless.cli.main import app

runner = CliRunner()


def run_json(*args):
    r = runner.invoke(app, [*map(str, args), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The credit-scoring sample, applied, with loan_features ingested and materialized."""
    repo = tmp_path_factory.mktemp("cli") / "credit"
    for args in (["init", repo], ["apply", "--repo", repo], ["ingest", "loan_features", "--repo", repo],
                 ["materialize", "2000-01-01", "now", "--repo", repo]):
        r = runner.invoke(app, list(map(str, args)))
        assert r.exit_code == 0, r.output
    return repo


def test_plan_apply_ingest_materialize_as_json(tmp_path):
    repo = tmp_path / "credit"
    assert runner.invoke(app, ["init", str(repo)]).exit_code == 0
    plan = run_json("plan", "--repo", repo)
    assert plan["base_version"] == 0 and plan["breaking"] == 0
    assert {"kind": "feature_view", "name": "loan_features", "action": "add"}.items() <= \
        next(c for c in plan["changes"] if c["name"] == "loan_features").items()
    applied = run_json("apply", "--repo", repo)
    assert applied["committed_version"] == 1 and len(applied["changes"]) == len(plan["changes"])
    assert run_json("apply", "--repo", repo) == {"base_version": 1, "changes": [], "breaking": 0}
    first = run_json("ingest", "loan_features", "--repo", repo, "--batch-id", "b1")
    assert first["view"] == "loan_features" and first["rows"] > 0 and first["already_ingested"] is False
    again = run_json("ingest", "loan_features", "--repo", repo, "--batch-id", "b1")
    assert again["already_ingested"] is True and again["version"] == first["version"]
    done = run_json("materialize", "2000-01-01", "now", "--views", "loan_features", "--repo", repo)
    assert [(m["view"], m["rows"] > 0) for m in done] == [("loan_features", True)]


def test_reads_and_listings_as_json(repo, tmp_path):
    objs = run_json("list", "--repo", repo)
    assert {(o["kind"], o["name"]) for o in objs} >= {("entity", "loan"), ("feature_view", "zipcode_features"),
                                                       ("feature_service", "credit_model_v1")}
    assert next(o for o in objs if o["name"] == "loan_features")["tags"]["team"] == "risk"
    found = run_json("search", "--tag", "team=geo", "--repo", repo)
    assert [o["name"] for o in found] == ["zipcode_features"]
    desc = run_json("describe", "loan_features", "--repo", repo)
    assert desc["kind"] == "feature_view" and desc["versions"][0]["version"] == 1
    assert "person_income" in {f["name"] for f in desc["spec"]["schema"]}

    loans = pd.read_parquet(repo / "data" / "loan_table.parquet").head(3)
    loan = int(loans.loan_id.iloc[0])
    online = run_json("get-online", "-e", f"loan_id={loan}", "-e", "loan_id=-1",
                      "--features", "loan_features:person_income", "--repo", repo)
    hit, miss = (row["features"]["person_income"] for row in online)
    assert online[0]["entity"] == {"loan_id": loan}
    assert hit["status"] == "PRESENT" and hit["value"] == int(loans.person_income.iloc[0]) and hit["event_timestamp"]
    assert miss == {"value": None, "status": "NOT_FOUND", "event_timestamp": None}

    loans[["loan_id", "event_timestamp"]].to_parquet(tmp_path / "ents.parquet")
    feats = "loan_features:person_income"
    hist = run_json("get-historical", "--entities", tmp_path / "ents.parquet", "--features", feats, "--repo", repo)
    assert hist["rows"] == 3 and hist["snapshot"]["loan_features"] >= 1
    assert [r["person_income"] for r in hist["head"]] == loans.person_income.tolist()
    out = run_json("get-historical", "--entities", tmp_path / "ents.parquet", "--features", feats,
                   "--out", tmp_path / "t.parquet", "--repo", repo)
    assert out == {"out": str(tmp_path / "t.parquet"), "rows": 3, "snapshot": hist["snapshot"]}


def test_tables_keep_whole_names_when_piped(repo):
    """A pipe has no width: rich used to squeeze the table into 80 columns (`zipcode_feat…`, e-mails cut)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "skewless", "list", "--repo", str(repo)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    for name in ("zipcode_features", "credit_model_v1", "geo-data@example.com", "pii=false,team=geo",
                 "What the applicant declared on the loan application"):
        assert name in proc.stdout, proc.stdout


def test_local_status_reads_the_state_folder_from_the_environment(tmp_path):
    """`skewless local` and the tests' local_cloud fixture share services through SKEWLESS_LOCAL_STATE."""
    state = tmp_path / "state"
    r = CliRunner(env={"SKEWLESS_LOCAL_STATE": str(state)}).invoke(app, ["local", "status", "--json"])
    assert r.exit_code in (0, 3), r.output  # 3: some service is not running
    services = json.loads(r.stdout)
    assert {s["service"] for s in services} >= {"redis", "localstack", "moto"}
    assert all(s["log"].startswith(str(state / "run")) for s in services), services
    r = runner.invoke(app, ["local", "status", "--json", "--state", str(tmp_path / "other")])  # the option wins
    assert all(s["log"].startswith(str(tmp_path / "other")) for s in json.loads(r.stdout))


SCORER = '''
class Scorer:
    outputs = [("score", "Float64")]

    def load(self, path):
        pass

    def predict(self, frame):
        return {"score": [0.5] * len(frame)}
'''


def test_model_registry_and_endpoints_as_json(repo, tmp_path):
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet").head(5)
    loans[["loan_id", "zipcode", "event_timestamp"]].to_parquet(tmp_path / "ents.parquet")
    run_json("get-historical", "--entities", tmp_path / "ents.parquet", "--service", "credit_model_v1",
             "--out", tmp_path / "train.parquet", "--repo", repo)
    (tmp_path / "scorer.py").write_text(SCORER)
    r = runner.invoke(app, ["model", "package", f"{tmp_path / 'scorer.py'}:Scorer", "--name", "json_model",
                            "--service", "credit_model_v1", "--training-set", str(tmp_path / "train.parquet"),
                            "--repo", str(repo)])
    assert r.exit_code == 0, r.output
    assert run_json("model", "promote", "json_model", 1, "staging", "--repo", repo) == \
        {"model": "json_model", "stages": {"staging": 1}}
    assert {"model": "json_model", "versions": 1, "stages": {"staging": 1}} in run_json("model", "list", "--repo",
                                                                                          repo)
    (v1,) = run_json("model", "list", "json_model", "--repo", repo)
    assert v1["version"] == 1 and v1["stages"] == ["staging"] and v1["flavor"] == "python"
    assert v1["feature_service"] == "credit_model_v1" and v1["training_snapshot"]["loan_features"] >= 1
    assert run_json("model", "endpoints", "--target", "local", "-o", f"state_dir={tmp_path / 'state'}",
                    "--repo", repo) == []
