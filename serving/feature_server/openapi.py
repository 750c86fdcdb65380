"""The feature server's OpenAPI document: Feast's request and answer shapes, with the repo's own feature references,
feature services and join keys named (from the registry, when the document is asked for), and the server's limits."""

from __future__ import annotations

from skewless.online_read import INT_RANGE

SCALAR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}


def _key_schema(dtype: str) -> dict:
    if dtype in INT_RANGE:
        lo, hi = INT_RANGE[dtype]
        return {"type": "integer", "minimum": lo, "maximum": hi}
    return {"String": {"type": "string"}, "Bool": {"type": "boolean"}}.get(dtype, {"type": "number"})


def _error(desc: str) -> dict:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document(opts, store=None) -> dict:
    refs, services, keys = [], [], {}
    if store is not None:
        for v in store.list_feature_views():
            refs += [f"{v.name}:{f}" for f in v.feature_names]
            keys.update({k: dt.name for k, dt in v.join_key_dtypes.items()})
        services = sorted(s.name for s in store.list_feature_services())
    column = {"type": "array", "minItems": 1, "items": SCALAR}
    entities = {"type": "object", "minProperties": 1, "description": f"join key -> one value per entity (at most "
                f"{opts.max_entities:,} entities; every column the same length)",
                "properties": {k: {"type": "array", "minItems": 1, "maxItems": opts.max_entities,
                                   "items": _key_schema(d)} for k, d in keys.items()},
                "additionalProperties": column}
    features = {"type": "array", "minItems": 1, "description": "\"view:feature\" references",
                "items": {"type": "string", **({"enum": refs} if refs else {})}}
    online_req = {"type": "object", "required": ["entities"], "properties": {
        "features": features,
        "feature_service": {"type": "string", **({"enum": services} if services else {}),
                            "description": "instead of features"},
        "entities": entities, "full_feature_names": {"type": "boolean"},
        "include_feature_view_version_metadata": {"type": "boolean"}}}
    vector = {"type": "object", "required": ["values", "statuses", "event_timestamps"], "properties": {
        "values": {"type": "array", "items": {}},
        "statuses": {"type": "array", "items": {"type": "string", "enum": ["PRESENT", "NOT_FOUND",
                                                                           "OUTSIDE_MAX_AGE"]}},
        "event_timestamps": {"type": "array", "items": {"type": "string"}}}}
    online_resp = {"type": "object", "required": ["metadata", "results"], "properties": {
        "metadata": {"type": "object", "required": ["feature_names"], "properties": {
            "feature_names": {"type": "array", "items": {"type": "string"}}}},
        "results": {"type": "array", "items": vector}}}
    df = {"type": "object", "minProperties": 1, "additionalProperties": column,
          "description": f"column -> one value per row (at most {opts.max_push_rows:,} rows; every column the same "
                         f"length): join keys, the event timestamp (ISO 8601) and features"}
    push_req = {"type": "object", "required": ["push_source_name", "df"], "properties": {
        "push_source_name": {"type": "string", "minLength": 1, "description": "a feature view, or a source name "
                                                                              "views share"},
        "df": df, "to": {"type": "string", "enum": ["online", "offline", "online_and_offline"]},
        "allow_registry_cache": {"type": "boolean"}, "transform_on_write": {"type": "boolean"}}}
    write_req = {"type": "object", "required": ["feature_view_name", "df"], "properties": {
        "feature_view_name": {"type": "string", "minLength": 1}, "df": df,
        "allow_registry_cache": {"type": "boolean"}}}
    push_resp = {"type": "object", "properties": {"to": {"type": "string"}, "views": {"type": "array", "items": {
        "type": "object", "properties": {"view": {"type": "string"}, "rows": {"type": "integer"},
                                         "version": {"type": ["integer", "null"]},
                                         "already_pushed": {"type": "boolean"}}}}}}

    def body(ref: str) -> dict:
        return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
    common = {"400": _error("The body is not a JSON object of the documented shape, or a reference is malformed"),
              "401": _error("Missing or wrong token"),
              "403": _error("The token's principal may not read (read_online) or write (ingest) a view of the "
                            "request: PermissionDenied, once the registry declares permissions; nothing done"),
              "404": _error("No such feature view, feature, feature service or push source"),
              "413": _error("The body is larger than the server accepts"),
              "422": _error("A value does not fit its field, or too many entities / rows (names the field)"),
              "503": _error("The online store is unavailable (answered at once until it is back)")}
    ok = {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pushed"}}}}
    guarded = {"security": [{"bearer": []}]} if opts.tokens else {}
    paths = {
        "/get-online-features": {"post": {"summary": "Online features (Feast's request and answer)", **guarded,
                                          "requestBody": body("OnlineRequest"), "responses": {
            "200": {"description": "One result per column: the entity keys, then the features", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/OnlineResponse"}}}}, **common}}},
        "/push": {"post": {"summary": "Push rows to the views of a push source (Feast's push)", **guarded,
                           "requestBody": body("PushRequest"), "responses": {"200": ok, **common}}},
        "/write-to-online-store": {"post": {"summary": "Write rows online (Feast's remote online store)", **guarded,
                                            "requestBody": body("WriteRequest"), "responses": {"200": ok, **common}}},
        "/health": {"get": {"summary": "200 while the online store answers", "responses": {
            "200": {"description": "Healthy"}, "503": {"description": "The online store is unavailable"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", **guarded, "responses": {
            "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": common["401"]}}},
    }
    return {"openapi": "3.1.0",
            "info": {"title": "skewless feature server", "version": "1",
                     "description": "Feast's feature server contract (feast serve): a Feast HTTP client works "
                                    "unchanged."},
            "paths": paths,
            "components": {"schemas": {
                "OnlineRequest": online_req, "OnlineResponse": online_resp, "PushRequest": push_req,
                "WriteRequest": write_req, "Pushed": push_resp,
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"}, "column": {"type": "string"},
                    "row": {"type": "integer"}}}},
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
