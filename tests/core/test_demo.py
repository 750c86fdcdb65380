"""The main job (README command 1) runs end to end and keeps the promise."""

from skewless.demo import run


def test_demo_end_to_end(tmp_path):
    lines: list[str] = []
    report = run(tmp_path / "demo", log=lines.append)
    assert report.training_rows == 28_638
    assert report.test_auc > 0.8
    assert report.skew_free
    assert len(report.online) == 5 and set(report.online["statuses"]) == {"PRESENT"}
    # the ingest step names the history version each view's ingest created (a first ingest: version 0)
    ingest_line = next(line for line in lines if "ingest" in line)
    assert "loan_features v0" in ingest_line and "IngestResult" not in ingest_line
