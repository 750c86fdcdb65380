"""Build-time parts of the docs site (mkdocs ``hooks:``), so what is generated from the code cannot go stale:

- the API reference's source: mkdocstrings reads the package from a view of the tree (``skewless/`` linking
  ``sdk/``'s entries and ``adapters/``, ``serving/``, ``localstack/``, as pyproject's package-dir maps them), since
  griffe finds sub-packages by folder;
- ``<!-- skewless-cli-reference -->``: the CLI reference, from the typer app (``skewless.cli.main``);
- ``<!-- skewless-layer-graph -->``: which layer imports which, from grimp's import graph of the tree;
- ``<!-- skewless-bench-results -->``: every published benchmark result (``bench/results/*.md``).
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[2]
# pyproject's [tool.setuptools] package-dir: sub-package -> its folder (the rest of `skewless` is sdk/)
SUBPACKAGES = {"adapters": "adapters", "serving": "serving", "localcloud": "localstack"}
LAYERS = ["__main__", "cli", "serving", "adapters", "localcloud"]  # any other module of skewless is the core
_view: Path | None = None


def _make_view() -> Path:
    global _view
    if _view is None:
        _view = Path(tempfile.mkdtemp(prefix="skewless-docs-view-"))
        atexit.register(shutil.rmtree, _view, True)
        pkg = _view / "skewless"
        pkg.mkdir()
        for entry in (ROOT / "sdk").iterdir():
            if entry.name != "__pycache__":
                (pkg / entry.name).symlink_to(entry)
        for name, folder in SUBPACKAGES.items():
            (pkg / name).symlink_to(ROOT / folder)
    return _view


@event_priority(100)  # before mkdocstrings reads its handler options
def on_config(config):
    handlers = config.plugins["mkdocstrings"].config.handlers
    handlers.setdefault("python", {})["paths"] = [str(_make_view())]
    return config


def cli_reference() -> str:
    import typer
    from typer.cli import MARKUP_MODE_KEY, get_docs_for_click

    from skewless.cli.main import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="skewless", obj={MARKUP_MODE_KEY: app.rich_markup_mode})
    text = get_docs_for_click(obj=command, ctx=ctx, name="skewless", title="`skewless`")
    # one level under the page's "Reference" heading
    return "\n".join("##" + line if line.startswith("#") else line for line in text.splitlines())


_GRAPH = """
import collections, json, grimp
layers = %r
def layer(m):
    parts = m.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in layers else "core"
g = grimp.build_graph("skewless")
edges = collections.defaultdict(set)
for importer in g.modules:
    for imported in g.find_modules_directly_imported_by(importer):
        a, b = layer(importer), layer(imported)
        if a != b:
            edges[a + " " + b].add(importer)
print(json.dumps({k: len(v) for k, v in edges.items()}))
"""


def layer_graph() -> str:
    """A table: rows import columns; each cell the number of importing modules (grimp, in its own interpreter so
    ``skewless`` resolves to the view of the tree and not to the editable install)."""
    out = subprocess.run([sys.executable, "-c", _GRAPH % (LAYERS,)], cwd=_make_view(), capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(_make_view()), "PATH": ""}).stdout
    edges = json.loads(out)
    names = LAYERS + ["core"]
    lines = ["| imports → | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for a in names:
        cells = [str(edges.get(f"{a} {b}", "")) if a != b else "–" for b in names]
        lines.append(f"| `{a}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bench_results() -> str:
    parts = []
    for path in sorted((ROOT / "bench" / "results").glob("*.md")):
        body = "\n".join("##" + line if line.startswith("#") else line
                         for line in path.read_text().splitlines())
        parts.append(f"## `bench/results/{path.name}`\n\n{body}\n")
    return "\n".join(parts)


_MARKERS = {
    "<!-- skewless-cli-reference -->": cli_reference,
    "<!-- skewless-layer-graph -->": layer_graph,
    "<!-- skewless-bench-results -->": bench_results,
}


def on_page_markdown(markdown, page, config, files):
    for marker, make in _MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
