"""Permissions (skewless.permissions) at the SDK's write paths, their plan/apply, and the audit log (skewless.audit):
every denied call raises PermissionDenied, writes nothing (checked in the stores) and is audited; allowed calls
work; a registry without permissions behaves as before."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

import skewless as sk
from skewless.cli.main import app as cli
from skewless.errors import ConflictError, DefinitionError, PermissionDenied
from skewless.permissions import check, hash_token

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
ADMIN_TOKEN = "admin-secret-token"
WRITER_TOKEN = "writer-secret-token"


def definitions():
    loan = sk.Entity("loan", ["loan_id"], dtype=sk.Int64)
    views = [sk.FeatureView(n, entities=[loan], schema=[sk.Field("loan_id", sk.Int64), sk.Field("amount", sk.Float64)])
             for n in ("loan_stats", "loan_risk", "payroll")]
    return [loan, *views]


def permissions(writer_resources=("view:loan_*",)):
    return [sk.Principal("admin", token_hashes=[hash_token(ADMIN_TOKEN)], aws_iam="arn:aws:iam::1:role/admin"),
            sk.Principal("writer", token_hashes=[hash_token(WRITER_TOKEN)], alibaba_ram="acs:ram::1:role/writer"),
            sk.Principal("reader"),
            sk.Role("admins", ["apply", "ingest", "deploy"]), sk.Role("writers", ["ingest"]),
            sk.Grant("admin_all", role="admins", principals=["admin"]),
            sk.Grant("writers_loans", role="writers", principals=["writer"], resources=list(writer_resources))]


def rows(amount: float, ids=(1, 2)) -> pd.DataFrame:
    return pd.DataFrame({"loan_id": list(ids), "amount": [amount] * len(ids), "event_timestamp": [T0] * len(ids)})


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.delenv("SKEWLESS_PRINCIPAL", raising=False)
    monkeypatch.delenv("SKEWLESS_TOKEN", raising=False)
    store = sk.init_repo(tmp_path / "repo")
    store.apply(definitions())
    store.ingest("loan_stats", rows(1.0))
    store.ingest("payroll", rows(1.0))
    return tmp_path / "repo"


@pytest.fixture
def governed(repo):
    sk.FeatureStore(repo).apply([*definitions(), *permissions()])  # the first apply of permissions: open, allowed
    return repo


def online_amounts(store, view: str, ids=(1, 2)):
    return store.get_online_features([f"{view}:amount"], [{"loan_id": i} for i in ids]).to_dict()["amount"]


def denials(store):
    return store.audit_log.records(outcome="denied")


# -- definitions -----------------------------------------------------------------------------------------------------
def test_bad_permission_definitions_are_definition_errors(repo):
    with pytest.raises(DefinitionError, match="unknown action"):
        sk.Role("r", ["read_online", "delete_everything"])
    with pytest.raises(DefinitionError, match="SHA-256"):
        sk.Principal("p", token_hashes=["my-raw-secret"])  # never the secret itself
    with pytest.raises(DefinitionError, match="resource"):
        sk.Grant("g", role="r", principals=["p"], resources=["table:loans"])
    store = sk.FeatureStore(repo)
    version = store.registry.store.latest()
    with pytest.raises(DefinitionError, match="unknown role 'missing'"):
        store.apply([sk.Principal("p"), sk.Grant("g", role="missing", principals=["p"])])
    with pytest.raises(DefinitionError, match="unknown principal"):
        store.apply([sk.Role("r", ["ingest"]), sk.Grant("g", role="r", principals=["ghost"])])
    with pytest.raises(DefinitionError, match="share a token"):
        store.apply([sk.Principal("a", token_hashes=[hash_token("t")]), sk.Principal("b", token_hashes=[hash_token("t")])])
    assert store.registry.store.latest() == version  # nothing committed
    with pytest.raises(DefinitionError, match="unknown action"):
        check(store.registry.state(), "p", "fly", ("view", "loan_stats"))


def test_plan_and_apply_show_permission_changes(repo):
    store = sk.FeatureStore(repo)
    plan = store.plan([*definitions(), *permissions()], prune=True)
    assert [str(c) for c in plan.changes] == ["+ principal admin", "+ principal reader", "+ principal writer",
                                              "+ role admins", "+ role writers", "+ grant admin_all",
                                              "+ grant writers_loans"]
    assert not plan.breaking
    store.apply([*definitions(), *permissions()], prune=True)
    admin = sk.FeatureStore(repo, token=ADMIN_TOKEN)
    changed = permissions(writer_resources=("view:loan_stats",))
    changed[1] = sk.Principal("writer", token_hashes=[hash_token(WRITER_TOKEN), hash_token("rotated")],
                              alibaba_ram="acs:ram::1:role/writer")
    plan = admin.plan([*definitions(), *changed[:-2], changed[-1]], prune=True)  # admin_all dropped
    assert [str(c) for c in plan.changes] == [
        "~ principal writer: tokens: 1 added, 0 removed",
        "- grant admin_all",
        "~ grant writers_loans: resources: +view:loan_stats, -view:loan_*"]
    assert not plan.breaking  # permission changes never need --allow-breaking
    assert ADMIN_TOKEN not in json.dumps(store.registry.store.read(store.registry.store.latest()).decode())
    # the CLI's plan shows them too
    (repo / "perms.py").write_text(
        "import skewless as sk\nfrom skewless.permissions import hash_token\n"
        "loan = sk.Entity('loan', ['loan_id'], dtype=sk.Int64)\n"
        "views = [sk.FeatureView(n, entities=[loan], schema=[sk.Field('loan_id', sk.Int64), "
        "sk.Field('amount', sk.Float64)]) for n in ('loan_stats', 'loan_risk', 'payroll')]\n"
        "loan_stats, loan_risk, payroll = views\n"
        "ops = sk.Principal('ops')\nrole = sk.Role('ingesters', ['ingest'])\n"
        "grant = sk.Grant('ops_ingest', role='ingesters', principals=['ops'], resources=['view:payroll'])\n")
    out = CliRunner().invoke(cli, ["plan", "--repo", str(repo)])
    assert out.exit_code == 0, out.output
    assert "+ principal ops" in out.output and "+ grant ops_ingest" in out.output
    assert "- principal admin" in out.output  # the repo no longer declares it: apply would remove it


# -- open registry: as before ------------------------------------------------------------------------------------
def test_a_registry_without_permissions_is_open_as_before(repo):
    store = sk.FeatureStore(repo)  # no principal at all
    assert store.ingest("loan_risk", rows(2.0)).rows == 2
    store.push("loan_stats", rows(3.0))
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1), ["loan_risk"])
    assert online_amounts(store, "loan_stats") == [3.0, 3.0]
    assert denials(store) == []
    # applies are recorded; data writes are not while the registry is open (no added object per ingest or push)
    assert [(r.action, r.resource) for r in store.audit_log.records()] == [("apply", "*")]


# -- governed: denials write nothing and are audited --------------------------------------------------------------------
def test_denied_ingest_push_and_materialize_write_nothing_and_are_audited(governed):
    writer = sk.FeatureStore(governed, principal="writer")
    before = writer.offline.version("payroll")
    online_before = online_amounts(writer, "payroll")
    for call in (lambda: writer.ingest("payroll", rows(9.0)),
                 lambda: writer.ingest("payroll", rows(9.0), online=False),
                 lambda: writer.push("payroll", rows(9.0)),
                 lambda: writer.push("payroll", rows(9.0), to="offline"),
                 lambda: writer.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1), ["payroll"]),
                 lambda: writer.materialize_incremental(T0 + timedelta(days=1), ["payroll"])):
        with pytest.raises(PermissionDenied) as exc:
            call()
        assert exc.value.principal == "writer" and exc.value.action == "ingest" and exc.value.resource == "view:payroll"
    assert writer.offline.version("payroll") == before  # no history version appended
    assert online_amounts(writer, "payroll") == online_before == [1.0, 1.0]
    got = denials(writer)
    assert len(got) == 6 and {(r.principal, r.action, r.resource) for r in got} == {("writer", "ingest", "view:payroll")}
    # allowed by the glob grant: works, and is audited as allowed
    assert writer.ingest("loan_risk", rows(5.0)).rows == 2
    assert online_amounts(writer, "loan_risk") == [5.0, 5.0]
    assert [r.outcome for r in writer.audit_log.records(principal="writer", action="ingest")][-1] == "allowed"


def test_a_push_to_views_one_of_which_is_denied_writes_none_of_them(governed, tmp_path):
    # two views share one push source name: the push is checked on every view before the first is written
    admin = sk.FeatureStore(governed, token=ADMIN_TOKEN)
    src = sk.ParquetSource(str(tmp_path / "none.parquet"), name="loans_push")
    loan = definitions()[0]
    both = [sk.FeatureView(n, entities=[loan], source=src, schema=[sk.Field("loan_id", sk.Int64),
                                                                    sk.Field("amount", sk.Float64)])
            for n in ("loan_stats", "payroll")]
    admin.apply([loan, *both, definitions()[2], *permissions()], prune=True)
    writer = sk.FeatureStore(governed, principal="writer")
    with pytest.raises(PermissionDenied, match="view:payroll"):
        writer.push("loans_push", rows(7.0))
    assert online_amounts(writer, "loan_stats") == [1.0, 1.0] and online_amounts(writer, "payroll") == [1.0, 1.0]


def test_anonymous_unknown_and_env_principals(governed, monkeypatch):
    anon = sk.FeatureStore(governed)
    with pytest.raises(PermissionDenied, match="anonymous") as exc:
        anon.ingest("loan_stats", rows(4.0))
    assert exc.value.principal is None
    with pytest.raises(PermissionDenied):
        sk.FeatureStore(governed, principal="nobody").ingest("loan_stats", rows(4.0))
    with pytest.raises(PermissionDenied):
        sk.FeatureStore(governed, token="wrong-token").ingest("loan_stats", rows(4.0))
    with pytest.raises(PermissionDenied):  # reader is registered but granted nothing
        sk.FeatureStore(governed, principal="reader").ingest("loan_stats", rows(4.0))
    monkeypatch.setenv("SKEWLESS_TOKEN", WRITER_TOKEN)
    assert sk.FeatureStore(governed).ingest("loan_stats", rows(4.0)).rows == 2
    monkeypatch.delenv("SKEWLESS_TOKEN")
    monkeypatch.setenv("SKEWLESS_PRINCIPAL", "writer")
    assert sk.FeatureStore(governed).ingest("loan_stats", rows(4.5)).rows == 2
    assert online_amounts(anon, "loan_stats") == [4.5, 4.5]
    assert [r.principal for r in anon.audit_log.records(outcome="denied")] == [None, "nobody",
                                                                               "<unknown token>", "reader"]


def test_denied_apply_commits_nothing_and_permission_changes_are_audited(governed):
    writer = sk.FeatureStore(governed, principal="writer")
    version = writer.registry.store.latest()
    with pytest.raises(PermissionDenied, match="may not apply on \\*"):
        writer.apply([*definitions(), *permissions(), sk.Grant("self_admin", role="admins", principals=["writer"])],
                     prune=True)
    assert writer.registry.store.latest() == version
    # the CLI's apply as the writer (environment): refused in one line, exit 1
    admin = sk.FeatureStore(governed, token=ADMIN_TOKEN)
    admin.apply([*definitions(), *permissions()[:-1]], prune=True)  # writers_loans removed: denied from now on
    latest = admin.registry.store.latest()
    assert json.loads(admin.registry.store.read(latest))["author"] == "admin"  # the version names its principal
    changes = admin.audit_log.records(action="permission_change")
    assert [(r.principal, r.resource, r.detail) for r in changes][-1] == ("admin", "grant:writers_loans",
                                                                          "- grant writers_loans")
    with pytest.raises(PermissionDenied):
        writer.ingest("loan_stats", rows(6.0))
    assert [r.action for r in admin.audit_log.records(outcome="denied")] == ["apply", "ingest"]


def test_cli_apply_and_audit_log_filters(governed, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("SKEWLESS_PRINCIPAL", "writer")
    out = runner.invoke(cli, ["apply", "--repo", str(governed)])
    assert out.exit_code == 1 and "PermissionDenied" in out.output and "may not apply" in out.output
    monkeypatch.delenv("SKEWLESS_PRINCIPAL")
    out = runner.invoke(cli, ["audit-log", "--repo", str(governed), "--json", "--outcome", "denied"])
    assert out.exit_code == 0, out.output
    assert [(r["principal"], r["action"], r["resource"]) for r in json.loads(out.output)] == [
        ("writer", "apply", "*")]
    everything = json.loads(runner.invoke(cli, ["audit-log", "--repo", str(governed), "--json"]).output)
    assert len(everything) >= 10 and everything == sorted(everything, key=lambda r: r["time"])
    later = everything[-3]["time"]
    out = runner.invoke(cli, ["audit-log", "--repo", str(governed), "--json", "--since", later])
    assert json.loads(out.output) == everything[-3:]
    out = runner.invoke(cli, ["audit-log", "--repo", str(governed), "--json", "--action", "permission_change"])
    assert len(json.loads(out.output)) == 7  # one per principal, role and grant of the first apply
    out = runner.invoke(cli, ["audit-log", "--repo", str(governed), "--principal", "writer"])
    assert out.exit_code == 0 and "apply" in out.output and "denied" in out.output
    out = runner.invoke(cli, ["audit-log", "--repo", str(governed), "--outcome", "maybe"])
    assert out.exit_code == 1 and "ValidationError" in out.output


def test_the_audit_log_is_append_only(governed):
    store = sk.FeatureStore(governed, principal="writer")
    keys = store.registry.store.record_keys("audit/")
    contents = {k: store.registry.store.read_record(k) for k in keys}
    with pytest.raises(ConflictError):
        store.registry.store.put_record(keys[0], b"{}")  # a record is never overwritten
    store.ingest("loan_stats", rows(8.0))
    with pytest.raises(PermissionDenied):
        store.ingest("payroll", rows(8.0))
    after = store.registry.store.record_keys("audit/")
    assert after[:len(keys)] == keys and len(after) == len(keys) + 2
    assert {k: store.registry.store.read_record(k) for k in keys} == contents


def test_stream_consumer_needs_ingest_and_is_audited_once_per_run(governed):
    from skewless.streams.memory import MemorySource

    def source():
        return MemorySource({"s0": [{"loan_id": 1, "amount": 11.0, "event_timestamp": T0.isoformat()}]})

    writer = sk.FeatureStore(governed, principal="writer")
    before = writer.offline.version("payroll")
    with pytest.raises(PermissionDenied):
        writer.stream("payroll", source(), until_caught_up=True)
    assert writer.offline.version("payroll") == before
    stats = writer.stream("loan_stats", source(), until_caught_up=True)
    assert stats.rows == 1 and online_amounts(writer, "loan_stats", ids=(1,)) == [11.0]
    got = [(r.resource, r.outcome) for r in writer.audit_log.records(principal="writer")]
    assert got == [("view:payroll", "denied"), ("view:loan_stats", "allowed")]
