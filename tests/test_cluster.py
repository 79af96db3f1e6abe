"""The whole pipeline spark-submitted to a real Spark standalone cluster on 127.0.0.1 (master and
worker started from the installed pyspark by `recsynth cluster`), the way scripts/submit-pipeline.sh
does it on a user's cluster: recsynth shipped as a wheel, Delta as its jars, Horovod ranks in two
executors. Two executors are lost on the way, each killed (SIGKILL) while it works: one running
clean's tasks, one running a Horovod rank of the GAN's training. The cluster replaces them;
clean's lost tasks run again and its tables (and gold's) equal, row for row, a run without faults;
the training's failed try restarts from its last checkpoint; every job succeeds once.

One cluster and one submission serve every assertion: a cluster start-up and a pipeline run each
cost minutes of the suite's budget."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import (DATA, END_TO_END_RECS, ROOT, SMALL_GAN, SMALL_RECS, assert_tables_equal, delta, events_of,
                      free_port, lake_overrides, standalone_cluster)
from recsynth import tables as T
from recsynth.pipeline import JOBS, PIPELINE

# the module's whole pipeline runs inside its first test's time budget
pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.horovod, pytest.mark.extended, pytest.mark.timeout(2400)]

GAN_EPOCHS = 10  # long enough to kill an executor in the middle of training
OPTIONS = ["sources.rees46.enabled=false", *SMALL_GAN, *SMALL_RECS, *END_TO_END_RECS,
           "synth.gan={embedding_dim: 16, generator_dims: [32, 32], discriminator_dims: [32, 32], pac: 4, batch_size: 100,"
           f" epochs: {GAN_EPOCHS}, learning_rate: 0.0002, gradient_penalty: 10.0}}"]


class Submission:
    """scripts/submit-pipeline.sh running; its driver log is read line by line as it comes."""

    def __init__(self, options: list[str], env: dict, log_file: Path):
        self.lines: list[str] = []
        self.log_file = log_file
        self.process = subprocess.Popen([str(ROOT / "scripts" / "submit-pipeline.sh"), *options], cwd=ROOT, text=True,
                                        env={**env, "COLUMNS": "1000"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout_s: float = 900) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"the job ended before {text!r}:\n{''.join(self.lines[-40:])}"
            assert time.monotonic() < deadline, f"no {text!r} in the driver's log within {timeout_s} s"
            time.sleep(0.2)

    def finish(self, timeout_s: float = 1800) -> tuple[int, str]:
        self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=60)
        log = "".join(self.lines)
        self.log_file.write_text(log)  # kept with the test's files, to read what the driver said
        return self.process.returncode, log


def _executor_pid(base: Path, executor_id: str) -> int:
    """The pid of this cluster's executor JVM with that id (its working folder is under `base`)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"org.apache.spark.executor.CoarseGrainedExecutorBackend" in argv and \
                    argv[argv.index(b"--executor-id") + 1].decode() == executor_id and \
                    os.readlink(proc / "cwd").startswith(str(base)):
                return int(proc.name)
        except (OSError, ValueError):  # a process that ended, or not ours
            continue
    raise AssertionError(f"no executor {executor_id} process under {base}")


def _kill_a_busy_executor(base: Path, ui_port: int, timeout_s: float = 300) -> str:
    """SIGKILL the JVM of an executor that is running tasks now (asked from the driver's REST API)."""
    api = f"http://127.0.0.1:{ui_port}/api/v1/applications"
    deadline, busy_before = time.monotonic() + timeout_s, set()
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(api, timeout=5) as answer:
                app = json.load(answer)[0]["id"]
            with urllib.request.urlopen(f"{api}/{app}/executors", timeout=5) as answer:
                busy = {e["id"] for e in json.load(answer) if e["id"] != "driver" and e["activeTasks"] > 0}
        except OSError:  # the driver's UI is not up yet
            busy = set()
        still_busy = sorted(busy & busy_before)  # busy in two polls running: killed in the middle of a task
        if still_busy:
            os.kill(_executor_pid(base, still_busy[0]), signal.SIGKILL)
            return still_busy[0]
        busy_before = busy
        time.sleep(0.1)
    raise AssertionError("no executor ran a task")


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """One pipeline run on the cluster with two executors killed on the way: (lake folder, event
    log folder, exit code, driver log, the executor killed in clean, the one killed in training)."""
    base = tmp_path_factory.mktemp("cluster")
    events = base / "eventlog"
    events.mkdir()
    ui_port = free_port()
    options = [f"--set={o}" for o in [
        *lake_overrides(base), "spark.driver_memory=1g", *OPTIONS,
        f"spark.extra={{spark.ui.enabled: 'true', spark.ui.port: '{ui_port}', spark.ui.showConsoleProgress: 'false',"
        f" spark.eventLog.enabled: 'true', spark.eventLog.dir: '{events}'}}"]]
    with standalone_cluster(base) as env:
        pipeline = Submission(options, env, base / "pipeline.log")
        pipeline.wait_for("clean: started")
        killed_in_clean = _kill_a_busy_executor(base, ui_port)
        pipeline.wait_for(f"GAN epoch 1/{GAN_EPOCHS}")  # the first epoch reaches the console
        killed_in_training = _kill_a_busy_executor(base, ui_port)
        code, log = pipeline.finish()
    return base / "lake", events, code, log, killed_in_clean, killed_in_training


def test_every_job_succeeded_once_although_two_executors_were_lost(spark, submitted):
    lake, events, code, log, killed_in_clean, killed_in_training = submitted
    assert code == 0, log[-4000:]
    runs = delta(spark, lake, T.OPS_JOB_RUNS).groupBy("job", "status").count().collect()
    assert sorted(tuple(r) for r in runs) == sorted((job.name, "succeeded", 1) for job in PIPELINE)
    lost = [e for e in events_of(events, "SparkListenerTaskEnd") if e["Task End Reason"]["Reason"] == "ExecutorLostFailure"]
    assert {e["Task Info"]["Executor ID"] for e in lost} == {killed_in_clean, killed_in_training}
    removed = {e["Executor ID"] for e in events_of(events, "SparkListenerExecutorRemoved")}
    assert {killed_in_clean, killed_in_training} <= removed


def test_clean_and_gold_tables_equal_a_run_without_faults(spark, submitted, etl_reference):
    lake = submitted[0]
    assert_tables_equal(spark, lake, etl_reference, [*JOBS["clean"].outputs, *JOBS["gold"].outputs])


def test_training_resumed_from_its_checkpoint_after_the_lost_executor(submitted):
    log = submitted[3]
    assert "Horovod training try 1 of 2 failed" in log
    resumed = [line for line in log.splitlines() if "GAN training resumed from the checkpoint of epoch" in line]
    assert resumed and int(resumed[0].split("epoch ")[1].split()[0]) >= 1


def test_the_tables_hold_what_the_raw_files_and_the_models_say(spark, submitted):
    lake = submitted[0]
    raw_events = sum(len(p.read_text().splitlines()) - 1 for p in (DATA / "retailrocket").glob("events*.csv"))
    assert delta(spark, lake, "bronze.events").count() == raw_events
    silver = delta(spark, lake, "silver.events").count()
    quarantined = delta(spark, lake, "silver.quarantine").where("entity = 'events'").count()
    assert silver + quarantined == raw_events
    users = delta(spark, lake, "gold.splits").select("user_id").distinct().count()
    assert delta(spark, lake, "recs.top_n").select("user_id").distinct().count() == users
    quality = delta(spark, lake, "synthetic.quality").first()
    assert delta(spark, lake, "synthetic.behavior").count() == quality["synthetic_rows"] > 0


def test_executors_ran_the_work_and_horovod_ranks_ran_in_two_executors(submitted):
    events = submitted[1]
    ends = events_of(events, "SparkListenerTaskEnd")
    assert "driver" not in {e["Task Info"]["Executor ID"] for e in ends}  # no work on the driver
    stages = events_of(events, "SparkListenerStageCompleted")
    # horovod.spark.run starts its ranks as the tasks of one stage (its call site is in horovod/spark);
    # the GAN's first try, whose executor was killed, is a failed stage
    rank_stages = {s["Stage Info"]["Stage ID"]: s["Stage Info"]["Stage Name"] for s in stages
                   if "horovod" in s["Stage Info"]["Stage Name"] and "Failure Reason" not in s["Stage Info"]}
    assert len(rank_stages) >= 2, rank_stages  # GAN, sequence model
    for stage, name in rank_stages.items():
        executors = [e["Task Info"]["Executor ID"] for e in ends
                     if e["Stage ID"] == stage and e["Task End Reason"]["Reason"] == "Success"]
        assert len(executors) == len(set(executors)) == 2, (name, executors)  # one rank in each of two executors
