"""The Open Inference Protocol v2 (KServe, Triton) over REST, for the v2 clients (``tritonclient.http``, KServe's
``InferenceRESTClient``):

    GET  /v2/health/live, /v2/health/ready                        open, like /ping (200 yes; ready: 503 no)
    GET  /v2                                                      server metadata
    GET  /v2/models/{name}[/versions/{v}]                         model metadata: input and output tensors
    GET  /v2/models/{name}[/versions/{v}]/ready
    POST /v2/models/{name}[/versions/{v}]/infer                   tensors in, tensors out

A request's tensors are converted to the rows the other contracts take (one input per entity key or request-time
field, shape ``[N]`` or ``[N, 1]``, row ``i`` of every input is row ``i`` of the request) and go through the same
``ServedModel.parse``, micro-batcher, breaker and prediction log (``_Server._predict``): nothing of the prediction
path is forked. A key's input is required; a request-time field's may be left out (its value is then null, as a
member left out of a JSON row). Inputs come as JSON ``data`` or, with the binary tensor extension (what
``tritonclient`` sends by default), as raw bytes after the JSON header (``Inference-Header-Content-Length``); outputs
come back as JSON ``data``, or as binary when asked (``"binary_data": true`` on an output, or the request parameter
``binary_data_output``) and no value is null. The response's ``parameters`` carry ``missing_rows`` (rows predicted
without a required feature view) and, when some view was not PRESENT, ``feature_status`` (the other contracts'
object, as a JSON string: the protocol's parameters are scalars).

Errors have the protocol's shape, ``{"error": "<message>"}``, plus ``error_type`` (the skewless error's class) and
``column``/``row`` when known; their status is ``errors.http_status``'s, as everywhere. A model name or version
other than the served one is 404. With a token configured, every route but the two health checks needs it (401
before the body is read; nothing predicted or logged).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.routing import Route

from skewless import __version__
from skewless.errors import NotFoundError, SkewlessError, ValidationError

from .errors import Unauthorized, error_body, http_status
from .model import Request

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ["binary_tensor_data"]
# A model dtype -> the v2 datatype its tensors have (metadata, outputs); timestamps travel as ISO strings.
DATATYPE = {"Int32": "INT32", "Int64": "INT64", "Float32": "FP32", "Float64": "FP64", "String": "BYTES",
            "Bool": "BOOL", "Bytes": "BYTES", "UnixTimestamp": "BYTES"}
_INTS = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
# The datatypes an input of each dtype may have: any integer for an integer (``parse`` checks its range), any
# float for a float; nothing crosses kinds (a FP64 key, an INT64 for a string), as a JSON row's values may not.
ACCEPTS = {"Int32": _INTS, "Int64": _INTS, "Float32": ("FP16", "FP32", "FP64"), "Float64": ("FP16", "FP32", "FP64"),
           "String": ("BYTES",), "Bool": ("BOOL",), "Bytes": ("BYTES",), "UnixTimestamp": ("BYTES",)}
# Little-endian numpy types of the binary tensor extension (BOOL: one byte each).
_NUMPY = {"BOOL": "?", "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "u1", "UINT16": "<u2",
          "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
_RANGE = {t: (int(np.iinfo(_NUMPY[t]).min), int(np.iinfo(_NUMPY[t]).max)) for t in _INTS}


def _bad(message: str) -> ValidationError:
    return ValidationError(message)  # no column: a malformed tensor is 400, a value that does not fit its field 422


def error_response(body: dict, status: int, headers: dict | None = None) -> Response:
    """The protocol's error object from ``errors.error_body``'s: ``error`` is the message, the class moves to
    ``error_type``."""
    out = {"error": body.get("message") or body["error"], "error_type": body["error"]}
    out.update({k: v for k, v in body.items() if k not in ("error", "message")})
    return Response(orjson.dumps(out), status, headers=headers, media_type="application/json")


def _error(exc: SkewlessError, headers: dict | None = None) -> Response:
    return error_response(error_body(exc), http_status(exc), headers)


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        raise _bad("an input's data must be an array")
    if any(isinstance(v, list) for v in data):  # the nested form of a [N, 1] tensor
        return [w for v in data for w in (v if isinstance(v, list) else [v])]
    return data


def _fits(datatype: str, v: Any) -> bool:
    """A JSON value is of its tensor's datatype (a bool is no integer, a string no number)."""
    if datatype == "BOOL":
        return type(v) is bool
    if datatype == "BYTES":
        return type(v) is str
    if datatype in _INTS:
        return type(v) is int and _RANGE[datatype][0] <= v <= _RANGE[datatype][1]
    return type(v) in (int, float)


def _json_values(name: str, datatype: str, data: list) -> list:
    bad = next((v for v in data if not _fits(datatype, v)), _OK)
    if bad is not _OK:
        raise _bad(f"input {name!r}: {str(bad)[:40]!r} is not a {datatype} value")
    return data


_OK = object()


def _binary_values(name: str, datatype: str, raw: bytes, count: int, as_text: bool) -> list:
    if datatype == "BYTES":
        out, i = [], 0
        while i < len(raw):
            if i + 4 > len(raw):
                raise _bad(f"input {name!r}: truncated BYTES element")
            n = int.from_bytes(raw[i:i + 4], "little")
            out.append(raw[i + 4:i + 4 + n])
            i += 4 + n
            if i > len(raw):
                raise _bad(f"input {name!r}: truncated BYTES element")
        if as_text:
            try:
                out = [v.decode() for v in out]
            except UnicodeDecodeError:
                raise _bad(f"input {name!r}: a BYTES element is not UTF-8 text") from None
    else:
        dt = np.dtype(_NUMPY[datatype])
        if len(raw) != count * dt.itemsize:
            raise _bad(f"input {name!r}: {len(raw)} bytes of binary data for {count} {datatype} values")
        out = np.frombuffer(raw, dtype=dt).tolist()
    if len(out) != count:
        raise _bad(f"input {name!r}: {len(out)} values for shape of {count}")
    return out


class InferCodec:
    """One inference request: v2 tensors -> the model's rows (``decode``), its answer -> v2 tensors (``respond``)."""

    def __init__(self, model, header_length: str | None):
        self.model, self.header_length = model, header_length
        self.id: str | None = None
        self.outputs: list[str] = [o["name"] for o in model.manifest.outputs]
        self.binary: set[str] = set()

    def decode(self, raw: bytes, rid: str | None) -> Request:
        body, binary = self._split(raw)
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
            raise _bad("the body must be an inference request: {\"inputs\": [tensors], ...}")
        if body.get("id") is not None:
            if not isinstance(body["id"], str):
                raise _bad("the request's id must be a string")
            self.id = body["id"]
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise _bad("the request's parameters must be an object")
        self._requested(body.get("outputs"), params.get("binary_data_output") is True)
        columns = self._columns(body["inputs"], binary)
        n = len(next(iter(columns.values())))
        if n == 0:
            raise _bad("the input tensors hold no rows (shape [0])")
        rows = [{k: col[i] for k, col in columns.items()} for i in range(n)]
        return self.model.parse(rows, self.id or rid)

    def _split(self, raw: bytes) -> tuple[Any, memoryview | None]:
        binary = None
        if self.header_length is not None:
            if not self.header_length.isdigit() or int(self.header_length) > len(raw):
                raise _bad(f"Inference-Header-Content-Length {self.header_length!r} is not a length within the body")
            binary, raw = memoryview(raw)[int(self.header_length):], raw[:int(self.header_length)]
        try:
            return orjson.loads(raw), binary
        except orjson.JSONDecodeError as exc:
            raise _bad(f"the request body is not valid JSON: {exc}") from None

    def _requested(self, outputs: Any, binary_all: bool) -> None:
        known = self.outputs
        if outputs is not None:
            if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                        for o in outputs):
                raise _bad("outputs must be a list of {\"name\": ...} objects")
            unknown = [o["name"] for o in outputs if o["name"] not in known]
            if unknown:
                raise _bad(f"no output {unknown[0]!r}: the model's outputs are {known}")
            self.outputs = list(dict.fromkeys(o["name"] for o in outputs))
            self.binary = {o["name"] for o in outputs if (o.get("parameters") or {}).get("binary_data") is True
                           or binary_all and (o.get("parameters") or {}).get("binary_data") is not False}
        elif binary_all:
            self.binary = set(known)

    def _columns(self, inputs: list, binary: memoryview | None) -> dict[str, list]:
        types = {**self.model.manifest.request_keys, **self.model.manifest.request_fields()}
        columns: dict[str, list] = {}
        n, offset = None, 0
        for t in inputs:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise _bad("each input must be an object with a name, datatype, shape and data")
            name, datatype, shape = t["name"], t.get("datatype"), t.get("shape")
            if name not in types:
                raise _bad(f"no input {name!r}: the model's inputs are {list(types)}")
            if name in columns:
                raise _bad(f"input {name!r} is given twice")
            if datatype not in ACCEPTS[types[name]]:
                raise _bad(f"input {name!r} has datatype {datatype!r}; the model's {types[name]} takes "
                           f"{', '.join(ACCEPTS[types[name]])}")
            if not (isinstance(shape, list) and len(shape) in (1, 2) and all(type(d) is int and d >= 0 for d in shape)
                    and (len(shape) == 1 or shape[1] == 1)):
                raise _bad(f"input {name!r} has shape {shape!r}; one value per row: [N] or [N, 1]")
            if n is not None and shape[0] != n:
                raise _bad(f"input {name!r} has {shape[0]} rows; the inputs before it {n}")
            n = shape[0]
            params = t.get("parameters")
            size = params.get("binary_data_size") if isinstance(params, dict) else None
            if size is not None:
                if binary is None or type(size) is not int or size < 0 or offset + size > len(binary):
                    raise _bad(f"input {name!r}: binary_data_size {size!r} is not within the body's binary data")
                values = _binary_values(name, datatype, bytes(binary[offset:offset + size]), n,
                                        types[name] != "Bytes")
                offset += size
            else:
                if "data" not in t:
                    raise _bad(f"input {name!r} has no data")
                values = _json_values(name, datatype, _flatten(t["data"]))
                if len(values) != n:
                    raise _bad(f"input {name!r}: {len(values)} values for shape {shape}")
            if datatype.startswith("FP") and any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise _bad(f"input {name!r} holds a value that is not a finite number")
            columns[name] = values
        if binary is not None and offset != len(binary):
            raise _bad(f"{len(binary) - offset} bytes of binary data after the last binary input")
        missing = [k for k in self.model.manifest.request_keys if k not in columns]
        if missing:
            raise _bad(f"no input for entity key {missing[0]!r} (the model needs "
                       f"{sorted(self.model.manifest.request_keys)})")
        return columns

    def respond(self, content: dict, status: int, headers: dict) -> Response:
        if status != 200:
            return error_response(content, status, headers)
        preds, m = content["predictions"], self.model
        dtypes = {o["name"]: o["dtype"] for o in m.manifest.outputs}
        status_doc = content["feature_status"]
        params: dict = {"missing_rows": status_doc["missing_rows"]}
        if len(status_doc) > 1:
            params["feature_status"] = orjson.dumps(status_doc).decode()
        doc = {"model_name": m.name, "model_version": str(m.version), "id": self.id or content["request_id"],
               "parameters": params, "outputs": []}
        blobs: list[bytes] = []
        for name in self.outputs:
            datatype = DATATYPE.get(dtypes[name], "BYTES")
            data = [p[name] for p in preds]
            tensor = {"name": name, "datatype": datatype, "shape": [len(data)]}
            if name in self.binary and None not in data:  # a null has no binary form: JSON then
                blob = _to_binary(datatype, data)
                blobs.append(blob)
                tensor["parameters"] = {"binary_data_size": len(blob)}
            else:
                tensor["data"] = data
            doc["outputs"].append(tensor)
        header = orjson.dumps(doc)
        if not blobs:
            return Response(header, 200, headers=headers, media_type="application/json")
        headers["Inference-Header-Content-Length"] = str(len(header))
        return Response(header + b"".join(blobs), 200, headers=headers, media_type="application/octet-stream")


def _to_binary(datatype: str, data: list) -> bytes:
    if datatype == "BYTES":
        parts = [v if isinstance(v, bytes) else str(v).encode() for v in data]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)
    return np.asarray(data, dtype=_NUMPY[datatype]).tobytes()


class V2Routes:
    """The protocol's routes on one ``app._Server`` (its token check, readiness and prediction path)."""

    def __init__(self, srv):
        self.srv = srv

    def routes(self) -> list[Route]:
        out = [Route("/v2/health/live", self.live), Route("/v2/health/ready", self.ready),
               Route("/v2", self.server_metadata)]
        for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            out += [Route(base, self.model_metadata), Route(base + "/ready", self.model_ready),
                    Route(base + "/infer", self.infer, methods=["POST"])]
        return out

    def _refused(self, request: HttpRequest) -> Response | None:
        """401 (token) or 404 (another model or version), in the protocol's error shape; None: go on."""
        if self.srv._deny(request, "v2") is not None:
            return _error(Unauthorized("missing or wrong Authorization token"),
                          {"WWW-Authenticate": "Bearer", "Connection": "close"})
        m, name, version = self.srv.model, request.path_params.get("name"), request.path_params.get("version")
        if name is not None and name != m.name or version is not None and version != str(m.version):
            self.srv._count("v2", 404).inc()
            # The body of a refused infer is not read: close the connection rather than read and drop it.
            return _error(NotFoundError(f"no model {name!r}" + (f" version {version!r}" if version else "") +
                                        f" here (this server serves {m.name!r} version {m.version})"),
                          {"Connection": "close"} if request.method == "POST" else None)
        return None

    async def live(self, request: HttpRequest) -> Response:
        return Response(orjson.dumps({"live": True}), media_type="application/json")

    async def _readiness(self, doc: dict) -> Response:
        """200 ready, else 503 with the reason ``/ready`` gives (any status but 200 is false to the protocol)."""
        ok = await self.srv.ready()
        doc = {**doc, "ready": ok} if ok else {**doc, "ready": ok, "reason": self.srv.not_ready_reason()}
        return Response(orjson.dumps(doc), 200 if ok else 503, media_type="application/json")

    async def ready(self, request: HttpRequest) -> Response:
        return await self._readiness({})

    async def server_metadata(self, request: HttpRequest) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return Response(orjson.dumps({"name": "skewless", "version": __version__, "extensions": EXTENSIONS}),
                        media_type="application/json")

    async def model_metadata(self, request: HttpRequest) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return Response(orjson.dumps(metadata(self.srv.model)), media_type="application/json")

    async def model_ready(self, request: HttpRequest) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return await self._readiness({"name": self.srv.model.name})

    async def infer(self, request: HttpRequest) -> Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return await self.srv._predict(request, "v2", codec=InferCodec(self.srv.model,
                                                                       request.headers.get(HEADER_LENGTH)))


def metadata(model) -> dict:
    """Model metadata: one input per entity key and request-time field, one output per model output."""
    m = model.manifest
    fields = m.request_fields()
    inputs = [{"name": k, "datatype": DATATYPE[d], "shape": [-1], "parameters": {"dtype": d, "entity_key": True}}
              for k, d in m.request_keys.items()]
    inputs += [{"name": k, "datatype": DATATYPE[d], "shape": [-1], "parameters": {"dtype": d, "entity_key": False}}
               for k, d in fields.items()]
    return {"name": m.name, "versions": [str(model.version)], "platform": f"skewless_{m.flavor}",
            "inputs": inputs,
            "outputs": [{"name": o["name"], "datatype": DATATYPE.get(o["dtype"], "BYTES"), "shape": [-1]}
                        for o in m.outputs]}
