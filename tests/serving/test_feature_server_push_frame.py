"""A push's columns as the feature server hands them to ingest (``feast_json.push_frame``: an Arrow table, its
ISO 8601 timestamps parsed by Arrow, when that is safe; else a DataFrame) validate to exactly what ingest makes of
the same columns as a DataFrame (rows, types, instants), and fail with the same error, column and row."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from tests.support.feature_server import driver_repo

from skewless import ingest
from skewless.errors import ValidationError
from skewless.serving.feature_server.feast_json import _instants, push_frame

WHEN = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
TS = {"event_timestamp", "created_timestamp"}
GOOD = {
    "offsets": {"driver_id": [1, 2], "conv_rate": [0.5, 1], "trips": [3, 4],
                "event_timestamp": ["2026-01-02T03:04:05.678901+00:00", "2026-01-02T05:04:05+02:00"]},
    "zulu_and_created": {"driver_id": [1, 2], "conv_rate": [0.5, 0.25], "trips": [3, 4],
                         "event_timestamp": ["2026-01-02T03:04:05Z"] * 2,
                         "created_timestamp": ["2026-01-02T03:04:06.5Z", "2026-01-02T03:04:07Z"]},
    "naive_is_utc": {"driver_id": [1, 2], "conv_rate": [0.5, 0.25], "trips": [3, 4],
                     "event_timestamp": ["2026-01-02T03:04:05", "2026-01-02 03:04:05"]},
    "dates": {"driver_id": [1], "conv_rate": [0.5], "trips": [3], "event_timestamp": ["2026-01-02"]},
    "nanoseconds_floored": {"driver_id": [1], "conv_rate": [0.5], "trips": [3],
                            "event_timestamp": ["2026-01-02T03:04:05.123456789Z"]},
    "few_distinct_times": {"driver_id": [1, 2, 3, 4], "conv_rate": [0.5, 0.25, 1, 2], "trips": [3, 4, 5, 6],
                           "event_timestamp": ["2026-01-02T03:04:05.1Z", "2026-01-02 03:04:05-23:59",
                                               "2026-01-02T03:04:05.123456+05:30", "2026-01-02T03:04:05.1Z"]},
    "many_distinct_times": {"driver_id": list(range(40)), "conv_rate": [0.5] * 40, "trips": [3] * 40,
                            "event_timestamp": [f"2026-01-02T03:04:{s:02d}.{s}Z" for s in range(40)]},
    "far_years": {"driver_id": [1, 2], "conv_rate": [0.5, 0.25], "trips": [3, 4],
                  "event_timestamp": ["1600-01-01T00:00:00Z", "9999-12-31T23:59:59.999999+00:00"]},
    "null_feature": {"driver_id": [1, 2], "conv_rate": [None, 0.5], "trips": [3, 4],
                     "event_timestamp": ["2026-01-02T03:04:05Z"] * 2},
}
BAD = {
    "text_in_float": {"driver_id": [1, 2], "conv_rate": [0.5, "high"], "trips": [1, 2],
                      "event_timestamp": ["2026-01-02T03:04:05Z"] * 2},
    "bad_timestamp": {"driver_id": [1, 2], "conv_rate": [0.5, 0.1], "trips": [1, 2],
                      "event_timestamp": ["2026-01-02T03:04:05Z", "yesterday"]},
    "missing_timestamp": {"driver_id": [1, 2], "conv_rate": [0.5, 0.1], "trips": [1, 2],
                          "event_timestamp": ["2026-01-02T03:04:05Z", None]},
    "mixed_timestamp_types": {"driver_id": [1, 2], "conv_rate": [0.5, 0.1], "trips": [1, 2],
                              "event_timestamp": ["2026-01-02T03:04:05Z", 1767323045]},
}


@pytest.fixture(scope="module")
def view(tmp_path_factory):
    store = driver_repo(tmp_path_factory.mktemp("frame") / "repo")
    return next(v for v in store.list_feature_views() if v.name == "driver_stats")


def _prepared(view, data):
    return ingest.prepare(view, data, batch=7, write_time=WHEN)


@pytest.mark.parametrize("case", [c for c in GOOD if c != "far_years"])
def test_the_server_frame_validates_as_a_dataframe_does(view, case):
    cols = GOOD[case]
    frame = push_frame(cols, TS)
    assert _prepared(view, frame).equals(_prepared(view, pd.DataFrame(cols)))


def test_times_outside_pandas_years_are_arrows_instants():
    """(A DataFrame's parser refuses them; the server's frame took Arrow's reading before ``_instants`` too.)"""
    times = GOOD["far_years"]["event_timestamp"]
    frame = push_frame(GOOD["far_years"], TS)
    assert frame.column("event_timestamp").equals(pc.cast(pa.chunked_array([times]), pa.timestamp("us", tz="UTC")))


TEXTS = ["2026-01-02T03:04:05Z", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.000001Z",
         "2026-01-02T03:04:05.123456+05:30", "2026-01-02T03:04:05-23:59", "2026-01-02T03:04:05+23:59",
         "2026-01-02T03:04:05-00:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2024-02-29T00:00:00Z",
         # not taken by _instants: Arrow's cast, or ingest's parser, decides as before
         "2023-02-29T00:00:00Z", "2026-01-02T24:00:00Z", "2026-01-02T23:59:60Z", "2026-01-02t03:04:05Z",
         "2026-01-02T03:04:05z", "2026-01-02T03:04:05+0530", "2026-01-02T03:04:05+05", "2026-01-02T03:04:05+24:00",
         "2026-01-02T03:04:05.1234567Z", "2026-01-02T03:04:05", "2026-01-02", "0000-01-01T00:00:00Z",
         "\u0662026-01-02T03:04:05Z", "2026-01-02T03:04:05Z ", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_a_time_python_parses_is_the_instant_arrow_reads(text):
    ours = _instants([text])
    try:
        arrows = pc.cast(pa.array([text]), pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        arrows = None
    if ours is not None:
        assert arrows is not None and ours.equals(arrows)
    assert (ours is not None) == (TEXTS.index(text) < TEXTS.index("2023-02-29T00:00:00Z"))


def test_an_integer_past_64_bits_is_a_validation_error_naming_it():
    """(A DataFrame of it made ingest fail untyped: a 500 from the server.)"""
    with pytest.raises(ValidationError, match="does not fit a 64-bit integer") as exc:
        push_frame({"driver_id": [1, 2], "trips": [3, 2**64 + 1], "event_timestamp": ["2026-01-02T03:04:05Z"] * 2},
                   TS)
    assert (exc.value.column, exc.value.row) == ("trips", 1)


def test_the_common_push_skips_pandas_and_its_timestamp_parse():
    frame = push_frame(GOOD["zulu_and_created"], TS)
    assert isinstance(frame, pa.Table)
    assert frame.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert frame.schema.field("created_timestamp").type == pa.timestamp("us", tz="UTC")
    # only the time columns: text that looks like an instant in a feature column stays text
    frame = push_frame({"city": ["2026-01-02T03:04:05Z"], "event_timestamp": ["2026-01-02T03:04:05Z"]}, TS)
    assert frame.schema.field("city").type == pa.string()


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_push_fails_as_a_dataframe_fails(view, case):
    cols = BAD[case]
    with pytest.raises(ValidationError) as server:
        _prepared(view, push_frame(cols, TS))
    with pytest.raises(ValidationError) as plain:
        _prepared(view, pd.DataFrame(cols))
    assert (str(server.value), server.value.column, server.value.row) == \
        (str(plain.value), plain.value.column, plain.value.row)
