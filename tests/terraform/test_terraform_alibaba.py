"""CI checks of the Alibaba Cloud Terraform (infra/terraform/alibaba, infra/terraform/modules/alicloud-*): canonical
formatting, the layout conventions, Terraform's own loader on every module, example and the stack, a reference check
(the part of `terraform validate` that needs no provider), checkov with the project's own Alibaba policies, and
`skewless config from-terraform` on an outputs file shaped like this stack's `terraform output -json`.

No aliyun/alicloud provider binary can be installed here, so nothing is applied and no provider schema validates
argument names: see infra/terraform/README.md (Alibaba) for what that leaves to review.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.support import terraform_checks as tc
from tests.support.paths import FIXTURES
from skewless import config as config_mod
from skewless.cli.main import app
from skewless.errors import ConfigError
from skewless.localcloud import terraform as tfm
from skewless.store import FeatureStore

STACK = tc.ALIBABA
OUTPUTS = FIXTURES / "terraform_alibaba_outputs.json"
POLICIES = tc.TF / "checkov"
MODULES = {"alicloud-vpc", "alicloud-oss", "alicloud-maxcompute", "alicloud-tair", "alicloud-cr", "alicloud-ram",
           "alicloud-pai-eas"}
runner = CliRunner(env={"COLUMNS": "250"})


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"  # the breakage must really be made
    path.write_text(text.replace(old, new))


# -- static checks -----------------------------------------------------------------------------------------------
def test_terraform_fmt_is_canonical():
    unformatted = [f for d in STACK.dirs() for f in tfm.fmt_check(d)]
    assert unformatted == [], "run: python -m skewless.localcloud.terraform fmt -recursive infra/terraform"


def test_layout_typed_described_variables_and_declared_provider_versions():
    assert {d.name for d in STACK.dirs()[1:]} == MODULES
    assert tc.layout_problems(STACK) == []


def test_layout_check_reports_what_it_checks(tmp_path):
    copy = tc.copy_stack(STACK, tmp_path)
    _edit(copy / "modules/alicloud-tair/variables.tf", '  description = "Port Tair listens on."\n', "")
    _edit(copy / "modules/alicloud-cr/examples/basic/versions.tf", '"aliyun/alicloud"', '"hashicorp/alicloud"')
    problems = tc.layout_problems(STACK, copy)
    assert any("variable port lacks" in p for p in problems)
    assert any("alicloud-cr/examples/basic/versions.tf does not declare aliyun/alicloud" in p for p in problems)


def test_every_module_stack_and_example_loads_with_terraform(tmp_path):
    """Terraform's own configuration loader (`terraform get` + `terraform providers`) on each root: the stack, its
    example and one example per module; each module is also loaded as the stack's child."""
    copy = tc.copy_stack(STACK, tmp_path / "tf")
    reports = tc.load_roots(STACK.roots(copy))
    assert len(reports) == 9
    called = {m for r in reports.values() for m in re.findall(r"module\.(\w+)", r)}
    assert called >= {"network", "data", "offline", "tair", "registry", "serving_role", "serving", "skewless"}
    for directory, report in reports.items():
        # aliyun/alicloud only: a root that configured `provider "alicloud"` without declaring its source would
        # silently require hashicorp/alicloud instead
        assert tc.provider_constraints(report) == {STACK.provider: {STACK.constraint()}}, (directory, report)


def test_a_broken_configuration_does_not_load(tmp_path):
    copy = tc.copy_stack(STACK, tmp_path / "tf")
    _edit(copy / "alibaba/main.tf", "  instance_class      = var.tair_instance_class",
          "  instance_clas       = var.tair_instance_class")
    with pytest.raises(tfm.TerraformError, match="Unsupported argument"):
        tc.load_roots([copy / "alibaba"])


def test_every_reference_names_something():
    problems = [p for d in STACK.tf_dirs() for p in tc.reference_problems(d)]
    assert problems == []


def test_the_reference_check_finds_what_the_loader_lets_through(tmp_path):
    copy = tc.copy_stack(STACK, tmp_path / "tf")
    stack = copy / "alibaba"
    _edit(stack / "main.tf", "= var.tair_instance_class", "= var.tair_instance_klass")
    _edit(stack / "outputs.tf", "module.tair.host", "module.tair.hostname")
    _edit(stack / "main.tf", "tair_cidr_block = local.network.cidr_block", "tair_cidr_block = local.netwrk.cidr_block")
    oss = copy / "modules/alicloud-oss"
    _edit(oss / "main.tf", "alicloud_oss_bucket.this.bucket\n  acl", "alicloud_oss_bucket.that.bucket\n  acl")
    tc.load_roots([stack])  # Terraform's loader resolves no expression: all of these load
    assert tc.reference_problems(stack) == ["alibaba: local.netwrk is not declared",
                                            "alibaba: module.tair has no output hostname",
                                            "alibaba: var.tair_instance_klass is not declared"]
    assert tc.reference_problems(oss) == ["alicloud-oss: alicloud_oss_bucket.that is not declared"]


# -- checkov ------------------------------------------------------------------------------------------------------
def test_checkov_has_no_failures_and_every_suppression_is_explained(tmp_path):
    report = tfm.run_checkov(tc.copy_stack(STACK, tmp_path), external_checks=POLICIES)
    assert tc.checkov_problems(report, (tc.TF / "README.md").read_text()) == []
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    # checkov's own Alibaba checks and every project policy ran on the stack's resources
    own = {yaml.safe_load(p.read_text())["metadata"]["id"] for p in POLICIES.glob("*.yaml")}
    assert len(own) == 7 and own | {"CKV_ALI_1", "CKV_ALI_10"} <= passed
    assert {c["check_id"] for c in report["results"]["skipped_checks"]} == {"CKV_ALI_6", "CKV_ALI_11", "CKV_ALI_12"}


def test_checkov_with_the_project_policies_fails_an_insecure_copy(tmp_path):
    copy = tc.copy_stack(STACK, tmp_path)
    modules = copy / "modules"
    _edit(modules / "alicloud-tair/main.tf", '"Enable"', '"Disable"')
    _edit(modules / "alicloud-tair/main.tf", 'join(",", var.allowed_cidr_blocks)', '"0.0.0.0/0"')
    _edit(modules / "alicloud-tair/main.tf", 'vpc_auth_mode      = "Open"', 'vpc_auth_mode      = "Close"')
    _edit(modules / "alicloud-cr/main.tf", 'default_visibility = "PRIVATE"', 'default_visibility = "PUBLIC"')
    _edit(modules / "alicloud-cr/main.tf", 'repo_type   = "PRIVATE"', 'repo_type   = "PUBLIC"')
    _edit(modules / "alicloud-oss/main.tf", 'acl    = "private"', 'acl    = "public-read"')
    _edit(modules / "alicloud-oss/main.tf", "block_public_access = true", "block_public_access = false")
    _edit(modules / "alicloud-maxcompute/main.tf", "enable    = true", "enable    = false")
    report = tfm.run_checkov(copy, external_checks=POLICIES)
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failed == {"CKV_ALI_1", *(f"CKV2_SKEWLESS_{i}" for i in range(1, 8))}


# -- outputs -> skewless.yaml ----------------------------------------------------------------------------------------
def _config_keys(outputs_tf: Path) -> set[str]:
    body = tc.blocks(outputs_tf.read_text(), "output")["skewless_config"]
    return set(re.findall(r"^    (\w+)\s*=", body, re.M))


def test_the_outputs_fixture_mirrors_the_stack_and_has_the_aws_shape():
    outputs = json.loads(OUTPUTS.read_text())
    assert set(outputs) == set(tc.blocks((tc.TF / "alibaba/outputs.tf").read_text(), "output"))
    assert all(set(o) == {"sensitive", "type", "value"} for o in outputs.values())
    keys = _config_keys(tc.TF / "alibaba/outputs.tf")
    assert set(outputs["skewless_config"]["value"]) == keys
    aws = _config_keys(tc.TF / "aws/outputs.tf")
    # the same keys as the AWS stack's (Glue is AWS's own), plus the optional ones sdk/tfconfig.py documents
    assert keys - aws == {"maxcompute_project", "offline_storage_options", "online_options"}
    assert aws - keys == {"glue_database"}


def test_from_terraform_writes_a_loadable_alibaba_config_without_secrets(tmp_path, monkeypatch):
    outputs = json.loads(OUTPUTS.read_text())
    outputs["tair_password"] = {"sensitive": True, "type": "string", "value": "Sup3r-Secret+pw"}  # must never leak
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(outputs))
    repo = tmp_path / "repo"
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(repo)])
    assert res.exit_code == 0, res.output
    assert "SKEWLESS_TAIR_PASSWORD" in res.output  # tells the user what to set
    text = (repo / "skewless.yaml").read_text()
    assert "Sup3r-Secret+pw" not in text and "Sup3r-Secret+pw" not in res.output
    bucket = outputs["bucket_name"]["value"]
    assert yaml.safe_load(text) == {
        "project": "credit_scoring",
        "registry": {"url": f"oss://{bucket}/registry",
                     "options": {"endpoint": "https://oss-cn-hangzhou.aliyuncs.com", "region": "cn-hangzhou"}},
        "offline": {"url": "maxcompute://skewless_prod_features", "engine": "maxcompute",
                    "storage_options": {"endpoint": "https://service.cn-hangzhou.maxcompute.aliyun.com/api"}},
        "online": {"url": "tair://r-bp1k3x7m9q2w4e6r8t.redis.rds.aliyuncs.com:6379/0",
                   "options": {"key_prefix": "credit_scoring", "tls": True, "password": "${SKEWLESS_TAIR_PASSWORD}"}}}
    with pytest.raises(ConfigError, match="SKEWLESS_TAIR_PASSWORD"):
        config_mod.load(repo)
    monkeypatch.setenv("SKEWLESS_TAIR_PASSWORD", "from-the-environment")
    cfg = config_mod.load(repo)
    assert cfg.engine == "maxcompute" and cfg.offline.url == "maxcompute://skewless_prod_features"
    assert cfg.offline.options == {"endpoint": "https://service.cn-hangzhou.maxcompute.aliyun.com/api"}
    assert cfg.registry.options == {"endpoint": "https://oss-cn-hangzhou.aliyuncs.com", "region": "cn-hangzhou"}
    assert cfg.online.options["password"] == "from-the-environment" and cfg.online.options["tls"] is True
    _assert_adapters_accept(repo, monkeypatch, online="TairOnlineStore", offline="MaxComputeOfflineStore",
                            engine="MaxComputeEngine", registry="OSSRegistryStore")


def _assert_adapters_accept(repo: Path, monkeypatch, **expected: str) -> None:
    """The adapters skewless.yaml names take its URLs and options (each checks them when built; none touches the
    network before first use). Dummy keys stand in for the environment's credentials."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-key-secret")
    monkeypatch.setenv("SKEWLESS_TAIR_PASSWORD", "from-the-environment")
    store = FeatureStore(repo)
    built = {"online": store.online, "offline": store.offline, "engine": store.engine,
             "registry": store.registry.store}
    assert {role: type(obj).__name__ for role, obj in built.items()} == expected


def test_from_terraform_with_the_duckdb_engine_keeps_histories_on_oss(tmp_path, monkeypatch):
    outputs = json.loads(OUTPUTS.read_text())
    cfg = outputs["skewless_config"]["value"]
    bucket = outputs["bucket_name"]["value"]
    cfg.update(offline_engine="duckdb", offline_url=f"oss://{bucket}/offline", offline_storage_options=None)
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(outputs))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load((tmp_path / "r" / "skewless.yaml").read_text())
    assert doc["offline"] == {"url": f"oss://{bucket}/offline", "engine": "duckdb",
                              "storage_options": {"endpoint": "https://oss-cn-hangzhou.aliyuncs.com",
                                                  "region": "cn-hangzhou"}}
    _assert_adapters_accept(tmp_path / "r", monkeypatch, online="TairOnlineStore", offline="OSSOfflineStore",
                            engine="DuckDBEngine", registry="OSSRegistryStore")


def test_from_terraform_rejects_options_that_are_not_objects(tmp_path):
    outputs = json.loads(OUTPUTS.read_text())
    outputs["skewless_config"]["value"]["online_options"] = "tls=true"
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(outputs))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--print"])
    assert res.exit_code == 1 and "skewless_config.online_options must be an object" in res.output
