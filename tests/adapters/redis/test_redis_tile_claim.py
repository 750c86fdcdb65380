"""Tiles of entities most likely new (``TileBatch.fresh``: the first ingest into an empty history) written through
staging hashes and ``TILE_CLAIM`` (``RedisTiles._staged``) instead of one Lua argument per field. Whatever the
server already holds, the result must be exactly what ``TILE_UPSERT`` writes: real redis-server, the same batch
written both ways over the same stored state, every hash and its expire time compared."""

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
from skewless.online.base import to_us
from tests.support.conformance.online import wall_now

VIEW = sk.AggregatedView("claimed", [sk.Entity("card", ["card"], dtype=sk.Int64)],
                         [sk.Field("card", sk.Int64), sk.Field("x", sk.Float64)],
                         [sk.Aggregation("x", "sum", timedelta(days=1))], hop=timedelta(hours=1))
CARDS = 450  # 0-99 absent, 100-199 older tiles, 200-299 newer ones, 300-399 mixed, 400-449 written before '~v'


@pytest.fixture
def stores(redis_url):
    made = [from_url(redis_url, None, {"key_prefix": "claim" + uuid.uuid4().hex[:12]}) for _ in range(2)]
    yield made
    for s in made:
        s.drop_view(VIEW.name)
        s.close()


def _batch(top: int, fresh: bool) -> TileBatch:
    """Three tiles per card at level 0 and one at level 1, states packed by ``state_bytes.Rows`` (as ingest's)."""
    rows = [(c, lv, t) for c in range(CARDS) for lv, t in ((0, top - 2), (0, top - 1), (0, top), (1, top // 4))]
    e, lv, t = (np.array(x, np.int64) for x in zip(*rows))
    states = state_bytes.Rows(len(rows))
    states.tuple_head(2)
    states.ints(e * 1000 + t % 1000)
    states.floats(lv * 0.5)
    b = TileBatch(pa.table({"card": pa.array(range(CARDS), pa.int64())}), [(e, lv, t, states)])
    b.fresh = fresh
    return b


def _prepare(store, top: int) -> None:
    """The same stored state in each store, through the script path (and raw HSETs for hashes without '~v')."""
    old = [((c,), 0, top - 1, b"old%d" % c) for c in range(100, 200)] + \
          [((c,), 0, top - 5, b"keep%d" % c) for c in range(100, 200)]
    new = [((c,), 0, top, b"newer%d" % c) for c in range(200, 300)] + \
          [((c,), 0, top - 1, b"newer%d" % c) for c in range(300, 400)]
    store.write_tiles(VIEW, old, 2)
    store.write_tiles(VIEW, new, 9)
    store.write_tiles(VIEW, [((c,), 0, top - 2, b"older%d" % c) for c in range(300, 400)], 1)
    for c in range(400, CARDS):  # a hash of before '~v': one field at version 3, one at 7
        store.client.hset(store._tile_key(VIEW, (c,)), mapping={
            redis_tiles.field(0, top - 1): b"%020d" % 3 + b"v3", redis_tiles.field(0, top): b"%020d" % 7 + b"v7"})


def _dump(store) -> dict:
    out = {}
    for c in range(CARDS):
        k = store._tile_key(VIEW, (c,))
        out[c] = (store.client.hgetall(k), store.client.pexpiretime(k))
    return out


def _staging(store) -> list:
    return list(store.client.scan_iter(match=store.key_head(VIEW.name).decode() + "*~w*", count=10_000))


def test_a_staged_write_gives_exactly_what_the_script_writes_whatever_is_stored(stores):
    staged, scripted = stores
    top = to_us(wall_now()) // VIEW.hop_us
    for s in stores:
        _prepare(s, top)
    assert staged.start_write_tiles(VIEW, _batch(top, True), 5)() == 4 * CARDS
    assert scripted.start_write_tiles(VIEW, _batch(top, False), 5)() == 4 * CARDS
    got, want = _dump(staged), _dump(scripted)
    assert got == want
    assert got[0][0][b"~v"] == b"5" and got[250][0][redis_tiles.field(0, top)] == b"%020d" % 9 + b"newer250"
    assert got[150][0][redis_tiles.field(0, top - 5)] == b"%020d" % 2 + b"keep150"  # fields not written are kept
    assert got[420][0][redis_tiles.field(0, top)] == b"%020d" % 7 + b"v7"  # a newer field of a hash without '~v'
    assert all(exp > 0 for _, exp in got.values())
    assert _staging(staged) == []  # every staging hash renamed or merged and dropped


def test_a_claim_that_fails_is_written_again_through_the_script(stores, monkeypatch):
    """The claim refused (NOSCRIPT, as on a server that never saw it): the chunk is written again by TILE_UPSERT,
    the result the same, and the staging hashes its transaction wrote are dropped."""
    staged, scripted = stores
    top = to_us(wall_now()) // VIEW.hop_us
    for s in stores:
        _prepare(s, top)
    monkeypatch.setattr(redis_tiles, "_SHA_CLAIM", "0" * 40)  # no such script: every claim fails
    assert staged.start_write_tiles(VIEW, _batch(top, True), 5)() == 4 * CARDS
    assert scripted.start_write_tiles(VIEW, _batch(top, False), 5)() == 4 * CARDS
    assert _dump(staged) == _dump(scripted)
    assert _staging(staged) == []


def test_a_staged_chunk_whose_exec_never_arrives_leaves_nothing(stores):
    """A writer dying after sending a chunk's HSETs but before its EXEC (here: the connection closed there): the
    server discards the queued transaction, so no staging hash and no tile of it exists."""
    import socket

    staged = stores[0]
    top = to_us(wall_now()) // VIEW.hop_us
    out: list = []
    staged._staged(VIEW, *_parts(_batch(top, True)), 5, out, [])
    host, port = staged.client.connection_pool.connection_kwargs["host"], \
        staged.client.connection_pool.connection_kwargs["port"]
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"".join(bytes(x) for x in out[:2]))  # MULTI and the first 100 entities' HSETs, no EXEC
        sock.recv(1 << 16)
    assert _staging(staged) == [] and all(not h for h, _ in _dump(staged).values())


def _parts(b: TileBatch) -> tuple:
    (e, lv, t, states), = b.parts
    return b.keys, e, lv, t, states
