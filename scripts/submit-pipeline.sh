#!/usr/bin/env bash
# spark-submit the whole pipeline (ingest -> clean -> gold -> synthesize -> recommend) to a Spark
# standalone cluster, as on a real one:
#   - recsynth ships to the executors as a wheel (--py-files), built from this checkout;
#   - Delta ships as its jars (spark.jars from `recsynth spark-args`);
#   - Horovod runs its ranks as Spark tasks in the executors (one core each).
# Usage: scripts/cluster.sh start && scripts/submit-pipeline.sh [recsynth options, e.g. --set synth.gan.epochs=2]
# Environment: RECSYNTH_MASTER (spark://127.0.0.1:7077), RECSYNTH_EXECUTORS (2: one per Horovod rank),
#              RECSYNTH_EXECUTOR_MEMORY (2g), RECSYNTH_ENV (standalone),
#              RECSYNTH_JOB (pipeline; or one job: ingest, clean, gold, synthesize, recommend).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh" >/dev/null
VENV="$ROOT/.venv"
MASTER="${RECSYNTH_MASTER:-spark://127.0.0.1:7077}"
EXECUTORS="${RECSYNTH_EXECUTORS:-2}"
ENV_NAME="${RECSYNTH_ENV:-standalone}"
JOB="${RECSYNTH_JOB:-pipeline}"
[ -f "$ROOT/jobs/$JOB.py" ] || { echo "RECSYNTH_JOB=$JOB: no such job (jobs/*.py)" >&2; exit 2; }
cd "$ROOT"

WHEEL_DIR="$ROOT/build/submit"
rm -rf "$WHEEL_DIR"
"$VENV/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$WHEEL_DIR" "$ROOT"
WHEEL="$(ls "$WHEEL_DIR"/recsynth-*.whl)"

mapfile -t SPARK_ARGS < <("$VENV/bin/recsynth" --env "$ENV_NAME" "$@" spark-args)
# Executors run Python from this interpreter (on a real cluster: the nodes' environment with the
# pinned stack, or a packed one shipped with --archives).
export PYSPARK_PYTHON="$VENV/bin/python" PATH="$VENV/bin:$PATH"
echo "[submit] $JOB on $MASTER: $EXECUTORS executor(s) x 1 core, wheel $(basename "$WHEEL")" >&2
exec "$VENV/bin/spark-submit" --master "$MASTER" --deploy-mode client --name "recsynth $JOB" \
  --conf spark.executor.cores=1 --conf spark.cores.max="$EXECUTORS" \
  --conf spark.executor.memory="${RECSYNTH_EXECUTOR_MEMORY:-2g}" \
  --py-files "$WHEEL" "${SPARK_ARGS[@]}" "$ROOT/jobs/$JOB.py" --env "$ENV_NAME" "$@"
