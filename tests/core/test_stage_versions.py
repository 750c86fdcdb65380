"""Versions of a stage side by side (docs/concepts/stages.md#versions-side-by-side): ``scale@v1`` and ``scale@v2``
each write their own view version; a service pinned to v1 and a downstream stage pinned to v2 read their own
version; unpinned readers read the production alias, which promote moves and rollback returns; pins and aliases
are checked (typed errors); the leakage guard sees a version's own fit. The A/B comparison is
tests/serving/test_stage_compare.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.errors import DefinitionError, LeakageError, NotFoundError, PermissionDenied, ValidationError
from skewless.offline.scan import read_rows
from skewless.repo import load_objects
from skewless.stages import Stage, run
from skewless.stages import aliases as stage_aliases
from tests.support.stages_repo import CUSTOMERS, MONTHS, TEST_FROM, VERSIONED, activity_rows, entity_rows, make_repo

N = CUSTOMERS * len(MONTHS)
AT = datetime(2024, 3, 15, tzinfo=timezone.utc)  # reads see March's rows (month index 2)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("SKEWLESS_PRINCIPAL", raising=False)
    monkeypatch.delenv("SKEWLESS_TOKEN", raising=False)
    return make_repo(tmp_path / "repo", VERSIONED)


def expected(version: int) -> pd.Series:
    """Each customer's March spend scaled as version ``version`` scales it, computed from the raw rows here: v1 by
    the history's mean spend, v2 by its maximum."""
    raw = activity_rows()
    scale = raw.spend.mean() if version == 1 else raw.spend.max()
    march = raw[raw.event_timestamp == MONTHS[2]].set_index("customer_id").spend
    return (march / scale).rename(None)


def at_march() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": range(CUSTOMERS), "event_timestamp": [AT] * CUSTOMERS})


def read(store, features) -> pd.Series:
    df = store.get_historical_features(at_march(), features).to_pandas()
    return df.set_index("customer_id")[df.columns[-1]].rename(None)


def history_rows(store, view: str) -> int:
    return read_rows(store.offline.files(view, store.offline.version(view))).num_rows


def test_two_versions_run_side_by_side_each_writing_its_own_view(store):
    views = store.registry.state().specs()["feature_view"]
    assert {"scaled__v1", "scaled__v2"} <= set(views)  # derived at apply from the declared view
    assert views["scaled__v2"]["schema"] == views["scaled"]["schema"]
    (r1,) = run(store, "scale@v1")
    (r2,) = run(store, "scale@v2")
    assert (r1.status, r1.output, r1.rows) == ("ran", "scaled__v1", N)
    assert (r2.status, r2.output, r2.rows) == ("ran", "scaled__v2", N)
    assert history_rows(store, "scaled__v1") == N and history_rows(store, "scaled__v2") == N
    assert store.offline.version("scaled") is None  # the logical view holds no version's rows
    assert [r.status for r in run(store, "scale@v1")] == ["fresh"]  # each version has its own run records
    assert (expected(1) != expected(2)).all()  # March spends are > 0: every customer's value differs


def test_two_stage_versions_serve_two_pinned_consumers(store):
    """The issue's test: a feature service pinned to v1 and a downstream stage pinned to v2 each read their own
    version, point in time, while both versions live."""
    assert {r.stage: r.status for r in run(store, "copy")} == {"scale@v2": "ran", "copy": "ran"}  # v2 upstream only
    assert store.offline.version("scaled__v1") is None
    run(store, "scale@v1")
    pd.testing.assert_series_equal(read(store, "svc_v1"), expected(1), check_index_type=False)
    pd.testing.assert_series_equal(read(store, ["copied:spend_copy"]), expected(2), check_index_type=False)
    # references pin too, in one request: two columns, two versions
    both = store.get_historical_features(at_march(), ["scaled@v1:spend_scaled", "scaled@v2:spend_scaled"],
                                         full_feature_names=True).to_pandas().set_index("customer_id")
    pd.testing.assert_series_equal(both.scaled__v1__spend_scaled.rename(None), expected(1), check_index_type=False)
    pd.testing.assert_series_equal(both.scaled__v2__spend_scaled.rename(None), expected(2), check_index_type=False)
    # online too: each version's rows were pushed to its own view
    got = store.get_online_features("svc_v1", [{"customer_id": 7}]).to_dict()
    assert got["spend_scaled"] == [pytest.approx((70 + 5) / activity_rows().spend.mean())]  # June, the newest
    # promoting v1 changes neither pinned consumer
    stage_aliases.promote(store, "scale", "v1")
    assert [r.status for r in run(store, "copy")] == ["fresh", "fresh"]
    pd.testing.assert_series_equal(read(store, ["copied:spend_copy"]), expected(2), check_index_type=False)


def test_promote_switches_the_unpinned_reader_and_rollback_returns_it(store):
    run(store, "scale@v1")
    run(store, "scale@v2")
    with pytest.raises(NotFoundError, match="no version of stage 'scale' is 'production'.*skewless stage promote"):
        read(store, "svc")
    assert stage_aliases.promote(store, "scale", "v1") == {"production": 1}
    pd.testing.assert_series_equal(read(store, "svc"), expected(1), check_index_type=False)
    # a downstream stage reading the unpinned view follows production: a promotion makes it stale
    assert {r.stage: r.status for r in run(store, "follow")} == {"scale@v1": "fresh", "follow": "ran"}
    pd.testing.assert_series_equal(read(store, ["followed:spend_copy"]), expected(1), check_index_type=False)
    assert stage_aliases.promote(store, "scale", 2, "staging") == {"production": 1, "staging": 2}
    pd.testing.assert_series_equal(read(store, ["scaled@staging:spend_scaled"]), expected(2), check_index_type=False)
    assert stage_aliases.promote(store, "scale", "staging") == {"production": 2, "staging": 2}  # staging -> production
    pd.testing.assert_series_equal(read(store, "svc"), expected(2), check_index_type=False)
    assert {r.stage: r.status for r in run(store, "follow")} == {"scale@v2": "fresh", "follow": "ran"}
    assert stage_aliases.rollback(store, "scale") == {"production": 1, "staging": 2}
    pd.testing.assert_series_equal(read(store, "svc"), expected(1), check_index_type=False)
    assert stage_aliases.promote(store, "scale", 1) == {"production": 1, "staging": 2}  # already: nothing recorded
    history = stage_aliases.history(store, "scale")
    assert [(h["action"], h["alias"], h["previous"], h["version"]) for h in history] == [
        ("promote", "production", None, 1), ("promote", "staging", None, 2), ("promote", "production", 1, 2),
        ("rollback", "production", 2, 1)]
    audited = [r.detail for r in store.audit_log.records(action="deploy") if r.resource == "stage:scale"]
    assert audited == ["promote production to v1 (was none)", "promote staging to v2 (was none)",
                       "promote production to v2 (was v1)", "rollback production to v1 (was v2)"]
    # a later apply of the repo (pruning) keeps the aliases: skewless manages them
    store.apply(load_objects(store.repo_path), prune=True)
    assert stage_aliases.current(store, "scale") == {"production": 1, "staging": 2}


def test_unknown_versions_and_aliases_are_typed_errors(store):
    run(store, "scale@v1")
    with pytest.raises(NotFoundError, match="stage 'scale' has no version v9; it has v1, v2"):
        read(store, ["scaled@v9:spend_scaled"])
    with pytest.raises(NotFoundError, match="no version of stage 'scale' is 'staging'"):
        read(store, ["scaled@staging:spend_scaled"])
    with pytest.raises(DefinitionError, match="'prod' pins no stage version"):
        read(store, ["scaled@prod:spend_scaled"])
    with pytest.raises(NotFoundError, match="view 'activity' is not written by versions of a stage"):
        read(store, ["activity@v1:spend"])
    with pytest.raises(NotFoundError, match="stage 'scale' has no version v3"):
        stage_aliases.promote(store, "scale", 3)
    with pytest.raises(NotFoundError, match="stage 'nope' has no versions"):
        stage_aliases.promote(store, "nope", 1)
    with pytest.raises(ValidationError, match="alias must be one of production, staging"):
        stage_aliases.promote(store, "scale", 1, "canary")
    with pytest.raises(ValidationError, match="alias 'production' has never been set"):
        stage_aliases.rollback(store, "scale")
    stage_aliases.promote(store, "scale", 1)
    with pytest.raises(ValidationError, match="has held only v1: nothing to roll back to"):
        stage_aliases.rollback(store, "scale")


def test_bad_version_declarations_are_definition_errors(store):
    objs = {o.name: o for o in load_objects(store.repo_path)}
    fn = objs["scale@v1"].transform
    with pytest.raises(DefinitionError, match="a stage version is named NAME@vN"):
        Stage("scale@2", inputs=["activity"], output="scaled", transform=fn)
    with pytest.raises(DefinitionError, match="'latest' pins no stage version"):
        Stage("x", inputs=["scaled@latest"], output="copied", transform=fn)
    pinned_nowhere = Stage("copy", inputs=["scaled@v7"], output="copied", transform=objs["copy"].transform)
    with pytest.raises(DefinitionError, match="stage 'copy': 'scaled@v7': stage 'scale' has no version v7"):
        store.apply([*(o for n, o in objs.items() if n != "copy"), pinned_nowhere], prune=True)
    with pytest.raises(DefinitionError, match="feature service 'bad'.*has no version v5"):
        store.apply([sk.FeatureService("bad", [objs["scaled"].pin("v5")])])
    plain = Stage("scale", inputs=["activity"], output="scaled", transform=fn)
    with pytest.raises(DefinitionError, match="both write view 'scaled'"):
        store.apply([*objs.values(), plain], prune=True)
    other = Stage("other@v1", inputs=["activity"], output="scaled", transform=fn)
    with pytest.raises(DefinitionError, match="stages 'other' and 'scale' both write view 'scaled'|"
                                              "stages 'scale' and 'other' both write view 'scaled'"):
        store.apply([*objs.values(), other], prune=True)
    clash = sk.FeatureView("scaled__v1", entities=["customer"], schema=[sk.Field("customer_id", sk.Int64)])
    with pytest.raises(DefinitionError, match="'scaled__v1' is declared, but it is the view stage 'scale@v1' writes"):
        store.apply([*objs.values(), clash], prune=True)


def test_promotion_needs_deploy_on_the_output_view(store):
    store.apply([sk.Principal("ops"), sk.Principal("analyst"), sk.Role("deployers", ["deploy", "apply"]),
                 sk.Grant("ops_deploy", role="deployers", principals=["ops"])])
    as_analyst = sk.FeatureStore(store.repo_path, principal="analyst")
    with pytest.raises(PermissionDenied, match="deploy on view:scaled"):
        stage_aliases.promote(as_analyst, "scale", 1)
    assert stage_aliases.history(store, "scale") == []  # a denial changed nothing
    denied = [r for r in store.audit_log.records(outcome="denied") if r.action == "deploy"]
    assert [(r.principal, r.resource) for r in denied] == [("analyst", "view:scaled")]
    as_ops = sk.FeatureStore(store.repo_path, principal="ops")
    assert stage_aliases.promote(as_ops, "scale", 1) == {"production": 1}
    (rec,) = [r for r in store.audit_log.records(action="deploy", outcome="allowed") if r.resource == "stage:scale"]
    assert rec.principal == "ops"


def test_a_pinned_read_needs_read_offline_on_the_view(store):
    run(store, "scale@v1")
    store.apply([sk.Principal("admin"), sk.Principal("reader"), sk.Principal("other"),
                 sk.Role("admins", ["apply", "deploy", "read_offline"]), sk.Role("readers", ["read_offline"]),
                 sk.Grant("admin_all", role="admins", principals=["admin"]),
                 sk.Grant("scaled_readers", role="readers", principals=["reader"], resources=["view:scaled"])])
    reader = sk.FeatureStore(store.repo_path, principal="reader")
    pd.testing.assert_series_equal(read(reader, ["scaled@v1:spend_scaled"]), expected(1), check_index_type=False)
    with pytest.raises(PermissionDenied, match="read_offline on view:scaled"):
        read(sk.FeatureStore(store.repo_path, principal="other"), ["scaled@v1:spend_scaled"])


def test_the_leakage_guard_checks_the_version_read(store):
    """Each version has its own fit: reading the version fit on test rows is flagged, the other is allowed."""
    fns = {o.name: o for o in load_objects(store.repo_path)}
    encoded = sk.FeatureView("encoded", entities=["customer"],
                             schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend_copy", sk.Float64)])
    store.get_historical_features(entity_rows(), ["activity:spend"]).register("all_months")
    store.get_historical_features(entity_rows(MONTHS[:3]), ["activity:spend"]).register("first_quarter")
    v1 = Stage("enc@v1", inputs=["scaled@v1", "training_set/all_months"], output=encoded,
               transform=fns["copy"].transform)
    v2 = Stage("enc@v2", inputs=["scaled@v1", "training_set/first_quarter"], output=encoded,
               transform=fns["copy"].transform)
    store.apply([encoded, v1, v2])
    run(store, "enc@v1", objects=[*fns.values(), v1])
    run(store, "enc@v2", objects=[*fns.values(), v2])
    split = sk.Split(time={"test": TEST_FROM})
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), ["encoded@v1:spend_copy"], split=split)
    assert (info.value.stage, info.value.rows) == ("enc@v1", CUSTOMERS * 3)
    t = store.get_historical_features(entity_rows(), ["encoded@v2:spend_copy"], split=split).to_arrow()
    assert t.num_rows == N
    stage_aliases.promote(store, "enc", "v1")
    with pytest.raises(LeakageError, match="stage 'enc@v1' was fit on 120 rows"):  # unpinned: production's fit
        store.get_historical_features(entity_rows(), ["encoded:spend_copy"], split=split)


def test_lineage_draws_each_version_writing_its_view(store):
    from skewless import lineage

    stage_aliases.promote(store, "scale", 1)
    g = lineage.graph(store)
    edges = {(e.source, e.target, e.relation) for e in g.edges}
    assert {("stage/scale@v1", "feature_view/scaled__v1", "output"), ("stage/scale@v2", "feature_view/scaled__v2", "output"),
            ("feature_view/scaled__v2", "stage/copy", "input"),  # pinned to v2
            ("feature_view/scaled__v1", "stage/follow", "input"),  # unpinned: production
            ("feature/scaled__v1:spend_scaled", "feature_service/svc_v1", "serves")} <= edges
    assert "stage/scale@v1" in g.upstream("feature_service/svc").nodes


def test_stage_cli_promote_rollback_versions(store):
    repo = str(store.repo_path)
    out = CliRunner().invoke(app, ["stage", "promote", "scale", "v2", "--alias", "staging", "--repo", repo, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"stage": "scale", "aliases": {"staging": 2}}
    out = CliRunner().invoke(app, ["stage", "promote", "scale", "1", "--repo", repo])
    assert out.exit_code == 0 and "scale: production=v1, staging=v2" in out.output
    out = CliRunner().invoke(app, ["stage", "promote", "scale", "staging", "--repo", repo])
    assert out.exit_code == 0 and "production=v2" in out.output
    out = CliRunner().invoke(app, ["stage", "rollback", "scale", "--repo", repo])
    assert out.exit_code == 0 and "scale: production=v1, staging=v2" in out.output
    out = CliRunner().invoke(app, ["stage", "versions", "scale", "--repo", repo, "--json"])
    got = json.loads(out.output)
    assert [(v["version"], v["stage"], v["view"], v["aliases"]) for v in got["versions"]] == [
        (1, "scale@v1", "scaled__v1", ["production"]), (2, "scale@v2", "scaled__v2", ["staging"])]
    assert [h["action"] for h in got["history"]] == ["promote", "promote", "promote", "rollback"]
    out = CliRunner().invoke(app, ["stage", "versions", "scale", "--repo", repo])
    assert out.exit_code == 0 and "rollback production: v2 -> v1" in out.output
    out = CliRunner().invoke(app, ["stage", "promote", "scale", "v9", "--repo", repo])
    assert out.exit_code == 1 and "NotFoundError: stage 'scale' has no version v9" in out.output
    out = CliRunner().invoke(app, ["run", "scale@v2", "--repo", repo, "--json"])
    assert out.exit_code == 0 and json.loads(out.output)[0]["output"] == "scaled__v2"
