#!/usr/bin/env bash
# Set up (idempotent, cached) and run the test suite. Extra arguments go to pytest,
# e.g. scripts/run_tests.sh -m "not slow" to skip the end-to-end tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
