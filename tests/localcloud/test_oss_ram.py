"""The OSS shim's RAM policy subset (skewless.localcloud.oss_ram): the decisions the enforcement test relies on, and
the ones around them (explicit Deny, negated and unknown conditions, what a multiple delete or a copy needs)."""

from __future__ import annotations

import json

import pytest

from skewless.localcloud import oss_ram

B = "acs:oss:*:*:b"
POLICY = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": ["oss:GetObject", "oss:PutObject"], "Resource": [f"{B}/v/*"]},
    {"Effect": "Allow", "Action": "oss:ListObjects", "Resource": B,
     "Condition": {"StringLike": {"oss:Prefix": ["v/", "v/*"]}}},
    {"Effect": "Deny", "Action": "oss:*", "Resource": f"{B}/v/secret*"}]}


def test_allow_deny_and_conditions():
    assert oss_ram.allowed(POLICY, "oss:GetObject", f"{B}/v/a", {})
    assert oss_ram.allowed(POLICY, "OSS:getobject", f"{B}/v/a", {})  # actions are case-insensitive
    assert not oss_ram.allowed(POLICY, "oss:GetObject", f"{B}/w/a", {})  # nothing matches: denied
    assert not oss_ram.allowed(POLICY, "oss:DeleteObject", f"{B}/v/a", {})
    assert not oss_ram.allowed(POLICY, "oss:GetObject", f"{B}/v/secret.txt", {})  # an explicit Deny wins
    assert oss_ram.allowed(POLICY, "oss:ListObjects", B, {"prefix": "v/_log/"})
    assert not oss_ram.allowed(POLICY, "oss:ListObjects", B, {"prefix": "w/"})
    assert not oss_ram.allowed(POLICY, "oss:ListObjects", B, {})  # no prefix: the condition cannot hold
    negated = {"Statement": [{"Effect": "Allow", "Action": "oss:ListObjects", "Resource": B,
                              "Condition": {"StringNotLike": {"oss:Prefix": "private/*"}}}]}
    assert oss_ram.allowed(negated, "oss:ListObjects", B, {"prefix": "public/"})
    assert not oss_ram.allowed(negated, "oss:ListObjects", B, {"prefix": "private/x"})
    unknown = {"Statement": [{"Effect": "Allow", "Action": "oss:ListObjects", "Resource": B,
                              "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}]}
    assert not oss_ram.allowed(unknown, "oss:ListObjects", B, {"prefix": "x"})  # outside the subset: grants nothing


def test_what_each_operation_needs():
    body = b"<Delete><Quiet>true</Quiet><Object><Key>v/a</Key></Object><Object><Key>w/b</Key></Object></Delete>"
    assert oss_ram.requests_of("DeleteMultipleObjects", "b", "", {"delete": ""}, {}, body) == [
        ("oss:DeleteObject", f"{B}/v/a"), ("oss:DeleteObject", f"{B}/w/b")]
    assert oss_ram.requests_of("CopyObject", "b", "v/new", {}, {"x-oss-copy-source": "/b/w/old"}, b"") == [
        ("oss:PutObject", f"{B}/v/new"), ("oss:GetObject", f"{B}/w/old")]
    assert oss_ram.requests_of("ListObjectsV2", "b", "", {}, {}, b"") == [("oss:ListObjects", B)]


def test_load_refuses_a_malformed_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"AK": {"secret": "s", "policy": POLICY}}))
    assert oss_ram.load(good)["AK"]["secret"] == "s"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"AK": {"policy": POLICY}}))
    with pytest.raises(ValueError, match="'AK' must be"):
        oss_ram.load(bad)
