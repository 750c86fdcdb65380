"""The OpenAPI document of a served model, built from its signature (the request schema names the model's own
entity keys and request-time fields, which a generic framework schema could not)."""

from __future__ import annotations

from .artifact import ModelManifest

_JSON = {"Int32": "integer", "Int64": "integer", "Float32": "number", "Float64": "number", "String": "string",
         "Bool": "boolean", "Bytes": "string", "UnixTimestamp": "string"}

SWAGGER_HTML = """<!doctype html><html><head><title>skewless model server</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div><script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""


def _error(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(m: ModelManifest, version: int, contracts: tuple[str, ...], service: str) -> dict:
    row = {"type": "object", "required": sorted(m.request_keys),
           "properties": {**{k: {"type": _JSON[d], "description": "entity key"} for k, d in m.request_keys.items()},
                          **{i["source"][8:]: {"type": _JSON[i["dtype"]], "nullable": True,
                                               "description": "request-time value"}
                             for i in m.inputs if i["source"].startswith("request:")}}}
    out = {"type": "object", "properties": {o["name"]: {"type": _JSON[o["dtype"]]} for o in m.outputs}}
    predict = {
        "summary": f"Predict with {m.name} (features of {m.feature_service!r} read from the online store)",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"type": "object", "required": ["instances"],
             "properties": {"instances": {"type": "array", "items": row}, "request_id": {"type": "string"}}},
            {"type": "array", "items": row}, row]}}}},
        "responses": {
            "200": {"description": "One prediction per row", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"request_id": {"type": "string"}, "model": {"type": "string"},
                                                 "version": {"type": "integer"},
                                                 "predictions": {"type": "array", "items": out}}}}}},
            "400": _error("Invalid input (the reason names the row and field)"),
            "429": _error("Request queue full: retry after Retry-After seconds"),
            "500": _error("The model failed"),
            "503": _error("Model not loaded, or the online store is unavailable")}}
    health = {"responses": {"200": {"description": "Ready"}, "503": _error("Not ready")}}
    paths: dict = {"/live": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
                   "/ready": {"get": {"summary": "Readiness: model loaded and online store answering", **health}},
                   "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OK"}}}}}
    if "sagemaker" in contracts:
        paths["/ping"] = {"get": {"summary": "SageMaker health check", **health}}
        paths["/invocations"] = {"post": predict}
    if "eas" in contracts:
        eas = {**predict, "security": [{"token": []}],
               "responses": {**predict["responses"], "401": _error("Missing or wrong token")}}
        paths[f"/api/predict/{service}"] = {"post": eas, "get": {"summary": "EAS health check", **health,
                                                                  "security": [{"token": []}]}}
    return {"openapi": "3.1.0",
            "info": {"title": f"skewless model {m.name}", "version": str(version), "description": m.description},
            "paths": paths,
            "components": {"schemas": {"Error": {"type": "object", "properties": {
                "error": {"type": "string"}, "message": {"type": "string"}, "column": {"type": "string"},
                "row": {"type": "integer"}}}},
                "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization"}}}}
