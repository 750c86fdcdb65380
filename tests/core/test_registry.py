import json
import multiprocessing as mp
import sys
from datetime import timedelta

import pytest

import skewless as sk
from skewless.errors import ConflictError, DefinitionError, NotFoundError


def defs(extra_field=None, dtype=sk.Float64, ttl=None):
    e = sk.Entity("driver", join_keys=["driver_id"], owner="a@x")
    schema = [sk.Field("driver_id", sk.Int64), sk.Field("rate", dtype)] + ([extra_field] if extra_field else [])
    v = sk.FeatureView("stats", entities=[e], schema=schema, ttl=ttl, tags={"team": "t"}, owner="o@x")
    s = sk.FeatureService("svc", features=[v[["rate"]]])
    return [e, v, s]


def test_apply_creates_versions_and_keeps_history(repo):
    p = repo.apply(defs())
    assert [c.action for c in p.changes] == ["add", "add", "add"]
    assert repo.apply(defs()).empty  # no-op apply commits nothing
    repo.apply(defs(extra_field=sk.Field("trips", sk.Int64), ttl=timedelta(days=1)))
    hist = repo.registry.history("feature_view", "stats")
    assert [h.version for h in hist] == [1, 2] and [h.registry_version for h in hist] == [1, 2]
    assert [f["name"] for f in hist[0].spec["schema"]] == ["driver_id", "rate"]
    assert repo.registry.history("entity", "driver")[-1].version == 1
    assert repo.registry.store.versions() == [1, 2]
    assert repo.get_feature_view("stats").feature_names == ["rate", "trips"]


def test_plan_flags_breaking_changes_and_apply_refuses_them(repo):
    repo.apply(defs(extra_field=sk.Field("trips", sk.Int64)))
    p = repo.plan(defs(dtype=sk.String))
    reasons = [b for c in p.breaking for b in c.breaking]
    assert any("rate dtype Float64 -> String" in r for r in reasons)
    assert any("field trips removed" in r for r in reasons)
    with pytest.raises(DefinitionError, match="breaking"):
        repo.apply(defs(dtype=sk.String))
    assert repo.registry.store.latest() == 1
    repo.apply(defs(dtype=sk.String), allow_breaking=True)
    assert repo.get_feature_view("stats").schema[1].dtype is sk.String


def test_prune_keeps_what_skewless_manages_itself(repo):
    """A model's prediction-log view is applied by skewless, not declared in the repo's files: prune keeps it."""
    e, v, s = defs()
    log = sk.FeatureView("predictions_m", entities=[e], schema=[sk.Field("driver_id", sk.Int64),
                                                                 sk.Field("out", sk.Float64)],
                         tags={"skewless.kind": "prediction_log"})
    repo.apply([e, v, s, log])
    p = repo.plan([e, v, s], prune=True)
    assert p.empty
    repo.apply([e, v], prune=True, allow_breaking=True)
    assert repo.get_feature_view("predictions_m").feature_names == ["out"]
    with pytest.raises(NotFoundError):
        repo.get_feature_service("svc")


def test_key_change_is_breaking(repo):
    repo.apply(defs())
    e2 = sk.Entity("driver", join_keys=["driver_uuid"])
    v2 = sk.FeatureView("stats", entities=[e2], schema=[sk.Field("driver_uuid", sk.String), sk.Field("rate", sk.Float64)])
    p = repo.plan([e2, v2])
    assert {c.kind for c in p.breaking} == {"entity", "feature_view"}


def test_prune_deletes_what_the_repo_no_longer_defines(repo):
    repo.apply(defs())
    e, v, _ = defs()
    p = repo.plan([e, v], prune=True)
    assert [(c.kind, c.action) for c in p.changes] == [("feature_service", "delete")]
    repo.apply([e, v], prune=True, allow_breaking=True)
    with pytest.raises(NotFoundError):
        repo.get_feature_service("svc")


def test_references_are_checked(repo):
    e, v, _ = defs()
    with pytest.raises(DefinitionError, match="unknown feature view"):
        repo.apply([e, sk.FeatureService("s", features=[sk.FeatureView(
            "other", entities=[e], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)])])])
    named = sk.FeatureView("named", entities=["nobody"], schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])
    with pytest.raises(DefinitionError, match="unknown entity"):
        repo.apply([named])
    with pytest.raises(DefinitionError, match="defined twice"):
        repo.apply([e, e])


def test_views_can_name_entities_applied_earlier(repo):
    repo.apply([sk.Entity("driver", join_keys=["driver_id"], dtype=sk.Int64)])
    v = sk.FeatureView("by_name", entities=["driver"], schema=[sk.Field("x", sk.Float64)])
    repo.apply([v])
    assert repo.get_feature_view("by_name").join_key_dtypes == {"driver_id": sk.Int64}


def test_stale_writer_gets_conflict_and_nothing_is_lost(repo):
    other = sk.FeatureStore(repo.repo_path)
    repo.apply(defs())
    other.registry.state()  # both read version 1
    repo.registry.state()
    # simulate the race: `other` computed its commit on version 1, but `repo` commits version 2 first
    repo.apply(defs(extra_field=sk.Field("a", sk.Int64)))
    base = json.loads(other.registry.store.read(1))
    with pytest.raises(ConflictError):
        other.registry.store.create(2, json.dumps(base).encode())
    assert repo.registry.state().version == 2
    assert "a" in repo.get_feature_view("stats").feature_names


def _apply_in_process(path, name, barrier, results):
    store = sk.FeatureStore(path)
    e = sk.Entity("driver", join_keys=["driver_id"], owner="a@x")
    view = sk.FeatureView(name, entities=[e], schema=[sk.Field("driver_id", sk.Int64), sk.Field("x", sk.Int64)])
    barrier.wait()
    try:
        store.apply([view])
        results.put(("ok", name))
    except ConflictError:
        results.put(("conflict", name))
    except Exception as exc:  # reported, so the test fails with the reason
        results.put((repr(exc), name))


@pytest.mark.skipif(sys.platform == "win32", reason="fork-based")
def test_concurrent_apply_from_processes_never_loses_an_update(repo):
    repo.apply(defs())
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_apply_in_process, args=(repo.repo_path, f"view_{i}", barrier, results))
             for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=10) for _ in procs]
    assert all(status in ("ok", "conflict") for status, _ in outcomes), outcomes
    winners = {name for status, name in outcomes if status == "ok"}
    assert winners
    # each success is its own version, and every success is still there in the newest state: no lost update
    assert repo.registry.store.versions() == list(range(1, 2 + len(winners)))
    final = {v.name for v in repo.list_feature_views()}
    assert winners <= final and final - {"stats"} == winners


def test_search_by_name_tag_owner(repo):
    repo.apply(defs())
    assert [o.name for o in repo.search("stat")] == ["stats"]
    assert [o.name for o in repo.search(tag="team=t")] == ["stats"]
    assert [o.name for o in repo.search(owner="a@x")] == ["driver"]
    assert repo.search("nothing-like-this") == []
