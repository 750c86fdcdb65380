"""The comparison servers of ``bench/serving_bench.py``, each run by uvicorn in its own process.

    trivial   a bare ASGI app answering a fixed body: calibrates the load generator and is the HTTP stack's floor
              (``trivial_direct``: the same answered by skewless' protocol as a direct route, the feature server's
              floor)
    baseline  plain FastAPI + scikit-learn, written as its docs suggest: the request carries the features (no
              lookup, no prediction log, no metrics), a one-row DataFrame in the fitted column order, predict_proba
    peer      the same job as skewless's server, as a plain FastAPI app would do it without skewless: the request
              carries a loan id; the loan's features are read from Redis with redis-py (hiredis parser) under the
              same keys (one MGET of the loan's two views; a GET of its zipcode's view when the model uses one),
              stored as a JSON object per (view, entity); a one-row DataFrame, predict_proba; each prediction
              (ids, features, outputs) appended as a JSON line to a log file (Python logging's FileHandler)

Configured by the environment (uvicorn's ``--factory`` takes no arguments): ``BENCH_MODEL`` is a joblib file;
the peer also reads ``BENCH_REDIS_URL``, ``BENCH_PEER_PREFIX`` (its keys: ``<prefix>:<view>:<entity id>``) and
``BENCH_PEER_LOG`` (the prediction log file).
"""

from __future__ import annotations

import json
import os
import uuid

_BODY = b'{"status":"ok"}'


async def trivial(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # read the body, as a real endpoint must
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]})
    await send({"type": "http.response.body", "body": _BODY})


class _TrivialDirect:
    """``trivial``, with ``POST /`` also a direct route (``skewless.serving.http_protocol``): under uvicorn with
    that protocol (``--http skewless.serving.http_protocol:CoalescingHttpToolsProtocol``) it is answered by the
    protocol without an ASGI request cycle, as ``skewless serve`` answers ``/get-online-features``: the floor of
    that stack, beside the trivial ASGI app's."""

    direct_max_body = 1 << 20

    def __init__(self):
        self.direct_post = {b"/": self.answer}

    async def __call__(self, scope, receive, send):
        await trivial(scope, receive, send)

    def answer(self, headers, body, reply) -> None:
        reply(_BODY)


trivial_direct = _TrivialDirect()


def baseline():
    import joblib
    import pandas as pd
    from fastapi import FastAPI

    model = joblib.load(os.environ["BENCH_MODEL"])
    columns = list(model.feature_names_in_)
    app = FastAPI()

    @app.get("/ping")
    def ping():
        return {"status": "ready"}

    # A sync endpoint: FastAPI runs it in its thread pool, as its docs advise for blocking (CPU) work.
    @app.post("/predict")
    def predict(row: dict):
        proba = model.predict_proba(pd.DataFrame([row], columns=columns))[0]
        return {"predictions": [{f"proba_{c}": float(p) for c, p in zip(model.classes_, proba)}]}

    return app


def peer():
    import logging

    import joblib
    import pandas as pd
    import redis
    from fastapi import FastAPI, HTTPException

    model = joblib.load(os.environ["BENCH_MODEL"])
    columns = list(model.feature_names_in_)
    prefix = os.environ["BENCH_PEER_PREFIX"]
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=5)
    # The loan's views are read in one round trip; the zipcode's view only when the model uses its features
    # (skewless reads the views the model's inputs need, and the loan -> zipcode lookup only when a stage needs it).
    loan_view_columns = set(json.loads(client.get(f"{prefix}:__columns:loan_features") or b"[]"))
    needs_zipcode = any(c not in loan_view_columns for c in columns)
    predictions = logging.getLogger("peer.predictions")
    predictions.propagate = False
    predictions.setLevel(logging.INFO)
    predictions.addHandler(logging.FileHandler(os.environ["BENCH_PEER_LOG"]))
    app = FastAPI()

    @app.get("/ping")
    def ping():
        client.ping()
        return {"status": "ready"}

    # Sync: redis-py's client blocks, so FastAPI runs the endpoint in its thread pool, as its docs advise.
    @app.post("/invocations")
    def invocations(body: dict):
        loan_id = body.get("loan_id")
        if not isinstance(loan_id, int):
            raise HTTPException(422, "loan_id must be an integer")
        loan, link = client.mget([f"{prefix}:loan_features:{loan_id}", f"{prefix}:loan_zipcode:{loan_id}"])
        row = json.loads(loan) if loan else {}
        zipcode = json.loads(link)["zipcode"] if link else None
        if needs_zipcode and zipcode is not None:
            raw = client.get(f"{prefix}:zipcode_features:{zipcode}")
            row.update(json.loads(raw) if raw else {})
        proba = model.predict_proba(pd.DataFrame([row], columns=columns))[0]
        out = {f"proba_{c}": float(p) for c, p in zip(model.classes_, proba)}
        request_id = uuid.uuid4().hex
        predictions.info(json.dumps({"request_id": request_id, "loan_id": loan_id, "zipcode": zipcode,
                                     "features": {c: row.get(c) for c in columns}, "outputs": out}))
        return {"request_id": request_id, "predictions": [out]}

    return app
