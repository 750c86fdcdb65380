"""The main job (README command 1) runs end to end and keeps the promise."""

import os
import signal
import subprocess
import sys
from pathlib import Path

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


STEPS = ["init", "apply", "ingest", "training set", "train", "materialize", "online read", "predict"]


def test_demo_reports_every_step_it_runs(tmp_path):
    lines: list[str] = []
    report = run(tmp_path / "demo", log=lines.append)
    # every "[n] step: ..." line printed is a row of the summary table, the final check (predict) included
    assert [name for name, _, _ in report.steps] == STEPS
    assert [line.split("] ")[1].split(":")[0] for line in lines] == STEPS
    assert (tmp_path / "demo" / "skewless.yaml").exists()  # a folder the user named is kept


def _demo_cmd(tmp: Path) -> tuple[list[str], dict]:
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"}
    return [str(Path(sys.executable).parent / "skewless"), "demo"], env


def test_cli_demo_table_lists_every_step_and_removes_its_temp_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd, env = _demo_cmd(tmp)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    table_rows = [line.split("│")[1].strip() for line in out.stdout.splitlines() if line.startswith("│")]
    assert table_rows == STEPS
    assert list(tmp.iterdir()) == []  # the temporary repo is gone


def test_cli_demo_interrupted_removes_its_temp_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cmd, env = _demo_cmd(tmp)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # Ctrl-C once the repo holds data (after ingest)
            if line.startswith("[3] ingest"):
                assert list(tmp.iterdir()), "the demo's temporary repo should exist while it runs"
                proc.send_signal(signal.SIGINT)
                break
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert list(tmp.iterdir()) == []
