"""The CLI end to end on a scaffolded repo (through typer's runner: the same code as the console script)."""

import pandas as pd
from typer.testing import CliRunner

from skewless.cli.main import app

runner = CliRunner(env={"COLUMNS": "250"})


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_full_cli_flow(tmp_path):
    repo = tmp_path / "credit"
    r = invoke("init", repo)
    assert r.exit_code == 0 and (repo / "features.py").exists() and (repo / "data" / "loan_table.parquet").exists()
    r = invoke("plan", "--repo", repo)
    assert r.exit_code == 0 and "+ feature_view loan_features" in r.stdout
    assert invoke("apply", "--repo", repo).exit_code == 0
    assert "No changes" in invoke("plan", "--repo", repo).stdout
    for view in ("loan_features", "zipcode_features"):
        r = invoke("ingest", view, "--repo", repo)
        assert r.exit_code == 0, r.output
    loans = pd.read_parquet(repo / "data" / "loan_table.parquet").head(50)
    loans[["loan_id", "zipcode", "event_timestamp", "loan_status"]].to_parquet(tmp_path / "ents.parquet")
    r = invoke("get-historical", "--entities", tmp_path / "ents.parquet", "--service", "credit_model_v1",
               "--out", tmp_path / "train.parquet", "--repo", repo)
    assert r.exit_code == 0, r.output
    train = pd.read_parquet(tmp_path / "train.parquet")
    assert len(train) == 50 and train["person_income"].notna().all()
    assert (tmp_path / "train.parquet.snapshot.json").exists()
    r = invoke("materialize", "2000-01-01", "now", "--repo", repo)
    assert r.exit_code == 0 and "loan_features" in r.stdout
    assert invoke("materialize-incremental", "--repo", repo).exit_code == 0
    loan = int(loans.loan_id.iloc[0])
    r = invoke("get-online", "-e", f"loan_id={loan}", "--features", "loan_features:person_income", "--repo", repo)
    assert r.exit_code == 0 and str(int(loans.person_income.iloc[0])) in r.stdout and "PRESENT" in r.stdout
    r = invoke("list", "--repo", repo)
    assert "zipcode_features" in r.stdout and "credit_model_v1" in r.stdout
    assert "risk" in invoke("search", "--tag", "team=risk", "--repo", repo).stdout
    r = invoke("describe", "loan_features", "--repo", repo)
    assert r.exit_code == 0 and "person_income" in r.stdout and "v1" in r.stdout


def test_errors_are_one_line_and_nonzero(tmp_path):
    r = runner.invoke(app, ["plan", "--repo", str(tmp_path)])
    assert r.exit_code == 1 and "ConfigError" in r.output and "skewless init" in r.output
    invoke("init", tmp_path / "r")
    r = runner.invoke(app, ["ingest", "no_such_view", "--repo", str(tmp_path / "r")])
    assert r.exit_code == 1 and "NotFoundError" in r.output
    r = runner.invoke(app, ["materialize", "tomorrow-ish", "now", "--repo", str(tmp_path / "r")])
    assert r.exit_code == 1 and "cannot parse" in r.output
    (tmp_path / "r" / "skewless.yaml").write_text("project: p\nonline: {url: 'mongodb://x'}\n")
    r = runner.invoke(app, ["get-online", "-e", "loan_id=1", "--features", "a:b", "--repo", str(tmp_path / "r")])
    assert r.exit_code == 1 and "unknown online store scheme 'mongodb'" in r.output
