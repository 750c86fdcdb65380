"""What the JSON request path pays for the media types (serving/codecs.py), in process, per request:

    .venv/bin/python -m bench.request_headers_bench [--n 200000]

``before``: the request id read with two ``Headers.get`` and the body with ``orjson.loads`` (the code before the
codecs); ``after``: ``codecs.request_headers`` (one pass over the raw ASGI headers: request id, Content-Type,
Accept), the decoder and encoder lookups, and the JSON decoder. Same request (six headers, as httpx sends them).
"""

from __future__ import annotations

import argparse
import timeit

import orjson
from starlette.requests import Request

from skewless.serving.codecs import Codecs, request_headers


class _Manifest:
    request_keys = {"loan_id": "Int64"}
    inputs: list = []
    outputs = [{"name": "proba_0"}, {"name": "proba_1"}]


SCOPE = {"type": "http", "method": "POST", "path": "/invocations", "headers": [
    (b"host", b"127.0.0.1:8080"), (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"python-httpx/0.28.1"), (b"content-length", b"15"), (b"content-type", b"application/json")]}
RAW = b'{"loan_id": 12}'
CODECS = Codecs(_Manifest, 1)


def before():
    h = Request(SCOPE).headers
    h.get("x-request-id") or h.get("x-amzn-requestid")
    return orjson.loads(RAW)


def after():
    request = Request(SCOPE)
    _, ctype, accept = request_headers(request.scope)
    decode = CODECS.decoder(ctype)
    CODECS.encoder(accept)
    return decode(RAW)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    for name, fn in [("before", before), ("after", after)] * 3:
        print(f"{name}: {timeit.timeit(fn, number=n) / n * 1e6:.2f} us per request")


if __name__ == "__main__":
    main()
