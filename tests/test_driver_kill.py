"""The driver killed (SIGKILL of its whole process group, no clean-up) inside each ETL job's
writes: in ingest right after bronze.events committed but before its files were recorded, in
clean while silver.events' data files were being written, in gold between two tables' commits.
After each kill every table is at a whole Delta version (the previous one or the complete new
one); the re-run completes; and at the end every table equals, row for row, the same jobs run
once without faults (nothing lost, nothing twice)."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest
from pyspark.testing import assertDataFrameEqual

from conftest import RECSYNTH, ROOT, delta, lake_overrides, recsynth
from recsynth import tables as T
from recsynth.lake import Lake
from recsynth.ops.faults import ENV
from recsynth.ops.runs import run_job
from recsynth.pipeline import ETL

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

# Columns that name the run or its time: they differ between any two runs by design.
RUN_COLUMNS = {T.INGEST_RUN_ID, T.INGESTED_AT, "run_id", "ingest_run_id", "quarantined_at", "measured_at"}
COMPARED = [name for job in ETL for name in job.outputs if name not in (T.OPS_INGESTED_FILES,)] + [T.OPS_DATA_QUALITY]


def _folder(lake_dir, name: str):
    schema, table = name.split(".")
    return lake_dir / schema / table


def _is_table(lake_dir, name: str) -> bool:
    """A Delta table is there once its first commit is: data files alone are not one."""
    return any((_folder(lake_dir, name) / "_delta_log").glob("*.json"))


def _killed(options: list[str], job: str, failpoint: str) -> str:
    env = {**os.environ, ENV: failpoint, "COLUMNS": "1000"}
    run = subprocess.run([RECSYNTH, *options, job], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                         start_new_session=True)
    assert run.returncode == -signal.SIGKILL, f"{job} was not killed at {failpoint}:\n{run.stderr[-3000:]}"
    return run.stderr


def _comparable(frame):
    return frame.drop(*[c for c in frame.columns if c in RUN_COLUMNS])


def test_driver_killed_inside_each_etl_write_then_rerun_equals_a_clean_run(spark, tmp_path, conf_for):
    # No Hive metastore: the killed JVMs would leave embedded Derby's lock behind (the lake is the subject here)
    options = [f"--set={o}" for o in [*lake_overrides(tmp_path), "lake.metastore_dir=null"]]
    lake_dir = tmp_path / "lake"

    _killed(options, "ingest", "committed:bronze.events")
    assert _is_table(lake_dir, T.BRONZE_EVENTS) and not _is_table(lake_dir, T.OPS_INGESTED_FILES)
    rerun = recsynth(options, "ingest")
    assert "removing rows of interrupted ingest run(s)" in rerun.stderr

    _killed(options, "clean", "writing:silver.events")
    assert _is_table(lake_dir, T.SILVER_ITEMS) and not _is_table(lake_dir, T.SILVER_EVENTS)
    assert list(_folder(lake_dir, T.SILVER_EVENTS).glob("part-*.parquet"))  # killed with a data file half written
    recsynth(options, "clean")

    _killed(options, "gold", "committed:gold.interactions")
    assert _is_table(lake_dir, T.GOLD_INTERACTIONS) and not _is_table(lake_dir, T.GOLD_BEHAVIOR)
    recsynth(options, "gold")

    clean_conf = conf_for()
    clean_lake = Lake(spark, clean_conf)
    for job in ETL:
        run_job(job, spark, clean_conf, clean_lake)
    for name in COMPARED:
        actual, expected = _comparable(delta(spark, lake_dir, name)), _comparable(clean_lake.read(name))
        assert actual.count() == expected.count(), name
        assertDataFrameEqual(actual, expected)
    runs = delta(spark, lake_dir, T.OPS_JOB_RUNS).groupBy("job", "status").count().collect()
    assert sorted(tuple(r) for r in runs) == [("clean", "succeeded", 1), ("gold", "succeeded", 1), ("ingest", "succeeded", 1)]
