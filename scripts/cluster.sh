#!/usr/bin/env bash
# Start / stop / check a Spark standalone cluster on 127.0.0.1 from the installed pyspark:
#   scripts/cluster.sh start            # master spark://127.0.0.1:7077 (UI :8080) + 1 worker, 2 cores, 4g
#   scripts/cluster.sh --workers 2 --cores 1 start
#   scripts/cluster.sh status | stop
# Global recsynth options (e.g. --set ops.service_dir=...) go before "--": scripts/cluster.sh --set k=v -- start
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" >/dev/null
RECSYNTH_OPTS=()
if [[ " $* " == *" -- "* ]]; then
  while [ "$1" != "--" ]; do RECSYNTH_OPTS+=("$1"); shift; done
  shift
fi
cd "$ROOT"
exec "$ROOT/.venv/bin/recsynth" "${RECSYNTH_OPTS[@]}" cluster "$@"
