#!/usr/bin/env bash
# Set up (idempotent, cached) and run the test suite on two test processes (pytest-xdist: much of
# the suite waits on JVM and Horovod start-ups; tests/conftest.py keeps each module in one process
# and sends the longest first). Extra arguments go to pytest, e.g.
#   scripts/run_tests.sh -m "not slow"             skip the end-to-end tests
#   scripts/run_tests.sh -n 0 tests/test_gold.py   one module, in this process
# RECSYNTH_TEST_WORKERS sets the number of test processes (default 2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest -n "${RECSYNTH_TEST_WORKERS:-2}" --dist loadgroup --no-loadscope-reorder "$@"
