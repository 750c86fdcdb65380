"""The OpenAPI document of a served model, built from its signature (the request schema names the model's own
entity keys and request-time fields, which a generic framework schema could not)."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from skewless.online_read import INT_RANGE

from .artifact import ModelManifest
from .codecs import request_columns
from .model import _FLOAT32_MAX, MAX_ROWS_PER_REQUEST

# A JSON Schema per dtype, as strict as ``ServedModel.parse``: integers within the dtype's range (a boolean is no
# integer), numbers, strings, booleans; what the SDK converts (timestamps, bytes) arrives as a string.
_SCALAR = {"Float32": {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX},
           "Float64": {"type": "number"}, "String": {"type": "string"},
           "Bool": {"type": "boolean"}, "Bytes": {"type": "string"}, "UnixTimestamp": {"type": "string"}}


def _schema(dtype: str, nullable: bool = False) -> dict:
    if dtype in INT_RANGE:
        lo, hi = INT_RANGE[dtype]
        out = {"type": "integer", "minimum": lo, "maximum": hi}
    else:
        out = dict(_SCALAR[dtype])
    if nullable:
        out["type"] = [out["type"], "null"]
    return out


# The /docs page: Swagger UI from the server itself (``swagger_asset``), never a CDN, so it works where the server
# has no internet (a VPC endpoint, an air-gapped cluster) and sends the model's schema nowhere. Relative URLs: the
# page also works behind a gateway that serves the container under a path prefix.
def swagger_html(title: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="ui"></div><script src="docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "openapi.json", dom_id: "#ui"}});</script></body></html>"""


SWAGGER_HTML = swagger_html("skewless model server")
_ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8", "swagger-ui.css": "text/css; charset=utf-8"}
_asset_cache: dict[str, bytes] = {}


def swagger_asset(name: str) -> tuple[bytes, str]:
    """(content, media type) of one of Swagger UI's files, from the ``swagger-ui-bundle-v2`` package (read once)."""
    if name not in _ASSETS:
        raise HTTPException(404, f"no {name!r} here (the docs page's files are {', '.join(_ASSETS)})")
    body = _asset_cache.get(name)
    if body is None:
        from swagger_ui_bundle import swagger_ui_path

        body = _asset_cache[name] = (swagger_ui_path / name).read_bytes()
    return body, _ASSETS[name]


def _error(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(m: ModelManifest, version: int, contracts: tuple[str, ...], service: str, token: bool = False) -> dict:
    """The server's OpenAPI document. ``token``: a token is configured, so every route but the health checks
    (``/ping``, ``/ready``, ``/live``) requires it or answers 401: ``Authorization: <token>`` or ``Bearer <token>``
    on every such route, and on the EAS route also ``EAS <signature>``, the signed form Alibaba's ``eas_prediction``
    client sends by default (``eas_auth``)."""
    row = {"type": "object", "required": sorted(m.request_keys),
           "properties": {**{k: {**_schema(d), "description": "entity key"} for k, d in m.request_keys.items()},
                          **{k: {**_schema(d, nullable=True), "description": "request-time value"}
                             for k, d in m.request_fields().items()}}}
    rows = {"type": "array", "items": row, "minItems": 1, "maxItems": MAX_ROWS_PER_REQUEST}
    out = {"type": "object", "properties": {o["name"]: _schema(o["dtype"], nullable=True) for o in m.outputs}}
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    status = {"type": "object", "required": ["missing_rows"], "properties": {
        "missing_rows": {"type": "integer", "minimum": 0,
                         "description": "rows predicted without a required feature view (NOT_FOUND or EXPIRED)"},
        "views": {"type": "object", "additionalProperties": counts,
                  "description": "per feature view, rows per status other than PRESENT"},
        "rows": {"type": "array", "description": "policy flag: each such row (index in the request) and its views",
                 "items": {"type": "object", "properties": {
                     "row": {"type": "integer"}, "missing": {"type": "object",
                                                             "additionalProperties": {"type": "string"}}}}}}}
    columns = [n for n, _ in request_columns(m)]
    outputs = [o["name"] for o in m.outputs]
    csv_doc = (f"One row per line, the values of {', '.join(columns)} in that order (x-columns); an empty cell is "
               "null. A header row is optional: taken when the first line is exactly the column names (in any "
               "order, which then sets it), always with header=present, never with header=absent")
    predict = {
        "summary": f"Predict with {m.name} (features of {m.feature_service!r} read from the online store)",
        # One object is one row; an object with "instances" holds the rows (a list, or one row) and an optional
        # request id (a value that is not a string is ignored).
        # JSON, CSV and JSON Lines (serving/codecs.py): the media types SageMaker documents for batch transform.
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"anyOf": [
                {"type": "object", "required": ["instances"],
                 "properties": {"instances": {"anyOf": [rows, row]}, "request_id": {}}},
                rows, {"allOf": [row, {"not": {"required": ["instances"]}}]}]}},
            "text/csv": {"schema": {"type": "string", "description": csv_doc}, "x-columns": columns},
            "application/jsonlines": {"schema": {"type": "string", "description": "One row per line: a JSON "
                                                 "object as one row of the JSON body"}, "x-row": row}}},
        "responses": {
            "200": {"description": "One prediction per row, and how many rows lacked their features (CSV and JSON "
                                   "Lines answers, chosen by Accept, carry the predictions only; the request id, model "
                                   "version and rows missing a required view are in x-request-id, x-model-version "
                                   "and x-missing-rows)",
                    "content": {"application/json": {"schema": {
                        "type": "object", "required": ["predictions", "feature_status"],
                        "properties": {"request_id": {"type": "string"}, "model": {"type": "string"},
                                       "version": {"type": "integer"},
                                       "predictions": {"type": "array", "items": out},
                                       "feature_status": status}}},
                        "text/csv": {"schema": {"type": "string", "description": "One line per row: the outputs "
                                                f"{', '.join(outputs)}, no header"}},
                        "application/jsonlines": {"schema": {"type": "string", "description": "One line per row: "
                                                             "its prediction object"}}}},
            "400": _error("The body is not JSON (CSV, JSON Lines), or not rows (the reason names the row)"),
            "406": _error("No media type of Accept is answered (application/json, text/csv, application/jsonlines)"),
            "413": _error("The body is larger than the server accepts"),
            "415": _error("The Content-Type is not application/json, text/csv or application/jsonlines"),
            "422": _error("A key or value does not fit its dtype (names the row and field), or, with the model's "
                          "missing-features policy reject, a row's required features are NOT_FOUND/EXPIRED "
                          "(names them)"),
            "429": _error("Request queue full: retry after Retry-After seconds"),
            "500": _error("The model failed"),
            "503": _error("Model not loaded, or the online store is unavailable"),
            "504": _error("The prediction took longer than the server's predict timeout")}}
    health = {"responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready", "content": {
        "application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string"},
                                                                          "reason": {"type": "string"}}}}}}}}
    paths: dict = {"/live": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
                   "/ready": {"get": {"summary": "Readiness: model loaded and online store answering", **health}},
                   "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                       "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}}
    if "sagemaker" in contracts:
        paths["/ping"] = {"get": {"summary": "SageMaker health check", **health}}
        paths["/invocations"] = {"post": predict}
    if "eas" in contracts:
        paths[f"/api/predict/{service}"] = {"post": predict, "get": {"summary": "EAS health check", **health}}
    schemas: dict = {}
    if "v2" in contracts:
        v2_paths, schemas = _v2(m, version)
        paths.update(v2_paths)
    if token:  # the EAS contract always has one
        open_paths = ("/ping", "/ready", "/live", "/v2/health/live", "/v2/health/ready")
        for path, ops in paths.items():
            if path in open_paths:
                continue
            denied = _error("Missing or wrong token")
            if path.startswith("/v2"):  # the protocol's error shape
                denied["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/V2Error"
            for op in ops.values():
                op["security"] = [{"token": []}]
                op["responses"] = {**op["responses"], "401": denied}
    return {"openapi": "3.1.0",
            "info": {"title": f"skewless model {m.name}", "version": str(version), "description": m.description},
            "paths": paths,
            "components": {"schemas": {"Error": {"type": "object", "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}, "column": {"type": "string"},
                "row": {"type": "integer"}}}, **schemas},
                "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}}}


def _v2(m: ModelManifest, version: int) -> tuple[dict, dict]:
    """The Open Inference Protocol v2 routes (serving/v2.py) and their schemas: one input tensor per entity key
    and request-time field, one output tensor per model output."""
    from .v2 import ACCEPTS, DATATYPE

    fields = m.request_fields()
    types = {**m.request_keys, **fields}
    scalar = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]}
    tensor = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string", "enum": list(types)},
        "datatype": {"type": "string", "enum": sorted({a for d in types.values() for a in ACCEPTS[d]})},
        "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0},
                  "description": "[N] or [N, 1]: one value per row; every input has the same N"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
        "data": {"type": "array", "items": {"anyOf": [scalar, {"type": "array", "items": scalar}]}}}}
    out = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string", "enum": [o["name"] for o in m.outputs]}, "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}}, "data": {"type": "array"},
        "parameters": {"type": "object"}}}
    request = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": tensor,
                   "description": f"entity keys (required): {sorted(m.request_keys)}; request-time fields "
                                  f"(optional, null when left out): {sorted(fields)}; datatypes: "
                                  + ", ".join(f"{k} {DATATYPE[d]}" for k, d in types.items())},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}
    response = {"type": "object", "required": ["model_name", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"missing_rows": {"type": "integer", "minimum": 0},
                                                        "feature_status": {"type": "string"}}},
        "outputs": {"type": "array", "items": out}}}
    error = {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"}, "error_type": {"type": "string"}, "column": {"type": "string"},
        "row": {"type": "integer"}}}

    def err(desc: str) -> dict:
        return {"description": desc,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/V2Error"}}}}
    infer = {"summary": f"v2 inference with {m.name}", "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/V2InferRequest"}}}},
        "responses": {"200": {"description": "One output tensor per requested output (all by default)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/V2InferResponse"}}}},
            "400": err("A malformed tensor: wrong datatype, shape or data, or no input for a key"),
            "404": err("Another model or version"), "413": err("The body is larger than the server accepts"),
            "422": err("A value does not fit its field, or (policy reject) required features are missing"),
            "429": err("Request queue full"), "500": err("The model failed"),
            "503": err("Model not loaded, or the online store is unavailable"), "504": err("Predict timeout")}}
    ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    not_ready = {"description": "Not ready"}
    paths = {"/v2/health/live": {"get": {"summary": "v2 liveness", "responses": {"200": ok}}},
             "/v2/health/ready": {"get": {"summary": "v2 readiness", "responses": {"200": ok, "503": not_ready}}},
             "/v2": {"get": {"summary": "v2 server metadata", "responses": {"200": ok}}}}
    for base in (f"/v2/models/{m.name}", f"/v2/models/{m.name}/versions/{version}"):
        paths[base] = {"get": {"summary": "Model metadata: input and output tensors",
                               "responses": {"200": ok, "404": err("Another model or version")}}}
        paths[f"{base}/ready"] = {"get": {"summary": "v2 model readiness", "responses": {
            "200": ok, "503": not_ready, "404": err("Another model or version")}}}
        paths[f"{base}/infer"] = {"post": {**infer, "responses": dict(infer["responses"])}}
    return paths, {"V2InferRequest": request, "V2InferResponse": response, "V2Error": error}
