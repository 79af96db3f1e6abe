#!/usr/bin/env bash
# beeline, the JDBC shell that ships with pyspark, connected to recsynth's SQL server
# (start it first: .venv/bin/recsynth sql-server start). Arguments go to beeline, e.g.
#   scripts/beeline.sh -e "SELECT job, status, started_at FROM ops.job_runs ORDER BY started_at DESC LIMIT 5"
# RECSYNTH_JDBC_URL overrides the address (default: the sql_server.host/port defaults).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/beeline" ] || { echo "run scripts/setup.sh first" >&2; exit 1; }
export PATH="$VENV/bin:$PATH"   # pyspark's launcher finds Spark through this interpreter
exec "$VENV/bin/beeline" -u "${RECSYNTH_JDBC_URL:-jdbc:hive2://127.0.0.1:10000}" -n "${USER:-recsynth}" --silent=true "$@"
