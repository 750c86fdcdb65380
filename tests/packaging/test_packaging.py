"""skewless as an installed package: its dependency ranges resolve beside the tools users already run (pip's own
resolver against the package index), the pinned sets agree with the ranges, and the metadata, `--version` and
`python -m skewless` are there."""

import json
import re
import subprocess
import sys
import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.paths import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# pip's messages when the index could not be reached, as opposed to a resolution that is impossible.
NETWORK = re.compile(r"Could not fetch|ConnectionError|ConnectTimeout|ReadTimeout|Read timed out|Max retries|"
                     r"Temporary failure in name resolution|HTTP error 5\d\d|No matching distribution")


def requirements(*extras: str) -> list[str]:
    """The core requirements plus those of ``extras``, read from pyproject.toml (self-references expanded), so the
    resolver sees exactly the ranges of this tree without building a wheel."""
    out, todo, seen = list(PROJECT["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in PROJECT["optional-dependencies"][extra]:
            r = Requirement(req)
            if r.name == "skewless":
                todo.extend(r.extras)
            else:
                out.append(req)
    return out


def resolve(*reqs: str, constraints: Path | None = None) -> dict[str, Version]:
    """What `pip install` would install for ``reqs`` into an empty environment (`--dry-run --ignore-installed`:
    nothing is installed). A network hiccup is retried once; an impossible resolution fails with pip's reason."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
           "--disable-pip-version-check", *reqs]
    if constraints is not None:
        cmd[4:4] = ["-c", str(constraints)]
    for attempt in (1, 2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0 or attempt == 2 or not NETWORK.search(proc.stderr):
            break
    errors = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location"))
    assert proc.returncode == 0, f"pip cannot install {' '.join(reqs)} together:\n{errors}"
    report = json.loads(proc.stdout)
    return {canonicalize_name(i["metadata"]["name"]): Version(i["metadata"]["version"]) for i in report["install"]}


def test_aws_and_serving_extras_install_beside_feast():
    """Feast 0.67 needs pandas < 3 (and numpy >= 2): our pandas range reaches down to 2.2 for it. `feast[redis]`'s
    redis < 8 and Feast's prometheus-client < 0.25 are inside our ranges. (`feast[delta]` needs deltalake < 1,
    which our Delta histories cannot use.)"""
    got = resolve(*requirements("aws", "serving"), "feast==0.67.0", "feast[redis]==0.67.0")
    assert got["feast"] == Version("0.67.0")
    assert got["pandas"] < Version("3"), got["pandas"]
    assert got["redis"] < Version("8"), got["redis"]
    assert got["prometheus-client"] < Version("0.25"), got["prometheus-client"]


def test_aws_and_alibaba_extras_install_beside_the_pai_sdk():
    """The PAI SDK (pai 0.4.13) needs numpy < 2, which our numpy range reaches down to (1.26). pandas 3.1 needs numpy
    >= 2.0.2, so beside it pip picks pandas 3.0.x (numpy >= 1.26). Its oss2 and pyodps are the `alibaba` extra's."""
    got = resolve(*requirements("aws", "alibaba"), "pai==0.4.13")
    assert got["pai"] == Version("0.4.13")
    assert got["numpy"] < Version("2"), got["numpy"]
    assert got["pandas"] < Version("3.1"), got["pandas"]


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_lowest_constraints_are_the_lower_bounds_and_resolve():
    """constraints-lowest.txt pins every core and `aws` requirement at its lower bound (so the set tested as "the
    oldest we support" is the one pyproject.toml claims), and pip can install that set."""
    lowest = _pins(ROOT / "constraints-lowest.txt")
    bounds = {}
    for req in map(Requirement, requirements("aws")):
        lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert len(lows) == 1 and any(s.operator == "<" for s in req.specifier), f"{req}: give >=LOW,<NEXT_MAJOR"
        bounds[canonicalize_name(req.name)] = lows[0]
    assert lowest == bounds
    got = resolve(*requirements("aws"), constraints=ROOT / "constraints-lowest.txt")
    assert {name: got[name] for name in bounds} == bounds


def test_known_good_set_satisfies_every_range():
    """constraints.txt (what ./run installs) is inside every range pyproject.toml states, for all extras, and pins
    every one of them."""
    pins = _pins(ROOT / "constraints.txt")
    for req in map(Requirement, requirements(*PROJECT["optional-dependencies"])):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt has {name}=={pins[name]}, " \
                                                                     f"outside {req}"


def test_run_installs_with_the_constraints_and_reinstalls_when_they_change():
    run = (ROOT / "run").read_text()
    assert '-c constraints.txt -e ".[$extras]"' in run
    assert "cat pyproject.toml constraints.txt | sha256sum" in run
    # the demo installs only what it needs; the tests the dev extras, which include the demo's (one stamp per set)
    assert "bootstrap demo\n" in run and "bootstrap dev\n    system_packages" in run
    assert 'stamp="$VENV/.skewless-installed-$extras"' in run
    assert "skewless[demo]" in PROJECT["optional-dependencies"]["dev"]


def test_metadata_names_versions_and_urls():
    meta = metadata("skewless")
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers and "Typing :: Typed" in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"homepage", "documentation", "source"} <= {k.lower() for k in urls}
    assert "feature store" in meta["Keywords"]
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "Apache-2.0"


@pytest.mark.parametrize("argv", [[sys.executable, "-m", "skewless"], [str(Path(sys.executable).parent / "skewless")]],
                         ids=["python -m skewless", "console script"])
def test_version_and_module_entry(argv):
    proc = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"skewless {version('skewless')}"
    proc = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "get-online" in proc.stdout
