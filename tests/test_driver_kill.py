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

from conftest import (RECSYNTH, ROOT, assert_tables_equal, delta, is_delta_table, job_process_options, recsynth,
                      table_folder)
from recsynth import tables as T
from recsynth.faults import ENV
from recsynth.pipeline import ETL

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

COMPARED = [name for job in ETL for name in job.outputs if name != T.OPS_INGESTED_FILES] + [T.OPS_DATA_QUALITY]


def _killed(options: list[str], job: str, failpoint: str) -> None:
    env = {**os.environ, ENV: failpoint, "COLUMNS": "1000"}
    run = subprocess.run([RECSYNTH, *options, job], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                         start_new_session=True)
    assert run.returncode == -signal.SIGKILL, f"{job} was not killed at {failpoint}:\n{run.stderr[-3000:]}"


def test_driver_killed_inside_each_etl_write_then_rerun_equals_a_clean_run(spark, tmp_path, etl_reference):
    options = job_process_options(tmp_path)
    lake_dir = tmp_path / "lake"

    _killed(options, "ingest", "committed:bronze.events")
    assert is_delta_table(lake_dir, T.BRONZE_EVENTS) and not is_delta_table(lake_dir, T.OPS_INGESTED_FILES)
    rerun = recsynth(options, "ingest")
    assert "removing rows of interrupted ingest run(s)" in rerun.stderr

    _killed(options, "clean", "writing:silver.events")
    assert is_delta_table(lake_dir, T.SILVER_ITEMS) and not is_delta_table(lake_dir, T.SILVER_EVENTS)
    assert list(table_folder(lake_dir, T.SILVER_EVENTS).glob("part-*.parquet"))  # killed with a data file half written
    recsynth(options, "clean")

    _killed(options, "gold", "committed:gold.interactions")
    assert is_delta_table(lake_dir, T.GOLD_INTERACTIONS) and not is_delta_table(lake_dir, T.GOLD_BEHAVIOR)
    recsynth(options, "gold")

    assert_tables_equal(spark, lake_dir, etl_reference, COMPARED)
    runs = delta(spark, lake_dir, T.OPS_JOB_RUNS).groupBy("job", "status").count().collect()
    assert sorted(tuple(r) for r in runs) == [("clean", "succeeded", 1), ("gold", "succeeded", 1), ("ingest", "succeeded", 1)]
