"""examples/ run as a user runs them: a subprocess per script, the cloud ones on a repo whose skewless.yaml was
written by `skewless local config` against the session's local cloud. Each script checks its own results and exits
non-zero on a wrong value."""

import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.support.paths import ROOT

EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def run_example(script: str, repo: Path) -> str:
    out = subprocess.run([sys.executable, str(EXAMPLES / script), str(repo)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("all checks passed"), out.stdout
    return out.stdout


def configure(repo: Path, cloud, which: str) -> dict:
    """`skewless local config REPO --project P --cloud C`, the command the examples' docstrings give."""
    project = f"ex{uuid.uuid4().hex[:8]}"  # the local cloud is shared: a project of our own
    out = subprocess.run([str(BIN / "skewless"), "local", "config", str(repo), "--project", project, "--cloud", which,
                          "--state", str(cloud.state)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return yaml.safe_load((repo / "skewless.yaml").read_text())


def test_embedded_example(tmp_path):
    out = run_example("embedded.py", tmp_path / "repo")
    assert "ok  online trips: [20, 5, None]" in out
    assert (tmp_path / "repo" / "data" / "offline").is_dir()  # the histories are local files


def test_local_aws_example(tmp_path, local_cloud, localstack_s3, redis_url):
    doc = configure(tmp_path / "repo", local_cloud, "aws")
    assert doc["registry"]["url"].startswith("s3://") and doc["online"]["url"].startswith("redis")
    run_example("local_aws.py", tmp_path / "repo")
    assert not (tmp_path / "repo" / "data").exists()  # nothing stayed local


def test_local_alibaba_example(tmp_path, local_cloud, oss_endpoint, maxcompute_endpoint, tair_url):
    doc = configure(tmp_path / "repo", local_cloud, "alibaba")
    assert doc["offline"]["engine"] == "maxcompute" and doc["online"]["url"].startswith("tair")
    run_example("local_alibaba.py", tmp_path / "repo")
    assert not (tmp_path / "repo" / "data").exists()


def test_an_example_exits_non_zero_on_a_wrong_value(tmp_path):
    """The examples' own check is live: a wrong expected value fails the script."""
    script = tmp_path / "wrong.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(EXAMPLES)!r})\n"
                      "import driver_stats\n"
                      "driver_stats.check('a value', 0.2, 0.3)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "FAILED a value: got 0.2, want 0.3" in out.stderr
