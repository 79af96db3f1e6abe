"""The thin jobs/*.py entry files run under a real spark-submit (local master, Delta jars passed
with --jars), with the same options as the recsynth command."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, lake_overrides

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """(lake base, recsynth options, submit): jobs/ingest.py spark-submitted once onto a fresh
    lake and metastore; `submit()` submits it again. The lake is then read by spark-sql too."""
    base = tmp_path_factory.mktemp("submit")
    venv_bin = Path(sys.executable).parent
    jars = ",".join(str(p) for p in sorted((ROOT / ".cache" / "jars").glob("delta-*.jar")))
    options = [f"--set={o}" for o in lake_overrides(base)] + ["--set=sources.rees46.enabled=false"]
    env = {**os.environ, "PATH": f"{venv_bin}:{os.environ['PATH']}", "PYSPARK_PYTHON": sys.executable}

    def submit() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(venv_bin / "spark-submit"), "--master", "local[2]", "--jars", jars, str(ROOT / "jobs" / "ingest.py"),
             *options], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)

    return base, options, submit, submit()


def test_ingest_job_under_spark_submit(submitted):
    base, _, submit, done = submitted
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ingest: succeeded" in done.stdout
    assert (base / "lake" / "bronze" / "events" / "_delta_log" / "00000000000000000000.json").is_file()
    again = submit()
    assert again.returncode == 0 and "nothing to ingest" in again.stdout


def test_spark_sql_reads_the_tables_jobs_wrote(submitted):
    """spark-sql (scripts/spark-sql.sh) on the warehouse and metastore a job wrote."""
    _, options, _, wrote = submitted
    assert wrote.returncode == 0, wrote.stderr[-3000:]
    query = "SELECT source, count(*) FROM bronze.events GROUP BY source"
    done = subprocess.run([str(ROOT / "scripts" / "spark-sql.sh"), *options, "--", "-e", query],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "retailrocket\t3000" in done.stdout
