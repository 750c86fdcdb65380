import sys

import pytest

import skewless as sk
from skewless import config, plugins
from skewless.errors import ConfigError


def test_missing_extra_names_what_to_install(tmp_path, monkeypatch):
    # simulate an install without skewless[redis] (no redis-py): the hint names the extra that provides it
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "skewless.adapters.redis.store", raising=False)
    (tmp_path / "skewless.yaml").write_text("project: p\nonline: {url: 'redis://localhost:6379'}\n")
    store = sk.FeatureStore(tmp_path)
    with pytest.raises(ConfigError, match=r'pip install "skewless\[redis\]"'):
        _ = store.online


def test_unknown_scheme_lists_known_ones():
    with pytest.raises(ConfigError, match="known: .*sqlite"):
        plugins.load("online", "cassandra://x")


def test_env_vars_are_expanded_and_unknown_keys_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("ONLINE_PATH", "x/online.db")
    (tmp_path / "skewless.yaml").write_text("project: p\nonline: sqlite:///${ONLINE_PATH}\n")
    assert config.load(tmp_path).online.url == "sqlite:///x/online.db"
    (tmp_path / "skewless.yaml").write_text("project: p\nonline: sqlite:///${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        config.load(tmp_path)
    (tmp_path / "skewless.yaml").write_text("project: p\nonlin: x\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        config.load(tmp_path)
    (tmp_path / "skewless.yaml").write_text(": : :\n")
    with pytest.raises(ConfigError):
        config.load(tmp_path)


def test_third_party_adapter_registration(tmp_path):
    plugins.register("online", "memtest", "skewless.factories:sqlite_online")
    (tmp_path / "skewless.yaml").write_text("project: p\nonline: 'memtest:///:memory:'\n")
    assert sk.FeatureStore(tmp_path).online.path == ":memory:"
