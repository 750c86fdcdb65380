"""RAM policy enforcement for the OSS shim (``oss_shim``): extra access keys, each with the RAM policy of the RAM
user or role it stands for, checked on every request signed with that key.

    python -m skewless.localcloud.oss_shim --port P --moto URL --ram-policies keys.json
    keys.json: {"<access key id>": {"secret": "...", "policy": {"Version": "1", "Statement": [...]}}, ...}

Covered subset of RAM's policy language (what skewless generates, and the usual hand-written policy):
``Effect`` Allow / Deny (an explicit Deny wins, nothing matching is denied), ``Action`` and ``Resource`` as a string
or a list with ``*`` / ``?`` wildcards (actions case-insensitive), ``Condition`` with ``StringEquals``,
``StringNotEquals``, ``StringLike`` and ``StringNotLike`` on ``oss:Prefix`` and ``oss:Delimiter`` (listings). Any
other condition operator or key makes its statement not apply (so an Allow using one grants nothing). Not covered:
``NotAction`` / ``NotResource``, bucket policies, STS tokens, ``acs:SourceIp`` and the other global keys.

The shim's own dummy key (``test``) has no policy: it stays allowed everything. Resources are
``acs:oss:*:*:<bucket>`` (bucket operations) and ``acs:oss:*:*:<bucket>/<key>`` (object operations).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from xml.etree import ElementTree as ET

# shim operation -> the RAM action(s) it needs; object operations are checked on the object, the others on the bucket
ACTIONS = {
    "PutBucket": "oss:PutBucket", "DeleteBucket": "oss:DeleteBucket", "ListObjects": "oss:ListObjects",
    "ListObjectsV2": "oss:ListObjects", "ListMultipartUploads": "oss:ListMultipartUploads",
    "DeleteMultipleObjects": "oss:DeleteObject", "PutObject": "oss:PutObject", "CopyObject": "oss:PutObject",
    "UploadPart": "oss:PutObject", "InitiateMultipartUpload": "oss:PutObject",
    "CompleteMultipartUpload": "oss:PutObject", "AbortMultipartUpload": "oss:AbortMultipartUpload",
    "DeleteObject": "oss:DeleteObject", "ListParts": "oss:ListParts", "GetObject": "oss:GetObject",
    "HeadObject": "oss:GetObject", "GetObjectMeta": "oss:GetObject",
}
BUCKET_OPS = {"PutBucket", "DeleteBucket", "ListObjects", "ListObjectsV2", "ListMultipartUploads"}
CONDITION_KEYS = {"oss:Prefix": "prefix", "oss:Delimiter": "delimiter"}


def load(path: str | Path) -> dict[str, dict]:
    """``{access key id: {"secret", "policy"}}`` from a JSON file (a ValueError names what is wrong)."""
    doc = json.loads(Path(path).read_text())
    for key, entry in doc.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str) or \
                not isinstance(entry.get("policy"), dict) or not isinstance(entry["policy"].get("Statement"), list):
            raise ValueError(f"{path}: {key!r} must be {{'secret': str, 'policy': {{'Statement': [...]}}}}")
    return doc


def _list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _condition_holds(condition: dict, context: dict[str, str]) -> bool:
    for operator, checks in condition.items():
        for key, expected in checks.items():
            param = CONDITION_KEYS.get(key)
            if param is None or operator not in ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike"):
                return False  # outside the covered subset: the statement does not apply
            actual = context.get(param)
            if actual is None:
                return False
            like = operator in ("StringLike", "StringNotLike")
            hit = any(fnmatch.fnmatchcase(actual, e) if like else actual == e for e in _list(expected))
            if hit == operator.startswith("StringNot"):
                return False
    return True


def allowed(policy: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether ``policy`` lets ``action`` on ``resource`` (with the request's condition ``context``) through."""
    verdict = False
    for st in policy["Statement"]:
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(st.get("Action", []))):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _list(st.get("Resource", []))):
            continue
        if "Condition" in st and not _condition_holds(st["Condition"], context):
            continue
        if st.get("Effect") == "Deny":
            return False
        verdict = verdict or st.get("Effect") == "Allow"
    return verdict


def requests_of(op: str, bucket: str, key: str, params: dict[str, str], headers: dict[str, str],
                body: bytes) -> list[tuple[str, str]]:
    """The (action, resource) pairs one shim operation needs: a copy also reads its source; a multiple delete
    deletes each key its body names."""
    arn = f"acs:oss:*:*:{bucket}"
    if op in BUCKET_OPS:
        return [(ACTIONS[op], arn)]
    if op == "DeleteMultipleObjects":
        keys = [k.text or "" for k in ET.fromstring(body).iter() if k.tag.endswith("Key")]
        return [("oss:DeleteObject", f"{arn}/{k}") for k in keys]
    out = [(ACTIONS[op], f"{arn}/{key}")]
    if op == "CopyObject":
        from urllib.parse import unquote

        out.append(("oss:GetObject", f"acs:oss:*:*:{unquote(headers['x-oss-copy-source']).lstrip('/')}"))
    return out
