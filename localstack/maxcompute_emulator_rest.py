"""HTTP side of the local MaxCompute emulator: pyodps's signature check, the REST resources (projects, tables,
partitions, SQL instances) and the table/instance tunnel. The subset is listed in ``maxcompute_emulator``; anything
else answers 400 ``NotSupported`` naming the method and path."""

from __future__ import annotations

import base64
import csv
import io
import json
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from email.utils import formatdate
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import pyarrow as pa
from odps.accounts import CloudAccount
from requests.structures import CaseInsensitiveDict

from .emulator_http import HOST, Reply, json_reply
from .maxcompute_emulator_sql import SqlError, parse_spec
from .maxcompute_emulator_store import Project, Result, TableMeta, parse_spec_string
from .maxcompute_emulator_tunnel import (TunnelBodyError, decode_arrow, decode_records, decompress, empty, encode_arrow,
                                encode_records)

ACCESS_ID, SECRET = "test", "test"  # the local cloud's dummy pair
MAX_KEPT = 200  # instances, upload and download sessions each, in memory (results, snapshots): oldest go first


def _rfc822(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _xml(status: int, body: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/xml", "x-odps-request-id": secrets.token_hex(12), **(headers or {})}, \
        ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


def error(status: int, code: str, message: str) -> Reply:
    """ODPS's error document; pyodps turns ``code`` into its exception class (NoSuchTable, SignatureNotMatch...)."""
    rid = secrets.token_hex(12)
    return _xml(status, f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                        f"<RequestId>{rid}</RequestId><HostId>localhost</HostId></Error>")


class _Signed:
    """What pyodps's canonical-string builder reads from a request."""

    def __init__(self, method: str, headers: CaseInsensitiveDict):
        self.method, self.headers = method, headers


class Instance:
    def __init__(self, project: str, sql: str, task: str):
        self.id = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(6)
        self.project, self.sql, self.task = project, sql, task
        self.start = time.time()
        self.end = self.start
        self.result: Result | None = None
        self.error: str | None = None


class MaxComputeEmulator:
    def __init__(self, state: Path, port: int):
        self.state, self.port = state, port
        self.projects: dict[str, Project] = {}
        self.instances: OrderedDict[str, Instance] = OrderedDict()
        self.uploads: OrderedDict[str, dict] = OrderedDict()
        self.downloads: OrderedDict[str, dict] = OrderedDict()
        self.lock = threading.RLock()
        self.account = CloudAccount(ACCESS_ID, SECRET)

    def project(self, name: str) -> Project:
        with self.lock:
            if name not in self.projects:
                if not name.replace("_", "").isalnum() or not name[:1].isalpha():
                    raise SqlError("NoSuchProject", "Project not found", f"invalid project name {name!r}")
                self.projects[name] = Project(name, self.state / "maxcompute" / f"{name}.duckdb")
            return self.projects[name]

    def _remember(self, store: OrderedDict, key: str, value) -> None:
        with self.lock:
            store[key] = value
            while len(store) > MAX_KEPT:
                store.popitem(last=False)

    def close(self) -> None:
        for p in self.projects.values():
            with p.lock:
                p.con.close()

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        hdrs = CaseInsensitiveDict(headers)
        if method == "GET" and path == "/health":
            return json_reply(200, {"status": "ok", "projects": sorted(self.projects)})
        prefix = next((p for p in ("/api", "/tunnel") if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            return error(404, "NoSuchObject", f"no service at {path}: use /api (REST) or /tunnel")
        rel = path[len(prefix):]
        denied = self._check_signature(method, rel, hdrs)
        if denied:
            return denied
        url = urllib.parse.urlsplit(rel)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            body = decompress(body, hdrs.get("Content-Encoding"))
            reply = (self.rest if prefix == "/api" else self.tunnel)(method, parts, query, hdrs, body)
        except SqlError as exc:
            status = 404 if exc.code in ("NoSuchPartition", "NoSuchProject") or exc.code == "ODPS-0130131" else 400
            code = {"ODPS-0130131": "NoSuchTable"}.get(exc.code, exc.code)
            return error(status, code, str(exc))
        except TunnelBodyError as exc:
            return error(400, "InvalidArgument", str(exc))
        if reply is None:
            return error(400, "NotSupported", f"the local MaxCompute emulator does not implement {method} {prefix}"
                         f"{url.path}?{url.query} (see skewless.localcloud.maxcompute_emulator for the subset)")
        return reply

    def _check_signature(self, method: str, rel: str, headers: CaseInsensitiveDict) -> Reply | None:
        given = headers.get("Authorization", "")
        if not given.startswith("ODPS ") or ":" not in given:
            return error(401, "Unauthorized", "ODPS-0410051:Invalid credentials - missing ODPS Authorization header")
        credential = given[5:].rsplit(":", 1)[0]
        parts = credential.split("/")
        region = parts[2] if len(parts) == 5 else None  # v4: id/date/region/odps/aliyun_v4_request
        if parts[0] != ACCESS_ID:
            return error(401, "InvalidAccessKeyId", f"ODPS-0410031:Authentication fail - unknown access id {parts[0]}")
        canonical = self.account._build_canonical_str(urllib.parse.urlparse(urllib.parse.unquote(rel)),
                                                      _Signed(method, headers))
        if not secrets.compare_digest(self.account.calc_auth_str(canonical, region).encode(), given.encode()):
            return error(401, "SignatureNotMatch", "ODPS-0410042:Invalid signature value - User signature does not "
                         "match")
        return None

    # -- REST -----------------------------------------------------------------------------------------------------
    def rest(self, method, parts, query, headers, body) -> Reply | None:
        if parts == ["logview", "host"] and method == "GET":
            return 200, {"Content-Type": "text/plain"}, f"http://{HOST}:{self.port}/logview".encode()
        if parts == ["tenants"] and method == "GET":
            return json_reply(200, {"Tenant": {"Name": "local", "TenantId": "0", "OwnerId": ACCESS_ID,
                                               "TenantState": "NORMAL", "Parameters": {}}})
        if len(parts) < 2 or parts[0] != "projects":
            return None
        pname, rest = parts[1], parts[2:]
        project = self.project(pname)
        if not rest and method == "GET":
            return _xml(200, f"<Project><Name>{escape(pname)}</Name><Type>managed</Type><Owner>ALIYUN${ACCESS_ID}"
                             f"</Owner><State>AVAILABLE</State><Region>local</Region></Project>")
        if rest == ["tunnel"] and method == "GET" and "service" in query:
            return 200, {"Content-Type": "text/plain"}, f"{HOST}:{self.port}/tunnel".encode()
        if rest == ["logs"] and method == "PUT":
            return 200, {}, b""
        if rest == ["tables"] and method == "GET":
            return self._list_tables(project, query)
        if len(rest) == 2 and rest[0] == "tables" and method == "GET":
            return self._table(project, rest[1].lower(), query)
        if rest == ["instances"] and method == "POST":
            return self._create_instance(pname, body)
        if len(rest) == 2 and rest[0] == "instances":
            return self._instance(method, pname, rest[1], query)
        return None

    def _list_tables(self, project: Project, query) -> Reply:
        prefix = query.get("name", "")
        with project.lock:
            tables = [t for t in project.tables() if t.name.startswith(prefix)]
        items = "".join(f"<Table><Name>{t.name}</Name><Type>MANAGED_TABLE</Type><Owner>ALIYUN${ACCESS_ID}</Owner>"
                        f"<CreationTime>{_rfc822(t.created)}</CreationTime></Table>" for t in tables)
        return _xml(200, f"<Tables>{items}<Marker></Marker><MaxItems>{len(tables)}</MaxItems></Tables>")

    def _table(self, project: Project, name: str, query) -> Reply:
        with project.lock:
            meta = project.require(name)
            parts = project.partitions(name)
        if "partitions" in query:
            want = parse_spec(query["partition"]) if query.get("partition") else {}
            items = ""
            for spec, created in parts:
                values = parse_spec_string(spec)
                if any(values.get(k) != v for k, v in want.items()):
                    continue
                cols = "".join(f'<Column Name="{escape(k)}" Value="{escape(v)}"/>' for k, v in values.items())
                items += (f"<Partition>{cols}<CreationTime>{int(created)}</CreationTime><LastDDLTime>{int(created)}"
                          f"</LastDDLTime><LastModifiedTime>{int(meta.modified)}</LastModifiedTime></Partition>")
            return _xml(200, f"<Partitions>{items}<Marker></Marker><MaxItems>1000</MaxItems></Partitions>")
        if "partition" in query:
            key = meta.spec_string(parse_spec(query["partition"]))
            found = [c for s, c in parts if s == key]
            if not found:
                raise SqlError("NoSuchPartition", "Partition not found", f"{name} partition {key}")
            doc = {"createTime": int(found[0]), "lastDDLTime": int(found[0]), "lastModifiedTime": int(meta.modified),
                   "partitionSize": 0}
            return _xml(200, f"<Partition><Schema>{_cdata(json.dumps(doc))}</Schema></Partition>")
        return _xml(200, f"<Table><Name>{meta.name}</Name><TableId>{meta.name}</TableId><Type>MANAGED_TABLE</Type>"
                         f"<Owner>ALIYUN${ACCESS_ID}</Owner><CreationTime>{_rfc822(meta.created)}</CreationTime>"
                         f"<LastModifiedTime>{_rfc822(meta.modified)}</LastModifiedTime>"
                         f'<Schema format="json">{_cdata(json.dumps(meta.schema_doc()))}</Schema></Table>')

    # -- instances ------------------------------------------------------------------------------------------------
    def _create_instance(self, pname: str, body: bytes) -> Reply:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            return error(400, "InvalidArgument", f"instance XML does not parse: {exc}")
        tasks = list(root.find("Job/Tasks") if root.find("Job/Tasks") is not None else [])
        if len(tasks) != 1 or tasks[0].tag != "SQL":
            kinds = [t.tag for t in tasks]
            return error(400, "NotSupported", f"the local MaxCompute emulator runs exactly one SQL task per instance, "
                         f"got {kinds}")
        task = tasks[0]
        inst = Instance(pname, task.findtext("Query") or "", task.findtext("Name") or "AnonymousSQLTask")
        try:
            inst.result = self.project(pname).execute(inst.sql)
        except SqlError as exc:
            inst.error = str(exc)
        inst.end = time.time()
        self._remember(self.instances, inst.id, inst)
        location = f"http://{HOST}:{self.port}/api/projects/{pname}/instances/{inst.id}"
        return 201, {"Location": location, "x-odps-request-id": secrets.token_hex(12), "Content-Length": "0"}, b""

    def _get_instance(self, pname: str, iid: str) -> Instance:
        inst = self.instances.get(iid)
        if inst is None or inst.project != pname:
            raise SqlError("NoSuchObject", "Instance not found", f"instance {iid} of project {pname}")
        return inst

    def _instance(self, method, pname, iid, query) -> Reply | None:
        inst = self._get_instance(pname, iid)
        status = "Failed" if inst.error else "Success"
        times = {"x-odps-owner": f"ALIYUN${ACCESS_ID}", "x-odps-start-time": _rfc822(inst.start),
                 "x-odps-end-time": _rfc822(inst.end)}
        task = (f'<Task Type="SQL"><Name>{escape(inst.task)}</Name><StartTime>{_rfc822(inst.start)}</StartTime>'
                f"<EndTime>{_rfc822(inst.end)}</EndTime><Status>{status}</Status></Task>")
        if method == "PUT":
            return 200, {}, b""
        if method != "GET":
            return None
        if "result" in query:
            return _xml(200, f'<Instance><Tasks><Task Type="SQL"><Name>{escape(inst.task)}</Name>'
                             f'{self._result_xml(inst)}<Status>{status}</Status></Task></Tasks></Instance>')
        if "instanceprogress" in query:
            return _xml(200, "<Progress></Progress>")
        if "source" in query:
            return _xml(200, f"<Job><Priority>9</Priority><Tasks><SQL><Name>{escape(inst.task)}</Name><Query>"
                             f"{_cdata(inst.sql)}</Query></SQL></Tasks></Job>")
        if query.keys() - {"taskstatus", "instancestatus", "curr_project"}:
            return None
        return _xml(200, f"<Instance><Name>{inst.id}</Name><Status>Terminated</Status><Tasks>{task}</Tasks>"
                         "</Instance>", times)

    @staticmethod
    def _result_xml(inst: Instance) -> str:
        if inst.error:
            return f'<Result Format="text">{_cdata(inst.error)}</Result>'
        if inst.result is None:
            return f'<Result Format="text">{_cdata("OK")}</Result>'
        # the conventional (non-tunnel) result: CSV with a header, \N for NULL, base64 so any byte survives XML
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(inst.result.names)
        for row in zip(*(c.to_pylist() for c in inst.result.table.columns)):
            w.writerow(["\\N" if v is None else _csv_value(v, t) for v, t in zip(row, inst.result.types)])
        desc = {"IsSelect": True, "SelectResultStatus": "OK",
                "Schema": {"Columns": [{"Name": n, "Type": t} for n, t in zip(inst.result.names, inst.result.types)]}}
        text = base64.b64encode(out.getvalue().encode()).decode()
        return (f'<Result Format="csv" Transform="Base64">{text}</Result>'
                f"<ResultDescriptor>{_cdata(json.dumps(desc))}</ResultDescriptor>")

    # -- tunnel ---------------------------------------------------------------------------------------------------
    def tunnel(self, method, parts, query, headers, body) -> Reply | None:
        if len(parts) != 4 or parts[0] != "projects" or parts[2] not in ("tables", "instances"):
            return None
        project = self.project(parts[1])
        if parts[2] == "instances":
            inst = self._get_instance(parts[1], parts[3])
            if method == "POST" and "downloads" in query:
                if inst.result is None:
                    return error(400, "InstanceTypeNotSupported", f"instance {inst.id} has no SELECT result"
                                 + (f": {inst.error}" if inst.error else ""))
                rows = inst.result.table
                if "instance_tunnel_limit_enabled" in query:
                    rows = rows.slice(0, 10000)  # MaxCompute's limited-result mode
                return self._new_download(inst.result.odps_schema(), inst.result.schema_doc(), rows, struct_ts=True)
            return self._download(method, query) if "downloadid" in query else None
        meta = project.require(parts[3].lower())
        spec = parse_spec(query["partition"]) if query.get("partition") else {}
        if method == "POST" and "uploads" in query:
            return self._new_upload(project, meta, spec, query)
        if "uploadid" in query:
            return self._upload(method, project, meta, query, body)
        if method == "POST" and "downloads" in query:
            if meta.partition_columns and not spec:
                raise SqlError("InvalidPartitionSpec", "Partition required",
                               f"table {meta.name} is partitioned: a download names one partition")
            if spec:
                key = meta.spec_string(spec)
                with project.lock:
                    if not project.has_partition(meta.name, key):
                        raise SqlError("NoSuchPartition", "Partition not found", f"{meta.name} partition {key}")
            return self._new_download(meta.odps_schema(), meta.schema_doc(), project.read(meta, spec or None))
        if "downloadid" in query:
            return self._download(method, query)
        return None

    def _new_upload(self, project: Project, meta: TableMeta, spec: dict, query) -> Reply:
        if meta.partition_columns:
            key = meta.spec_string(spec)
            with project.lock:
                if not project.has_partition(meta.name, key) and query.get("create_partition") != "true":
                    raise SqlError("NoSuchPartition", "Partition not found", f"{meta.name} partition {key}")
        elif spec:
            meta.spec_string(spec)  # raises: not partitioned
        sid = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(8)
        sess = {"id": sid, "project": project.name, "table": meta.name, "spec": spec, "meta": meta, "blocks": {},
                "status": "normal", "overwrite": query.get("overwrite") == "true",
                "create_partition": query.get("create_partition") == "true", "lock": threading.Lock()}
        self._remember(self.uploads, sid, sess)
        return self._upload_doc(sess)

    @staticmethod
    def _upload_doc(sess: dict) -> Reply:
        return json_reply(200, {"UploadID": sess["id"], "Status": sess["status"], "QuotaName": "",
                                "UploadedBlockList": [{"BlockID": b} for b in sorted(sess["blocks"])],
                                "Schema": sess["meta"].schema_doc(), "MaxFieldSize": 8 * 1024 * 1024})

    def _upload(self, method, project: Project, meta: TableMeta, query, body) -> Reply | None:
        sess = self.uploads.get(query["uploadid"])
        if sess is None or sess["project"] != project.name or sess["table"] != meta.name:
            return error(404, "NoSuchUpload", f"upload session {query['uploadid']} not found")
        if method == "GET":
            return self._upload_doc(sess)
        if sess["status"] != "normal":
            return error(400, "InvalidStatusChange", f"upload session {sess['id']} is {sess['status']}")
        if method == "PUT" and "blockid" in query:
            schema = sess["meta"].odps_schema()
            rows = decode_arrow(schema, body) if "arrow" in query else decode_records(schema, body)
            with sess["lock"]:
                sess["blocks"][int(query["blockid"])] = rows
            return 200, {"x-odps-request-id": secrets.token_hex(12)}, b""
        if method == "POST":
            with sess["lock"]:
                blocks = [sess["blocks"][b] for b in sorted(sess["blocks"])]
                data = pa.concat_tables(blocks) if blocks else empty(sess["meta"].odps_schema())
                project.write(meta.name, data, sess["spec"], sess["overwrite"], sess["create_partition"])
                sess["status"], sess["blocks"] = "closed", {}
            return self._upload_doc(sess)
        return None

    def _new_download(self, schema, schema_doc: dict, rows, struct_ts: bool = False) -> Reply:
        did = time.strftime("%Y%m%d%H%M%S", time.gmtime()) + secrets.token_hex(8)
        sess = {"id": did, "schema": schema, "doc": schema_doc, "rows": rows, "struct_ts": struct_ts}
        self._remember(self.downloads, did, sess)
        return self._download_doc(sess)

    @staticmethod
    def _download_doc(sess: dict) -> Reply:
        return json_reply(200, {"DownloadID": sess["id"], "Status": "normal", "RecordCount": sess["rows"].num_rows,
                                "Schema": sess["doc"], "QuotaName": "", "SupportReadByRawSize": False})

    def _download(self, method, query) -> Reply | None:
        sess = self.downloads.get(query["downloadid"])
        if sess is None:
            return error(404, "NoSuchDownload", f"download session {query['downloadid']} not found")
        if method != "GET":
            return None
        if "data" not in query:
            return self._download_doc(sess)
        rows, schema = sess["rows"], sess["schema"]
        start, count = (int(x) for x in query.get("rowrange", f"(0,{rows.num_rows})").strip("()").split(","))
        rows = rows.slice(start, count)
        if query.get("columns"):
            wanted = [c.strip().lower() for c in query["columns"].split(",")]
            missing = [c for c in wanted if c not in rows.column_names]
            if missing:
                return error(400, "InvalidColumnSpec", f"unknown columns {missing}")
            if "arrow" in query:  # the Arrow reader keeps table order; the record reader the requested order
                wanted = [c for c in rows.column_names if c in wanted]
            rows = rows.select(wanted)
            schema = type(schema).from_lists(wanted, [str(schema[c].type) for c in wanted])
        data = encode_arrow(schema, rows, sess["struct_ts"]) if "arrow" in query else encode_records(schema, rows)
        return 200, {"Content-Type": "application/octet-stream", "x-odps-request-id": secrets.token_hex(12),
                     "odps-tunnel-record-count": str(rows.num_rows)}, data


def _csv_value(v, mc_type: str) -> str:
    if mc_type == "datetime":  # whole seconds: the format pyodps's CSV reader (and MaxCompute's result) uses
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)
