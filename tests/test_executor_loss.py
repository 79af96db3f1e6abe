"""Executors lost on a real Spark standalone cluster on 127.0.0.1: one executor JVM killed
(SIGKILL) while it runs the clean job's tasks, and one while it runs a Horovod rank of the GAN's
training, both jobs spark-submitted as scripts/submit-pipeline.sh does. The cluster replaces the
executor; clean's lost tasks run again and its tables equal, row for row, a run without faults;
the training's failed try restarts from its last checkpoint and the job completes."""
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

from conftest import (ROOT, SMALL_GAN, assert_tables_equal, delta, events_of, free_port, lake_overrides,
                      standalone_cluster)
from recsynth import tables as T
from recsynth.config import load_conf
from recsynth.lake import Lake
from recsynth.ops.runs import run_job
from recsynth.pipeline import JOBS

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.horovod, pytest.mark.timeout(2400)]

GAN_EPOCHS = 30
OPTIONS = ["sources.rees46.enabled=false", *SMALL_GAN,
           "synth.gan={embedding_dim: 16, generator_dims: [32, 32], discriminator_dims: [32, 32], pac: 4, batch_size: 100,"
           f" epochs: {GAN_EPOCHS}, learning_rate: 0.0002, gradient_penalty: 10.0}}"]


class Submission:
    """A job spark-submitted with submit-pipeline.sh; its driver log is read line by line as it comes."""

    def __init__(self, job: str, options: list[str], env: dict, log_file: Path):
        self.lines: list[str] = []
        self.log_file = log_file
        self.process = subprocess.Popen([str(ROOT / "scripts" / "submit-pipeline.sh"), *options], cwd=ROOT, text=True,
                                        env={**env, "RECSYNTH_JOB": job, "COLUMNS": "1000"},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, text: str, timeout_s: float = 900) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"the job ended before {text!r}:\n{''.join(self.lines[-40:])}"
            assert time.monotonic() < deadline, f"no {text!r} in the driver's log within {timeout_s} s"
            time.sleep(0.2)

    def finish(self, timeout_s: float = 1500) -> str:
        self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=60)
        log = "".join(self.lines)
        self.log_file.write_text(log)  # kept with the test's files, to read what the driver said
        assert self.process.returncode == 0, log[-4000:]
        return log


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


def _job_options(base: Path, events: Path, ui_port: int) -> list[str]:
    events.mkdir()
    return [f"--set={o}" for o in [
        *lake_overrides(base), "spark.driver_memory=1g", *OPTIONS,
        f"spark.extra={{spark.ui.enabled: 'true', spark.ui.port: '{ui_port}', spark.ui.showConsoleProgress: 'false', spark.eventLog.enabled: 'true',"
        f" spark.eventLog.dir: '{events}'}}"]]


def _lost_task_ends(events: Path) -> list[dict]:
    return [e for e in events_of(events, "SparkListenerTaskEnd") if e["Task End Reason"]["Reason"] == "ExecutorLostFailure"]


def test_executors_lost_in_a_job_and_in_training_cost_no_data(spark, tmp_path, etl_reference):
    conf = load_conf("local", [*lake_overrides(tmp_path), *OPTIONS], ROOT / "conf")
    lake = Lake(spark, conf)
    run_job(JOBS["ingest"], spark, conf, lake)
    with standalone_cluster(tmp_path) as env:
        ui_port = free_port()
        clean = Submission("clean", _job_options(tmp_path, tmp_path / "clean-events", ui_port), env, tmp_path / "clean.log")
        clean.wait_for("clean: run ")
        killed_in_clean = _kill_a_busy_executor(tmp_path, ui_port)
        clean.finish()
        run_job(JOBS["gold"], spark, conf, lake)

        ui_port = free_port()
        synthesize = Submission("synthesize", _job_options(tmp_path, tmp_path / "synth-events", ui_port), env,
                                tmp_path / "synthesize.log")
        synthesize.wait_for(f"GAN epoch 2/{GAN_EPOCHS}")
        _kill_a_busy_executor(tmp_path, ui_port)
        log = synthesize.finish()

    lost = _lost_task_ends(tmp_path / "clean-events")
    assert lost and {e["Task Info"]["Executor ID"] for e in lost} == {killed_in_clean}
    assert any(e["Executor ID"] == killed_in_clean for e in events_of(tmp_path / "clean-events", "SparkListenerExecutorRemoved"))
    assert_tables_equal(spark, tmp_path / "lake", etl_reference, [*JOBS["clean"].outputs, *JOBS["gold"].outputs])

    assert "Horovod training try 1 of 2 failed" in log
    resumed = [line for line in log.splitlines() if "GAN training resumed from the checkpoint of epoch" in line]
    assert resumed and int(resumed[0].split("epoch ")[1].split()[0]) >= 1
    assert _lost_task_ends(tmp_path / "synth-events")
    quality = delta(spark, tmp_path / "lake", T.SYNTHETIC_QUALITY).first()
    assert delta(spark, tmp_path / "lake", T.SYNTHETIC_BEHAVIOR).count() == quality["synthetic_rows"] > 0
    runs = delta(spark, tmp_path / "lake", T.OPS_JOB_RUNS).groupBy("job", "status").count().collect()
    assert sorted(tuple(r) for r in runs) == [("clean", "succeeded", 1), ("gold", "succeeded", 1), ("ingest", "succeeded", 1),
                                              ("synthesize", "succeeded", 1)]
