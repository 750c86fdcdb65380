"""The feature server's coalesced reads (serving/feature_server/coalesce.py): requests that reach the event loop
together are read from the store as one read per feature list (on the loop or on a thread), and each gets exactly
its own answer, the same as it would alone; one request's bad key is its own 422, not its neighbours'. On SQLite
and a real Redis."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.support.feature_server import TOKEN, driver_repo, online_of

from skewless import FeatureStore
from skewless.serving.feature_server import FeatureServerOptions, create_app
from skewless.serving.feature_server.coalesce import ReadCoalescer
from skewless.serving.feature_server.feast_json import parse_online, render_online

FEATURES = ["driver_stats:conv_rate", "driver_stats:trips", "driver_profile:city", "driver_rating:rating"]


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    driver_repo(tmp_path / "repo", online=online_of(request, "fsco"), drivers=6)
    return FeatureStore(tmp_path / "repo")


def _req(features, ids, full=False):
    import orjson

    return parse_online(orjson.dumps({"features": features, "entities": {"driver_id": ids},
                                      "full_feature_names": full}), 1000)


def _alone(store, req) -> bytes:
    return render_online(req, store.get_online_features(req.features, req.rows,
                                                        full_feature_names=req.full_feature_names))


def _coalescer(store, inline: bool) -> ReadCoalescer:
    return ReadCoalescer(lambda f, rows, full: store.get_online_features(f, rows, full_feature_names=full),
                         ThreadPoolExecutor(2), inline=inline)


@pytest.mark.parametrize("inline", [True, False])
def test_one_loop_step_is_one_read_per_feature_list_and_each_gets_its_own_answer(store, inline):
    reqs = [_req(FEATURES, [1]), _req(FEATURES, [3, 99, 2]), _req(FEATURES, [6]),
            _req(["driver_profile:city"], [4, 5]), _req(FEATURES, [5], full=True), _req(FEATURES, [2, 2])]
    co = _coalescer(store, inline)

    async def main():
        return await asyncio.gather(*(co.read(r) for r in reqs))
    answers = asyncio.run(main())
    # FEATURES (4 requests, one read), city alone, FEATURES with full names: 3 reads for 6 requests
    assert co.reads == 3
    for req, resp in zip(reqs, answers):
        assert render_online(req, resp) == _alone(store, req)


@pytest.mark.parametrize("inline", [True, False])
def test_a_bad_key_fails_its_own_request_only(store, inline):
    reqs = [_req(FEATURES, [1]), _req(FEATURES, ["not-an-int"]), _req(FEATURES, [2, 3])]
    co = _coalescer(store, inline)

    async def main():
        return await asyncio.gather(*(co.read(r) for r in reqs), return_exceptions=True)
    good1, bad, good2 = asyncio.run(main())
    assert type(bad).__name__ == "ValidationError" and "not-an-int" in str(bad)
    assert render_online(reqs[0], good1) == _alone(store, reqs[0])
    assert render_online(reqs[2], good2) == _alone(store, reqs[2])


def test_concurrent_http_requests_share_reads_and_answer_as_alone(store):
    app = create_app(store, FeatureServerOptions(tokens=(TOKEN,)))
    srv = app.state.server
    ids = [[i % 7 + 1] for i in range(24)] + [[1, 2, 3, 4, 5, 6, 7]]

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://fs",
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as c:
                assert (await c.get("/health")).status_code == 200  # the breaker's first probe
                return await asyncio.gather(*(c.post("/get-online-features", json={
                    "features": FEATURES, "entities": {"driver_id": i}}) for i in ids))
    before = srv.reads.reads
    answers = asyncio.run(main())
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    assert srv.reads.reads - before < len(ids)  # coalesced (all 25 were in flight together)
    for i, a in zip(ids, answers):
        assert a.content == _alone(store, _req(FEATURES, i))


def test_a_lone_read_and_a_small_crowd_stay_on_the_loop_and_a_large_crowd_goes_to_a_thread(store):
    threads = []

    def read(f, rows, full):
        threads.append(threading.current_thread())
        return store.get_online_features(f, rows, full_feature_names=full)
    pushing = []  # the server's pushes in flight
    co = ReadCoalescer(read, ThreadPoolExecutor(2), inline=True, inline_rows=4, crowded=lambda: bool(pushing))

    async def main():
        await co.read(_req(FEATURES, [1]))  # alone: on the loop's thread, no hop
        await co.read(_req(FEATURES, [1, 2, 3, 4, 5, 6]))  # alone, however many rows: on the loop
        await asyncio.gather(*(co.read(_req(FEATURES, [i])) for i in (1, 2, 3)))  # 3 rows in all: on the loop
        await asyncio.gather(*(co.read(_req(FEATURES, [i, i + 1])) for i in (1, 2, 3)))  # 6 rows: on a thread
        pushing.append(1)  # a push in flight: a small crowd leaves the loop to it, a lone read stays
        await asyncio.gather(*(co.read(_req(FEATURES, [i])) for i in (1, 2, 3)))
        await co.read(_req(FEATURES, [1]))
    asyncio.run(main())
    main_thread = threading.main_thread()
    assert [t is main_thread for t in threads] == [True, True, True, False, False, True]
