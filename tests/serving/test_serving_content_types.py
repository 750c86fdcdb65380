"""The request and answer media types SageMaker documents for inference containers and batch transform
(serving/codecs.py), against a real server: ``text/csv`` (columns in the documented order, header row optional)
and ``application/jsonlines`` give the same predictions, and the same prediction log rows, as JSON; ``Accept``
picks the answer's format; an unsupported Content-Type is 415 and an unsatisfiable Accept 406, with the typed
error body and nothing predicted or logged. The model takes an entity key and two request-time fields (the
plain-Python scorer of test_serving_registry), so the CSV column order matters."""

from __future__ import annotations

import csv
import io
import time

import orjson
import pytest
from tests.serving.test_serving import running
from tests.serving.test_serving_registry import scorer, small_repo

from skewless.serving import read_log
from skewless.serving.server import ServeConfig

ROWS = [{"driver_id": 1, "amount": 1.5, "delay": 0.0}, {"driver_id": 3, "amount": 0.25, "delay": None},
        {"driver_id": 2, "amount": -4.0, "delay": 0.0}]
SCORES = [21.5, 60.25, 36.0]  # income * 2 + amount


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("content_types")
    store, job = small_repo(tmp / "repo")
    art = scorer(tmp, store, job)
    cfg = ServeConfig(repo=str(tmp / "repo"), model_dir=str(art.path), log_flush_seconds=0.2)
    with running(cfg) as (client, model):
        yield client, model, store


def _csv(rows, columns=("driver_id", "amount", "delay"), header=False) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in columns])
    return out.getvalue().encode()


def _jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _post(client, body: bytes, ctype: str | None, accept: str | None = None, rid: str | None = None):
    headers = {k: v for k, v in (("Content-Type", ctype), ("Accept", accept), ("x-request-id", rid)) if v}
    return client.post("/invocations", content=body, headers=headers)


def test_documented_column_order(served):
    client, _, _ = served
    doc = client.get("/openapi.json").json()
    csv_body = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["text/csv"]
    assert csv_body["x-columns"] == ["driver_id", "amount", "delay"]
    assert set(doc["paths"]["/invocations"]["post"]["requestBody"]["content"]) == {
        "application/json", "text/csv", "application/jsonlines"}
    answers = doc["paths"]["/invocations"]["post"]["responses"]["200"]["content"]
    assert set(answers) == {"application/json", "text/csv", "application/jsonlines"}


@pytest.mark.parametrize(("name", "body", "ctype"), [
    ("json", orjson.dumps(ROWS), "application/json"),
    ("csv", _csv(ROWS), "text/csv"),
    ("csv-charset", _csv(ROWS), "text/csv; charset=utf-8"),
    ("csv-header", _csv(ROWS, header=True), "text/csv"),
    ("csv-header-reordered", _csv(ROWS, columns=("delay", "driver_id", "amount"), header=True), "text/csv"),
    ("csv-header-spaces", b"driver_id, amount, delay\r\n" + _csv(ROWS), "text/csv"),
    ("csv-header-present", _csv(ROWS, columns=("amount", "delay", "driver_id"), header=True),
     "text/csv; header=present"),
    ("jsonlines", _jsonl(ROWS), "application/jsonlines"),
    ("jsonlines-blank-lines", b"\n" + _jsonl(ROWS).replace(b"\n", b"\n\n"), "application/jsonlines"),
])
def test_each_body_predicts_the_same(served, name, body, ctype):
    client, _, _ = served
    r = _post(client, body, ctype, rid=f"ct-{name}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert [p["score"] for p in r.json()["predictions"]] == SCORES
    assert r.json()["request_id"] == f"ct-{name}"


def test_accept_picks_the_answer_format(served):
    client, _, _ = served
    r = _post(client, _csv(ROWS), "text/csv", "text/csv", rid="ct-accept-csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text == "".join(f"{s}\n" for s in SCORES)  # one line per row, outputs in the manifest's order
    assert r.headers["x-request-id"] == "ct-accept-csv" and r.headers["x-model-version"] == "0"
    assert r.headers["x-missing-rows"] == "0"
    r = _post(client, _jsonl(ROWS), "application/jsonlines", "application/jsonlines", rid="ct-accept-jsonl")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jsonlines")
    assert [orjson.loads(line) for line in r.text.splitlines()] == [{"score": s} for s in SCORES]
    # q-values: the best the server offers wins; */* and application/* are JSON
    r = _post(client, orjson.dumps(ROWS), "application/json", "text/html;q=1, text/csv;q=0.5, application/json;q=0.2",
              rid="ct-accept-q")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    for accept in ("*/*", "application/*", "application/json, text/csv;q=0.9"):
        r = _post(client, orjson.dumps(ROWS[:1]), "application/json", accept, rid=f"ct-accept-{accept}")
        assert r.status_code == 200 and r.json()["predictions"] == [{"score": SCORES[0]}], accept
    # an error answers JSON whatever the Accept
    r = _post(client, _csv([{"driver_id": 1, "amount": "lots", "delay": 0}]), "text/csv", "text/csv")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "ValidationError", "message": r.json()["message"], "column": "amount", "row": 0}


REFUSED = [  # (name, body, content type, accept, status, error)
    ("form", b"driver_id=1", "application/x-www-form-urlencoded", None, 415, "UnsupportedMediaType"),
    ("xml", b"<row/>", "application/xml", None, 415, "UnsupportedMediaType"),
    ("csv-bad-header-param", _csv(ROWS), "text/csv; header=maybe", None, 415, "UnsupportedMediaType"),
    ("html-only", orjson.dumps(ROWS), "application/json", "text/html", 406, "NotAcceptable"),
    ("csv-refused-q0", orjson.dumps(ROWS), "application/json", "text/csv;q=0, application/json;q=0", 406,
     "NotAcceptable"),
    ("csv-short-row", b"1,1.5\n", "text/csv", None, 400, "ValidationError"),
    ("csv-header-wrong", b"driver_id,amount,speed\n1,1.5,0\n", "text/csv; header=present", None, 400,
     "ValidationError"),
    ("csv-nan", b"1,nan,0\n", "text/csv", None, 422, "ValidationError"),
    ("csv-underscore-key", b"1_0,1.5,0\n", "text/csv", None, 422, "ValidationError"),
    ("csv-no-key", b",1.5,0\n", "text/csv", None, 422, "ValidationError"),
    ("csv-empty", b"", "text/csv", None, 400, "ValidationError"),
    ("jsonl-not-object", b'{"driver_id": 1, "amount": 1}\n[1]\n', "application/jsonlines", None, 400,
     "ValidationError"),
    ("jsonl-bad-json", b'{"driver_id": 1\n', "application/jsonlines", None, 400, "ValidationError"),
]


@pytest.mark.parametrize(("name", "body", "ctype", "accept", "status", "error"), REFUSED,
                         ids=[c[0] for c in REFUSED])
def test_refused_bodies_get_typed_errors(served, name, body, ctype, accept, status, error):
    client, _, _ = served
    r = _post(client, body, ctype, accept, rid=f"refused-{name}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == error and r.json()["message"]


def test_eas_client_default_content_type_is_json(served):
    """Alibaba's eas_prediction sends application/octet-stream: still a JSON body (the EAS route shares the
    codecs; this server runs the SageMaker contract, so /invocations stands for it)."""
    client, _, _ = served
    r = _post(client, orjson.dumps(ROWS), "application/octet-stream", rid="ct-octet")
    assert r.status_code == 200 and [p["score"] for p in r.json()["predictions"]] == SCORES


def test_logged_rows_are_the_same(served):
    """Run last in this module (the requests above are answered, so their rows were handed to the log): every
    accepted body logged its rows exactly as the JSON one did; no refused request logged anything."""
    client, model, store = served
    accepted = ["ct-json", "ct-csv", "ct-csv-charset", "ct-csv-header", "ct-csv-header-reordered",
                "ct-csv-header-spaces", "ct-csv-header-present", "ct-jsonlines", "ct-jsonlines-blank-lines", "ct-accept-csv",
                "ct-accept-jsonl", "ct-accept-q", "ct-octet"]
    deadline = time.monotonic() + 30
    while True:
        by_request: dict[str, list[dict]] = {}
        for row in read_log(store, "scorer").to_pylist():
            by_request.setdefault(row["request_id"], []).append(row)
        if model.log.pending == 0 and set(accepted) <= set(by_request) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not [rid for rid in by_request if rid.startswith("refused-")]

    def comparable(rid):
        got = sorted(by_request[rid], key=lambda r: r["request_row"])
        return [{k: v for k, v in r.items() if k not in ("request_id", "event_timestamp", "created_timestamp")
                 and not k.startswith("_skewless")} for r in got]

    reference = comparable("ct-json")
    assert len(reference) == 3 and [r["driver_id"] for r in reference] == [1, 3, 2]
    for rid in accepted[1:]:
        assert comparable(rid) == reference, rid
