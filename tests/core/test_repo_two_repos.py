"""Two repos loaded in one process, each with a ``features.py`` that its other files import by name: each repo
gets its own module (the first repo's cached ``features`` once made the second fail with an ImportError)."""

from __future__ import annotations

import sys
import textwrap

from skewless.repo import load_objects

VIEW = """
import skewless as sk
from datetime import timedelta
from features import {entity}

view = sk.FeatureView("{view}", entities=[{entity}], schema=[sk.Field("x", sk.Float64)],
                      ttl=timedelta(days=1))
"""


def _repo(root, entity: str, view: str):
    root.mkdir()
    (root / "features.py").write_text(textwrap.dedent(f"""
        import skewless as sk
        {entity} = sk.Entity("{entity}", join_keys=["{entity}_id"], dtype=sk.Int64)
    """))
    (root / "views.py").write_text(VIEW.format(entity=entity, view=view))
    return root


def test_each_repo_imports_its_own_sibling_module(tmp_path):
    a = _repo(tmp_path / "a", "card", "card_stats")
    b = _repo(tmp_path / "b", "driver", "driver_stats")
    names_a = {o.name for o in load_objects(a)}
    names_b = {o.name for o in load_objects(b)}
    assert names_a == {"card", "card_stats"}
    assert names_b == {"driver", "driver_stats"}
    assert {o.name for o in load_objects(a)} == names_a  # and back again


def test_a_library_of_the_same_name_is_not_touched(tmp_path):
    """Only modules imported from a folder no longer on sys.path are forgotten: a repo file named like an
    installed library does not evict the library from the process."""
    root = _repo(tmp_path / "c", "rider", "rider_stats")
    (root / "json.py").write_text("# shadows nothing: the definitions do not import it\n")
    import json

    load_objects(root)
    assert sys.modules["json"] is json
