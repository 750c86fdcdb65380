"""The package as Python sees it, for import-linter: a ``skewless/`` folder of links to the top-level folders
(``sdk/`` is ``skewless``, ``adapters/`` is ``skewless.adapters``, ...; pyproject's package-dir), which grimp can
walk (it finds a package by its folder, and the editable install maps four folders into one package).

    python tests/support/import_layers.py          # lint-imports on the tree, with the contracts in pyproject.toml
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file is tests/support/import_layers.py)
# pyproject's [tool.setuptools] package-dir: subpackage -> its folder (the rest of `skewless` is sdk/)
SUBPACKAGES = {"adapters": "adapters", "serving": "serving", "localcloud": "localstack"}


def make_view(dst: Path, root: Path = ROOT) -> Path:
    """``dst/skewless`` linking the folders of ``root``, and ``dst/bench``. Returns ``dst`` (for PYTHONPATH)."""
    root = root.resolve()
    pkg = dst / "skewless"
    pkg.mkdir(parents=True)
    for entry in (root / "sdk").iterdir():
        (pkg / entry.name).symlink_to(entry)
    for name, folder in SUBPACKAGES.items():
        (pkg / name).symlink_to(root / folder)
    (dst / "bench").symlink_to(root / "bench")
    return dst


def lint_imports(root: Path = ROOT, config: Path | None = None, *args: str) -> subprocess.CompletedProcess:
    """``lint-imports`` (from this interpreter's environment) over ``root``'s tree, with ``root``'s pyproject."""
    exe = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="skewless-layers-") as tmp:
        view = make_view(Path(tmp), root)
        # COLUMNS: rich would wrap contract names and import chains at 80 columns when not on a terminal
        env = {"COLUMNS": "250", **os.environ, "PYTHONPATH": str(view)}
        return subprocess.run([str(exe), "--config", str(config or root / "pyproject.toml"), "--no-cache", *args],
                              cwd=view, env=env, capture_output=True, text=True)


def _owner(module: str) -> str:
    """The top-level folder's package ``module`` lives in (``skewless`` for sdk/)."""
    for name in SUBPACKAGES:
        pkg = f"skewless.{name}"
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return "skewless"


def crossing_relative_imports(root: Path = ROOT) -> list[str]:
    """Relative imports (``from ...errors import X``) whose target lies in another top-level folder's package: such
    imports must be absolute (``from skewless.errors import X``), so a module says which layer it reaches into."""
    folders = {"sdk": "skewless", **{folder: f"skewless.{name}" for name, folder in SUBPACKAGES.items()}}
    found = []
    for folder, pkg in folders.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            module = ".".join([pkg, *parts[:-1]] if parts[-1] == "__init__" else [pkg, *parts])
            package = module.split(".") if parts[-1] == "__init__" else module.split(".")[:-1]
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.level:
                    target = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                    if _owner(target) != _owner(module):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: from {'.' * node.level}"
                                     f"{node.module or ''} reaches {target}")
    return found


def bench_imports(root: Path = ROOT) -> list[str]:
    """Imports of ``bench`` (the benchmarks) in any file under ``root/tests``: tests check the product, and what
    tests and benchmarks share lives in the product (e.g. ``skewless.sample_repo``), not in bench/."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
            found += [f"{path.relative_to(root)}:{node.lineno}: imports {n}" for n in names
                      if n == "bench" or n.startswith("bench.")]
    return found


if __name__ == "__main__":
    proc = lint_imports(ROOT, None, *sys.argv[1:])
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)
