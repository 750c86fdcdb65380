#!/usr/bin/env bash
# Run the Feast peer tasks on one dataset, one process per task.
#   bash bench/peers/run_feast_all.sh DATA_DIR RESULTS_DIR [TIMEOUT_S]
# Environment:
#   STORES   offline stores to run       (default "file duckdb")
#   TASKS    tasks to run                 (default "historical materialize online")
#   REPEATS  runs of each task            (default 1)
#   EXTRA    extra feast_peer.py arguments (e.g. "--max-rss-gb 12")
# Results: RESULTS_DIR/feast_{store}_{task}.json (+ .log); with REPEATS>1
#          RESULTS_DIR/feast_{store}_{task}_r{k}.json
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATA="$1"; RES="$2"; TIMEOUT="${3:-0}"
STORES="${STORES:-file duckdb}"
TASKS="${TASKS:-historical materialize online}"
REPEATS="${REPEATS:-1}"
EXTRA="${EXTRA:-}"
PY="${FEAST_VENV:-$ROOT/.bench/feast-venv}/bin/python"
bash "$HERE/setup_feast.sh" >/dev/null || exit 1
mkdir -p "$RES"
rc=0
for k in $(seq 1 "$REPEATS"); do
  for store in $STORES; do
    for task in $TASKS; do
      suffix=""; [ "$REPEATS" -gt 1 ] && suffix="_r$k"
      # shellcheck disable=SC2086
      "$PY" "$HERE/feast_peer.py" "$DATA" --task "$task" --offline-store "$store" \
        --timeout "$TIMEOUT" --out "$RES/feast_${store}_${task}${suffix}.json" $EXTRA || rc=1
    done
  done
done
exit $rc
