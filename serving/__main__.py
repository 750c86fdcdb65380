"""The image's entry point: ``python -m skewless.serving serve`` (so ``<image> serve`` works as SageMaker
starts containers). Configuration comes from the environment; see ``skewless.serving.server``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["serve"]:
        print("usage: python -m skewless.serving serve   (configured by SKEWLESS_* environment variables)",
              file=sys.stderr)
        return 2
    from skewless.errors import SkewlessError

    from .server import ServeConfig, run

    try:
        run(ServeConfig.from_env())
    except SkewlessError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
