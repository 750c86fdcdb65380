"""Training sets as registered objects in the feature registry: what is recorded, idempotent re-registration, a
different definition under a taken name refused (or made the next version), typed errors for unknown names, and
`apply --prune` of a repo keeping them (they are not in the repo's files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from skewless.cli.main import app
from skewless.errors import DefinitionError, NotFoundError
from skewless.training_sets import fingerprint
from tests.support.odt_repo import T0, driver, make_repo, stats


def _entities(n: int = 30, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"driver_id": rng.integers(0, 20, n), "amount": rng.uniform(0, 200, n).round(2),
                         "event_timestamp": pd.Timestamp(T0) + pd.to_timedelta(rng.integers(0, 48, n), unit="h")})


@pytest.fixture()
def store(tmp_path):
    return make_repo(tmp_path / "repo")


def test_register_records_snapshot_features_service_and_fingerprint(store):
    ents = _entities()
    job = store.get_historical_features(ents, "svc")
    ts = job.register("drivers_jan", description="January")
    assert job.registered == ("drivers_jan", 1)
    got = store.get_training_set("drivers_jan")
    assert got == ts
    assert got.snapshot == job.snapshot == {"stats": 1} and got.statistics == got.snapshot
    assert got.features == job.features and "ratios:ratio" in got.features
    assert got.feature_service == "svc" and got.point_in_time == "event"
    assert got.entity_rows == len(ents) and got.entity_fingerprint == fingerprint(ents)[0]
    assert [t.name for t in store.list_training_sets()] == ["drivers_jan"]


def test_same_definition_twice_is_a_no_op_and_another_is_refused_unless_new_version(store):
    ents = _entities()
    store.get_historical_features(ents, "svc").register("ts")
    version = store.registry.state().version
    again = store.get_historical_features(ents.copy(), "svc")
    again.register("ts")  # same rows, same snapshot: nothing committed
    assert again.registered == ("ts", 1) and store.registry.state().version == version
    other = store.get_historical_features(_entities(seed=2), "svc")
    with pytest.raises(DefinitionError, match="entity_fingerprint"):
        other.register("ts")
    assert store.registry.state().version == version
    other.register("ts", new_version=True)
    assert other.registered == ("ts", 2)
    assert [h.version for h in store.registry.history("training_set", "ts")] == [1, 2]


def test_unknown_training_set_is_a_typed_error(store):
    with pytest.raises(NotFoundError, match="training set 'nope'"):
        store.get_training_set("nope")


def test_prune_apply_keeps_registered_training_sets(store):
    store.get_historical_features(_entities(), ["stats:trips"]).register("plain")
    store.apply([driver, stats], prune=True, allow_breaking=True)  # the repo now declares only these
    assert store.get_training_set("plain").features == ["stats:trips"]


def test_fingerprint_is_of_the_rows_not_their_container(tmp_path):
    ents = _entities()
    assert fingerprint(ents) == fingerprint(ents.copy())
    assert fingerprint(ents)[0] != fingerprint(ents.iloc[::-1])[0]  # order is part of a training set
    ents.to_parquet(tmp_path / "e.parquet")
    digest, rows = fingerprint(str(tmp_path / "e.parquet"))
    assert len(digest) == 64 and rows is None


def test_cli_lists_and_shows_training_sets(store):
    store.get_historical_features(_entities(), "svc").register("drivers_jan")
    runner = CliRunner()
    out = runner.invoke(app, ["training-sets", "--repo", str(store.config.repo_path), "--json"])
    assert out.exit_code == 0, out.output
    assert [(r["name"], r["version"], r["feature_service"]) for r in json.loads(out.stdout)] == \
        [("drivers_jan", 1, "svc")]
    out = runner.invoke(app, ["training-sets", "missing", "--repo", str(store.config.repo_path)])
    assert out.exit_code == 1 and "NotFoundError" in out.output


class _Racing:
    """The registry's real store, but another writer commits (a real apply of another FeatureStore on the same
    repo) just before this writer's first create: the commit it planned loses the race."""

    def __init__(self, inner, other):
        self.inner, self.other, self.raced = inner, other, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create(self, version, data):
        if not self.raced:
            self.raced = True
            self.other.apply([stats_described])
        return self.inner.create(version, data)


stats_described = type(stats).from_dict({**stats.to_dict(), "description": "changed meanwhile"})


def test_a_concurrent_commit_is_retried_and_neither_is_lost(store):
    import skewless as sk

    other = sk.FeatureStore(store.config.repo_path)
    store.registry.store = _Racing(store.registry.store, other)
    job = store.get_historical_features(_entities(), "svc")
    job.register("raced")
    state = sk.FeatureStore(store.config.repo_path).registry.state()
    assert store.registry.store.raced and job.registered == ("raced", 1)
    assert state.get("training_set", "raced").snapshot == job.snapshot
    assert state.get("feature_view", "stats").description == "changed meanwhile"
