"""skewless.cloud_policies: the registry's permissions as Redis ACL rules and IAM / RAM policy documents, exactly
(the real servers enforcing them: tests/online/test_redis_acl_permissions.py, tests/adapters/aws/
test_iam_policies_enforced.py), and `skewless permissions export`."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app
from skewless.cloud_policies import cloud_policies, redis_rules, redis_username, tfvars, view_access
from skewless.config import StoreConfig
from skewless.errors import ConfigError

runner = CliRunner(env={"COLUMNS": "250"})
SCORING_ARN = "arn:aws:iam::123456789012:role/teams/scoring"
ETL_ARN = "arn:aws:iam::123456789012:user/etl"


def governed_repo(path, scoring_arn: str = SCORING_ARN) -> sk.FeatureStore:
    """Views loan_apps, loan_scores, payroll; service credit (loan_scores). scoring: read_online on loan_apps and
    the service, read_offline on loan_apps; etl: ingest on loan_*; admin: everything; nobody: no grant."""
    store = sk.init_repo(path, project="credit")
    customer = sk.Entity("customer", join_keys=["customer_id"])
    views = [sk.FeatureView(n, entities=[customer], schema=[sk.Field("customer_id", sk.Int64),
                                                            sk.Field("x", sk.Float64)])
             for n in ("loan_apps", "loan_scores", "payroll")]
    store.apply([customer, *views, sk.FeatureService("credit", features=[views[1]]),
                 sk.Principal("scoring", aws_iam=scoring_arn, alibaba_ram="acs:ram::1234:role/scoring"),
                 sk.Principal("etl", aws_iam=ETL_ARN, alibaba_ram="acs:ram::1234:user/etl"),
                 sk.Principal("admin"), sk.Principal("nobody", aws_iam="arn:aws:iam::123456789012:role/nobody"),
                 sk.Role("reader", ["read_online"]), sk.Role("analyst", ["read_offline"]),
                 sk.Role("writer", ["ingest"]),
                 sk.Role("owner", ["read_online", "read_offline", "ingest", "apply", "deploy", "view_ui"]),
                 sk.Grant("scoring_reads", role="reader", principals=["scoring"],
                          resources=["view:loan_apps", "service:credit"]),
                 sk.Grant("scoring_trains", role="analyst", principals=["scoring"], resources=["view:loan_apps"]),
                 sk.Grant("etl_writes", role="writer", principals=["etl"], resources=["view:loan_*"]),
                 sk.Grant("admins", role="owner", principals=["admin"])])
    return store


def on_clouds(config, scheme: str = "s3", online: str = "redis://h:6379/0"):
    return dataclasses.replace(config, registry=StoreConfig(f"{scheme}://data/registry"),
                               offline=StoreConfig(f"{scheme}://data/offline/"),
                               online=StoreConfig(online, {"key_prefix": "credit"}))


def test_view_access_follows_the_one_rule_with_services_giving_their_views(tmp_path):
    store = governed_repo(tmp_path / "repo")
    access = view_access(store.registry.state())
    assert access == {
        "admin": {"read_online": ["loan_apps", "loan_scores", "payroll"], "apply": True,
                  "read_offline": ["loan_apps", "loan_scores", "payroll"],
                  "ingest": ["loan_apps", "loan_scores", "payroll"]},
        "etl": {"read_online": [], "read_offline": [], "ingest": ["loan_apps", "loan_scores"], "apply": False},
        "nobody": {"read_online": [], "read_offline": [], "ingest": [], "apply": False},
        "scoring": {"read_online": ["loan_apps", "loan_scores"], "read_offline": ["loan_apps"], "ingest": [],
                    "apply": False}}


def test_redis_rules_per_access():
    read = ["resetchannels", "-@all", "+ping", "+client|setname", "+select", "+mget", "+hget", "+hmget"]
    assert redis_rules({"read_online": ["a", "b"], "ingest": []}, "p") == read + [
        "%R~p:a:{*", "%R~p:b:{*", "%R~p:__layouts"]
    writes = ["+set", "+mset", "+getrange", "+hset", "+hsetnx", "+hdel", "+hgetall", "+exists", "+hvals", "+pexpiretime",
              "+pexpireat", "+evalsha", "+script|load", "+multi", "+exec", "+rename", "+del", "+eval"]
    # reading one view and writing another: the written view read-write, the other read-only
    assert redis_rules({"read_online": ["a", "b"], "ingest": ["b"]}, "p") == read + writes + [
        "~p:b:{*", "%R~p:a:{*", "~p:__layouts", "~p:__meta"]
    assert redis_rules({"read_online": [], "ingest": []}, "p") == [
        "resetchannels", "-@all", "+ping", "+client|setname", "+select"]
    admin = redis_rules({"apply": True}, "p")
    assert admin[-1] == "~p:*" and "+scan" in admin and "+unlink" in admin
    tair = redis_rules({"read_online": ["a"], "ingest": ["a"]}, "p", "tair")
    assert {"+exhmget", "+exhget", "+exhset", "+exhdel"} <= set(tair)
    with pytest.raises(ConfigError, match="flavor"):
        redis_rules({}, "p", "memcached")


def _statement(sid, actions, resources):
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _listing(sid, action, resource, key, prefixes):
    return {"Sid": sid, "Effect": "Allow", "Action": [action], "Resource": [resource],
            "Condition": {"StringLike": {key: prefixes}}}


def test_iam_policy_documents_are_exactly_the_views_prefixes(tmp_path):
    store = governed_repo(tmp_path / "repo")
    policies = cloud_policies(store.registry.state(), on_clouds(store.config))
    assert policies["governed"] and policies["redis_key_prefix"] == "credit" and policies["online_flavor"] == "redis"
    p = policies["principals"]
    b = "arn:aws:s3:::data"
    assert p["scoring"]["aws"] == {
        "attach_to": {"kind": "role", "name": "scoring", "id": SCORING_ARN},
        "policy": {"Version": "2012-10-17", "Statement": [
            _statement("ReadOfflineViews", ["s3:GetObject"], [f"{b}/offline/loan_apps/*"]),
            _listing("ReadOfflineViewsList", "s3:ListBucket", b, "s3:prefix",
                     ["offline/loan_apps", "offline/loan_apps/*"]),
            _statement("ReadRegistry", ["s3:GetObject"], [f"{b}/registry/*"]),
            _listing("ReadRegistryList", "s3:ListBucket", b, "s3:prefix", ["registry", "registry/*"]),
            _statement("WriteAuditRecords", ["s3:PutObject"], [f"{b}/registry/audit/*"])]}}
    assert p["etl"]["aws"]["attach_to"] == {"kind": "user", "name": "etl", "id": ETL_ARN}
    assert p["etl"]["aws"]["policy"]["Statement"] == [
        _statement("IngestOfflineViews", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                   [f"{b}/offline/loan_apps/*", f"{b}/offline/loan_scores/*"]),
        _listing("IngestOfflineViewsList", "s3:ListBucket", b, "s3:prefix",
                 ["offline/loan_apps", "offline/loan_apps/*", "offline/loan_scores", "offline/loan_scores/*"]),
        _statement("ReadRegistry", ["s3:GetObject"], [f"{b}/registry/*"]),
        _listing("ReadRegistryList", "s3:ListBucket", b, "s3:prefix", ["registry", "registry/*"]),
        _statement("WriteAuditRecords", ["s3:PutObject"], [f"{b}/registry/audit/*"])]
    # a principal without a grant may only record its denials; one without a cloud identity gets Redis rules only
    assert p["nobody"]["aws"]["policy"]["Statement"] == [
        _statement("WriteAuditRecords", ["s3:PutObject"], [f"{b}/registry/audit/*"])]
    assert p["admin"]["aws"] is None
    assert p["admin"]["redis_rules"][-1] == "~credit:*"
    assert p["scoring"]["redis_user"] == "credit-scoring"
    assert p["scoring"]["redis_rules"][-3:] == ["%R~credit:loan_apps:{*", "%R~credit:loan_scores:{*",
                                                "%R~credit:__layouts"]
    # no RAM policy: the stores are not on OSS
    assert all(v["alibaba"] is None for v in p.values())


def test_ram_policy_documents_on_oss(tmp_path):
    store = governed_repo(tmp_path / "repo")
    p = cloud_policies(store.registry.state(), on_clouds(store.config, "oss", "tair://h:6379"))["principals"]
    assert p["scoring"]["alibaba"] == {
        "attach_to": {"kind": "role", "name": "scoring", "id": "acs:ram::1234:role/scoring"},
        "policy": {"Version": "1", "Statement": [
            _statement("ReadOfflineViews", ["oss:GetObject"], ["acs:oss:*:*:data/offline/loan_apps/*"]),
            _listing("ReadOfflineViewsList", "oss:ListObjects", "acs:oss:*:*:data", "oss:Prefix",
                     ["offline/loan_apps", "offline/loan_apps/*"]),
            _statement("ReadRegistry", ["oss:GetObject"], ["acs:oss:*:*:data/registry/*"]),
            _listing("ReadRegistryList", "oss:ListObjects", "acs:oss:*:*:data", "oss:Prefix",
                     ["registry", "registry/*"]),
            _statement("WriteAuditRecords", ["oss:PutObject"], ["acs:oss:*:*:data/registry/audit/*"])]}}
    assert p["etl"]["alibaba"]["attach_to"]["kind"] == "user"
    assert ["oss:GetObject", "oss:PutObject", "oss:DeleteObject"] == p["etl"]["alibaba"]["policy"]["Statement"][0][
        "Action"]
    assert all(v["aws"] is None for v in p.values())
    assert "+exhmget" in p["scoring"]["redis_rules"]


def test_an_open_registry_has_no_principal_and_bad_identities_are_refused(tmp_path):
    store = sk.init_repo(tmp_path / "open", project="credit")
    policies = cloud_policies(store.registry.state(), on_clouds(store.config))
    assert policies["governed"] is False and policies["principals"] == {}
    bad = governed_repo(tmp_path / "bad", scoring_arn="arn:aws:s3:::not-an-identity")
    with pytest.raises(ConfigError, match="principal 'scoring': aws_iam 'arn:aws:s3:::not-an-identity' is not a role"):
        cloud_policies(bad.registry.state(), on_clouds(bad.config))


def test_redis_usernames_fit_elasticache_user_ids():
    assert redis_username("credit", "etl_jobs") == "credit-etl-jobs"
    long = redis_username("p" * 30, "x" * 30)
    assert len(long) <= 40 and long[0].isalpha() and long != redis_username("p" * 30, "x" * 31)


def test_export_writes_the_tfvars_both_stacks_read(tmp_path):
    store = governed_repo(tmp_path / "repo")
    yaml_path = tmp_path / "repo" / "skewless.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("url: sqlite:///data/online.db",
                                                       "url: redis://127.0.0.1:1/0\n  options: {key_prefix: credit}"))
    out = tmp_path / "skewless_permissions.auto.tfvars.json"
    res = runner.invoke(app, ["permissions", "export", "--repo", str(tmp_path / "repo"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc) == {"skewless_permissions"} and set(doc["skewless_permissions"]) == {
        "admin", "etl", "nobody", "scoring"}
    scoring = doc["skewless_permissions"]["scoring"]
    policies = cloud_policies(store.registry.state(), sk.FeatureStore(tmp_path / "repo").config)
    assert scoring == tfvars(policies)["skewless_permissions"]["scoring"]
    assert scoring["redis_access_string"].startswith("on resetchannels -@all +ping")
    assert scoring["aws_policy_json"] is None  # the offline store is a local folder here: no S3 policy
    res = runner.invoke(app, ["permissions", "export", "--repo", str(tmp_path / "repo"), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.output)["principals"]["etl"]["ingest"] == ["loan_apps",
                                                                                          "loan_scores"]
    res = runner.invoke(app, ["permissions", "export", "--repo", str(tmp_path / "repo"), "--format", "yaml"])
    assert res.exit_code == 1 and "--format must be tfvars or json" in res.output
    res = runner.invoke(app, ["permissions", "export", "--repo", str(tmp_path / "repo"), "-o",
                              str(tmp_path / "missing" / "x.json")])
    assert res.exit_code == 1 and "error: ConfigError: cannot write" in res.output
    assert not (tmp_path / "missing").exists()
