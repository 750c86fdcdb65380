"""The DataHub emulator's HTTP side (``datahub_emulator`` says what is emulated): signature check, body
decompression, routing to the handlers over ``datahub_emulator_store``'s state, DataHub's JSON answers and errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import threading
import uuid
import zlib
from urllib.parse import parse_qsl, unquote, urlsplit

from .datahub_emulator_store import (
    MAX_READ,
    NAME,
    DataHubError,
    Project,
    Shard,
    Topic,
    check_value,
    cursor_sequence,
    make_cursor,
    now_ms,
    parse_schema,
    route,
    seek,
    split_range,
)
from .emulator_http import Reply


def signature(secret: str, method: str, path_qs: str, headers: dict[str, str]) -> str:
    """pydatahub's ``AliyunAccount`` signature of a request (the emulator recomputes it to check the sender's)."""
    low = {k.lower(): v for k, v in headers.items()}
    parts = urlsplit(unquote(path_qs))
    query = "&".join(k + "=" + v if v else k for k, v in sorted(parse_qsl(parts.query, True), key=lambda p: p[0]))
    lines = [method, low.get("content-type", ""), low.get("date", "")]
    lines += [f"{k}:{low[k]}" for k in sorted(k for k in low if k.startswith("x-datahub-"))]
    lines.append(parts.path + "?" + query if query else parts.path)
    mac = hmac.new(secret.encode("latin-1"), "\n".join(lines).encode("latin-1"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _body(headers: dict[str, str], body: bytes) -> dict:
    low = {k.lower(): v for k, v in headers.items()}
    ctype = low.get("content-type", "application/json").split(";")[0].strip()
    if ctype in ("application/x-protobuf", "application/x-binary"):
        raise DataHubError(400, "InvalidParameter", f"the emulator speaks the JSON protocol only, not {ctype} "
                                                    "(use pydatahub's default protocol_type)")
    encoding = low.get("content-encoding", "")
    if encoding == "lz4":
        import lz4.block

        body = lz4.block.decompress(struct.pack("<I", int(low.get("x-datahub-content-raw-size", "0"))) + body)
    elif encoding in ("zlib", "deflate"):
        body = zlib.decompress(body)
    elif encoding:
        raise DataHubError(400, "InvalidParameter", f"unsupported Content-Encoding {encoding!r}")
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        raise DataHubError(400, "InvalidParameter", "the request body is not JSON") from None
    if not isinstance(doc, dict):
        raise DataHubError(400, "InvalidParameter", "the request body is not a JSON object")
    return doc


class DataHubEmulator:
    def __init__(self, keys: dict[str, str]):
        self.keys = keys
        self.projects: dict[str, Project] = {}
        self.lock = threading.Lock()

    def dispatch(self, method: str, path_qs: str, headers: dict[str, str], body: bytes) -> Reply:
        rid = uuid.uuid4().hex
        parts = urlsplit(path_qs)
        segs = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        if method == "GET" and segs == ["health"]:
            return 200, {"Content-Type": "application/json"}, b'{"status": "ok"}'
        try:
            if segs[:1] == ["_emulator"]:
                with self.lock:
                    return self._reply(rid, self._trim(segs[1:], dict(parse_qsl(parts.query))))
            self._authenticate(method, path_qs, headers)
            doc = _body(headers, body) if method in ("POST", "PUT") else {}
            with self.lock:
                return self._reply(rid, self._route(method, segs, doc))
        except DataHubError as err:
            data = {"RequestId": rid, "ErrorCode": err.code, "ErrorMessage": err.message}
            return err.status, {"Content-Type": "application/json", "x-datahub-request-id": rid}, \
                json.dumps(data).encode()

    @staticmethod
    def _reply(rid: str, doc: dict | None) -> Reply:
        status = 200 if doc is not None else 201
        return status, {"Content-Type": "application/json", "x-datahub-request-id": rid}, \
            json.dumps(doc if doc is not None else {}).encode()

    def _authenticate(self, method: str, path_qs: str, headers: dict[str, str]) -> None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, cred = auth.partition(" ")
        access_id, _, sig = cred.rpartition(":")
        if scheme != "DATAHUB" or access_id not in self.keys:
            raise DataHubError(401, "Unauthorized", f"The AccessKeyId {access_id or '(none)'} is not found.")
        if not hmac.compare_digest(sig, signature(self.keys[access_id], method, path_qs, headers)):
            raise DataHubError(401, "Unauthorized", "The request signature does not match (SignatureNotMatch).")

    # -- routing -----------------------------------------------------------------------------------------------
    def _route(self, method: str, segs: list[str], doc: dict) -> dict | None:
        n = len(segs)
        if segs[:1] == ["projects"]:
            if n == 1 and method == "GET":
                return {"ProjectNames": sorted(self.projects)}
            if n == 2:
                return self._project(method, segs[1], doc)
            if n == 3 and segs[2] == "topics" and method == "GET":
                return {"TopicNames": sorted(self._get_project(segs[1]).topics)}
            if n == 4 and segs[2] == "topics":
                return self._topic(method, segs[1], segs[3], doc)
            if n == 5 and segs[4] == "shards":
                topic = self._get_topic(segs[1], segs[3])
                if method == "GET":
                    return {"Shards": [s.describe() for s in topic.shards], "Protocol": "http1.1", "Interval": 500}
                if method == "POST":
                    return self._shards_action(topic, doc)
            if n == 6 and segs[4] == "shards" and method == "POST":
                return self._shard_action(self._get_topic(segs[1], segs[3]).shard(segs[5]), doc)
        raise DataHubError(400, "InvalidParameter", f"the emulator does not support {method} /{'/'.join(segs)}")

    def _get_project(self, name: str) -> Project:
        if name not in self.projects:
            raise DataHubError(404, "NoSuchProject", f"The specified project {name} does not exist.")
        return self.projects[name]

    def _get_topic(self, project: str, name: str) -> Topic:
        topics = self._get_project(project).topics
        if name not in topics:
            raise DataHubError(404, "NoSuchTopic", f"The specified topic {name} does not exist.")
        return topics[name]

    def _project(self, method: str, name: str, doc: dict) -> dict | None:
        if method == "POST":
            if not NAME.match(name) or not 3 <= len(name) <= 32:
                raise DataHubError(400, "InvalidParameter", f"Project name {name} is invalid.")
            if name in self.projects:
                raise DataHubError(400, "ProjectAlreadyExist", f"The project {name} already exists.")
            self.projects[name] = Project(str(doc.get("Comment", "")))
            return None
        project = self._get_project(name)
        if method == "GET":
            return {"Comment": project.comment, "CreateTime": project.created // 1000,
                    "LastModifyTime": project.modified // 1000}
        if method == "PUT":
            project.comment, project.modified = str(doc.get("Comment", "")), now_ms()
            return {}
        if method == "DELETE":
            if project.topics:
                raise DataHubError(400, "InvalidOperation", f"The project {name} is not empty.")
            del self.projects[name]
            return {}
        raise DataHubError(400, "InvalidParameter", f"the emulator does not support {method} /projects/{name}")

    def _topic(self, method: str, project_name: str, name: str, doc: dict) -> dict | None:
        project = self._get_project(project_name)
        if method == "POST":
            return self._create_topic(project, name, doc)
        topic = self._get_topic(project_name, name)
        if method == "GET":
            out = {"Comment": topic.comment, "ShardCount": len([s for s in topic.shards if s.state == "ACTIVE"]),
                   "Lifecycle": topic.lifecycle, "RecordType": topic.record_type, "ExpandMode": topic.expand_mode,
                   "CreateTime": topic.created // 1000, "LastModifyTime": topic.modified // 1000}
            if topic.schema_text is not None:
                out["RecordSchema"] = topic.schema_text
            return out
        if method == "DELETE":
            del project.topics[name]
            return {}
        raise DataHubError(400, "InvalidParameter", f"the emulator does not support {method} on a topic")

    @staticmethod
    def _create_topic(project: Project, name: str, doc: dict) -> None:
        if not NAME.match(name) or len(name) > 128:
            raise DataHubError(400, "InvalidParameter", f"Topic name {name} is invalid.")
        if name in project.topics:
            raise DataHubError(400, "TopicAlreadyExist", f"The topic {name} already exists.")
        kind = doc.get("RecordType")
        count, lifecycle = doc.get("ShardCount"), doc.get("Lifecycle")
        if kind not in ("TUPLE", "BLOB"):
            raise DataHubError(400, "InvalidParameter", f"RecordType must be TUPLE or BLOB, got {kind!r}")
        if not isinstance(count, int) or not 1 <= count <= 256 or not isinstance(lifecycle, int) or lifecycle < 1:
            raise DataHubError(400, "InvalidParameter", "ShardCount (1..256) and Lifecycle (>= 1) are required")
        schema_text = doc.get("RecordSchema") if kind == "TUPLE" else None
        if kind == "TUPLE" and schema_text is None:
            raise DataHubError(400, "InvalidSchema", "a TUPLE topic needs a RecordSchema")
        schema = parse_schema(schema_text) if kind == "TUPLE" else None
        if isinstance(schema_text, dict):
            schema_text = json.dumps(schema_text)
        shards = [Shard(str(i), b, e) for i, (b, e) in enumerate(split_range(count))]
        project.topics[name] = Topic(kind, schema, schema_text, lifecycle, str(doc.get("Comment", "")),
                                     str(doc.get("ExpandMode", "split")), shards)
        return None

    # -- shards: put, merge, split ----------------------------------------------------------------------------
    def _shards_action(self, topic: Topic, doc: dict) -> dict:
        action = doc.get("Action")
        if action == "pub":
            return self._put(topic, doc.get("Records"))
        if action == "merge":
            left, right = topic.shard(str(doc.get("ShardId"))), topic.shard(str(doc.get("AdjacentShardId")))
            if left.begin > right.begin:
                left, right = right, left
            if left.state != "ACTIVE" or right.state != "ACTIVE" or left.end != right.begin:
                raise DataHubError(400, "InvalidOperation", "only two adjacent ACTIVE shards can be merged")
            child = Shard(topic.new_shard_id(), left.begin, right.end, parents=[left.shard_id, right.shard_id])
            self._close(topic, [left, right], [child])
            return {"ShardId": child.shard_id, "BeginHashKey": child.describe()["BeginHashKey"],
                    "EndHashKey": child.describe()["EndHashKey"]}
        if action == "split":
            parent = topic.shard(str(doc.get("ShardId")))
            try:
                key = int(str(doc.get("SplitKey")), 16)
            except ValueError:
                raise DataHubError(400, "InvalidParameter", "SplitKey must be a hexadecimal hash key") from None
            if parent.state != "ACTIVE" or not parent.begin < key < parent.end:
                raise DataHubError(400, "InvalidOperation", "SplitKey must fall inside an ACTIVE shard's range")
            first = int(topic.new_shard_id())
            kids = [Shard(str(first), parent.begin, key, parents=[parent.shard_id]),
                    Shard(str(first + 1), key, parent.end, parents=[parent.shard_id])]
            self._close(topic, [parent], kids)
            return {"NewShards": [{k: s.describe()[k] for k in ("ShardId", "BeginHashKey", "EndHashKey")}
                                  for s in kids]}
        raise DataHubError(400, "InvalidParameter", f"the emulator does not support shards Action {action!r}")

    @staticmethod
    def _close(topic: Topic, parents: list[Shard], children: list[Shard]) -> None:
        for p in parents:
            p.state, p.closed_time = "CLOSED", now_ms() // 1000
        topic.shards.extend(children)
        topic.modified = now_ms()

    @staticmethod
    def _put(topic: Topic, records) -> dict:
        if not isinstance(records, list) or not records:
            raise DataHubError(400, "InvalidParameter", "Records must be a non-empty list")
        placed = []
        for i, rec in enumerate(records):  # check every record before writing any: a bad one rejects the request
            if not isinstance(rec, dict) or "Data" not in rec:
                raise DataHubError(400, "MalformedRecord", f"record {i} has no Data")
            data = rec["Data"]
            if topic.record_type == "BLOB":
                try:
                    base64.b64decode(data, validate=True)
                except (ValueError, TypeError):
                    raise DataHubError(400, "MalformedRecord", f"record {i}: BLOB Data is not base64") from None
            else:
                if not isinstance(data, list) or len(data) != len(topic.schema):
                    raise DataHubError(400, "MalformedRecord", f"record {i}: Data must be a list of "
                                                               f"{len(topic.schema)} values (the schema's fields)")
                for j, (value, fld) in enumerate(zip(data, topic.schema)):
                    check_value(value, fld, j)
            attrs = rec.get("Attributes")
            if attrs is not None and not isinstance(attrs, dict):
                raise DataHubError(400, "MalformedRecord", f"record {i}: Attributes must be an object")
            placed.append((i, route(topic, rec), data, attrs))
        failed, ms = [], now_ms()
        for i, shard, data, attrs in placed:
            if shard.state != "ACTIVE":
                failed.append({"Index": i, "ErrorCode": "InvalidShardOperation",
                               "ErrorMessage": f"The specified shard {shard.shard_id} is not active."})
                continue
            stored = {"Data": data, "SystemTime": ms}
            if attrs:
                stored["Attributes"] = {str(k): str(v) for k, v in attrs.items()}
            shard.records.append(stored)
        return {"FailedRecordCount": len(failed), "FailedRecords": failed}

    # -- one shard: cursors and reads ----------------------------------------------------------------------------
    @staticmethod
    def _shard_action(shard: Shard, doc: dict) -> dict:
        action = doc.get("Action")
        if action == "cursor":
            seq, record_time = seek(shard, str(doc.get("Type")), doc)
            return {"Cursor": make_cursor(shard, seq), "RecordTime": record_time, "Sequence": seq}
        if action == "sub":
            seq = cursor_sequence(shard, doc.get("Cursor"))
            limit = doc.get("Limit", 10)
            if not isinstance(limit, int) or limit < 1:
                raise DataHubError(400, "InvalidParameter", f"Limit must be a positive integer, got {limit!r}")
            if seq == shard.next_seq and shard.state == "CLOSED":
                raise DataHubError(400, "InvalidShardOperation", f"The shard {shard.shard_id} is sealed and has "
                                                                 "been read to its end.")
            chunk = shard.records[seq - shard.first_seq: seq - shard.first_seq + min(limit, MAX_READ)]
            out = [{**rec, "Sequence": seq + i} for i, rec in enumerate(chunk)]
            return {"NextCursor": make_cursor(shard, seq + len(out)), "RecordCount": len(out), "StartSeq": seq,
                    "Records": out}
        raise DataHubError(400, "InvalidParameter", f"the emulator does not support shard Action {action!r}")

    # -- emulator control (not DataHub's API): retention --------------------------------------------------------
    def _trim(self, segs: list[str], query: dict) -> dict:
        if len(segs) != 4 or segs[0] != "trim" or "before" not in query:
            raise DataHubError(400, "InvalidParameter", "use POST /_emulator/trim/{project}/{topic}/{shard}?before=N")
        shard = self._get_topic(segs[1], segs[2]).shard(segs[3])
        before = min(max(int(query["before"]), shard.first_seq), shard.next_seq)
        del shard.records[: before - shard.first_seq]
        shard.first_seq = before
        return {"FirstSequence": before}
