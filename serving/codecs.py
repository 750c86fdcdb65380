"""Request and answer bodies by media type: JSON, and the CSV and JSON Lines that SageMaker documents for inference
containers and batch transform (``SplitType=Line`` sends several lines in one request).

Requests (``Content-Type``; its parameters are ignored but ``header``):
    application/json        the JSON body (``ServedModel.parse``). Also taken as JSON: no Content-Type, and
                            ``application/octet-stream`` (what Alibaba's ``eas_prediction`` client sends).
    text/csv                one row per line, the values in ``request_columns`` order: the model's entity keys (in
                            the manifest's ``request_keys`` order), then its request-time fields (in the order the
                            model takes them), as ``/openapi.json`` lists them. A header row is optional: with
                            ``header=present`` (RFC 4180) the first line names the columns, in any order, and sets
                            it; with ``header=absent`` there is none; without the parameter the first line is a
                            header when its cells are exactly the column names. An empty cell is null. Every row
                            has one value per column.
    application/jsonlines   one row per line: a JSON object (the keys and fields), as one row of a JSON request.
Anything else is 415 (``UnsupportedMediaType``). The rows then take the JSON path: the same checks, the same batch,
the same prediction log rows.

Answers (``Accept``, with q-values): ``application/json`` (also no Accept, ``*/*``, ``application/*``) is today's
body; ``application/jsonlines``: one line per row, its prediction object; ``text/csv`` (also ``text/*``): one line
per row, the output values in the manifest's ``outputs`` order, no header. Both carry the request id, the model
version and the rows predicted without a required view in headers (``x-request-id``, ``x-model-version``,
``x-missing-rows``). Nothing acceptable is 406 (``NotAcceptable``), decided before anything is predicted. Error
answers are JSON whatever the Accept, the body every error has.

Speed: the JSON path costs one dict lookup per header; only other values are parsed (and their results cached).
``request_headers`` reads the few headers a prediction needs in one pass over the raw ASGI list, faster than the
two ``Headers.get`` it replaced (2.9 against 8.3 us per request in a timeit of both).
"""

from __future__ import annotations

import csv
import io
from typing import Any, Callable

import orjson

from skewless.errors import ValidationError
from skewless.online_read import INT_RANGE

from .artifact import ModelManifest
from .errors import NotAcceptable, UnsupportedMediaType

JSON, CSV, JSONLINES = "application/json", "text/csv", "application/jsonlines"
JSON_ALIASES = ("", "application/octet-stream")  # no Content-Type; eas_prediction's default
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}
_CACHE_MAX = 64  # header values remembered (an attacker's endless variants are parsed, not stored)


def request_columns(m: ModelManifest) -> list[tuple[str, str]]:
    """(name, dtype) of what a request carries, in the order of a CSV row: the entity keys, then the request-time
    fields (the order ``ServedModel.parse`` checks them)."""
    return list(m.request_keys.items()) + list(m.request_fields().items())


def json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}") from None


def _media(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and the parameters of a Content-Type or an Accept member."""
    kind, *params = value.split(";")
    out = {}
    for p in params:
        k, _, v = p.partition("=")
        out[k.strip().lower()] = v.strip().strip('"')
    return kind.strip().lower(), out


class Codecs:
    """The decoders and encoders of one model (its CSV columns and outputs), looked up by the raw header value."""

    def __init__(self, m: ModelManifest, version: int):
        self.columns = request_columns(m)
        self.names = [n for n, _ in self.columns]
        self.outputs = [o["name"] for o in m.outputs]
        self.version = str(version)
        # raw header value (bytes, as ASGI gives it) -> decoder / encoder (None: JSON, the answer as it is)
        self._decoders: dict[bytes | None, Callable[[bytes], Any]] = {
            None: json_body, **{t.encode(): json_body for t in (JSON, *JSON_ALIASES)}}
        self._encoders: dict[bytes | None, Callable | None] = {None: None, JSON.encode(): None, b"*/*": None}

    # -- requests -------------------------------------------------------------------------------------------------
    def decoder(self, content_type: bytes | None) -> Callable[[bytes], Any]:
        """The body -> what ``ServedModel.parse`` takes, for this Content-Type; UnsupportedMediaType if none."""
        dec = self._decoders.get(content_type)
        if dec is None:
            dec = self._resolve_decoder(content_type.decode("latin-1"))
            if len(self._decoders) < _CACHE_MAX:
                self._decoders[content_type] = dec
        return dec

    def _resolve_decoder(self, content_type: str) -> Callable[[bytes], Any]:
        kind, params = _media(content_type)
        if kind in (JSON, *JSON_ALIASES):
            return json_body
        if kind == JSONLINES:
            return _jsonlines
        if kind == CSV:
            header = params.get("header")
            if header not in (None, "present", "absent"):
                raise UnsupportedMediaType(f"text/csv takes header=present or header=absent, not {header!r}")
            return lambda raw: self._csv(raw, header)
        raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; send {JSON}, {CSV} or "
                                   f"{JSONLINES}")

    def _csv(self, raw: bytes, header: str | None) -> list[dict]:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError(f"the CSV body is not UTF-8: {exc}") from None
        try:
            lines = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        except csv.Error as exc:
            raise ValidationError(f"the body is not valid CSV: {exc}") from None
        columns = self.columns
        names = sorted(self.names)
        if lines and (header == "present" or header is None and sorted(c.strip() for c in lines[0]) == names):
            first = [c.strip() for c in lines.pop(0)]
            if sorted(first) != names:
                raise ValidationError(f"the CSV header {first} does not name the model's columns {self.names}")
            dtypes = dict(columns)
            columns = [(n, dtypes[n]) for n in first]
        n = len(columns)
        rows = []
        for i, cells in enumerate(lines):
            if len(cells) != n:
                raise ValidationError(f"CSV row {i} has {len(cells)} values; each row has {n}: "
                                      f"{', '.join(c for c, _ in columns)}", row=i)
            rows.append({name: _cell(v, dtype) for v, (name, dtype) in zip(cells, columns)})
        return rows

    # -- answers --------------------------------------------------------------------------------------------------
    def encoder(self, accept: bytes | None) -> Callable[[dict], tuple[bytes, str, dict]] | None:
        """None: answer JSON; else the encoder of a successful answer. NotAcceptable when nothing fits."""
        try:
            return self._encoders[accept]
        except KeyError:
            enc = self._resolve_encoder(accept.decode("latin-1"))
            if len(self._encoders) < _CACHE_MAX:
                self._encoders[accept] = enc
            return enc

    def _resolve_encoder(self, accept: str):
        offered = {JSON: None, "application/*": None, "*/*": None, JSONLINES: self._jsonlines_answer,
                   CSV: self._csv_answer, "text/*": self._csv_answer}
        ranges = []
        for pos, member in enumerate(accept.split(",")):
            kind, params = _media(member)
            try:
                q = float(params.get("q", 1))
            except ValueError:
                q = 0.0
            if kind and q > 0:
                ranges.append((-q, pos, kind))
        if not ranges and not accept.strip():
            return None
        for _, _, kind in sorted(ranges):
            if kind in offered:
                return offered[kind]
        raise NotAcceptable(f"Accept {accept!r}: this server answers {JSON}, {JSONLINES} or {CSV}")

    def _headers(self, answer: dict) -> dict:
        return {"x-model-version": self.version, "x-missing-rows": str(answer["feature_status"]["missing_rows"])}

    def _jsonlines_answer(self, answer: dict) -> tuple[bytes, str, dict]:
        return b"".join(orjson.dumps(p) + b"\n" for p in answer["predictions"]), JSONLINES, self._headers(answer)

    def _csv_answer(self, answer: dict) -> tuple[bytes, str, dict]:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        for p in answer["predictions"]:
            w.writerow(["" if (v := p.get(name)) is None else _text(v) for name in self.outputs])
        return out.getvalue().encode(), CSV, self._headers(answer)


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _cell(v: str, dtype: str) -> Any:
    """A CSV cell as the JSON value it stands for; a cell that is none is passed on as the string, so that the
    model's own check (``ServedModel.parse``) refuses it naming the row and column. Empty is null."""
    if v == "":
        return None
    if "_" in v and (dtype in INT_RANGE or dtype.startswith("Float")):
        return v  # Python's int() and float() read "1_000"; a JSON number cannot be written so
    if dtype in INT_RANGE:
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)  # "3.0" (a float array's CSV): the model's check takes it when exact
            except ValueError:
                return v
    if dtype in ("Float32", "Float64"):
        try:
            f = float(v)
        except ValueError:
            return v
        return f if f - f == 0 else v  # nan and inf are no JSON numbers either: refused as the string
    if dtype == "Bool":
        low = v.strip().lower()
        return True if low in _TRUE else False if low in _FALSE else v
    return v


def _jsonlines(raw: bytes) -> list:
    rows = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        i = len(rows)
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"JSON Lines row {i} is not valid JSON: {exc}", row=i) from None
        if not isinstance(row, dict):
            raise ValidationError(f"JSON Lines row {i} is not an object (each line holds one row)", row=i)
        rows.append(row)
    return rows


def request_headers(scope: dict) -> tuple[str | None, bytes | None, bytes | None]:
    """(request id, Content-Type, Accept) of a request, in one pass over its raw headers (ASGI lower-cases the
    names): the first of each; the request id from ``x-request-id``, else SageMaker's ``x-amzn-requestid``."""
    rid = amzn = ctype = accept = None
    for k, v in scope["headers"]:
        if k == b"content-type":
            ctype = v if ctype is None else ctype
        elif k == b"accept":
            accept = v if accept is None else accept
        elif k == b"x-request-id":
            rid = v if rid is None else rid
        elif k == b"x-amzn-requestid":
            amzn = v if amzn is None else amzn
    rid = rid or amzn
    return (rid.decode("latin-1") if rid else None), ctype, accept
