"""The recorded tie level (Delta property ``skewless.tieLevel``) stays exact when an append's tie check looks only at
the prior files whose recorded event-time range can hold a tie (``delta._tie_candidates``).

What must hold:

* after any sequence of small appends the recorded level equals the level of all rows (an oracle over the whole
  history: a repeated (key, event, created) is FULL_TIES, else a repeated (key, event) EVENT_TIES, else NO_TIES),
  also when the tying row sits in an old file among many, at a microsecond the log's millisecond statistics do not
  hold, and on an object store (S3 on moto: file URIs and log paths matched by name);
* the check is handed only the files that can tie: in-order appends leave the newest file or two, not the history.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

import skewless as sk
from skewless.offline.base import EVENT_TIES, FULL_TIES, NO_TIES

UTC = timezone.utc
T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def make_store(path) -> sk.FeatureStore:
    store = sk.init_repo(path, project="t")
    define(store)
    return store


def define(store: sk.FeatureStore) -> None:
    e = sk.Entity("e", join_keys=["k"])
    store.apply([e, sk.FeatureView("v", entities=[e], online=False,
                                   schema=[sk.Field("k", sk.Int64), sk.Field("x", sk.Int64)])])


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame({"k": [r[0] for r in rows], "event_timestamp": [r[1] for r in rows],
                         "created_timestamp": [r[2] for r in rows], "x": list(range(len(rows)))})


def oracle_level(rows) -> int:
    if len({(k, e, c) for k, e, c in rows}) < len(rows):
        return FULL_TIES
    return EVENT_TIES if len({(k, e) for k, e, _ in rows}) < len(rows) else NO_TIES


def recorded(store: sk.FeatureStore) -> int:
    return store.offline.files("v", store.offline.version("v")).tie_level


def watch_checks(store: sk.FeatureStore) -> list[int]:
    """The number of prior files each tie check of ``store``'s ingests is handed."""
    seen: list[int] = []
    level = store.engine.tie_level

    def counting(view, rows, prior):
        seen.append(0 if prior is None else len(prior.uris))
        return level(view, rows, prior)

    store.engine.tie_level = counting
    return seen


def in_order(n_files: int, per_file: int, start: datetime = T0):
    """Rows in time order, one file's worth at a time, each event at an odd microsecond (off the log's millisecond
    grid), no ties."""
    files, t = [], start
    for f in range(n_files):
        part = []
        for i in range(per_file):
            t += timedelta(seconds=1) + 999 * US
            part.append((f * per_file + i, t, t))
        files.append(part)
    return files


@pytest.mark.parametrize("tie", ["none", "event", "full"])
def test_a_tie_with_a_row_of_an_old_file_is_found_at_a_microsecond_the_stats_round_away(tmp_path, tie):
    store = make_store(tmp_path / "repo")
    files = in_order(12, 5)
    for part in files:
        store.ingest("v", frame(part))
    assert recorded(store) == NO_TIES
    # The newest row of the 4th file: its event is x.999999 s past a whole millisecond, which the file's max
    # statistic (milliseconds) does not hold, and eight newer files follow it.
    k, event, created = files[3][-1]
    row = {"none": (k, event + US, created), "event": (k, event, created + US), "full": (k, event, created)}[tie]
    seen = watch_checks(store)
    store.ingest("v", frame([row]), batch_id="late")
    want = {"none": NO_TIES, "event": EVENT_TIES, "full": FULL_TIES}[tie]
    assert recorded(store) == want == oracle_level([r for p in files for r in p] + [row])
    assert 1 <= seen[0] < len(files)  # the file that can tie (and its neighbours in time), not all twelve


def test_random_small_appends_record_the_oracle_level_and_check_few_files(tmp_path):
    rng = random.Random(16)
    for trial in range(6):
        store = make_store(tmp_path / f"r{trial}")
        seen = watch_checks(store)
        rows: list = []
        repeats: list[bool] = []
        t = T0
        for a in range(25):
            part = []
            for _ in range(rng.randint(1, 6)):
                t += rng.choice([US, 999 * US, timedelta(milliseconds=1), timedelta(seconds=1)])
                part.append((rng.randint(0, 8), t, t + rng.choice([0, 1, 2]) * US))
            # Now and then a repeat of an earlier row's key and event (same or later created): a tie to find.
            repeats.append(bool(rows) and rng.random() < 0.08 * trial)
            if repeats[-1]:
                k, e, c = rng.choice(rows)
                part.append((k, e, c if rng.random() < 0.5 else c + US))
            checks = len(seen)
            store.ingest("v", frame(part), batch_id=f"b{a}")
            rows += part
            assert recorded(store) == oracle_level(rows), (trial, a)
            if a >= 10 and not repeats[-1] and len(seen) > checks:  # checked (no check once at FULL_TIES)
                # In time order: against the newest few files (those within the statistics' slack of the first
                # event), not the whole history (10 files and more).
                assert seen[checks] <= 5, (trial, a)


def test_on_s3_the_pruned_check_finds_the_tie(request, tmp_path):
    from tests.support.object_store import object_store_repo

    cloud, moto = request.getfixturevalue("local_cloud"), request.getfixturevalue("moto_endpoint")
    bucket = "skewless-tests"
    cloud.ensure_bucket(bucket, moto)
    store = object_store_repo(tmp_path, f"s3://{bucket}", {"endpoint_url": moto, "region": "us-east-1",
                                                           "access_key_id": "test", "secret_access_key": "test"}, "t")
    define(store)
    files = in_order(5, 3)
    for part in files:
        store.ingest("v", frame(part))
    seen = watch_checks(store)
    k, event, created = files[1][-1]
    store.ingest("v", frame([(k, event, created + US)]), batch_id="late")
    assert recorded(store) == EVENT_TIES
    assert 1 <= seen[0] < len(files)
