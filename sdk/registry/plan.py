"""Diffing two registry states: what `plan` shows and what `apply` would commit.

A change is *breaking* when something already trained or served on the old definition could silently get other
data: a removed feature or view, a changed dtype, changed join keys or entities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KIND_ORDER = ("entity", "feature_view", "transform", "feature_service", "stage", "principal", "role", "grant")
# Permission objects (skewless.permissions): never breaking (no data changes meaning), but every change is shown.
PERMISSION_KINDS = ("principal", "role", "grant")


@dataclass
class Change:
    kind: str
    name: str
    action: str  # "add" | "update" | "delete"
    details: list[str] = field(default_factory=list)
    breaking: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        sign = {"add": "+", "update": "~", "delete": "-"}[self.action]
        text = f"{sign} {self.kind} {self.name}"
        if self.details:
            text += ": " + "; ".join(self.details)
        if self.breaking:
            text += "  [BREAKING: " + "; ".join(self.breaking) + "]"
        return text


@dataclass
class Plan:
    base_version: int
    changes: list[Change]

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def empty(self) -> bool:
        return not self.changes

    def __str__(self) -> str:
        if self.empty:
            return f"No changes (registry version {self.base_version})."
        return "\n".join(str(c) for c in self.changes)


def _view_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
    details, breaking = [], []
    old_f = {f["name"]: f for f in old["schema"]}
    new_f = {f["name"]: f for f in new["schema"]}
    for n in new_f.keys() - old_f.keys():
        details.append(f"add field {n} {new_f[n]['dtype']}")
    for n in sorted(old_f.keys() - new_f.keys()):
        breaking.append(f"field {n} removed")
    for n in sorted(old_f.keys() & new_f.keys()):
        if old_f[n]["dtype"] != new_f[n]["dtype"]:
            breaking.append(f"field {n} dtype {old_f[n]['dtype']} -> {new_f[n]['dtype']}")
        elif old_f[n].get("classification") != new_f[n].get("classification"):
            # personal data tagged or untagged: never breaking (values do not change), but said, as it changes
            # what every output shows (skewless.pii)
            details.append(f"field {n} classification: {old_f[n].get('classification')} -> "
                           f"{new_f[n].get('classification')}")
        elif old_f[n] != new_f[n]:
            details.append(f"field {n} metadata")
    if old["join_keys"] != new["join_keys"]:
        breaking.append(f"join keys {old['join_keys']} -> {new['join_keys']}")
    if old["entities"] != new["entities"]:
        breaking.append(f"entities {old['entities']} -> {new['entities']}")
    agg_details, agg_breaking = _aggregation_changes(old, new)
    details += agg_details
    breaking += agg_breaking
    for attr in ("ttl_seconds", "source", "owner", "tags", "description", "online", "pii_keys",
                 "history_retention_seconds"):
        if old.get(attr) != new.get(attr):
            details.append(f"{attr}: {old.get(attr)!r} -> {new.get(attr)!r}")
    return details, breaking


def _aggregation_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """An aggregated view's outputs: a changed window, function, column or k, hop or event_id changes the value a
    served model gets under the same name, so it is breaking; a new output is not."""
    details, breaking = [], []
    if ("aggregations" in old) != ("aggregations" in new):
        breaking.append("plain view <-> aggregated view")
        return details, breaking
    if "aggregations" not in new:
        return details, breaking
    old_a = {a["name"]: a for a in old["aggregations"]}
    new_a = {a["name"]: a for a in new["aggregations"]}
    for n in sorted(new_a.keys() - old_a.keys()):
        details.append(f"add aggregation {n}")
    for n in sorted(old_a.keys() - new_a.keys()):
        breaking.append(f"aggregation {n} removed")
    for n in sorted(old_a.keys() & new_a.keys()):
        for attr in ("column", "function", "window_us", "k"):
            if old_a[n].get(attr) != new_a[n].get(attr):
                breaking.append(f"aggregation {n} {attr} {old_a[n].get(attr)!r} -> {new_a[n].get(attr)!r}")
    for attr in ("hop_us", "event_id"):
        if old.get(attr) != new.get(attr):
            breaking.append(f"{attr} {old.get(attr)!r} -> {new.get(attr)!r}")
    return details, breaking


def _transform_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
    """A transform: new code or inputs are a new version (same outputs, other values: retrain to adopt it); a
    removed output or an output's dtype changed is breaking (a model served on it would get other data)."""
    details, breaking = [], []
    if old["hash"] != new["hash"]:
        details.append(f"hash {old['hash'][:12]} -> {new['hash'][:12]}")
    if old["source"] != new["source"]:
        details.append("code changed")
    for attr in ("inputs", "request", "time", "mode"):
        if old.get(attr) != new.get(attr):
            details.append(f"{attr}: {old.get(attr)!r} -> {new.get(attr)!r}")
    old_o = {f["name"]: f["dtype"] for f in old["outputs"]}
    new_o = {f["name"]: f["dtype"] for f in new["outputs"]}
    for n in sorted(new_o.keys() - old_o.keys()):
        details.append(f"add output {n} {new_o[n]}")
    for n in sorted(old_o.keys() - new_o.keys()):
        breaking.append(f"output {n} removed")
    for n in sorted(old_o.keys() & new_o.keys()):
        if old_o[n] != new_o[n]:
            breaking.append(f"output {n} dtype {old_o[n]} -> {new_o[n]}")
    for attr in ("owner", "tags", "description"):
        if old.get(attr) != new.get(attr):
            details.append(f"{attr}: {old.get(attr)!r} -> {new.get(attr)!r}")
    return details, breaking


def _stage_changes(old: dict, new: dict) -> list[str]:
    """A stage: new code, model version, inputs or output make it stale (its next run rewrites its output); none is
    breaking, the output view's own changes are shown with the view."""
    details = []
    if old.get("hash") != new.get("hash"):
        details.append(f"code changed (hash {str(old.get('hash'))[:12]} -> {str(new.get('hash'))[:12]})")
    for attr in ("type", "function", "model", "version", "inputs", "output", "entities", "fit_split", "owner", "tags",
                 "description"):
        if old.get(attr) != new.get(attr):
            details.append(f"{attr}: {old.get(attr)!r} -> {new.get(attr)!r}")
    return details


def _permission_changes(old: dict, new: dict) -> list[str]:
    """Each changed attribute; token hashes only as a count (the digests are secret-adjacent and unreadable)."""
    out = []
    for attr in sorted(old.keys() | new.keys()):
        a, b = old.get(attr), new.get(attr)
        if a == b:
            continue
        if attr == "token_hashes":
            added, removed = len(set(b or ()) - set(a or ())), len(set(a or ()) - set(b or ()))
            out.append(f"tokens: {added} added, {removed} removed")
        elif isinstance(a, list) and isinstance(b, list):
            plus, minus = sorted(set(b) - set(a)), sorted(set(a) - set(b))
            out.append(f"{attr}: " + ", ".join([f"+{x}" for x in plus] + [f"-{x}" for x in minus]))
        else:
            out.append(f"{attr}: {a!r} -> {b!r}")
    return out


def diff(base_version: int, old: dict[str, dict], new: dict[str, dict]) -> Plan:
    """``old``/``new``: kind -> name -> spec dict."""
    changes: list[Change] = []
    for kind in KIND_ORDER:
        o, n = old.get(kind, {}), new.get(kind, {})
        for name in sorted(n.keys() - o.keys()):
            changes.append(Change(kind, name, "add"))
        for name in sorted(o.keys() - n.keys()):
            # a removed stage leaves its output view as it is: nothing read changes meaning
            why = [] if kind in ("entity", "stage") or kind in PERMISSION_KINDS else [f"{kind} removed"]
            changes.append(Change(kind, name, "delete", breaking=why))
        for name in sorted(o.keys() & n.keys()):
            if o[name] == n[name]:
                continue
            if kind == "feature_view":
                details, breaking = _view_changes(o[name], n[name])
            elif kind == "transform":
                details, breaking = _transform_changes(o[name], n[name])
            elif kind == "feature_service":
                removed = sorted(set(o[name]["features"]) - set(n[name]["features"]))
                added = sorted(set(n[name]["features"]) - set(o[name]["features"]))
                details = [f"add {', '.join(added)}"] if added else []
                if o[name].get("monitoring") != n[name].get("monitoring"):
                    details.append(f"monitoring: {o[name].get('monitoring')!r} -> {n[name].get('monitoring')!r}")
                if o[name].get("log_pii", "redact") != n[name].get("log_pii", "redact"):
                    details.append(f"log_pii: {o[name].get('log_pii', 'redact')} -> {n[name].get('log_pii', 'redact')}")
                details += [] if removed or added or details else ["metadata"]
                breaking = [f"features removed: {', '.join(removed)}"] if removed else []
            elif kind in PERMISSION_KINDS:
                details, breaking = _permission_changes(o[name], n[name]), []
            elif kind == "stage":
                details, breaking = _stage_changes(o[name], n[name]), []
            elif o[name]["join_keys"] != n[name]["join_keys"]:
                details, breaking = [], [f"join keys {o[name]['join_keys']} -> {n[name]['join_keys']}"]
            elif o[name].get("pii", False) != n[name].get("pii", False):
                details, breaking = [f"pii: {o[name].get('pii', False)} -> {n[name].get('pii', False)}"], []
            else:
                details, breaking = ["metadata"], []
            changes.append(Change(kind, name, "update", details, breaking))
    return Plan(base_version, changes)
