"""The main job (README command 1) runs end to end and keeps the promise."""

from skewless.demo import run


def test_demo_end_to_end(tmp_path):
    report = run(tmp_path / "demo", log=lambda s: None)
    assert report.training_rows == 28_638
    assert report.test_auc > 0.8
    assert report.skew_free
    assert len(report.online) == 5 and set(report.online["statuses"]) == {"PRESENT"}
