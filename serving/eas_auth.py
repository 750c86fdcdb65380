"""PAI-EAS request authentication, shared by the model server's EAS route and the local EAS emulator's gateway.

Three ``Authorization`` forms are accepted: the raw token, ``Bearer <token>``, and the signature Alibaba's
``eas_prediction`` client sends by default (``PredictClient`` with ``set_token`` and no ``custom_url``)::

    Authorization: EAS base64(HMAC-SHA1(token, "POST\\n" + Content-MD5 + "\\n" + Content-Type + "\\n" + Date
                                               + "\\n/api/predict/<service>"))

with ``Content-MD5`` the hex md5 of the body and ``Date`` as the client sent it. The signature covers the md5
header, so the body is checked against it too: a body swapped after signing fails. ``Date`` is not checked
against the clock: the client stamps ``datetime.now()`` (local time) labelled GMT, so it is off by the caller's UTC
offset, and any window wide enough for every time zone (over a day) would stop no replay worth stopping. The token
is compared in constant time in every form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

SIGNED_PREFIX = "eas "


def is_signed(authorization: str) -> bool:
    """Whether the header is the signed form (its check needs the body; the others do not)."""
    return authorization[:4].lower() == SIGNED_PREFIX


def token_ok(authorization: str, tokens: Iterable[str]) -> bool:
    """The raw or ``Bearer`` form: the header holds one of ``tokens``."""
    given = (authorization[7:] if authorization[:7].lower() == "bearer " else authorization).encode()
    if given:
        for t in tokens:  # a plain loop: this is on every request's path (a generator costs ~3x the compare)
            if hmac.compare_digest(given, t.encode()):
                return True
    return False


def signature(token: str, method: str, content_md5: str, content_type: str, date: str, resource: str) -> str:
    """The ``EAS`` signature of a request (without the prefix), as the official client computes it."""
    text = f"{method}\n{content_md5}\n{content_type}\n{date}\n{resource}".strip()
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def signature_ok(authorization: str, tokens: Iterable[str], *, method: str, resource: str,
                 headers: Mapping[str, str], body: bytes) -> bool:
    """The signed form: the body's md5 is the ``Content-MD5`` header and the signature is one of ``tokens``'.
    ``headers`` is looked up by lower-case name; ``resource`` is ``/api/predict/<service>`` as in the path."""
    given = authorization[4:].strip().encode()
    md5 = headers.get("content-md5", "")
    if not given or not hmac.compare_digest(md5.encode(), hashlib.md5(body, usedforsecurity=False).hexdigest().encode()):
        return False
    ctype, date = headers.get("content-type", ""), headers.get("date", "")
    return any(hmac.compare_digest(given, signature(t, method, md5, ctype, date, resource).encode())
               for t in tokens)


def authorized(authorization: str, tokens: Iterable[str], *, method: str, resource: str,
               headers: Mapping[str, str], body: bytes) -> bool:
    """Any of the three forms (the EAS gateway's whole check, body in hand)."""
    if is_signed(authorization):
        return signature_ok(authorization, tokens, method=method, resource=resource, headers=headers, body=body)
    return token_ok(authorization, tokens)
