"""An Alibaba OSS front for moto's S3: the native OSS protocol, as ``oss2`` speaks it, on loopback.

    python -m skewless.localcloud.oss_shim --port 5056 --moto http://127.0.0.1:5055

Point ``oss2.Bucket(auth, "http://127.0.0.1:5056", bucket, region=...)`` at it (an IP endpoint makes oss2 use path-style
URLs). Objects live in moto's S3 (buckets made through either side are the same buckets). Covered, exactly:

    bucket:  PutBucket (configuration body ignored), DeleteBucket, GetBucket (ListObjects), ListObjectsV2,
             DeleteMultipleObjects, ListMultipartUploads
    object:  PutObject, CopyObject, GetObject (Range, response-* overrides), HeadObject, GetObjectMeta, DeleteObject,
             InitiateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts
    headers: x-oss-meta-* both ways, x-oss-forbid-overwrite (PutObject, CopyObject, InitiateMultipartUpload,
             CompleteMultipartUpload), x-oss-copy-source, x-oss-metadata-directive, x-oss-storage-class: Standard;
             answers carry x-oss-request-id, x-oss-object-type, x-oss-hash-crc64ecma (PutObject, UploadPart,
             whole-object GetObject), and listings honour encoding-type=url
    auth:    header signatures V1 (``OSS ak:sig``) and V4 (``OSS4-HMAC-SHA256``), verified against the dummy pair
             ``test``/``test``: an unknown key is InvalidAccessKeyId, a wrong signature SignatureDoesNotMatch (403);
             an unsigned request is AccessDenied (buckets are private). x-oss-security-token is accepted unchecked.
             ``--ram-policies``: extra keys, each with a RAM policy deciding its requests (``oss_ram``: a subset).
    GET /_shim/health: the shim's own liveness (200 when moto answers too)

Anything else is refused loudly: other subresources (acl, tagging, append, symlink, ...), other x-oss-* request
headers, V2 signatures and presigned URLs answer 501 ``NotImplemented`` naming what was asked. Not emulated: the
request-time skew check, CRC on CompleteMultipartUpload (oss2 then skips that one comparison), OSS error ``EC`` codes.

What moto's S3 lacks for oss2, and what the shim does about it: S3 XML carries a namespace (stripped); listings need
a ``<Type>`` per object (added: Multipart for multipart ETags, else Normal); an empty ``continuation-token`` (oss2
always sends one) is rejected by S3 (empty listing parameters are dropped); metadata headers are x-amz-* (mapped
both ways); moto's conditional create is check-then-write without a lock, so ``x-oss-forbid-overwrite: true`` is
made atomic here: every write to a key holds that key's lock (striped) across the existence check and the write.
It is atomic for writes through this shim (not for writes made on moto directly). A refused create is OSS's
``409 FileAlreadyExists``. Requests go on to moto signed with SigV4 for the same dummy pair.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import logging
import sys
import threading
import uuid
import zlib
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

from . import oss_ram
from .emulator_http import HOST, Reply, serve

log = logging.getLogger("skewless.localcloud.oss_shim")
CREDENTIALS = {"test": "test"}  # access key id -> secret: the local cloud's dummy pair
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_LIST_PARAMS = {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}
_LIST_V2_PARAMS = {"list-type", "prefix", "delimiter", "continuation-token", "start-after", "fetch-owner", "max-keys",
                   "encoding-type"}
_UPLOADS_PARAMS = {"uploads", "prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads", "encoding-type"}
_RESPONSE_PARAMS = {"response-content-type", "response-content-language", "response-expires", "response-cache-control",
                    "response-content-disposition", "response-content-encoding"}
# Request headers passed on as they are, and the x-oss-* ones that only matter to the shim itself.
_PASS = {"content-type", "content-md5", "range", "if-match", "if-none-match", "if-modified-since",
         "if-unmodified-since", "cache-control", "content-disposition", "content-encoding", "expires"}
_CONSUMED = {"x-oss-date", "x-oss-content-sha256", "x-oss-security-token", "x-oss-forbid-overwrite"}
_MAPPED = {"x-oss-copy-source": "x-amz-copy-source", "x-oss-metadata-directive": "x-amz-metadata-directive"}
_ANSWER = {"etag", "last-modified", "content-type", "content-range", "accept-ranges", "cache-control",
           "content-disposition", "content-encoding", "content-language", "expires"}
# Elements that carry keys, url-encoded when the request asked for encoding-type=url (per operation).
_ENCODED = {"ListObjects": ["Contents/Key", "CommonPrefixes/Prefix", "Prefix", "Marker", "NextMarker", "Delimiter"],
            "ListObjectsV2": ["Contents/Key", "CommonPrefixes/Prefix", "Prefix", "StartAfter", "Delimiter",
                              "NextContinuationToken", "ContinuationToken"],
            "ListMultipartUploads": ["Upload/Key", "CommonPrefixes/Prefix", "Prefix", "KeyMarker", "NextKeyMarker",
                                     "Delimiter"],
            "DeleteMultipleObjects": ["Deleted/Key"]}


class OssFault(Exception):
    """An OSS error answer: ``<Error><Code>..</Code><Message>..</Message>...``."""

    def __init__(self, status: int, code: str, message: str, **extra: str):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _unsupported(what: str) -> OssFault:
    return OssFault(501, "NotImplemented", f"the local OSS shim does not implement {what}")


def _v4_quote(text: str, keep_slash: bool) -> str:
    return quote(text, safe="-_.~" + ("/" if keep_slash else ""))


def _crc64(data: bytes) -> str:
    """OSS's x-oss-hash-crc64ecma: CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones init and xor-out)."""
    import crcmod  # oss2's own dependency, with a C extension

    return str(crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)(data))


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes):
        parts = urlsplit(target)
        self.method, self.body = method, body
        self.headers = {k.lower(): v.strip() for k, v in headers.items()}
        self.bucket, _, self.key = unquote(parts.path[1:]).partition("/")
        self.params = dict(parse_qsl(parts.query, keep_blank_values=True))


class OssShim:
    def __init__(self, moto_url: str, ram: dict[str, dict] | None = None):
        self.ram = ram or {}  # access key id -> {"secret", "policy"} (oss_ram)
        parts = urlsplit(moto_url)
        self.moto_url = moto_url.rstrip("/")
        self.moto_host, self.moto_port = parts.hostname or HOST, parts.port or 80
        self._locks = [threading.Lock() for _ in range(64)]

    # -- the HTTP entry point -----------------------------------------------------------------------------------
    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        request_id = uuid.uuid4().hex[:24].upper()
        req = Request(method, target, headers, body)
        try:
            if req.bucket == "_shim" and req.key == "health":
                ok = self._moto("GET", "/moto-api/", {}, b"")[0] == 200
                return (200 if ok else 503), {"Content-Type": "text/plain"}, b"ok" if ok else b"moto is not answering"
            status, out_headers, data = self._operation(req, self._authenticate(req))
        except OssFault as fault:
            status, out_headers, data = self._error(fault, req, request_id)
        except OSError as exc:  # moto itself is unreachable
            status, out_headers, data = self._error(OssFault(503, "ServiceUnavailable", f"moto: {exc}"), req,
                                                    request_id)
        except Exception as exc:  # a shim bug still answers as OSS would, loudly
            log.exception("oss shim error")
            status, out_headers, data = self._error(OssFault(500, "InternalError", repr(exc)), req, request_id)
        out_headers.update({"x-oss-request-id": request_id, "Server": "AliyunOSS"})
        return status, out_headers, data

    @staticmethod
    def _error(fault: OssFault, req: Request, request_id: str) -> Reply:
        root = ET.Element("Error")
        for tag, text in (("Code", fault.code), ("Message", fault.message), ("RequestId", request_id),
                          ("HostId", f"{req.bucket}.oss-local" if req.bucket else "oss-local"), *fault.extra.items()):
            ET.SubElement(root, tag).text = text
        data = b"" if req.method == "HEAD" else _xml(root)
        return fault.status, {"Content-Type": "application/xml"}, data

    # -- authentication (the server side of oss2's signers) ------------------------------------------------------
    def _authenticate(self, req: Request) -> str:
        """The access key id of a correctly signed request."""
        auth = req.headers.get("authorization", "")
        if {"OSSAccessKeyId", "x-oss-signature", "Signature"} & set(req.params):
            raise _unsupported("presigned URLs")
        if auth.startswith("OSS4-HMAC-SHA256 "):
            return self._verify_v4(req, auth)
        elif auth.startswith("OSS "):
            return self._verify_v1(req, auth)
        elif auth.startswith("OSS2 "):
            raise _unsupported("V2 signatures (use oss2.Auth or oss2.AuthV4)")
        else:
            raise OssFault(403, "AccessDenied", "You have no right to access this object because of bucket acl.")

    def _secret(self, access_key_id: str) -> str:
        secret = CREDENTIALS.get(access_key_id) or self.ram.get(access_key_id, {}).get("secret")
        if secret is None:
            raise OssFault(403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our "
                                                       "records.", OSSAccessKeyId=access_key_id)
        return secret

    @staticmethod
    def _mismatch() -> OssFault:
        return OssFault(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                      "signature you provided. Check your key and signing method.")

    def _verify_v4(self, req: Request, auth: str) -> str:
        try:
            fields = dict(part.strip().split("=", 1) for part in auth[len("OSS4-HMAC-SHA256 "):].split(","))
            access_key_id, date, region, product, terminal = fields["Credential"].split("/")
        except (KeyError, ValueError):
            raise OssFault(400, "InvalidArgument", "malformed OSS4-HMAC-SHA256 Authorization header") from None
        secret = self._secret(access_key_id)
        additional = sorted(h for h in fields.get("AdditionalHeaders", "").split(";") if h)
        signed = sorted((k, v) for k, v in req.headers.items()
                        if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional)
        query = "&".join(k if not v else f"{k}={v}" for k, v in sorted(
            (_v4_quote(k, False), _v4_quote(v, False)) for k, v in req.params.items()))
        uri = _v4_quote(f"/{req.bucket}/{req.key}" if req.bucket else "/", True)
        canonical = "\n".join([req.method, uri, query, "".join(f"{k}:{v}\n" for k, v in signed), ";".join(additional),
                               req.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")])
        scope = f"{date}/{region}/{product}/{terminal}"
        to_sign = "\n".join(["OSS4-HMAC-SHA256", req.headers.get("x-oss-date", ""), scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("aliyun_v4" + secret).encode()
        for part in (date, region, product, terminal):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            raise self._mismatch()
        return access_key_id

    def _verify_v1(self, req: Request, auth: str) -> str:
        from oss2.auth import ProviderAuth  # the protocol's list of signed subresources

        access_key_id, _, signature = auth[len("OSS "):].rpartition(":")
        secret = self._secret(access_key_id)
        oss_headers = "".join(f"{k}:{v}\n" for k, v in sorted(req.headers.items()) if k.startswith("x-oss-"))
        sub = sorted((k, v) for k, v in req.params.items() if k in ProviderAuth._subresource_key_set)
        resource = (f"/{req.bucket}/{req.key}" if req.bucket else "/") + \
            ("?" + "&".join(f"{k}={v}" if v else k for k, v in sub) if sub else "")
        to_sign = "\n".join([req.method, req.headers.get("content-md5", ""), req.headers.get("content-type", ""),
                             req.headers.get("x-oss-date") or req.headers.get("date", ""), oss_headers + resource])
        expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise self._mismatch()
        return access_key_id

    # -- operations --------------------------------------------------------------------------------------------
    def _operation(self, req: Request, access_key_id: str) -> Reply:
        if not req.bucket:
            raise _unsupported(f"{req.method} / (ListBuckets and other service-level calls)")
        op, allowed = self._classify(req)
        extra = set(req.params) - allowed
        if extra:
            raise _unsupported(f"{op} with {sorted(extra)}")
        entry = self.ram.get(access_key_id)
        if entry is not None:  # a key with a RAM policy (oss_ram): every action the operation needs must be allowed
            for action, resource in oss_ram.requests_of(op, req.bucket, req.key, req.params, req.headers, req.body):
                if not oss_ram.allowed(entry["policy"], action, resource, req.params):
                    raise OssFault(403, "AccessDenied", f"You are not authorized to do {action} on {resource} "
                                                        "(RAM policy).")
        headers = self._request_headers(req)
        if req.headers.get("x-oss-storage-class", "Standard") != "Standard":
            raise _unsupported(f"x-oss-storage-class {req.headers['x-oss-storage-class']}")
        forbid = req.headers.get("x-oss-forbid-overwrite", "false").lower() == "true"
        if op in ("PutObject", "CopyObject", "CompleteMultipartUpload"):
            with self._locks[zlib.crc32(f"{req.bucket}/{req.key}".encode()) % len(self._locks)]:
                if forbid:
                    self._refuse_if_exists(req)
                return self._forward(op, req, headers)
        if op == "InitiateMultipartUpload" and forbid:
            self._refuse_if_exists(req)  # an early answer; the atomic check is at completion
        return self._forward(op, req, headers)

    @staticmethod
    def _classify(req: Request) -> tuple[str, set[str]]:
        m, p = req.method, req.params
        if not req.key:
            if m == "PUT" and not p:
                return "PutBucket", set()
            if m == "DELETE" and not p:
                return "DeleteBucket", set()
            if m == "GET" and p.get("list-type") == "2":
                return "ListObjectsV2", _LIST_V2_PARAMS
            if m == "GET" and "uploads" in p:
                return "ListMultipartUploads", _UPLOADS_PARAMS
            if m == "GET" and set(p) <= _LIST_PARAMS:
                return "ListObjects", _LIST_PARAMS
            if m == "POST" and "delete" in p:
                return "DeleteMultipleObjects", {"delete", "encoding-type"}
            raise _unsupported(f"bucket operation {m} ?{'&'.join(sorted(p))}")
        if m == "PUT" and "uploadId" in p:
            if "x-oss-copy-source" in req.headers:
                raise _unsupported("UploadPartCopy")
            return "UploadPart", {"uploadId", "partNumber"}
        if m == "PUT":
            return ("CopyObject" if "x-oss-copy-source" in req.headers else "PutObject"), set()
        if m == "POST" and "uploads" in p:
            return "InitiateMultipartUpload", {"uploads", "encoding-type"}
        if m == "POST" and "uploadId" in p:
            return "CompleteMultipartUpload", {"uploadId", "encoding-type"}
        if m == "DELETE":
            return ("AbortMultipartUpload", {"uploadId"}) if "uploadId" in p else ("DeleteObject", set())
        if m == "GET" and "uploadId" in p:
            return "ListParts", {"uploadId", "max-parts", "part-number-marker", "encoding-type"}
        if m == "GET":
            return "GetObject", _RESPONSE_PARAMS
        if m == "HEAD":
            return ("GetObjectMeta" if "objectMeta" in p else "HeadObject"), {"objectMeta"}
        raise _unsupported(f"object operation {m} ?{'&'.join(sorted(p))}")

    @staticmethod
    def _request_headers(req: Request) -> dict[str, str]:
        out = {}
        for k, v in req.headers.items():
            if k in _PASS:
                out[k] = v
            elif k.startswith("x-oss-meta-"):
                out["x-amz-meta-" + k[len("x-oss-meta-"):]] = v
            elif k in _MAPPED:
                out[_MAPPED[k]] = v
            elif k.startswith("x-oss-") and k not in _CONSUMED and k != "x-oss-storage-class":
                raise _unsupported(f"the request header {k}")
        return out

    def _refuse_if_exists(self, req: Request) -> None:
        status = self._moto("HEAD", self._path(req.bucket, req.key), {}, b"")[0]
        if status == 200:
            raise OssFault(409, "FileAlreadyExists", "The object you specified already exists and can not be "
                                                     "overwritten.")
        if status != 404:
            raise OssFault(503, "ServiceUnavailable", f"moto answered {status} to the existence check")

    # -- moto ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _path(bucket: str, key: str = "") -> str:
        return "/" + quote(bucket) + ("/" + quote(key, safe="/~") if key else "")

    def _moto(self, method: str, target: str, headers: dict[str, str], body: bytes):
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        request = AWSRequest(method=method, url=self.moto_url + target, data=body, headers=headers)
        S3SigV4Auth(Credentials("test", "test"), "s3", "us-east-1").add_auth(request)
        conn = http.client.HTTPConnection(self.moto_host, self.moto_port, timeout=120)
        try:
            conn.request(method, target, body=body or None, headers=dict(request.headers.items()))
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def _forward(self, op: str, req: Request, headers: dict[str, str]) -> Reply:
        params = {k: v for k, v in req.params.items() if k != "encoding-type" and not (
            v == "" and k in _LIST_PARAMS | _LIST_V2_PARAMS | _UPLOADS_PARAMS and k != "uploads")}
        if op == "GetObjectMeta":
            params.pop("objectMeta")
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" if v else quote(k, safe="")
                         for k, v in params.items())
        target = self._path(req.bucket, req.key) + ("?" + query if query else "")
        status, moto_headers, data = self._moto(req.method, target, headers, req.body)
        if status >= 300:
            raise self._translate_error(status, data, req)
        out = {}
        for k, v in moto_headers.items():
            if k in _ANSWER and (k != "content-type" or data or req.method == "HEAD"):
                out[k] = v
            elif k.startswith("x-amz-meta-"):
                out["x-oss-meta-" + k[len("x-amz-meta-"):]] = v
        if req.method == "HEAD":
            out["Content-Length"] = moto_headers.get("content-length", "0")
        if op in ("GetObject", "HeadObject", "GetObjectMeta"):
            out["x-oss-object-type"] = "Multipart" if "-" in moto_headers.get("etag", "") else "Normal"
        if op in ("PutObject", "UploadPart") or (op == "GetObject" and status == 200 and "range" not in req.headers):
            out["x-oss-hash-crc64ecma"] = _crc64(req.body if req.method == "PUT" else data)
        if data.lstrip().startswith(b"<"):
            data = self._rewrite_xml(op, data, req.params.get("encoding-type") == "url")
            out["content-type"] = "application/xml"
        return status, out, data

    @staticmethod
    def _translate_error(status: int, data: bytes, req: Request) -> OssFault:
        code, message, extra = {404: "NoSuchKey", 403: "AccessDenied"}.get(status, "InternalError"), "", {}
        if data.strip():
            root = _strip(ET.fromstring(data))
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
            extra = {t: root.findtext(t) for t in ("Key", "BucketName", "UploadId") if root.findtext(t)}
        elif status == 404 and not req.key:
            code = "NoSuchBucket"
        return OssFault(status, code, message or code, **extra)

    @staticmethod
    def _rewrite_xml(op: str, data: bytes, url_encoded: bool) -> bytes:
        root = _strip(ET.fromstring(data))
        if op in ("ListObjects", "ListObjectsV2"):
            for obj in root.findall("Contents"):
                etag = obj.findtext("ETag") or ""
                ET.SubElement(obj, "Type").text = "Multipart" if "-" in etag else "Normal"
                storage = obj.find("StorageClass")
                if storage is not None and storage.text == "STANDARD":
                    storage.text = "Standard"
        if url_encoded and op in _ENCODED:
            for path in _ENCODED[op]:
                for node in root.findall(path):
                    node.text = quote(node.text or "", safe="")
            if root.find("EncodingType") is None:
                ET.SubElement(root, "EncodingType").text = "url"
        return _xml(root)


def _strip(root: ET.Element) -> ET.Element:
    """The same document without S3's namespace (oss2 looks elements up by their bare names)."""
    for node in root.iter():
        if node.tag.startswith(_S3_NS):
            node.tag = node.tag[len(_S3_NS):]
    return root


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


# -- as a local-cloud service ------------------------------------------------------------------------------------
def service(state):
    """The shim as a ``Service`` named ``oss`` (port ``SKEWLESS_LOCAL_OSS_PORT``, default 5056), in front of the
    local cloud's moto (which must be up first: ``LocalCloud`` starts it before this one)."""
    from .ports import http_ok, service_port
    from skewless.process import Service

    port = service_port("oss")

    def command() -> list[str]:
        return [sys.executable, "-m", "skewless.localcloud.oss_shim", "--port", str(port),
                "--moto", f"http://{HOST}:{service_port('moto')}"]

    return Service("oss", HOST, port, command,
                   lambda s: http_ok(f"http://{s.host}:{s.port}/_shim/health") is not None, start_timeout=30,
                   cwd=state)


def main() -> None:
    ap = argparse.ArgumentParser(description="An OSS-protocol front for moto's S3")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--moto", required=True, help="moto server's URL, e.g. http://127.0.0.1:5055")
    ap.add_argument("--ram-policies", help="JSON {access key id: {secret, policy}}: extra keys whose requests the "
                                           "RAM policy decides (oss_ram)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    serve(OssShim(args.moto, oss_ram.load(args.ram_policies) if args.ram_policies else None).dispatch, args.port,
          lambda: None)


if __name__ == "__main__":
    main()
