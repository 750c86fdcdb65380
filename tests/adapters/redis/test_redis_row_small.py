"""A small write's script call framed without Arrow kernels (``row_small.script_call``) is byte for byte the call the
vectorized framing sends (``row_writes._send``), for every layout it takes; anything else is left to that path."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from tests.support.conformance.online import rows, view

import skewless as sk
from skewless.adapters.redis import row_layout, row_writes
from skewless.adapters.redis.row_small import script_call

UTC = timezone.utc
T0 = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
SHA = b"0123456789abcdef0123456789abcdef01234567"
HEAD = b"pfx:v:{"
ALL_FIXED = [sk.Field("i32", sk.Int32), sk.Field("i64", sk.Int64), sk.Field("f32", sk.Float32),
             sk.Field("f64", sk.Float64), sk.Field("ok", sk.Bool), sk.Field("at", sk.UnixTimestamp)]
WITH_TEXT = [sk.Field("x", sk.Float64), sk.Field("name", sk.String), sk.Field("n", sk.Int64),
             sk.Field("raw", sk.Bytes)]


class _Conn:
    def __init__(self):
        self.sent = []

    def send_packed_command(self, pieces, check_health=True):
        self.sent += [bytes(p) for p in pieces]


class _Wire:
    def __init__(self):
        self.conn = _Conn()

    def exchange(self, send, spin=0):
        return [1] * send(self.conn)


def vectorized(v, table, keep_us) -> bytes:
    """What the vectorized path sends for a write of one call's rows."""
    wire = _Wire()
    layout = row_layout.Layout.of(v)
    passes = row_writes._encoded(v, layout, table, HEAD, keep_us)
    assert row_writes._send(wire, SHA, 128, passes, None, nx=False) == ([], [])
    return b"".join(wire.conn.sent)


def data(v, n: int) -> list[dict]:
    out = []
    for i in range(n):
        d = {k: _key(v.join_key_dtypes[k], i) for k in v.join_keys}
        d.update(ev=T0 - timedelta(seconds=i), cr=T0 + timedelta(microseconds=i), wb=(7 << 40) + i * 3 + 2**33,
                 wr=n - i)
        d.update(i32=-(2**31) + i, i64=2**62 - i, f32=1.5 / (i + 1), f64=-0.1 * i, ok=bool(i % 2),
                 at=T0 + timedelta(days=i), x=float(i) / 3, name=["", "é", f"driver-{i}", "a\r\nb"][i % 4],
                 n=-i, raw=[b"", b"\x00\xff", b"$3\r\n"][i % 3])
        out.append(d)
    return out


def _key(dt, i):
    return {sk.Int64: -5 + i * 1000003, sk.Int32: i - 3, sk.String: ["k", "ü", "", "x}y"][i % 4] + str(i),
            sk.Bytes: b"\x00k%d" % i}.get(dt, 1)


@pytest.mark.parametrize("fields", [ALL_FIXED, WITH_TEXT, [sk.Field("x", sk.Float64)]], ids=["fixed", "text", "one"])
@pytest.mark.parametrize("key_dtype", [sk.Int64, sk.Int32, sk.String, sk.Bytes])
@pytest.mark.parametrize("keep_us", [None, 86_400 * 10**6 + 7])
@pytest.mark.parametrize("n", [1, 3, 100])
def test_the_call_is_the_vectorized_paths_bytes(fields, key_dtype, keep_us, n):
    v = view("v", keys=("k",), key_dtype=key_dtype, fields=fields)
    table = rows(v, data(v, n))
    call = script_call(v, row_layout.Layout.of(v), table, HEAD, keep_us, SHA)
    assert call is not None and call == vectorized(v, table, keep_us)


def test_columns_in_several_chunks_frame_alike():
    v = view("v", fields=ALL_FIXED)
    table = rows(v, data(v, 6))
    chunked = pa.concat_tables([table.slice(0, 2), table.slice(2)])
    assert chunked.column("i64").num_chunks == 2
    assert script_call(v, row_layout.Layout.of(v), chunked, HEAD, None, SHA) == vectorized(v, table, None)


@pytest.mark.parametrize("case", ["null_feature", "null_string", "two_keys", "bool_key", "other_types"])
def test_anything_else_is_left_to_the_vectorized_path(case):
    fields = WITH_TEXT
    if case == "two_keys":
        v = view("v", keys=("a", "b"), fields=fields)
    elif case == "bool_key":
        v = view("v", key_dtype=sk.Bool, fields=fields)
    else:
        v = view("v", fields=fields)
    recs = data(v, 3)
    if case == "bool_key":
        for d in recs:
            d["k"] = True
    if case == "null_feature":
        recs[1]["x"] = None
    if case == "null_string":
        recs[2]["name"] = None
    table = rows(v, recs)
    if case == "other_types":  # not what ingest makes: int32 where Int64 is declared, naive event times
        table = table.set_column(table.column_names.index("n"), "n", table.column("n").cast(pa.int32()))
    assert script_call(v, row_layout.Layout.of(v), table, HEAD, None, SHA) is None
