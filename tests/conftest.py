import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # oracle, conformance

import skewless as sk  # noqa: E402


@pytest.fixture
def repo(tmp_path):
    """An empty feature repo on embedded defaults."""
    return sk.init_repo(tmp_path / "repo", project="test")
