"""skewless on embedded defaults: Delta histories in a local folder, DuckDB, the SQLite online store.

    python examples/embedded.py [REPO]      # default: a temporary folder, removed at the end
"""

import sys
import tempfile
from pathlib import Path

import skewless as sk
from driver_stats import run

if __name__ == "__main__":
    if len(sys.argv) > 1:
        run(sk.init_repo(Path(sys.argv[1]), project="example"))
    else:
        with tempfile.TemporaryDirectory(prefix="skewless-example-") as tmp:
            run(sk.init_repo(Path(tmp) / "repo", project="example"))
