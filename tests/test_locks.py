"""One run of a job at a time per lake: a second run fails naming the first, or waits for it;
a lock left by a dead process is taken over; two real ingests at once never double bronze."""
from __future__ import annotations

import json
import socket
import subprocess
import threading
import time

import pytest

from conftest import DATA, RECSYNTH, ROOT, lake_overrides, recsynth
from recsynth.runtime.locks import JobLocked, job_lock, lock_path


def test_a_second_run_fails_naming_the_first(tmp_path):
    with job_lock(str(tmp_path), "ingest", "ingest-1"):
        holder = json.loads(lock_path(str(tmp_path), "ingest").read_text())
        assert holder["run_id"] == "ingest-1"
        with pytest.raises(JobLocked, match="job ingest is already running: run ingest-1 holds it"):
            with job_lock(str(tmp_path), "ingest", "ingest-2"):
                pass
        with job_lock(str(tmp_path), "clean", "clean-1"):  # other jobs are not blocked
            pass
    assert not lock_path(str(tmp_path), "ingest").exists()  # released


def test_a_waiting_run_starts_when_the_first_ends(tmp_path):
    order = []
    first_holds = threading.Event()

    def first():
        with job_lock(str(tmp_path), "gold", "gold-1"):
            first_holds.set()
            time.sleep(1.5)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait()
    with job_lock(str(tmp_path), "gold", "gold-2", wait_s=30):
        order.append("second started")
    thread.join()
    assert order == ["first done", "second started"]


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: its pid no longer runs
    path = lock_path(str(tmp_path), "recommend")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": "recommend-killed", "pid": finished.pid, "host": socket.gethostname()}))
    with job_lock(str(tmp_path), "recommend", "recommend-2"):
        assert json.loads(path.read_text())["run_id"] == "recommend-2"


def test_a_lock_on_another_host_is_respected(tmp_path):
    path = lock_path(str(tmp_path), "ingest")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": "ingest-elsewhere", "pid": 1, "host": "other-node"}))
    with pytest.raises(JobLocked, match="ingest-elsewhere.*other-node"):
        with job_lock(str(tmp_path), "ingest", "ingest-2"):
            pass


def test_object_store_lakes_are_not_locked(tmp_path):
    assert lock_path("s3a://bucket/lake", "ingest") is None


@pytest.mark.slow
def test_a_locked_job_changes_no_table_and_says_who_holds_it(tmp_path):
    options = [f"--set={o}" for o in [*lake_overrides(tmp_path), "sources.rees46.enabled=false"]]
    with job_lock(str(tmp_path / "lake"), "ingest", "ingest-held-by-test"):
        done = subprocess.run([RECSYNTH, *options, "ingest"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "job ingest is already running: run ingest-held-by-test holds it" in done.stderr
    assert not (tmp_path / "lake" / "bronze" / "events").exists()


@pytest.mark.slow
def test_two_ingests_at_once_ingest_every_file_once(spark, tmp_path):
    # No Hive metastore: an embedded Derby would admit only one of the two JVMs (the lock is the subject here)
    options = [f"--set={o}" for o in [*lake_overrides(tmp_path), "lake.metastore_dir=null", "sources.rees46.enabled=false",
                                      "ops.lock_wait_s=900"]]
    runs = [subprocess.Popen([RECSYNTH, *options, "ingest"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    raw_events = sum(len(p.read_text().splitlines()) - 1 for p in (DATA / "retailrocket").glob("events*.csv"))
    raw_rows = raw_events + len((DATA / "retailrocket" / "category_tree.csv").read_text().splitlines()) - 1
    lake = tmp_path / "lake"
    assert spark.read.format("delta").load(str(lake / "bronze" / "events")).count() == raw_events
    ingests = spark.read.format("delta").load(str(lake / "ops" / "job_runs")).where("job = 'ingest'").collect()
    # one run ingested everything, the other waited for it and found nothing new
    assert sorted((r["status"], r["rows_in"]) for r in ingests) == [("succeeded", 0), ("succeeded", raw_rows)]
    recsynth(options, "status")  # and the lake reads back whole
