#!/usr/bin/env bash
# Set up (idempotent, cached) and run the whole pipeline on the bundled sample data in
# Spark local mode, into the local Delta warehouse ./warehouse. Extra arguments go to
# `recsynth pipeline`, e.g. --set spark.shuffle_partitions=4.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/recsynth" --env local pipeline "$@"
