#!/usr/bin/env bash
# spark-sql on recsynth's warehouse, with the Delta jars and the same metastore as the jobs.
# Global recsynth options come first and end with "--", e.g.
#   scripts/spark-sql.sh -e "SELECT source, count(*) FROM silver.events GROUP BY source"
#   scripts/spark-sql.sh --env local --set lake.root=/data/lake -- -e "SHOW TABLES IN gold"
# With lake.metastore_server (the local default) it runs beside jobs and the SQL server; with an
# embedded metastore (metastore_server: null) not while a job is running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/recsynth" ] || { echo "run scripts/setup.sh first" >&2; exit 1; }
RECSYNTH_OPTS=()
if [[ " $* " == *" -- "* ]]; then
  while [ "$1" != "--" ]; do RECSYNTH_OPTS+=("$1"); shift; done
  shift
fi
mapfile -t SPARK_ARGS < <("$VENV/bin/recsynth" "${RECSYNTH_OPTS[@]}" spark-args)
export PATH="$VENV/bin:$PATH" PYSPARK_PYTHON="$VENV/bin/python"
exec "$VENV/bin/spark-sql" "${SPARK_ARGS[@]}" "$@"
