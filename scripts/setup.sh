#!/usr/bin/env bash
# Set up everything recsynth needs on a fresh machine, idempotently and cached:
#   1. checks: Python 3.11, a Java 17 (or 11) for Spark (g++ and cmake only when Horovod must be built;
#      cmake comes from PyPI when the system has none)
#   2. a virtual environment (.venv) with the pinned stack (requirements*.txt)
#   3. Horovod 0.28.1 built from source once, kept as a wheel in the cache, then installed
#   4. the Delta Lake jars and Derby's network server/client jars from Maven Central, checked against
#      their published SHA-1
#   5. recsynth itself, installed editable
# A second run finds everything in place and takes a few seconds.
# Environment: RECSYNTH_CACHE (default ~/.cache/recsynth) holds the Horovod wheel;
#              PYTHON (default python3.11) is the interpreter for the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
CACHE="${RECSYNTH_CACHE:-$HOME/.cache/recsynth}"
PYTHON="${PYTHON:-python3.11}"
DELTA_VERSION=3.3.2
DERBY_VERSION=10.14.2.0   # the Derby that pyspark 3.5.3 bundles (jars/derby-10.14.2.0.jar)
HOROVOD_VERSION=0.28.1
JARS_DIR="$ROOT/.cache/jars"
MAVEN="${MAVEN_REPO:-https://repo1.maven.org/maven2}"

STEP="starting"
HINT=""
step() { STEP="$1"; HINT="$2"; printf '\033[1m[setup] %s\033[0m\n' "$1"; }
fail() {
  printf '\n[setup] FAILED at step: %s\n[setup] why: %s\n[setup] what to do: %s\n' "$STEP" "$1" "$HINT" >&2
  exit 1
}
trap 'fail "the command on line $LINENO exited with status $? (its output is above)"' ERR

# ---------------------------------------------------------------------------------------------
step "check Python" "install Python 3.11 (e.g. pyenv install 3.11) or set PYTHON=/path/to/python3.11"
command -v "$PYTHON" >/dev/null || fail "$PYTHON is not on PATH"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || fail "$PYTHON is Python $pyver; the pinned stack (TensorFlow 2.15, Horovod 0.28.1) needs 3.11"

step "check Java" "install OpenJDK 17 (apt-get install openjdk-17-jdk-headless) or point JAVA_HOME at a JDK 17 or 11"
if [ -z "${JAVA_HOME:-}" ]; then
  for candidate in /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk /usr/lib/jvm/java-11-openjdk-amd64; do
    [ -x "$candidate/bin/java" ] && export JAVA_HOME="$candidate" && break
  done
fi
JAVA_BIN="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$JAVA_BIN" >/dev/null || fail "no java found (JAVA_HOME unset and java not on PATH)"
javaver=$("$JAVA_BIN" -version 2>&1 | awk -F'"' '/version/ {print $2}' | cut -d. -f1)
case "$javaver" in 11|17) ;; *) fail "Java $javaver found at $JAVA_BIN; Spark 3.5 runs on Java 17 or 11" ;; esac
echo "         Java $javaver at ${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"

# ---------------------------------------------------------------------------------------------
step "virtual environment" "remove .venv and run again; check disk space (df -h .) and that PyPI is reachable"
stamp_of() { cat requirements.txt requirements-dev.txt setup.py | sha256sum | cut -c1-16; }
STAMP="$(stamp_of)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
if [ "$(cat "$VENV/.recsynth-stamp" 2>/dev/null)" != "$STAMP" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1 setuptools==75.8.0 wheel==0.45.1
  "$PY" -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
else
  echo "         pinned stack already installed"
fi

# ---------------------------------------------------------------------------------------------
step "Horovod $HOROVOD_VERSION (TensorFlow + Gloo)" \
  "read the compiler output above; the build needs g++, cmake and about 2 GB of memory; delete $CACHE/wheels to force a rebuild"
TF_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))')
WHEEL_DIR="$CACHE/wheels/horovod-$HOROVOD_VERSION-tf$TF_VERSION-py$pyver"
if ! TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c "import horovod.tensorflow as h; assert h.gloo_built()" 2>/dev/null; then
  if ! ls "$WHEEL_DIR"/horovod-*.whl >/dev/null 2>&1; then
    echo "         building Horovod from source (a few minutes, once per machine)..."
    command -v g++ >/dev/null || fail "g++ not found: Horovod compiles from source (apt-get install g++)"
    if ! command -v cmake >/dev/null; then
      echo "         no cmake on PATH: installing cmake 3.31 from PyPI into the venv"
      "$PY" -m pip install --quiet --disable-pip-version-check cmake==3.31.6
      export PATH="$VENV/bin:$PATH"
    fi
    mkdir -p "$WHEEL_DIR"
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
    HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=GLOO \
    CMAKE_POLICY_VERSION_MINIMUM=3.5 MAKEFLAGS=-j"$(nproc)" \
      "$PY" -m pip wheel --quiet --no-deps --no-build-isolation --no-cache-dir -w "$WHEEL_DIR.partial" "horovod==$HOROVOD_VERSION"
    mv "$WHEEL_DIR.partial"/horovod-*.whl "$WHEEL_DIR"/ && rm -rf "$WHEEL_DIR.partial"
  fi
  # --no-deps: horovod[spark] pins pyarrow<11, but the stack runs pyarrow 14 (requirements.txt
  # installs horovod's run-time dependencies itself).
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps "$WHEEL_DIR"/horovod-*.whl
  TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c 'import horovod.tensorflow as h; assert h.gloo_built(), "Horovod was built without Gloo"'
else
  echo "         Horovod already installed with Gloo"
fi

# ---------------------------------------------------------------------------------------------
step "Delta Lake $DELTA_VERSION and Derby $DERBY_VERSION network jars" \
  "check that Maven Central is reachable (curl -I $MAVEN), or set MAVEN_REPO to a mirror"
mkdir -p "$JARS_DIR"
# group/artifact/version: Delta for every Spark session; Derby's network server and client for the
# metastore that jobs and the SQL server share (Spark ships only embedded Derby, one JVM at a time).
for coordinate in io/delta/delta-spark_2.12/$DELTA_VERSION io/delta/delta-storage/$DELTA_VERSION \
                  org/apache/derby/derbynet/$DERBY_VERSION org/apache/derby/derbyclient/$DERBY_VERSION; do
  version="${coordinate##*/}"; artifact="$(basename "$(dirname "$coordinate")")"
  jar="$JARS_DIR/$artifact-$version.jar"
  url="$MAVEN/$coordinate/$artifact-$version.jar"
  if [ ! -s "$jar" ]; then
    curl -sSfL --retry 3 -o "$jar.partial" "$url" || fail "could not download $url"
    expected=$(curl -sSfL --retry 3 "$url.sha1" | cut -c1-40) || fail "could not download $url.sha1"
    actual=$(sha1sum "$jar.partial" | cut -c1-40)
    [ "$expected" = "$actual" ] || { rm -f "$jar.partial"; fail "$artifact checksum mismatch (expected $expected, got $actual)"; }
    mv "$jar.partial" "$jar"
  fi
done
echo "         $(ls "$JARS_DIR" | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
step "recsynth package" "run: $PY -m pip install -e . and read its error"
if [ "$(cat "$VENV/.recsynth-stamp" 2>/dev/null)" != "$STAMP" ]; then
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  "$PY" -m pip check >/dev/null 2>&1 || "$PY" -m pip check | grep -v '^horovod' || true
  echo "$STAMP" > "$VENV/.recsynth-stamp"
fi
"$VENV/bin/recsynth" --help >/dev/null

trap - ERR
echo "[setup] ready: $VENV (Java $javaver, TensorFlow $TF_VERSION, Horovod $HOROVOD_VERSION, Delta $DELTA_VERSION)"
