"""The driver killed (SIGKILL of its whole process group, no clean-up) inside each ETL job's
writes: in ingest right after bronze.events committed but before its files were recorded, in
clean while silver.events' data files were being written, in gold between two tables' commits.
After each kill every table is at a whole Delta version (the previous one or the complete new
one); the next run of the ETL pipeline repairs and completes the killed job; and at the end every
table equals, row for row, the same jobs run once without faults (nothing lost, nothing twice)."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import (RECSYNTH, ROOT, assert_tables_equal, delta, is_delta_table, job_process_options, recsynth,
                      table_folder)
from recsynth import tables as T
from recsynth.faults import ENV
from recsynth.pipeline import ETL

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

COMPARED = [name for job in ETL for name in job.outputs if name != T.OPS_INGESTED_FILES] + [T.OPS_DATA_QUALITY]


ETL_PIPELINE = ("pipeline", "--until", "gold")  # as a scheduler re-runs it: each run is one JVM start-up


def _killed(options: list[str], failpoint: str) -> str:
    """The ETL pipeline run until it is killed at `failpoint`; what it logged."""
    env = {**os.environ, ENV: failpoint, "COLUMNS": "1000"}
    run = subprocess.run([RECSYNTH, *options, *ETL_PIPELINE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900, start_new_session=True)
    assert run.returncode == -signal.SIGKILL, f"the pipeline was not killed at {failpoint}:\n{run.stderr[-3000:]}"
    return run.stderr


def test_driver_killed_inside_each_etl_write_then_rerun_equals_a_clean_run(spark, tmp_path, etl_reference):
    options = job_process_options(tmp_path)
    lake_dir = tmp_path / "lake"

    _killed(options, "committed:bronze.events")
    assert is_delta_table(lake_dir, T.BRONZE_EVENTS) and not is_delta_table(lake_dir, T.OPS_INGESTED_FILES)

    rerun = _killed(options, "writing:silver.events")  # ingest again, then killed in clean
    assert "removing rows of interrupted ingest run(s)" in rerun
    assert is_delta_table(lake_dir, T.SILVER_ITEMS) and not is_delta_table(lake_dir, T.SILVER_EVENTS)
    assert list(table_folder(lake_dir, T.SILVER_EVENTS).glob("part-*.parquet"))  # killed with a data file half written

    _killed(options, "committed:gold.interactions")  # clean again, then killed in gold
    assert is_delta_table(lake_dir, T.GOLD_INTERACTIONS) and not is_delta_table(lake_dir, T.GOLD_BEHAVIOR)
    recsynth(options, *ETL_PIPELINE)

    assert_tables_equal(spark, lake_dir, etl_reference, COMPARED)
    runs = delta(spark, lake_dir, T.OPS_JOB_RUNS).orderBy("started_at").collect()
    assert [(r["job"], r["status"]) for r in runs] == [
        ("ingest", "succeeded"), ("ingest", "succeeded"), ("clean", "succeeded"), ("ingest", "succeeded"),
        ("clean", "skipped"), ("gold", "succeeded")]
    assert [r["rows_out"] for r in runs if r["job"] == "ingest"][1:] == [0, 0]  # the re-runs found no new file
