"""Tiles written as transactions of plain ``HSET``s between ``TILE_OPEN`` and ``TILE_SETTLE`` (``RedisTiles._guarded``,
every packed chunk of ``start_write_tiles``) instead of one Lua argument per field. Whatever the server already holds,
the result must be exactly what ``TILE_UPSERT`` writes (``write_tiles``): real redis-server, the same batch written
both ways over the same stored state, every hash and its expire time compared; and whatever part of a transaction
fails, no work hash is left and the result is still the upsert's."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

import skewless as sk
from skewless.adapters.redis import tiles as redis_tiles
from skewless.adapters.redis.store import from_url
from skewless.aggregation import state_bytes
from skewless.aggregation.dirty import TileBatch
from skewless.errors import StoreUnavailable
from skewless.online.base import to_us
from tests.support.conformance.online import wall_now

VIEW = sk.AggregatedView("guarded", [sk.Entity("card", ["card"], dtype=sk.Int64)],
                         [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                         [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))
# 0-99 absent, 100-199 older tiles, 200-299 newer ones, 300-399 mixed, 400-449 written before '~v', 450-499 at the
# write's own version (a replay)
CARDS = 500


@pytest.fixture
def stores(redis_url):
    made = [from_url(redis_url, None, {"key_prefix": "guard" + uuid.uuid4().hex[:12]}) for _ in range(2)]
    yield made
    for s in made:
        s.drop_view(VIEW.name)
        s.close()


def _batch(top: int) -> TileBatch:
    """Three tiles per card at level 0 and one at level 1, states packed by ``state_bytes.Rows`` (as ingest's)."""
    rows = [(c, lv, t) for c in range(CARDS) for lv, t in ((0, top - 2), (0, top - 1), (0, top), (1, top // 4))]
    e, lv, t = (np.array(x, np.int64) for x in zip(*rows))
    states = state_bytes.Rows(len(rows))
    states.tuple_head(2)
    states.ints(e * 1000 + t % 1000)
    states.floats(lv * 0.5)
    return TileBatch(pa.table({"card": pa.array(range(CARDS), pa.int64())}), [(e, lv, t, states)])


def _prepare(store, top: int) -> None:
    """The same stored state in each store, through the script path (and raw HSETs for hashes without '~v')."""
    old = [((c,), 0, top - 1, b"old%d" % c) for c in range(100, 200)] + \
          [((c,), 0, top - 5, b"keep%d" % c) for c in range(100, 200)]
    new = [((c,), 0, top, b"newer%d" % c) for c in range(200, 300)] + \
          [((c,), 0, top - 1, b"newer%d" % c) for c in range(300, 400)]
    store.write_tiles(VIEW, old, 2)
    store.write_tiles(VIEW, new, 9)
    store.write_tiles(VIEW, [((c,), 0, top - 2, b"older%d" % c) for c in range(300, 400)], 1)
    store.write_tiles(VIEW, [((c,), 0, top - 7, b"same%d" % c) for c in range(450, 500)], 5)
    for c in range(400, 450):  # a hash of before '~v': one field at version 3, one at 7
        store.client.hset(store._tile_key(VIEW, (c,)), mapping={
            redis_tiles.field(0, top - 1): b"%020d" % 3 + b"v3", redis_tiles.field(0, top): b"%020d" % 7 + b"v7"})


def _dump(store) -> dict:
    out = {}
    for c in range(CARDS):
        k = store._tile_key(VIEW, (c,))
        out[c] = (store.client.hgetall(k), store.client.pexpiretime(k))
    return out


def _work(store) -> list:
    return list(store.client.scan_iter(match=store.key_head(VIEW.name).decode() + "*~w*", count=10_000))


def _both(stores, top: int) -> tuple[dict, dict]:
    """The batch written guarded into the first store and by the upsert into the second, both prepared alike."""
    guarded, scripted = stores
    for s in stores:
        _prepare(s, top)
    assert guarded.start_write_tiles(VIEW, _batch(top), 5)() == 4 * CARDS
    assert scripted.write_tiles(VIEW, _batch(top), 5) == 4 * CARDS
    return _dump(guarded), _dump(scripted)


def test_a_guarded_write_gives_exactly_what_the_script_writes_whatever_is_stored(stores):
    top = to_us(wall_now()) // VIEW.hop_us
    got, want = _both(stores, top)
    assert got == want
    assert got[0][0][b"~v"] == b"5" and got[250][0][redis_tiles.field(0, top)] == b"%020d" % 9 + b"newer250"
    assert got[150][0][redis_tiles.field(0, top - 5)] == b"%020d" % 2 + b"keep150"  # fields not written are kept
    assert got[150][0][redis_tiles.field(0, top - 1)][:20] == b"%020d" % 5  # an older field overwritten
    assert got[350][0][redis_tiles.field(0, top - 2)][:20] == b"%020d" % 5  # mixed: the older field ours ...
    assert got[350][0][redis_tiles.field(0, top - 1)] == b"%020d" % 9 + b"newer350"  # ... the newer one kept
    assert got[420][0][redis_tiles.field(0, top)] == b"%020d" % 7 + b"v7"  # a newer field of a hash without '~v'
    assert got[470][0][redis_tiles.field(0, top - 7)] == b"%020d" % 5 + b"same470"
    assert all(exp > 0 for _, exp in got.values())
    assert _work(stores[0]) == []  # every work hash renamed back or merged and dropped


def test_a_chunk_is_written_by_hset_not_by_a_lua_argument_per_field(stores):
    """Packed states go through the transaction whether or not their hashes exist (before, only a first ingest's
    did, through staging hashes: an ingest into existing tiles paid the upsert's Lua arguments)."""
    out, replies, work = stores[0]._frame_batch(VIEW, _batch(100), 5, guarded=True)
    sent = b"".join(bytes(x) for x in out)
    assert b"EVALSHA" not in sent and sent.count(b"$4\r\nHSET\r\n") == CARDS and len(work) == 1
    assert replies == CARDS + 4 * (CARDS // redis_tiles.KEYS_PER_CALL)


@pytest.mark.parametrize("broken", ["_OPEN", "_SETTLE"])
def test_a_script_of_the_transaction_that_does_not_run_leaves_the_upserts_result(stores, monkeypatch, broken):
    """TILE_OPEN refused: every tile hash stays where it is, the HSETs make work hashes of the write's fields alone
    and TILE_SETTLE merges each field by field (slower, never wrong). TILE_SETTLE refused: the opened hashes are
    left under their work names, and the chunk's error has them settled again. Either way the result is the
    upsert's before the chunk is written again through it (stubbed here, so it cannot mend anything)."""
    monkeypatch.setattr(redis_tiles, broken, b"$4\r\nEVAL\r\n" + redis_tiles.resp.bulk(
        b"return redis.error_reply('refused')"))
    guarded, scripted = stores
    top = to_us(wall_now()) // VIEW.hop_us
    for s in stores:
        _prepare(s, top)
    again = []
    guarded.write_tiles = lambda view, tiles, version: again.append(version) or len(tiles)
    assert guarded.start_write_tiles(VIEW, _batch(top), 5)() == 4 * CARDS
    assert again == [5]  # (the error reply was seen)
    scripted.write_tiles(VIEW, _batch(top), 5)
    assert _dump(guarded) == _dump(scripted)
    assert _work(guarded) == []


def test_a_key_that_is_not_a_hash_raises_and_every_other_entity_is_settled(stores):
    guarded = stores[0]
    top = to_us(wall_now()) // VIEW.hop_us
    _prepare(guarded, top)
    odd = guarded._tile_key(VIEW, (150,))
    guarded.client.delete(odd)
    guarded.client.set(odd, b"a plain view's row")
    with pytest.raises(StoreUnavailable, match="WRONGTYPE"):
        guarded.start_write_tiles(VIEW, _batch(top), 5)()
    assert guarded.client.get(odd) == b"a plain view's row"
    assert _work(guarded) == []
    for c in (149, 151, 420):  # in the same transaction as the odd key, in another
        assert guarded.client.hget(guarded._tile_key(VIEW, (c,)), "~v") == (b"7" if c == 420 else b"5")
    assert guarded.client.hget(guarded._tile_key(VIEW, (151,)), redis_tiles.field(0, top - 1))[:20] == b"%020d" % 5


def test_a_guarded_chunk_whose_exec_never_arrives_leaves_nothing(stores):
    """A writer dying after sending a chunk's HSETs but before its EXEC (here: the connection closed there): the
    server discards the queued transaction, so no work hash exists and every tile hash is as it was."""
    import socket

    guarded = stores[0]
    top = to_us(wall_now()) // VIEW.hop_us
    _prepare(guarded, top)
    before = _dump(guarded)
    out, _, _ = guarded._frame_batch(VIEW, _batch(top), 5, guarded=True)
    host, port = guarded.client.connection_pool.connection_kwargs["host"], \
        guarded.client.connection_pool.connection_kwargs["port"]
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"".join(bytes(x) for x in out[:2]))  # MULTI, TILE_OPEN, the first 100 entities' HSETs
        sock.recv(1 << 16)
    assert _work(guarded) == [] and _dump(guarded) == before
