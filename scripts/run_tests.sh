#!/usr/bin/env bash
# Set up (idempotent, cached) and run the test suite. Extra arguments go to pytest, e.g.
#   scripts/run_tests.sh -m "not slow"        skip the end-to-end tests
#   scripts/run_tests.sh tests/test_gold.py   one module
#   scripts/run_tests.sh --extended           also the extended tier (fault injection, the cluster; skipped otherwise)
# Two test processes by default (pytest-xdist; tests/conftest.py keeps each module in one process and
# sends the longest first); RECSYNTH_TEST_WORKERS=0 runs the suite in this process.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${RECSYNTH_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@"
