"""``forget`` and the leakage guard's training-rows records (skewless.training_rows): each registered training set
keeps, per entity row, a hash of its join keys under a public seed, recomputable by anyone for a guessable key.
After ``forget`` no record holds a row whose hash is the forgotten entity's (recomputed here independently of
skewless: sha256 of the seed and the key's canonical text), the other rows are untouched and the guard still flags
a stage fit on them; an entity that is one of a training set's two join keys is found by its own key's hash; a
record of the older format (no per-key hashes) is reported as not erasable; a rerun, and a rerun after kill -9
between a record's rewrite and its step, change nothing more."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import skewless as sk
from skewless import training_rows
from skewless.errors import LeakageError
from tests.core.test_stages import _fit_on
from tests.support import killed_run
from tests.support.stages_repo import CUSTOMERS, MONTHS, TEST_FROM, entity_rows, make_repo

GONE = 5  # the customer forgotten
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def public_hash(*texts: str) -> int:
    """The 64-bit hash anyone can compute for a key: the seed, a newline, each key value as ``<length>:<text>``
    (keys in name order), SHA-256, first 8 bytes big-endian."""
    canonical = "".join(f"{len(t)}:{t}" for t in texts)
    return int.from_bytes(hashlib.sha256(b"skewless-fit-rows-v1\n" + canonical.encode()).digest()[:8], "big")


def hashes(store: sk.FeatureStore, name: str, column: str = "entity") -> list[int]:
    rows, _ = training_rows.read(store.registry.store, name, 1)
    return rows.column(column).to_pylist()


@pytest.fixture
def store(tmp_path):
    return make_repo(tmp_path / "repo")


def test_forget_removes_the_entity_from_every_training_rows_record(store):
    _fit_on(store, "all_months", MONTHS)  # stage `encode` fit on every month of every customer
    store.get_historical_features(entity_rows(MONTHS[:3]), ["activity:spend"]).register("first_quarter")
    gone = public_hash(str(GONE))
    before = {name: training_rows.read(store.registry.store, name, 1)[0] for name in ("all_months", "first_quarter")}
    assert hashes(store, "all_months").count(gone) == len(MONTHS)  # the public hash is what the record holds

    report = store.forget("customer", [GONE], purge_now=True)

    assert report.training_rows == {"all_months@1": len(MONTHS), "first_quarter@1": 3}
    assert report.training_rows_not_erasable == [] and report.complete
    for name, rows in before.items():
        after, keys = training_rows.read(store.registry.store, name, 1)
        assert gone not in after.column("entity").to_pylist() and keys == ["customer_id"]
        # every other row as it was, in its order
        assert after.equals(rows.filter(pc.not_equal(rows.column("entity"), pa.scalar(gone, pa.uint64()))))
    # the guard still reads the record and flags the remaining test rows (April to June of the other customers)
    with pytest.raises(LeakageError) as info:
        store.get_historical_features(entity_rows(), ["activity:spend", "encoded:code"],
                                      split=sk.Split(time={"test": TEST_FROM}))
    assert info.value.rows == (CUSTOMERS - 1) * 3

    # a rerun of the same request: resumed, the same report, no record rewritten
    data = store.registry.store.read_record(training_rows.record_key("all_months", 1))
    again = store.forget("customer", [GONE], purge_now=True)
    assert again.resumed and again.training_rows == report.training_rows
    assert store.registry.store.read_record(training_rows.record_key("all_months", 1)) == data
    # a later request for another customer still finds them (the records stay erasable)
    assert store.forget("customer", [7], purge_now=True).training_rows == {"all_months@1": 6, "first_quarter@1": 3}


def _pairs_repo(path):
    fs = sk.init_repo(path)
    k, m = sk.Entity("k", ["k"], dtype=sk.Int64), sk.Entity("m", ["m"], dtype=sk.Int64)
    fs.apply([k, m, sk.FeatureView("pairs", [k, m], [sk.Field("k", sk.Int64), sk.Field("m", sk.Int64),
                                                     sk.Field("y", sk.Float64)])])
    keys = [(a, b) for a in (1, 2, 3) for b in (7, 8)]
    fs.ingest("pairs", pd.DataFrame({"k": [a for a, _ in keys], "m": [b for _, b in keys],
                                     "event_timestamp": [T0] * len(keys), "y": [1.0] * len(keys)}))
    rows = pd.DataFrame({"k": [a for a, _ in keys], "m": [b for _, b in keys],
                         "event_timestamp": [pd.Timestamp("2024-02-01", tz="UTC")] * len(keys)})
    fs.get_historical_features(rows, ["pairs:y"]).register("pairs_ts")
    return fs


def test_an_entity_that_is_one_of_two_join_keys_is_found_by_its_own_hash(tmp_path):
    fs = _pairs_repo(tmp_path / "repo")
    rows, keys = training_rows.read(fs.registry.store, "pairs_ts", 1)
    assert keys == ["k", "m"] and {"entity.k", "entity.m"} <= set(rows.column_names)
    assert hashes(fs, "pairs_ts", "entity").count(public_hash("1", "7")) == 1  # the combined hash, as before
    assert hashes(fs, "pairs_ts", "entity.k").count(public_hash("1")) == 2
    # an older record over the same keys, without the per-key hashes: kept for the guard, not erasable
    legacy = rows.drop_columns(["entity.k", "entity.m"]).replace_schema_metadata(rows.schema.metadata)
    assert training_rows.write(fs.registry.store, "legacy", 1, legacy)

    report = fs.forget("k", [1], purge_now=True)

    assert report.training_rows == {"pairs_ts@1": 2} and report.training_rows_not_erasable == ["legacy@1"]
    after, _ = training_rows.read(fs.registry.store, "pairs_ts", 1)
    assert public_hash("1") not in after.column("entity.k").to_pylist() and after.num_rows == 4
    assert sorted(after.column("entity").to_pylist()) == sorted(public_hash(str(a), str(b))
                                                                for a in (2, 3) for b in (7, 8))
    assert sorted(after.column("entity.m").to_pylist()) == sorted([public_hash("7"), public_hash("8")] * 2)
    assert training_rows.read(fs.registry.store, "legacy", 1)[0].equals(legacy)  # left as it was, still readable
    # forgetting by the other key of the pair: m=8 (rows (2, 8), (3, 8)), in every record's m hashes
    report = fs.forget("m", [8], purge_now=True)
    assert report.training_rows == {"pairs_ts@1": 2} and report.training_rows_not_erasable == ["legacy@1"]
    assert hashes(fs, "pairs_ts", "entity.m") == [public_hash("7")] * 2


def test_a_record_keyed_exactly_by_the_entitys_two_keys_is_erased_by_the_combined_hash(tmp_path):
    fs = sk.init_repo(tmp_path / "repo")
    acct = sk.Entity("account", ["bank", "number"])
    fs.apply([acct, sk.FeatureView("balance", [acct], [sk.Field("bank", sk.String), sk.Field("number", sk.Int64),
                                                       sk.Field("amount", sk.Float64)])])
    fs.ingest("balance", pd.DataFrame({"bank": ["a", "a", "b"], "number": [1, 2, 1], "event_timestamp": [T0] * 3,
                                       "amount": [1.0, 2.0, 3.0]}))
    rows = pd.DataFrame({"bank": ["a", "a", "b"], "number": [1, 2, 1],
                         "event_timestamp": [pd.Timestamp("2024-02-01", tz="UTC")] * 3})
    fs.get_historical_features(rows, ["balance:amount"]).register("accounts")
    kept, _ = training_rows.read(fs.registry.store, "accounts", 1)
    # an older record (no per-key hashes) over exactly the entity's keys is erasable all the same
    training_rows.write(fs.registry.store, "legacy", 1,
                        kept.drop_columns(["entity.bank", "entity.number"]).replace_schema_metadata(kept.schema.metadata))
    report = fs.forget("account", [("a", 1)], purge_now=True)
    assert report.training_rows == {"accounts@1": 1, "legacy@1": 1} and not report.training_rows_not_erasable
    for name in ("accounts", "legacy"):
        assert sorted(hashes(fs, name)) == sorted([public_hash("a", "2"), public_hash("b", "1")])


CHILD = """
import json, sys
import skewless as sk
r = sk.FeatureStore(sys.argv[1]).forget("k", [1], purge_now=True)
print(json.dumps(r.to_dict()))
"""


@pytest.mark.parametrize("point", ["forget.training_rows_erased", "forget.purged"])
def test_kill_9_after_a_records_rewrite_then_a_rerun_completes(tmp_path, point):
    repo = tmp_path / "repo"
    _pairs_repo(repo)
    got = killed_run.killed_then_rerun(CHILD, str(repo), kill_at=point, timeout=120)
    assert got["resumed"] and got["complete"]
    assert got["training_rows"] == {"pairs_ts@1": 2}  # the count found before the rewrite, not the rerun's 0
    fs = sk.FeatureStore(repo)
    assert public_hash("1") not in hashes(fs, "pairs_ts", "entity.k") and len(hashes(fs, "pairs_ts")) == 4
    steps = [k.rsplit("/", 1)[1] for k in fs.registry.store.record_keys("forget/")]
    assert steps.count("rows-pairs_ts@1.json") == 1 and "rows-plan.json" in steps


def test_cli_forget_shows_the_leakage_guard_rows(tmp_path):
    from typer.testing import CliRunner

    from skewless.cli.main import app

    fs = _pairs_repo(tmp_path / "repo")
    rows, _ = training_rows.read(fs.registry.store, "pairs_ts", 1)
    training_rows.write(fs.registry.store, "legacy", 1,
                        rows.drop_columns(["entity.k", "entity.m"]).replace_schema_metadata(rows.schema.metadata))
    out = CliRunner().invoke(app, ["forget", "k", "1", "--purge-now", "--repo", str(tmp_path / "repo")])
    assert out.exit_code == 0, out.output
    assert "leakage-guard rows removed: pairs_ts@1: 2" in out.output
    assert "cannot tell the entity's rows" in out.output and "legacy@1" in out.output


def test_a_request_completed_before_this_step_existed_erases_the_rows_when_run_again(tmp_path):
    fs = _pairs_repo(tmp_path / "repo")
    key = training_rows.record_key("pairs_ts", 1)
    held = fs.registry.store.read_record(key)
    report = fs.forget("k", [1], purge_now=True)
    # as an older skewless left it: the request done, the record untouched, no step of the training rows
    fs.registry.store.replace_record(key, held)
    base = fs.registry.store.path / "forget" / report.request
    for step in base.glob("rows-*.json"):
        step.unlink()
    again = fs.forget("k", [1], purge_now=True)
    assert again.resumed and again.training_rows == {"pairs_ts@1": 2}
    assert public_hash("1") not in hashes(fs, "pairs_ts", "entity.k")
