"""`skewless` CLI. Every command exits non-zero with a one-line reason on error."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .common import JsonOpt, err, friendly, print_json, print_table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="skewless: a feature store whose online features provably equal the training features.")
console = Console()
RepoOpt = typer.Option(Path("."), "--repo", "-r", help="Feature repo folder (holds skewless.yaml)")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"skewless {version('skewless')}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the installed version and exit")) -> None:
    """skewless: a feature store whose online features provably equal the training features."""


def _store(repo: Path):
    from ..store import FeatureStore

    return FeatureStore(repo)


DateFormatOpt = typer.Option(None, "--date-format", help="strftime format of the dates given (e.g. %d/%m/%Y); "
                                                         "default: ISO 8601 only (2024-01-13, 2024-01-13T08:00:00Z)")


def _time(value: str, what: str, date_format: str | None = None) -> datetime:
    from ..timeutil import now, utc

    return now() if value == "now" else utc(value, what, date_format)


@app.command()
@friendly
def init(path: Path = typer.Argument(Path("."), help="Folder to create the repo in"),
         template: str = typer.Option("credit-scoring", help="credit-scoring | transactions | empty"),
         force: bool = typer.Option(False, help="Overwrite an existing skewless.yaml")):
    """Scaffold a feature repo (default: the credit-scoring sample with its data; `transactions`: card
    transactions with windowed aggregations and on-demand transforms)."""
    from ..scaffold import scaffold

    scaffold(path, template, force=force)
    console.print(f"Created feature repo in [bold]{path}[/bold]. Next: [cyan]skewless --help[/cyan], "
                  f"[cyan]cd {path} && skewless apply[/cyan]")


@app.command()
@friendly
def plan(repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Show what `apply` would change; breaking changes are flagged."""
    from ..repo import load_objects

    p = _store(repo).plan(load_objects(repo), prune=True)
    _print_plan(p, as_json)


def _plan_doc(p, committed: int | None = None) -> dict:
    doc = {"base_version": p.base_version, "changes": p.changes, "breaking": len(p.breaking)}
    return doc if committed is None else {**doc, "committed_version": committed}


def _print_plan(p, as_json: bool = False) -> None:
    if as_json:
        print_json(_plan_doc(p))
        return
    if p.empty:
        console.print(f"No changes (registry version {p.base_version}).")
        return
    colors = {"add": "green", "update": "yellow", "delete": "red"}
    for c in p.changes:
        console.print(f"[{colors[c.action]}]{c}[/{colors[c.action]}]", highlight=False)
    if p.breaking:
        console.print(f"[bold red]{len(p.breaking)} breaking change(s)[/bold red]")


@app.command()
@friendly
def apply(repo: Path = RepoOpt, allow_breaking: bool = typer.Option(False, help="Allow breaking changes"),
          message: str = typer.Option("", "-m", help="Commit message stored with the registry version"),
          as_json: bool = JsonOpt):
    """Commit the repo's definitions as a new registry version (objects not in the repo are removed)."""
    from ..repo import load_objects

    store = _store(repo)
    p = store.apply(load_objects(repo), prune=True, allow_breaking=allow_breaking, message=message)
    if as_json:
        print_json(_plan_doc(p, None if p.empty else p.base_version + 1))
        return
    _print_plan(p)
    if not p.empty:
        console.print(f"Registry version [bold]{p.base_version + 1}[/bold] committed.")


@app.command()
@friendly
def ingest(view: str, file: Optional[Path] = typer.Argument(None, help="Parquet or CSV file; default: the view's "
                                                                       "source (only its new rows when it declares a "
                                                                       "watermark)"),
           repo: Path = RepoOpt, date_format: Optional[str] = DateFormatOpt,
           batch_id: Optional[str] = typer.Option(None, "--batch-id", help="This batch's identity: rerunning a "
                                                  "committed batch id appends nothing (default: a hash of the rows)"),
           as_json: bool = JsonOpt):
    """Validate and append rows to a view's history and push the newest values online."""
    store = _store(repo)
    if file is None:
        result = store.ingest_source(view, batch_id=batch_id, date_format=date_format)
    else:
        from ..ingest import read_file

        result = store.ingest(view, read_file(file), batch_id=batch_id, date_format=date_format)
    if as_json:
        print_json(result)
    elif result.rows == 0:
        console.print(f"Nothing new in the source of [bold]{view}[/bold] since the last ingest (history version "
                      f"{result.version}).", highlight=False)
    elif result.already_ingested:
        console.print(f"Already ingested into [bold]{view}[/bold] (history version {result.version}, batch "
                      f"{result.batch_id}): nothing appended; its online push is complete.", highlight=False)
    else:
        console.print(f"Ingested {result.rows:,} rows into [bold]{view}[/bold]: history version {result.version}.",
                      highlight=False)


@app.command()
@friendly
def stream(view: str, source: str = typer.Option(..., "--from", help="Stream URL: kinesis://STREAM, "
                                                  "memory:///FOLDER"),
           repo: Path = RepoOpt,
           consumer: Optional[str] = typer.Option(None, help="Consumer name whose positions are committed with "
                                                  "each append (default: the URL)"),
           max_records: int = typer.Option(10_000, help="Micro-batch size bound"),
           max_seconds: float = typer.Option(1.0, help="Micro-batch latency bound (seconds after its first record)"),
           endpoint_url: Optional[str] = typer.Option(None, help="Stream service endpoint (an emulator)"),
           dead_letter: Optional[Path] = typer.Option(None, help="Folder for bad records (default: REPO/dead-letter)"),
           until_caught_up: bool = typer.Option(False, "--until-caught-up", help="Stop once every shard is read"),
           as_json: bool = JsonOpt):
    """Consume a stream into a view exactly once: validated micro-batches appended offline with the stream
    positions in the same commit, newest values online; bad records to the dead-letter folder."""
    options = {"endpoint_url": endpoint_url} if endpoint_url else {}
    stats = _store(repo).stream(view, source, consumer=consumer, dead_letter=dead_letter, options=options,
                                max_records=max_records, max_seconds=max_seconds, until_caught_up=until_caught_up)
    if as_json:
        print_json(stats)
    else:
        console.print(f"Streamed {stats.rows:,} rows into [bold]{view}[/bold] in {stats.batches:,} micro-batches "
                      f"({stats.dead_lettered:,} dead-lettered): history version {stats.version}.", highlight=False)


@app.command()
@friendly
def compact(view: str, repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Rewrite a view's small history files into large ones as one new version (older versions stay readable)."""
    result = _store(repo).compact(view)
    if as_json:
        print_json(result)
    else:
        console.print(f"Compacted [bold]{view}[/bold]: {result['files_removed']:,} files into "
                      f"{result['files_added']:,}: history version {result['version']}.", highlight=False)


def _progress_run(fn, as_json: bool = False):
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # Only on a terminal: elsewhere (a pipe, a CI log) rich's live display ends with a line feed, which put a blank
    # line before an error printed after it.
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as prog:
        tasks: dict[str, int] = {}

        def cb(view: str, rows: int):
            if view not in tasks:
                tasks[view] = prog.add_task(view)
            prog.update(tasks[view], description=f"{view}: {rows:,} rows written")
        results = fn(cb)
    if as_json:
        print_json(list(results))
        return
    table = Table("view", "rows written", "resumed at", "history version")
    for r in results:
        table.add_row(r.view, f"{r.rows:,}", f"{r.resumed_from:,}", str(r.version))
    print_table(console, table)


@app.command()
@friendly
def materialize(start: str, end: str, views: Optional[str] = typer.Option(None, help="Comma-separated views"),
                repo: Path = RepoOpt, date_format: Optional[str] = DateFormatOpt, as_json: bool = JsonOpt):
    """Write the newest value at END of every entity with rows in [START, END] to the online store."""
    start_t, end_t = _time(start, "start", date_format), _time(end, "end", date_format)
    store = _store(repo)
    names = views.split(",") if views else None
    _progress_run(lambda cb: store.materialize(start_t, end_t, names, progress=cb), as_json)


@app.command("materialize-incremental")
@friendly
def materialize_incremental(end: str = typer.Argument("now"),
                            views: Optional[str] = typer.Option(None, help="Comma-separated views"),
                            repo: Path = RepoOpt, date_format: Optional[str] = DateFormatOpt,
                            allow_rewind: bool = typer.Option(False, help="Allow an END before a view's last "
                                                              "materialized end (re-materializes it from the start)"),
                            as_json: bool = JsonOpt):
    """Materialize each view from where the last run ended up to END (default: now)."""
    end_t = _time(end, "end", date_format)
    store = _store(repo)
    names = views.split(",") if views else None
    _progress_run(lambda cb: store.materialize_incremental(end_t, names, progress=cb, allow_rewind=allow_rewind),
                  as_json)


def _features(features: Optional[str], service: Optional[str]):
    if bool(features) == bool(service):
        raise typer.BadParameter("give exactly one of --features view:f1,view:f2 or --service NAME")
    return service if service else [f.strip() for f in features.split(",") if f.strip()]


@app.command("get-historical")
@friendly
def get_historical(entities: Path = typer.Option(..., help="Parquet (or CSV) file of entity rows"),
                   features: Optional[str] = typer.Option(None, help="view:feature,..."),
                   service: Optional[str] = typer.Option(None, help="Feature service name"),
                   out: Optional[Path] = typer.Option(None, help="Write the training set here (Parquet)"),
                   full_feature_names: bool = False,
                   point_in_time: str = typer.Option("event", help="event | available"),
                   labels: Optional[str] = typer.Option(None, help="label_view:label,... (label views' columns, "
                                                        "joined point in time, after the features)"),
                   split: Optional[str] = typer.Option(None, help='A split as JSON, e.g. {"time": {"test": '
                                                       '"2024-04-01"}, "entity": {"train": 0.8, "test": 0.2}}'),
                   allow_leakage: Optional[str] = typer.Option(None, help="stage,...: accept features of these "
                                                               "stages though they were fit on test rows"),
                   repo: Path = RepoOpt, date_format: Optional[str] = DateFormatOpt, as_json: bool = JsonOpt):
    """Build a point-in-time-correct training set (printed: its first 20 rows; --json: row count, snapshot and
    those rows as records). --labels adds label columns, --split the split column (docs/concepts/labels-and-splits.md);
    with a split, features of a stage fit on test rows are a LeakageError unless --allow-leakage names it
    (docs/concepts/stages.md)."""
    store = _store(repo)
    if entities.suffix.lower() == ".csv":
        from ..ingest import read_file

        ent = read_file(entities)
    else:
        ent = str(entities)
    try:
        split_spec = json.loads(split) if split else None
    except ValueError as exc:
        raise typer.BadParameter(f"--split is not JSON: {exc}") from None
    job = store.get_historical_features(ent, _features(features, service), full_feature_names=full_feature_names,
                                        point_in_time=point_in_time, date_format=date_format, split=split_spec,
                                        labels=[x.strip() for x in labels.split(",") if x.strip()] if labels else None,
                                        allow_leakage=[x.strip() for x in allow_leakage.split(",") if x.strip()]
                                        if allow_leakage else None)
    if out:
        job.to_parquet(out)
        if as_json:
            import pyarrow.parquet as pq

            print_json({"out": str(out), "rows": pq.read_metadata(out).num_rows, "snapshot": job.snapshot})
        else:
            console.print(f"Wrote {out} (snapshot {json.dumps(job.snapshot)})")
        return
    # printed rows are a display: PII columns masked unless the caller holds read_pii (--out writes the data)
    df = _masked_frame(store, job.to_pandas(), job.features)
    if as_json:
        head = json.loads(df.head(20).to_json(orient="records", date_format="iso"))
        print_json({"rows": len(df), "snapshot": job.snapshot, "head": head})
    else:
        console.print(df.head(20).to_string(), soft_wrap=True)


def _refs_by_name(store, chosen) -> dict[str, str]:
    """Output name -> ``view:feature`` of a read's view features (transform outputs have no view: not listed)."""
    from ..errors import SkewlessError

    try:
        resolved = store._resolve(chosen)
    except SkewlessError:  # transform outputs among them: the views' features are listed by their refs
        refs = chosen if not isinstance(chosen, str) else store.get_feature_service(chosen).feature_refs
        return {r.partition(":")[2]: r for r in refs if ":" in r}
    return {f: f"{v.name}:{f}" for v, fs in resolved for f in fs}


def _masked_frame(store, df, refs):
    """``df`` (a training set or its head) with the PII columns the caller may not see masked: a feature column
    under its short or full name, and the join keys of PII entities."""
    from ..pii import mask_frame

    masking = store.masking()
    views = {r.partition(":")[0] for r in refs}
    hidden = set(masking.keys(views))
    for ref in refs:
        if masking.hides(ref):
            view, _, name = ref.partition(":")
            hidden |= {name, f"{view}__{name}"}
    return mask_frame(df, hidden)


_DECIMAL = re.compile(r"^-?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?$")


def _scalar(text: str):
    """An integer, a decimal number (request fields such as amount=12.5) or else the text itself."""
    if text.lstrip("-").isdigit():
        return int(text)
    return float(text) if _DECIMAL.match(text) else text


@app.command("get-online")
@friendly
def get_online(entity: list[str] = typer.Option(..., "--entity", "-e", help="key=value[,key=value]; repeatable"),
               features: Optional[str] = typer.Option(None, help="view:feature,..."),
               service: Optional[str] = typer.Option(None, help="Feature service name"),
               repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Read current feature values, with statuses and event timestamps."""
    rows = []
    for e in entity:
        row = {}
        for part in e.split(","):
            k, sep, v = part.partition("=")
            if not sep:
                raise typer.BadParameter(f"--entity {e!r}: expected key=value")
            row[k.strip()] = _scalar(v.strip())
        rows.append(row)
    from ..pii import mask, mask_list

    store = _store(repo)
    chosen = _features(features, service)
    resp = store.get_online_features(chosen, rows)
    # printed values are a display: PII masked unless the caller holds read_pii on the view (skewless.pii)
    masking, refs = store.masking(), _refs_by_name(store, chosen)
    values = {name: mask_list(vs) if name in refs and masking.hides(refs[name]) else vs
              for name, vs in resp.values.items()}
    hidden_keys = masking.keys({ref.partition(":")[0] for ref in refs.values()})
    rows = [{k: mask(v) if k in hidden_keys else v for k, v in r.items()} for r in rows]
    if as_json:
        print_json([{"entity": r, "features": {name: {"value": vs[i], "status": resp.statuses[name][i],
                                                      "event_timestamp": resp.event_timestamps[name][i]}
                                               for name, vs in values.items()}}
                    for i, r in enumerate(rows)])
        return
    table = Table("entity", "feature", "value", "status", "event_timestamp")
    for i, r in enumerate(rows):
        for name, vs in values.items():
            ts = resp.event_timestamps[name][i]
            table.add_row(json.dumps(r), name, repr(vs[i]), resp.statuses[name][i], ts.isoformat() if ts else "")
    print_table(console, table)


@app.command("list")
@friendly
def list_(kind: str = typer.Argument("all", help="entities | views | transforms | services | stages | all"),
          repo: Path = RepoOpt,
          as_json: bool = JsonOpt):
    """List definitions."""
    store = _store(repo)
    kinds = {"entities": store.list_entities, "views": store.list_feature_views,
             "transforms": store.list_transforms, "services": store.list_feature_services, "stages": store.list_stages}
    if kind != "all" and kind not in kinds:
        raise typer.BadParameter(f"kind must be one of all, {', '.join(kinds)}")
    _print_objects([o for k, f in kinds.items() if kind in ("all", k) for o in f()], as_json)


def _print_objects(objs, as_json: bool = False) -> None:
    if as_json:
        print_json([{"kind": o.kind, "name": o.name, "owner": getattr(o, "owner", ""), "tags": dict(o.tags),
                     "description": getattr(o, "description", "")} for o in objs])
        return
    table = Table("kind", "name", "owner", "tags", "description")
    for o in objs:
        table.add_row(o.kind.replace("_", " "), o.name, getattr(o, "owner", ""),
                      ",".join(f"{k}={v}" for k, v in o.tags.items()), getattr(o, "description", ""))
    print_table(console, table)


@app.command()
@friendly
def describe(name: str, repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Show one definition and its version history."""
    store = _store(repo)
    state = store.registry.state()
    for kind in ("feature_view", "transform", "feature_service", "entity", "stage"):
        if name in state.objects.get(kind, {}):
            versions = store.registry.history(kind, name)
            if as_json:
                print_json({"kind": kind, "name": name, "spec": state.objects[kind][name]["spec"],
                            "versions": [{"version": v.version, "registry_version": v.registry_version,
                                          "updated_at": v.updated_at} for v in versions]})
                return
            console.print_json(json.dumps(state.objects[kind][name]["spec"]))
            console.print(", ".join(f"v{v.version} (registry {v.registry_version}, {v.updated_at})"
                                    for v in versions))
            return
    from ..errors import NotFoundError

    raise NotFoundError(f"no entity, feature view, transform, feature service or stage named {name!r}")


@app.command()
@friendly
def search(text: str = typer.Argument(""), tag: Optional[str] = typer.Option(None, help="key or key=value"),
           owner: Optional[str] = None, repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """Find definitions by name/description text, tag and owner."""
    _print_objects(_store(repo).search(text, tag=tag, owner=owner), as_json)


@app.command()
@friendly
def demo(path: Optional[Path] = typer.Option(None, help="Repo folder to create (default: a temp folder)")):
    """Run the main job end to end on embedded defaults and print a report."""
    from ..demo import run

    report = run(path, log=lambda s: console.print(s, highlight=False))
    table = Table("step", "seconds", "result", title="skewless demo")
    for name, secs, summary in report.steps:
        table.add_row(name, f"{secs:.2f}", summary)
    print_table(console, table)
    console.print(report.online.to_string(index=False))
    console.print(f"training rows: {report.training_rows:,}   test AUC: {report.test_auc:.3f}   "
                  f"test accuracy: {report.test_accuracy:.3f}")
    ok = "[green]yes[/green]" if report.skew_free else "[red]NO[/red]"
    console.print(f"online inputs and predictions equal the training-set path at t=now: {ok}")
    if not report.skew_free:
        raise typer.Exit(2)


@app.command("audit-log")
@friendly
def audit_log(since: Optional[str] = typer.Option(None, help="Only records at or after this time (ISO 8601, UTC "
                                                  "unless it has an offset)"),
              principal: Optional[str] = typer.Option(None, help="Only this principal's records"),
              action: Optional[str] = typer.Option(None, help="Only this action (apply, ingest, deploy, "
                                                   "permission_change, read_online, view_ui, ...)"),
              outcome: Optional[str] = typer.Option(None, help="allowed | denied"),
              repo: Path = RepoOpt, as_json: bool = JsonOpt):
    """The audit log: applies, ingests, deploys, permission changes and denials, oldest first (docs/governance.md)."""
    if outcome is not None and outcome not in ("allowed", "denied"):
        from ..errors import ValidationError
        raise ValidationError(f"--outcome must be allowed or denied, not {outcome!r}")
    records = _store(repo).audit_log.records(since=_time(since, "--since") if since else None, principal=principal,
                                             action=action, outcome=outcome)
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    table = Table("time", "principal", "action", "resource", "outcome", "detail")
    for r in records:
        table.add_row(r.time, r.principal or "-", r.action, r.resource, r.outcome, r.detail)
    print_table(console, table)


def _add_groups() -> None:
    from . import (audit_cmd, config_cmd, governance_cmd, lineage_cmd, local, model, monitor_cmd, permissions_cmd, run_cmd,
                   score_cmd, serve_cmd, stats_cmd, submit_cmd)

    app.command("lineage")(lineage_cmd.lineage)
    app.command("stats")(stats_cmd.stats)
    app.command("run")(run_cmd.run)
    app.command("training-sets")(lineage_cmd.training_sets)
    app.command("serve")(serve_cmd.serve)
    app.command("serve-image")(serve_cmd.serve_image)
    app.command("ui")(serve_cmd.ui)
    app.command("monitor")(monitor_cmd.monitor)
    app.command("forget")(governance_cmd.forget)
    app.add_typer(governance_cmd.app, name="retention")
    app.command("audit")(audit_cmd.audit)
    app.command("score")(score_cmd.score)
    app.add_typer(local.app, name="local")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(model.app, name="model")
    app.add_typer(submit_cmd.app, name="submit")
    app.add_typer(permissions_cmd.app, name="permissions")


_add_groups()


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="skewless")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
