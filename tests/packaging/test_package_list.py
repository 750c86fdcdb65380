"""The wheel's package list is complete: every folder with an ``__init__.py`` under a mapped top-level folder is a
listed package, and every data folder of ``skewless._data`` (the `init` templates) is listed with its files. (A
package left out is missing from an installed skewless, while a checkout's editable install hides it.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())


def test_every_package_folder_and_template_is_in_the_wheel_list():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    on_disk = set()
    for package, folder in setup["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):  # the mapped folders sit side by side, none nests
            rel = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([package, *rel.parts]))
    assert on_disk - listed == set()
    templates = {f"skewless._data.{d.name}" for d in (ROOT / "sdk" / "_data").iterdir() if d.is_dir()
                 and not d.name.startswith("__")}
    assert templates and templates <= listed and templates <= set(setup["package-data"])
