"""Pipelined tile writes (``adapters/redis/tile_stream.py``): several chunks in flight on one stream, and what a
broken connection or an error reply among them does. Real redis-server, real ingest."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from tests.adapters.redis.test_redis_online import _tile_batch
from tests.support.agg_online import T0, AggRepo

import skewless as sk
from skewless.adapters.redis.store import from_url
from skewless.aggregation import maintain
from skewless.errors import StoreUnavailable
from skewless.online.base import to_us
from tests.support.conformance.online import wall_now


@pytest.fixture
def store(redis_url):
    s = from_url(redis_url, None, {"key_prefix": "ts" + uuid.uuid4().hex[:12]})
    yield s
    s.close()


def _view(name: str) -> sk.AggregatedView:
    ent = sk.Entity("card", ["card"], dtype=sk.Int64)
    return sk.AggregatedView(name, [ent], [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                             [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))


def _batches(v, top: int, tag: bytes) -> list:
    """Three batches of 200 entities each, two tiles per entity."""
    return [_tile_batch(v, [((c,), 0, top - i, b"%s%d-%d" % (tag, c, i)) for c in range(k * 200, (k + 1) * 200)
                            for i in range(2)]) for k in range(3)]


def _stored(store, v, top: int, cards=range(600)) -> list:
    return store.read_tiles(v, [(c,) for c in cards], [(0, top), (0, top - 1)])


def _want(top: int, tag: bytes) -> list:
    return [{(0, top - i): b"%s%d-%d" % (tag, c, i) for i in range(2)} for c in range(600)]


def test_chunks_in_flight_on_a_connection_that_breaks_are_all_written_again(store):
    v = _view("streambreak")
    top = to_us(wall_now()) // v.hop_us
    finishes = [store.start_write_tiles(v, b, 3) for b in _batches(v, top, b"a")]  # all three sent, none read
    stream = store._tile_streams().get()
    stream.conn.disconnect()  # the replies of all three are lost, some calls perhaps never ran
    assert [f() for f in finishes] == [400, 400, 400]  # each written again through write_tiles
    assert _stored(store, v, top) == _want(top, b"a")
    again = store._tile_streams().get()
    assert again is not stream and stream.broken is not None  # the broken stream is never used again
    finishes = [store.start_write_tiles(v, b, 4) for b in _batches(v, top, b"b")]
    assert [f() for f in finishes] == [400, 400, 400]
    assert store._tile_streams().get() is again  # a healthy stream carries on
    assert _stored(store, v, top) == _want(top, b"b")


def test_an_error_reply_in_a_middle_chunk_raises_typed_and_leaves_the_stream_in_sync(store):
    v = _view("streamerr")
    top = to_us(wall_now()) // v.hop_us
    bad = store._tile_key(v, (250,))  # an entity of the second batch
    store.client.set(bad, b"not a hash")  # its script call fails (WRONGTYPE), the write again too
    first, second, third = (store.start_write_tiles(v, b, 3) for b in _batches(v, top, b"a"))
    assert first() == 400
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        second()
    assert third() == 400  # its replies were read in turn: nothing of the failed chunk's is taken for them
    want = _want(top, b"a")
    others = [c for c in range(600) if not 200 <= c < 400]  # (a read with the bad key in it finds no tile at all)
    assert _stored(store, v, top, others) == [want[c] for c in others]
    store.client.delete(bad)  # the cause removed, the chunk written again (what a rerun of the ingest does)
    store.write_tiles(v, _batches(v, top, b"a")[1], 3)
    assert _stored(store, v, top) == want


def test_aggregated_ingest_with_an_error_reply_mid_push_raises_typed_and_a_rerun_repairs(tmp_path, store,
                                                                                        monkeypatch):
    """The typed error reaches the caller of ``ingest``; the batch stays pending; once the cause is gone, running
    the same ingest again completes the push, and every value is the oracle's."""
    monkeypatch.setattr(maintain, "ENTITIES_PER_CHUNK", 10)  # several chunks in flight at once
    repo = AggRepo(tmp_path / "repo", store)
    records = [{"card": i % 45, "ev": T0 + timedelta(minutes=37 * i), "amount": (i % 17) * 1.25, "qty": i,
                "merchant": f"m{i % 5}", "paid": T0, "txn": f"t{i}"} for i in range(600)]
    bad = store._tile_key(repo.view, (25,))  # an entity of the third chunk
    store.client.set(bad, b"not a hash")
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        repo.ingest(records, batch_id="b-1")
    store.client.delete(bad)
    again = repo.ingest(records, batch_id="b-1")
    assert again.already_ingested  # nothing appended twice: the push completed
    now = T0 + timedelta(minutes=37 * 600)
    repo.check(list(range(46)), [now, now + timedelta(days=3)])
