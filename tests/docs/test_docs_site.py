"""The docs site builds in strict mode (any warning fails: a broken link or anchor, a missing docstring target), what
it generates from the code is there, and no link in README.md, DEVELOPERS.md or docs/ leaves the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the repository root: the folder holding mkdocs.yml (however deep tests/ nests this file)
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").exists())
MKDOCS = Path(sys.executable).with_name("mkdocs")
# what the hook needs beside docs/ and mkdocs.yml: the package folders (API reference, CLI, layer graph) and bench/
TREE = ["sdk", "adapters", "serving", "localstack", "bench"]


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(site.parent)}
    return subprocess.run([str(MKDOCS), "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def _text(html_file: Path) -> str:
    return re.sub(r"<[^>]+>", " ", html_file.read_text())


def test_the_site_builds_strict_with_the_generated_pages(tmp_path):
    proc = _build(ROOT, tmp_path / "site")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "WARNING" not in out, out
    site = tmp_path / "site"
    cli = _text(site / "cli" / "index.html")
    # generated from the typer app: every command group and a nested command with its options
    for command in ("skewless ingest", "skewless local up", "skewless model deploy", "skewless config from-terraform",
                    "--allow-breaking", "--json"):
        assert command in cli, command
    api = _text(site / "reference" / "skewless" / "index.html")
    assert "get_historical_features" in api and "materialize_incremental" in api
    errors = _text(site / "reference" / "errors" / "index.html")
    assert "TerraformError" in errors and "MissingFeatures" in errors
    layers = _text(site / "architecture" / "index.html")
    assert "imports →" in layers
    results = _text(site / "benchmark-results" / "index.html")
    for md in (ROOT / "bench" / "results").glob("*.md"):
        assert f"bench/results/{md.name}" in results


def _copy(tmp_path: Path) -> Path:
    """The docs and mkdocs.yml copied (to break them), the package folders linked."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", root)
    for name in TREE:
        (root / name).symlink_to(ROOT / name)
    return root


BROKEN = {
    "a link to a missing page": ("index.md", "[gone](no-such-page.md)", "no-such-page.md"),
    "a link to a missing anchor": ("index.md", "[gone](errors.md#no-such-anchor)", "no-such-anchor"),
    "an absolute link": ("index.md", "[root](/README.md)", "/README.md"),
    "a link out of docs/": ("index.md", "[readme](../README.md)", "../README.md"),
    "a missing docstring target": ("reference/plugins.md", "::: skewless.plugins.no_such_function",
                                   "skewless.plugins.no_such_function"),
}


def test_a_strict_build_fails_on_a_missing_docstring_target(tmp_path):
    root = _copy(tmp_path)
    page, text, named = BROKEN["a missing docstring target"]
    with open(root / "docs" / page, "a") as f:
        f.write(f"\n\n{text}\n")
    proc = _build(root, tmp_path / "site")
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr


def test_every_broken_link_is_a_warning_of_the_strict_build(tmp_path):
    """One build holding each kind of broken link: strict mode fails and names each of them."""
    root = _copy(tmp_path)
    links = [text for page, text, _ in BROKEN.values() if page == "index.md"]
    with open(root / "docs" / "index.md", "a") as f:
        f.write("\n\n" + "\n\n".join(links) + "\n")
    proc = _build(root, tmp_path / "site")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for page, _, named in BROKEN.values():
        if page == "index.md":
            assert named in out, (named, out)


# ---- links in the repository's markdown -------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|<((?:[a-z][a-z0-9+.-]*:)[^>\s]+)>|"
                   r"^\s*\[[^\]]+\]:\s*(\S+)", re.M | re.I)


def links_in(text: str) -> list[str]:
    """Link targets of a markdown text, outside code blocks and code spans (inline, autolinks, reference defs)."""
    text = _CODE.sub("", _FENCE.sub("", text))
    return [next(g for g in m.groups() if g) for m in _LINK.finditer(text)]


def bad_links(path: Path, root: Path = ROOT) -> list[str]:
    """Targets that leave the repository: any URL with a scheme (http, https, mailto, ...), an absolute path, or a
    relative path that does not resolve to an existing file or folder inside ``root``."""
    bad = []
    for target in links_in(path.read_text()):
        if target.startswith("#"):
            continue
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            bad.append(target)
            continue
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.exists() or not resolved.is_relative_to(root.resolve()):
            bad.append(target)
    return bad


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").rglob("*.md")),
            *sorted((ROOT / "bench" / "results").glob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_leaves_the_repository(path):
    assert bad_links(path) == []


def test_the_link_scan_finds_what_leaves(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("[a](https://example.com) <http://x.invalid> [b](missing.md) [c](/etc/passwd) [d](../../x.md)\n"
                  "[ok](x.md#top) `[code](https://in.code.span)`\n```\n[fenced](https://in.fence)\n```\n"
                  "[ref]: mailto:someone@example.com\n")
    assert bad_links(md, tmp_path) == ["https://example.com", "http://x.invalid", "missing.md", "/etc/passwd",
                                       "../../x.md", "mailto:someone@example.com"]


# ---- the errors page and the exception tree ---------------------------------------------------------------------

def test_the_errors_page_draws_the_exception_tree_of_the_code():
    """Every SkewlessError subclass of the modules that define them is in docs/errors.md's tree, under its base
    class, with the module it is imported from; and nothing else is."""
    import skewless.errors
    import skewless.serving.errors
    import skewless.terraform_run

    classes = {}
    for module in (skewless.errors, skewless.terraform_run, skewless.serving.errors):
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, skewless.errors.SkewlessError) \
                    and obj.__module__ == module.__name__:
                classes[obj.__name__] = obj
    block = re.search(r"```text\n(SkewlessError.*?)```", (ROOT / "docs" / "errors.md").read_text(), re.S).group(1)
    drawn, stack = {}, []  # name -> (parent name, module named on its line)
    for line in block.splitlines():
        m = re.match(r"^([│├└─\s]*)(\w+)\s+(skewless[\w.]*)", line)
        if not m:
            continue
        depth = len(m.group(1)) // 4
        del stack[depth:]
        drawn[m.group(2)] = (stack[-1] if stack else None, m.group(3))
        stack.append(m.group(2))
    assert set(drawn) == set(classes)
    for name, cls in classes.items():
        parent, module = drawn[name]
        assert parent == (None if cls is skewless.errors.SkewlessError else cls.__bases__[0].__name__), name
        assert module == cls.__module__, name
