"""`skewless init`: a ready-to-run feature repo: the credit-scoring sample, the card-transactions template (a
synthetic history generated on the spot, aggregated views and on-demand transforms) or an empty repo."""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import FILE_NAME, Config
from .errors import ConfigError

_BUILTIN = Path(__file__).parent / "_data" / "credit_scoring"
_TRANSACTIONS = Path(__file__).parent / "_data" / "transactions"
TEMPLATES = ("credit-scoring", "transactions", "empty")


def _sample_dir() -> Path:
    """The shared datasets folder when it is beside the checkout, else the copy shipped in the package."""
    for parent in Path(__file__).resolve().parents:
        shared = parent / "shared" / "datasets" / "credit-scoring"
        if (shared / "loan_table.parquet").exists():
            return shared
    return _BUILTIN


def scaffold(path: str | Path, template: str = "credit-scoring", project: str | None = None,
             force: bool = False) -> Path:
    path = Path(path)
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder to create the repo in")
    if (path / FILE_NAME).exists() and not force:
        raise ConfigError(f"{path / FILE_NAME} already exists (use --force to overwrite the scaffold)")
    path.mkdir(parents=True, exist_ok=True)
    project = project or path.resolve().name.replace("-", "_")
    (path / FILE_NAME).write_text(Config.default(path, project).to_yaml())
    if template == "credit-scoring":
        data = path / "data"
        data.mkdir(exist_ok=True)
        src = _sample_dir()
        for name in ("loan_table.parquet", "zipcode_table.parquet"):
            shutil.copyfile(src / name, data / name)
        (path / "features.py").write_text((_BUILTIN / "features.py.txt").read_text())
    elif template == "transactions":
        from .transactions_data import generate

        generate(path / "data")  # deterministic: the same small history (500 cards, 20k events) every time
        (path / "features.py").write_text((_TRANSACTIONS / "features.py.txt").read_text())
    return path
