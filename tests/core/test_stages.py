"""Stages and their DAG (docs/concepts/stages.md) on the embedded defaults: declarations and plan/apply, the DAG
inferred from inputs and outputs (a cycle is a DefinitionError naming it), ``run`` re-running exactly the stale
stages, resumable after kill -9 at the stage points (``skewless run`` in a child process), and the leakage guard of
split training sets over a featurization stage fit on a registered training set (the model-stage example of the
issue, end to end through the model registry, is tests/serving/test_stages_model.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless import training_rows
from skewless.cli.main import app
from skewless.errors import DefinitionError, LeakageError, NotFoundError, ValidationError
from skewless.offline.scan import read_rows
from skewless.repo import load_objects
from skewless.stages import ModelStage, Stage, run
from tests.support.stages_repo import CUSTOMERS, MONTHS, TEST_FROM, activity_rows, entity_rows, make_repo

N = CUSTOMERS * len(MONTHS)


@pytest.fixture
def store(tmp_path):
    return make_repo(tmp_path / "repo")


def statuses(results) -> dict[str, str]:
    return {r.stage: r.status for r in results}


def history_rows(store, view: str) -> int:
    return read_rows(store.offline.files(view, store.offline.version(view))).num_rows


# -- declarations, plan and apply -------------------------------------------------------------------------------------

def test_stages_round_trip_through_the_registry(store):
    state = store.registry.state()
    scale = state.get("stage", "scale")
    assert isinstance(scale, Stage) and scale.inputs == ["feature_view/activity"] and scale.output == "scaled"
    assert scale.function == "scale_spend" and len(scale.hash) == 64 and scale.transform is None
    m = ModelStage("seg", model="segmentation", version=2, inputs=["feature_service/svc"], output="segment",
                   fit_split="train")
    again = type(m).from_dict(m.to_dict())
    assert again == m and again.model == "segmentation" and again.version == 2 and again.fit_split == "train"


@pytest.mark.parametrize("make, message", [
    (lambda: Stage("s", inputs=[], output="o", transform=len), "declare its inputs"),
    (lambda: Stage("s", inputs=["o"], output="o", transform=len), "reads its own output"),
    (lambda: Stage("s", inputs=["model/x"], output="o", transform=len), "inputs are feature_view/NAME"),
    (lambda: Stage("s", inputs=["a"], output="o", transform=3), "transform must be a function"),
    (lambda: Stage("s", inputs=["a"], output="o", transform=lambda t: t), "one plain `def`"),
    (lambda: Stage("s", inputs=["a"], output="o", transform=len, fit_split="holdout"), "fit_split"),
    (lambda: ModelStage("s", model="", inputs=["a"], output="o"), "model must be"),
    (lambda: ModelStage("s", model="m", version=0, inputs=["a"], output="o"), "version must be"),
])
def test_bad_declarations_are_definition_errors(make, message):
    with pytest.raises(DefinitionError, match=message):
        make()


def load_objects_from(source: str) -> dict:
    import importlib.util
    import tempfile

    path = Path(tempfile.mkdtemp()) / "mod_stage_fns.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("mod_stage_fns", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


FNS = load_objects_from('''
import pyarrow as pa


def passthrough(inputs):
    rows = next(iter(inputs.values()))
    return pa.table({"customer_id": rows.column("customer_id"), "event_timestamp": rows.column("event_timestamp"),
                     "spend_scaled": rows.column(rows.column_names[-1]).cast(pa.float64())})


def passthrough_v2(inputs):
    rows = next(iter(inputs.values()))
    return pa.table({"customer_id": rows.column("customer_id"), "event_timestamp": rows.column("event_timestamp"),
                     "spend_scaled": rows.column(rows.column_names[-1]).cast(pa.float64())})


def rank_copy(inputs):
    rows = inputs["scaled"]
    return pa.table({"customer_id": rows.column("customer_id"), "event_timestamp": rows.column("event_timestamp"),
                     "spend_rank": rows.column("spend_scaled")})


def encode(inputs):
    rows = inputs["activity"]
    return pa.table({"customer_id": rows.column("customer_id"), "event_timestamp": rows.column("event_timestamp"),
                     "code": rows.column("spend")})
''')


def test_a_cycle_is_a_definition_error_naming_it(store):
    objs = {o.name: o for o in load_objects(store.repo_path)}
    # scale reads activity -> scaled; rank reads scaled -> ranked; back: activity written from ranked
    back = Stage("back", inputs=["ranked"], output="activity", transform=FNS["passthrough"])
    with pytest.raises(DefinitionError, match=r"stages form a cycle: (back -> scale -> rank -> back|"
                                               r"rank -> back -> scale -> rank|scale -> rank -> back -> scale)"):
        store.apply([*objs.values(), back], prune=True)
    with pytest.raises(DefinitionError, match="cycle"):
        store.plan([*objs.values(), back], prune=True)
    assert "back" not in store.registry.state().specs()["stage"]  # nothing committed


def test_two_writers_and_unknown_references_are_definition_errors(store):
    objs = list(load_objects(store.repo_path))
    twin = Stage("twin", inputs=["activity"], output="scaled", transform=FNS["passthrough"])
    with pytest.raises(DefinitionError, match="stages 'scale' and 'twin' both write view 'scaled'"):
        store.apply([*objs, twin], prune=True)
    ghost = Stage("ghost", inputs=["nothing_here"], output="scaled2", transform=FNS["passthrough"])
    with pytest.raises(DefinitionError, match="refers to unknown feature view 'nothing_here'"):
        store.apply([*objs, ghost], prune=True)
    nowhere = Stage("nowhere", inputs=["activity"], output="not_declared", transform=FNS["passthrough"])
    with pytest.raises(DefinitionError, match="writes unknown feature view 'not_declared'"):
        store.apply([*objs, nowhere], prune=True)


def test_plan_shows_stage_changes(store, tmp_path):
    objs = {o.name: o for o in load_objects(store.repo_path)}
    changed = Stage("scale", inputs=["activity"], output="scaled", transform=FNS["passthrough_v2"],
                    description="now a copy")
    plan = store.plan([*(o for n, o in objs.items() if n != "scale"), changed], prune=True)
    (change,) = plan.changes
    assert (change.kind, change.name, change.action) == ("stage", "scale", "update") and not change.breaking
    assert "code changed" in str(plan) and "function: 'scale_spend' -> 'passthrough_v2'" in str(plan)
    assert "description: '' -> 'now a copy'" in str(plan)
    plan = store.plan([o for n, o in objs.items() if n != "rank"], prune=True)
    assert [str(c) for c in plan.changes] == ["- stage rank"]  # removing a stage leaves its view: not breaking
    # the CLI shows them too, from the repo's files
    (store.repo_path / "features.py").write_text((store.repo_path / "features.py").read_text().replace(
        "mean = pc.mean", "mean = 2 * pc.mean"))
    out = CliRunner().invoke(app, ["plan", "--repo", str(store.repo_path)])
    assert out.exit_code == 0, out.output
    assert "~ stage scale: code changed" in out.output


# -- run: staleness, idempotence ---------------------------------------------------------------------------------------

def test_a_stale_upstream_reruns_and_a_fresh_one_does_not(store):
    assert statuses(run(store, "rank")) == {"scale": "ran", "rank": "ran"}
    assert history_rows(store, "ranked") == N
    # a completed run again: nothing done, nothing written
    before = (store.offline.version("scaled"), store.offline.version("ranked"))
    assert statuses(run(store, "rank")) == {"scale": "fresh", "rank": "fresh"}
    assert (store.offline.version("scaled"), store.offline.version("ranked")) == before
    # new rows upstream: scale's input history version changed, so scale is stale; its new output makes rank stale
    store.ingest("activity", activity_rows(MONTHS[:1], spend_shift=0.5))
    assert statuses(run(store, "rank")) == {"scale": "ran", "rank": "ran"}
    # only rank's definition changes: scale is fresh and not re-run, rank runs
    objs = {o.name: o for o in load_objects(store.repo_path)}
    rank2 = Stage("rank", inputs=["scaled"], output="ranked", transform=FNS["rank_copy"])
    store.apply([*(o for n, o in objs.items() if n != "rank"), rank2], prune=True)
    scaled_version = store.offline.version("scaled")
    assert statuses(run(store, "rank", objects=[rank2])) == {"scale": "fresh", "rank": "ran"}
    assert store.offline.version("scaled") == scaled_version
    # a stage run alone runs only what it reads from
    assert statuses(run(store, "scale")) == {"scale": "fresh"}


def test_inputs_back_to_an_earlier_state_run_again(store):
    objs = {o.name: o for o in load_objects(store.repo_path)}
    rest = [o for n, o in objs.items() if n != "scale"]
    copy = Stage("scale", inputs=["activity"], output="scaled", transform=FNS["passthrough"])
    assert statuses(run(store, "scale")) == {"scale": "ran"}
    store.apply([*rest, copy], prune=True)
    assert statuses(run(store, "scale", objects=[copy])) == {"scale": "ran"}
    store.apply(list(objs.values()), prune=True)  # the first definition again: its view holds the copy's rows
    assert statuses(run(store, "scale")) == {"scale": "ran"}
    newest = store.get_historical_features(entity_rows(MONTHS[:1]), ["scaled:spend_scaled"]).to_pandas()
    assert newest.spend_scaled.max() < 10  # scaled by the mean again, not the copied spend (up to 390)
    assert statuses(run(store, "scale")) == {"scale": "fresh"}


def test_an_empty_output_is_recorded_without_a_write(store):
    empty = load_objects_from('''
import pyarrow as pa


def nothing(inputs):
    return pa.table({"customer_id": pa.array([], pa.int64())})
''')["nothing"]
    objs = {o.name: o for o in load_objects(store.repo_path)}
    stage = Stage("scale", inputs=["activity"], output="scaled", transform=empty)
    store.apply([*(o for n, o in objs.items() if n != "scale"), stage], prune=True)
    (r,) = run(store, "scale", objects=[stage])
    assert (r.status, r.rows, r.output_version) == ("ran", 0, None)
    assert statuses(run(store, "scale", objects=[stage])) == {"scale": "fresh"}


def test_an_input_without_rows_is_a_validation_error(tmp_path):
    store = make_repo(tmp_path, ingest=False)
    with pytest.raises(ValidationError, match="its input view 'activity' has no rows yet"):
        run(store, "scale")


def test_run_refuses_a_function_that_is_not_the_registrys(store):
    other = Stage("scale", inputs=["activity"], output="scaled", transform=FNS["passthrough"])
    with pytest.raises(DefinitionError, match="differs from the registry's .*apply first"):
        run(store, "scale", objects=[other])
    with pytest.raises(DefinitionError, match="not among the declared definitions"):
        run(store, "scale", objects=[])
    with pytest.raises(NotFoundError, match="stage 'nope' is not in the registry"):
        run(store, "nope")


def test_skewless_run_cli(store):
    out = CliRunner().invoke(app, ["run", "rank", "--repo", str(store.repo_path), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert [(r["stage"], r["status"], r["rows"]) for r in got] == [("scale", "ran", N), ("rank", "ran", N)]
    out = CliRunner().invoke(app, ["run", "rank", "--repo", str(store.repo_path)])
    assert out.exit_code == 0 and "scale: fresh" in out.output and "rank: fresh" in out.output
    out = CliRunner().invoke(app, ["run", "nope", "--repo", str(store.repo_path)])
    assert out.exit_code == 1 and "NotFoundError: stage 'nope'" in out.output


# -- resumable after kill -9 ----------------------------------------------------------------------------------------

def _run_child(repo: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SKEWLESS_KILL_AT"}
    if kill_at:
        env["SKEWLESS_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "skewless", "run", "rank", "--repo", str(repo), "--json"], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kill_at, then", [
    ("stages.before_output:1", {"scale": "ran", "rank": "ran"}),  # scale killed before its output commit
    ("stages.before_record:1", {"scale": "ran", "rank": "ran"}),  # scale's rows committed, its record not
    ("stages.before_output:2", {"scale": "fresh", "rank": "ran"}),  # scale recorded, rank killed before its commit
    ("stages.before_record:2", {"scale": "fresh", "rank": "ran"}),  # rank's rows committed, its record not
])
def test_run_resumes_after_a_kill(store, kill_at, then):
    killed = _run_child(store.repo_path, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run_child(store.repo_path, None)
    assert resumed.returncode == 0, resumed.stderr
    assert {r["stage"]: r["status"] for r in json.loads(resumed.stdout)} == then
    # every row once: a rerun of a committed output found its batch (no row twice)
    assert history_rows(store, "scaled") == N and history_rows(store, "ranked") == N
    again = _run_child(store.repo_path, None)
    assert {r["stage"]: r["status"] for r in json.loads(again.stdout)} == {"scale": "fresh", "rank": "fresh"}


# -- the leakage guard over a featurization stage -------------------------------------------------------------------

ENCODED = sk.FeatureView("encoded", entities=["customer"],
                         schema=[sk.Field("customer_id", sk.Int64), sk.Field("code", sk.Float64)])


def _fit_on(store, name: str, months, split=None) -> None:
    """Register training set ``name`` over ``months`` and declare stage ``encode`` fit on it."""
    store.get_historical_features(entity_rows(months), ["activity:spend"], split=split).register(name)
    stage = Stage("encode", inputs=["activity", f"training_set/{name}"], output=ENCODED, transform=FNS["encode"],
                  fit_split="train" if split is not None else None)
    store.apply([ENCODED, stage])
    run(store, "encode", objects=[stage])


def test_a_stage_fit_on_test_rows_is_flagged_by_time(store):
    _fit_on(store, "all_months", MONTHS)
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), ["activity:spend", "encoded:code"],
                                      split=sk.Split(time={"test": TEST_FROM}))
    e = info.value
    assert (e.stage, e.split, e.rows) == ("encode", "test", CUSTOMERS * 3)  # April, May, June of every customer
    assert e.first.startswith("2024-04-01") and e.last.startswith("2024-06-01")
    assert "training set 'all_months' version 1" in str(e) and "allow_leakage=['encode']" in str(e)
    # no split: nothing to check; a request not reading the stage's output: nothing to check
    store.get_historical_features(entity_rows(), ["activity:spend", "encoded:code"]).to_arrow()
    store.get_historical_features(entity_rows(), ["activity:spend"], split=sk.Split(time={"test": TEST_FROM}))


def test_a_stage_fit_on_train_rows_only_is_allowed(store):
    _fit_on(store, "first_quarter", MONTHS[:3])
    t = store.get_historical_features(entity_rows(), ["activity:spend", "encoded:code"],
                                      split=sk.Split(time={"test": TEST_FROM})).to_arrow()
    assert t.num_rows == N and pc.sum(pc.equal(t.column("split"), "test")).as_py() == CUSTOMERS * 3


def test_a_stage_fit_on_its_own_train_split_is_allowed(store):
    # fit on every month, but only on the rows of the training set's own train split (fit_split="train")
    _fit_on(store, "split_months", MONTHS, split=sk.Split(time={"test": TEST_FROM}))
    store.get_historical_features(entity_rows(), ["encoded:code"], split=sk.Split(time={"test": TEST_FROM}))
    # a later cut-off: the stage's train rows of March are this request's test rows
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), ["encoded:code"], split=sk.Split(time={"test": "2024-03-01"}))
    assert info.value.rows == CUSTOMERS and info.value.first.startswith("2024-03-01")


def test_entity_split_flags_the_test_entities_rows(store):
    split = sk.Split(entity={"train": 0.75, "test": 0.25}, seed="s1")
    _fit_on(store, "all_entities", MONTHS)
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), ["encoded:code"], split=split)
    test_customers = {r["customer_id"] for r in store.get_historical_features(
        entity_rows(), ["activity:spend"], split=split).to_arrow().to_pylist() if r["split"] == "test"}
    assert 0 < len(test_customers) < CUSTOMERS
    assert info.value.rows == len(test_customers) * len(MONTHS)


def test_entity_split_fit_on_the_train_entities_is_allowed(store):
    split = sk.Split(entity={"train": 0.75, "test": 0.25}, seed="s1")
    _fit_on(store, "train_entities", MONTHS, split=split)  # the same rule, fit on its train split
    store.get_historical_features(entity_rows(), ["encoded:code"], split=split)
    # another seed puts other entities in test: some of the stage's train entities among them
    with pytest.raises(LeakageError, match="stage 'encode' was fit on"):
        store.get_historical_features(entity_rows(), ["encoded:code"],
                                      split=sk.Split(entity={"train": 0.75, "test": 0.25}, seed="other"))


def test_leakage_propagates_through_downstream_stages(store):
    _fit_on(store, "all_months_2", MONTHS)
    after = sk.FeatureView("after", entities=["customer"],
                           schema=[sk.Field("customer_id", sk.Int64), sk.Field("spend_scaled", sk.Float64)])
    downstream = Stage("after_encode", inputs=["encoded"], output=after, transform=FNS["passthrough"])
    store.apply([after, downstream])
    with pytest.raises(LeakageError, match="stage 'encode' was fit on .* through stages downstream"):
        store.get_historical_features(entity_rows(), ["after:spend_scaled"], split=sk.Split(time={"test": TEST_FROM}))


def test_allow_leakage_is_explicit_and_recorded(store):
    _fit_on(store, "all_months_3", MONTHS)
    split = sk.Split(time={"test": TEST_FROM})
    with pytest.raises(ValidationError, match=r"allow_leakage names unknown stages \['encdoe'\]"):
        store.get_historical_features(entity_rows(), ["encoded:code"], split=split, allow_leakage=["encdoe"])
    job = store.get_historical_features(entity_rows(), ["encoded:code"], split=split, allow_leakage=["encode"])
    assert job.to_arrow().num_rows == N
    ts = job.register("with_accepted_leakage")
    got = store.get_training_set("with_accepted_leakage")
    assert got == ts and set(got.allowed_leakage) == {"encode"}
    (overlap,) = got.allowed_leakage["encode"]
    assert overlap["rows"] == CUSTOMERS * 3 and overlap["first"].startswith("2024-04-01")
    # a training set that accepted none records none (its spec is as before)
    clean = store.get_historical_features(entity_rows(), ["activity:spend"], split=split).register("clean")
    assert "allowed_leakage" not in clean.to_dict()


def test_an_unchecked_fit_fails_unless_allowed(store):
    # a training set registered where no rows were kept (as before this feature): the guard cannot check it
    store.get_historical_features(entity_rows(), ["activity:spend"]).register("old_ts")
    key = training_rows.record_key("old_ts", 1)
    os.unlink(store.registry.store.path / key)
    stage = Stage("encode", inputs=["activity", "training_set/old_ts"], output=ENCODED, transform=FNS["encode"])
    store.apply([ENCODED, stage])
    split = sk.Split(time={"test": TEST_FROM})
    with pytest.raises(LeakageError, match="cannot check .* were not kept") as info:
        store.get_historical_features(entity_rows(), ["encoded:code"], split=split)
    assert info.value.rows is None
    job = store.get_historical_features(entity_rows(), ["encoded:code"], split=split, allow_leakage=["encode"])
    (overlap,) = job.allowed_leakage["encode"]
    assert overlap["rows"] is None and "were not kept" in overlap["why"]


def test_training_rows_hash_entities_not_their_keys(store):
    store.get_historical_features(entity_rows(), ["activity:spend"]).register("kept")
    rows, keys = training_rows.read(store.registry.store, "kept", 1)
    assert keys == ["customer_id"] and rows.num_rows == N and rows.column_names == ["t", "entity"]
    assert rows.schema.field("entity").type == pa.uint64()
    assert pc.count_distinct(rows.column("entity")).as_py() == CUSTOMERS
    # registering it again is a no-op, its kept rows included (written once)
    store.get_historical_features(entity_rows(), ["activity:spend"]).register("kept")
    assert training_rows.read(store.registry.store, "kept", 1)[0].equals(rows)


def test_lineage_shows_stages_between_their_inputs_and_outputs(store):
    from skewless import lineage

    up = lineage.graph(store).upstream("feature_view/ranked")
    assert {"stage/rank", "feature_view/scaled", "stage/scale", "feature_view/activity"} <= set(up.nodes)
    assert ("stage/scale", "feature_view/scaled", "output") in {(e.source, e.target, e.relation) for e in up.edges}
    assert up.nodes["stage/rank"].attrs["type"] == "featurization"


def test_get_historical_cli_fails_on_leakage_unless_allowed(store, tmp_path):
    _fit_on(store, "all_months_cli", MONTHS)
    rows = tmp_path / "rows.parquet"
    entity_rows().to_parquet(rows)
    args = ["get-historical", "--repo", str(store.repo_path), "--entities", str(rows), "--features", "encoded:code",
            "--split", json.dumps({"time": {"test": TEST_FROM}}), "--json"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 1 and "LeakageError: stage 'encode' was fit on 120 rows" in out.output
    out = CliRunner().invoke(app, [*args, "--allow-leakage", "encode"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["rows"] == N


def test_list_and_describe_show_stages(store):
    assert [s.name for s in store.list_stages()] == ["rank", "scale"]
    assert store.get_stage("rank").inputs == ["feature_view/scaled"]
    out = CliRunner().invoke(app, ["list", "stages", "--repo", str(store.repo_path), "--json"])
    assert out.exit_code == 0 and [o["name"] for o in json.loads(out.output)] == ["rank", "scale"]
    out = CliRunner().invoke(app, ["describe", "scale", "--repo", str(store.repo_path), "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["spec"]["function"] == "scale_spend"
