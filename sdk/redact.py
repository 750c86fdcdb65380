"""Credentials out of messages: every URL an error or a log line may print goes through ``redact_url``/``redact``.

Store URLs carry secrets in two places: the user-info (``redis://:pw@host``, ``user:pw@``) and the query string
(``?password=…``, ``?token=…``, ``?AccessKeySecret=…``). Both are replaced by ``***``; the scheme, user name, host,
port, path and the other query parameters stay, so the message still says which store it is about. A URL that
does not parse (a bad port, an unbalanced IPv6 bracket) is still redacted: the user-info is everything between
``://`` and the last ``@`` of the authority, whatever the rest holds.

``SkewlessError`` redacts its message on construction (sdk/errors.py), so no error skewless raises prints a secret
even when the URL came from a library's own message.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

MASK = "***"
# Query keys holding secrets, compared lower-cased without '-' and '_' (AccessKeySecret, access_key_secret,
# X-Amz-Signature, X-Amz-Security-Token, sessionToken ...).
_SECRET_WORDS = ("password", "passwd", "secret", "token", "signature", "credential", "apikey", "privatekey")
_SECRET_KEYS = {"pwd", "pass", "auth", "sig", "key", "accesskey"}
# A URL inside free text: a scheme, ://, then anything up to whitespace, a quote or a bracket that closes it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")


def _secret_key(key: str) -> bool:
    k = re.sub(r"[-_.]", "", key.lower())
    return k in _SECRET_KEYS or any(w in k for w in _SECRET_WORDS)


def _mask_authority(pre: str) -> str:
    """``[userinfo@]host[:port][/path]`` with the user-info masked. The user-info runs to the last '@' (a raw
    password may hold '/', '#' or '@'), unless that '@' is in a path and nothing before it looks like user:pass."""
    userinfo, at, host = pre.rpartition("@")
    if not at or ("/" in userinfo and ":" not in userinfo):
        return pre
    user, colon, _ = userinfo.partition(":")
    # user:pw@ keeps the user (it names who connects); a lone token (https://TOKEN@host) is masked whole
    return f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"


def _mask_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_secret_key(k) for k, _ in pairs):
        return query
    return urlencode([(k, MASK if _secret_key(k) else v) for k, v in pairs], safe="*")


def redact_url(url: str) -> str:
    """``url`` with its password/token (user-info and secret query parameters) replaced by ``***``. Split by
    hand rather than with ``urlsplit``, which rejects the malformed URLs (a bad port, an unbalanced IPv6 bracket)
    whose errors print them. Never raises."""
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    pre, q, query = rest.partition("?")
    query, h, fragment = query.partition("#")
    if not q and "@" not in pre.partition("#")[2]:  # a '#' after the last '@' starts a fragment
        pre, h, fragment = pre.partition("#")
    return f"{scheme}://{_mask_authority(pre)}{q}{_mask_query(query)}{h}{fragment}"


def redact(text: str) -> str:
    """``text`` with every URL in it redacted (``redact_url``)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


__all__ = ["MASK", "redact", "redact_url"]
