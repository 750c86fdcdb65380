#!/usr/bin/env bash
# Create the Feast peer venv used by bench/peers/feast_peer.py.
# Idempotent: if the venv exists and imports feast 0.67.0, do nothing.
#   bash bench/peers/setup_feast.sh            # -> /work/main/.bench/feast-venv
#   FEAST_VENV=/some/dir bash bench/peers/setup_feast.sh
#   FEAST_VENV=.bench/feast-spark-venv FEAST_EXTRAS=duckdb,redis,spark bash bench/peers/setup_feast.sh
#     (Feast's Spark offline store, bench/spark_bench.py: pyspark pinned to skewless's constraints.txt version, so
#     both run the same Spark)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${FEAST_VENV:-$ROOT/.bench/feast-venv}"
FEAST_VERSION="${FEAST_VERSION:-0.67.0}"
PY="${PYTHON:-python3}"
EXTRAS="${FEAST_EXTRAS:-duckdb,redis}"
PINS=()
SPARK_CHECK=""
if [[ ",$EXTRAS," == *",spark,"* ]]; then
  PINS+=("$(grep -i '^pyspark==' "$ROOT/constraints.txt")")
  SPARK_CHECK="import pyspark"
fi

check() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$FEAST_VERSION" "$SPARK_CHECK" <<'PYEOF' >/dev/null 2>&1
import sys, importlib.metadata as md
import feast, duckdb, dask, redis, hiredis  # noqa: F401  (file + duckdb offline stores, redis online store)
assert md.version("feast") == sys.argv[1], md.version("feast")
exec(sys.argv[2])  # the spark extra: pyspark imports
PYEOF
}

if check; then
  echo "feast-venv ok: $VENV (feast[$EXTRAS]==$FEAST_VERSION)"
  exit 0
fi

start=$(date +%s)
echo "creating $VENV ..."
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY" -m venv "$VENV"
# pip's progress without its noise, filtered as ./run filters it
progress() { awk -f "$ROOT/.ci/pip-progress.awk"; }
"$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | progress
# feast core brings dask[dataframe] (file offline store) and uses the stdlib
# sqlite3 module (sqlite online store); the [duckdb] extra adds the
# ibis/duckdb-based offline store, [redis] its Redis online store (redis-py + hiredis). psutil is only a
# convenience for RSS.
echo "installing feast[$EXTRAS]==$FEAST_VERSION ${PINS[*]} into $VENV ..."
"$VENV/bin/python" -m pip install "feast[$EXTRAS]==$FEAST_VERSION" "${PINS[@]}" psutil 2>&1 | progress
end=$(date +%s)

if check; then
  echo "feast-venv ready: $VENV (feast==$FEAST_VERSION) in $((end - start)) s"
else
  echo "feast-venv check failed" >&2
  "$VENV/bin/python" -c "import feast, duckdb, dask, redis, hiredis" || true
  exit 1
fi
