#!/usr/bin/env bash
# Run every Feast peer task on one dataset, one process per task.
#   bash bench/peers/run_feast_all.sh DATA_DIR RESULTS_DIR [TIMEOUT_S] [STORES]
# STORES defaults to "file duckdb" (offline stores). Results:
#   RESULTS_DIR/feast_{store}_{task}.json (+ .log)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATA="$1"; RES="$2"; TIMEOUT="${3:-0}"; STORES="${4:-file duckdb}"
PY="${FEAST_VENV:-$ROOT/.bench/feast-venv}/bin/python"
bash "$HERE/setup_feast.sh" >/dev/null || exit 1
mkdir -p "$RES"
rc=0
for store in $STORES; do
  for task in historical materialize online; do
    "$PY" "$HERE/feast_peer.py" "$DATA" --task "$task" --offline-store "$store" \
      --timeout "$TIMEOUT" --out "$RES/feast_${store}_${task}.json" || rc=1
  done
done
exit $rc
