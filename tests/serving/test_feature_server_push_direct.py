"""``POST /push`` and ``/write-to-online-store`` answered by the HTTP protocol itself (``push_route``'s direct
routes) on a real uvicorn: the same answers as through the ASGI app (which a chunked body still takes), good and bad,
the same rows online as the SDK's push of the same rows, nothing written by a refused push, and no ASGI request
cycle for a plain request."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest
from tests.serving.test_serving_http_protocol import _exchange
from tests.support.feature_server import TOKEN, driver_repo, online_of, running

from skewless import FeatureStore
from skewless.serving.feature_server import FeatureServerConfig

WHEN = "2026-01-02T03:04:05.678901+00:00"
FEATURES = ["driver_stats:conv_rate", "driver_stats:trips"]


@pytest.fixture(params=["sqlite", "redis"])
def repo(request, tmp_path):
    driver_repo(tmp_path / "repo", online=online_of(request, "fspush"), drivers=4)
    return tmp_path / "repo"


def _request(path: str, body: bytes, *, token: str = TOKEN, chunked: bool = False) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    if chunked:  # no Content-Length: the protocol leaves it to the ASGI app
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _rows(ids, value, when=WHEN) -> dict:
    return {"driver_id": ids, "conv_rate": [value + i / 100 for i in range(len(ids))],
            "trips": [7 * i for i in range(len(ids))], "event_timestamp": [when] * len(ids)}


def _push(ids, value, to="online", source="driver_stats", **extra) -> bytes:
    return json.dumps({"push_source_name": source, "to": to, "df": _rows(ids, value), **extra}).encode()


BAD = {
    "not_json": (b"{nope", "/push"),
    "unknown_source": (json.dumps({"push_source_name": "nope", "df": _rows([1], 0.5)}).encode(), "/push"),
    "bad_to": (_push([1], 0.5, to="elsewhere"), "/push"),
    "text_in_float": (json.dumps({"push_source_name": "driver_stats", "df": {**_rows([1, 2], 0.5),
                                                                             "conv_rate": [0.5, "high"]}}).encode(),
                      "/push"),
    "missing_timestamp": (json.dumps({"push_source_name": "driver_stats", "df": {
        **_rows([1, 2], 0.5), "event_timestamp": [WHEN, None]}}).encode(), "/push"),
    "bad_timestamp": (json.dumps({"push_source_name": "driver_stats", "df": {
        **_rows([1, 2], 0.5), "event_timestamp": [WHEN, "yesterday"]}}).encode(), "/push"),
    "uneven_columns": (json.dumps({"push_source_name": "driver_stats", "df": {
        **_rows([1, 2], 0.5), "trips": [1]}}).encode(), "/push"),
    "online_write_unknown_view": (json.dumps({"feature_view_name": "nope", "df": _rows([1], 0.5)}).encode(),
                                  "/write-to-online-store"),
}


def _online(store: FeatureStore, ids) -> tuple[list, list]:
    resp = store.get_online_features(FEATURES, [{"driver_id": i} for i in ids])
    d = resp.to_dict()
    return [d["conv_rate"], d["trips"]], resp.event_timestamps["conv_rate"]


def test_direct_writes_answer_as_the_app_and_write_what_the_sdk_writes(repo):
    with running(FeatureServerConfig(repo=str(repo), tokens=(TOKEN,))) as (client, app):
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        srv = app.state.server
        asgi = []
        through_app = srv._write
        srv._write = lambda request, route: asgi.append(route) or through_app(request, route)
        # The same rows for other entities, three ways: direct, through the app, and the SDK's push of a DataFrame.
        (d_status, _, d_body), = _exchange(port, _request("/push", _push([101, 102, 103], 0.25)), 1)
        (a_status, _, a_body), = _exchange(port, _request("/push", _push([201, 202, 203], 0.25), chunked=True), 1)
        assert d_status == a_status == 200 and d_body == a_body
        assert json.loads(d_body) == {"to": "online", "views": [{"view": "driver_stats", "rows": 3, "version": None,
                                                                  "already_pushed": False}]}
        store = FeatureStore(repo)
        frame = pd.DataFrame(_rows([301, 302, 303], 0.25, datetime.fromisoformat(WHEN).astimezone(timezone.utc)))
        store.push("driver_stats", frame, to="online")
        direct, through, sdk = (_online(store, ids) for ids in ([101, 102, 103], [201, 202, 203], [301, 302, 303]))
        assert direct == through == sdk and direct[0] == [[0.25, 0.26, 0.27], [0, 7, 14]]
        # Online and offline (a push thread, from the direct route too): the same answer but for the version.
        answers = [_exchange(port, _request("/push", _push([ids], 0.5, to="online_and_offline"), chunked=c), 1)[0]
                   for ids, c in ((104, False), (204, True))]
        assert [a[0] for a in answers] == [200, 200]
        views = [json.loads(a[2])["views"][0] for a in answers]
        assert all(isinstance(v.pop("version"), int) for v in views) and views[0] == views[1]
        assert _online(store, [104])[0] == _online(store, [204])[0] == [[0.5], [0]]
        # Feast's remote online store's write.
        write = json.dumps({"feature_view_name": "driver_stats", "df": _rows([105], 0.75)}).encode()
        assert _exchange(port, _request("/write-to-online-store", write), 1)[0][2] == \
            _exchange(port, _request("/write-to-online-store", write, chunked=True), 1)[0][2]
        # Refusals: the same status and body both ways; nothing written (entities 1 and 2 keep their rows).
        before = _online(store, [1, 2])
        for case, (body, path) in BAD.items():
            direct = _exchange(port, _request(path, body), 1)[0]
            through = _exchange(port, _request(path, body, chunked=True), 1)[0]
            assert 400 <= direct[0] < 500 and (direct[0], direct[2]) == (through[0], through[2]), case
        for path in ("/push", "/write-to-online-store"):
            wrong = _exchange(port, _request(path, _push([1], 9.9), token="wrong"), 1)[0]
            assert wrong[0] == 401 and wrong[1]["connection"] == "close"
            assert json.loads(wrong[2])["error"] == "Unauthorized"
        assert _online(store, [1, 2]) == before
        # Only the chunked requests went through the ASGI app.
        assert asgi == ["push", "push", "write-to-online-store"] + [p.strip("/") for _, p in BAD.values()]
        assert srv.in_flight == 0
        metrics = client.get("/metrics").text
        assert 'skewless_fs_requests_total{route="push",status="200"} 4.0' in metrics
        assert 'skewless_fs_requests_total{route="push",status="401"} 1.0' in metrics
        assert 'skewless_fs_pushed_rows_total{to="online"} 8.0' in metrics
