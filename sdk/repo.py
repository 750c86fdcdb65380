"""Feature repos are Python files: every Entity / FeatureView / OnDemandTransform / FeatureService and every
Principal / Role / Grant (skewless.permissions) and Stage / ModelStage (skewless.stages) defined at module level
counts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .definitions import Entity, FeatureService, FeatureView
from .errors import DefinitionError
from .permissions import Grant, Principal, Role
from .stages.definition import ModelStage, Stage
from .transforms import OnDemandTransform

_SKIP_DIRS = {"data", "__pycache__", ".venv", "venv", ".git"}


def definition_files(repo_path: Path) -> list[Path]:
    return sorted(p for p in repo_path.rglob("*.py")
                  if not (set(p.relative_to(repo_path).parts[:-1]) & _SKIP_DIRS) and not p.name.startswith("_"))


def _forget_other_repos(repo_path: Path) -> None:
    """Drop from ``sys.modules`` the modules named like this repo's top-level files or packages that were imported
    from a directory no longer on ``sys.path``: a file of another repo loaded earlier in this process (its folder is
    taken off ``sys.path`` after loading). Without this, ``from features import card`` in this repo would get the
    other repo's cached ``features`` module. Libraries (imported from ``sys.path``) are never touched."""
    own = {p.stem for p in repo_path.glob("*.py")} | {p.parent.name for p in repo_path.glob("*/__init__.py")}
    on_path = {Path(p or ".").resolve() for p in sys.path}
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        file = getattr(module, "__file__", None)
        if top not in own or file is None:
            continue
        # the folder the top-level name was imported from: one level up per dotted part, one more for a package
        depth = name.count(".") + (Path(file).name == "__init__.py")
        if Path(file).resolve().parents[depth] not in on_path:
            del sys.modules[name]


def load_objects(repo_path: str | Path) -> list:
    """Import every definition file of the repo; return the definitions, each once, in a stable order."""
    repo_path = Path(repo_path).resolve()
    found: dict[tuple[str, str], object] = {}
    _forget_other_repos(repo_path)
    sys.path.insert(0, str(repo_path))
    try:
        for path in definition_files(repo_path):
            name = "skewless_repo_" + "_".join(path.relative_to(repo_path).with_suffix("").parts)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except DefinitionError as exc:
                raise DefinitionError(f"{path.name}: {exc}") from exc
            except Exception as exc:
                raise DefinitionError(f"{path.name} failed to import: {type(exc).__name__}: {exc}") from exc
            for obj in vars(module).values():
                if isinstance(obj, (Entity, FeatureView, OnDemandTransform, FeatureService, Principal, Role, Grant,
                                    Stage, ModelStage)):
                    other = found.get((obj.kind, obj.name))
                    if other is not None and other is not obj and other.to_dict() != obj.to_dict():
                        raise DefinitionError(f"{obj.kind.replace('_', ' ')} {obj.name!r} is defined twice, "
                                              f"differently (second time in {path.name})")
                    found[(obj.kind, obj.name)] = obj
    finally:
        sys.path.remove(str(repo_path))
    order = {"entity": 0, "feature_view": 1, "transform": 2, "feature_service": 3, "stage": 4, "principal": 5,
             "role": 6, "grant": 7}
    return [o for _, o in sorted(found.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]
