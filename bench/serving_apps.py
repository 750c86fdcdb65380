"""The comparison servers of ``bench/serving_bench.py``, each run by uvicorn in its own process.

    trivial   a bare ASGI app answering a fixed body: calibrates the load generator and is the HTTP stack's floor
    baseline  plain FastAPI + scikit-learn, written as its docs suggest: the request carries the features (no
              lookup, no prediction log, no metrics), a one-row DataFrame in the fitted column order, predict_proba

Configured by the environment (uvicorn's ``--factory`` takes no arguments): ``BENCH_MODEL`` is a joblib file.
"""

from __future__ import annotations

import os

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
