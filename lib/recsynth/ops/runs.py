"""Job runs: every run leaves one row in ops.job_runs, and a failed run leaves the tables it
touched at their previous versions. A job whose inputs and conf are unchanged since its last
successful run is skipped, so re-running the pipeline writes no new table versions."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import Conf
from recsynth.errors import JobFailed, RecsynthError
from recsynth.lake import Lake
from recsynth.ops.locks import job_lock

log = logging.getLogger(__name__)

JOB_RUNS_SCHEMA = (
    "run_id string, job string, status string, conf_hash string, started_at timestamp, ended_at timestamp, "
    "rows_in bigint, rows_out bigint, input_versions map<string,bigint>, output_versions map<string,bigint>, message string"
)


@dataclass
class RunContext:
    """What a job body gets: the session, conf, lake and its run id and start time."""

    spark: object
    conf: Conf
    lake: Lake
    run_id: str
    started_at: dt.datetime


@dataclass
class Outcome:
    """What a job body returns."""

    rows_in: int = 0
    rows_out: int = 0
    message: str = ""
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """A named step of the pipeline: the tables it reads, the tables it writes, its body."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    body: Callable[[RunContext], Outcome]
    optional_inputs: tuple[str, ...] = ()
    skip_when_unchanged: bool = True
    description: str = ""


@dataclass
class RunRecord:
    run_id: str
    job: str
    status: str
    rows_in: int
    rows_out: int
    message: str
    output_versions: dict[str, int | None]
    details: dict


def new_run_id(job: str, now: dt.datetime) -> str:
    return f"{job}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def last_success(lake: Lake, job: str):
    """The newest succeeded run row of a job, or None."""
    if not lake.exists(T.OPS_JOB_RUNS):
        return None
    return (
        lake.read(T.OPS_JOB_RUNS)
        .filter((F.col("job") == job) & (F.col("status") == "succeeded"))
        .orderBy(F.col("ended_at").desc())
        .limit(1)
        .head()
    )


def _unchanged(previous, conf_hash: str, inputs: dict[str, int | None], lake: Lake, outputs) -> bool:
    if previous is None or previous["conf_hash"] != conf_hash:
        return False
    if dict(previous["input_versions"] or {}) != inputs:
        return False
    return all(lake.exists(name) for name in outputs)


def run_job(job: Job, spark, conf: Conf, lake: Lake, force: bool = False) -> RunRecord:
    """Run one job with all-or-nothing writes and a row in ops.job_runs; raise JobFailed on error.
    One run of a job at a time per lake: raise JobLocked if another holds it past ops.lock_wait_s."""
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = new_run_id(job.name, started)
    with job_lock(lake.root, job.name, run_id, conf.ops.lock_wait_s):
        return _run_locked(job, spark, conf, lake, force, run_id, started)


def _run_locked(job: Job, spark, conf: Conf, lake: Lake, force: bool, run_id: str, started: dt.datetime) -> RunRecord:
    conf_hash = conf.fingerprint()
    inputs = lake.versions(job.inputs)
    missing = [name for name, version in inputs.items() if version is None]
    inputs.update({name: v for name, v in lake.versions(job.optional_inputs).items() if v is not None})
    status, error, outcome = "succeeded", None, Outcome()
    if missing:
        status, error = "failed", f"input table(s) {missing} do not exist; run the jobs that write them first"
    elif job.skip_when_unchanged and not force and _unchanged(last_success(lake, job.name), conf_hash, inputs, lake, job.outputs):
        status, outcome = "skipped", Outcome(message="inputs and conf unchanged since the last successful run")
    else:
        log.info("%s: run %s started", job.name, run_id)
        try:
            with lake.all_or_nothing():
                outcome = job.body(RunContext(spark, conf, lake, run_id, started))
        except RecsynthError as err:
            status, error = "failed", str(err)
        except Exception as err:  # any other failure is recorded too, with its type
            log.exception("%s failed", job.name)
            status, error = "failed", f"{type(err).__name__}: {err}"
    output_versions = lake.versions(job.outputs)
    ended = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    message = error or outcome.message
    row = [(run_id, job.name, status, conf_hash, started, ended, outcome.rows_in, outcome.rows_out,
            {k: v for k, v in inputs.items() if v is not None}, {k: v for k, v in output_versions.items() if v is not None}, message)]
    try:
        lake.append(T.OPS_JOB_RUNS, spark.createDataFrame(row, JOB_RUNS_SCHEMA))
    except RecsynthError as err:  # e.g. the disk filled up: say so, and what the job itself did
        raise JobFailed(f"job {job.name} {status} (run {run_id}) but could not record its run in {T.OPS_JOB_RUNS}: {err}"
                        + (f"; the job's own error: {error}" if error else "")) from None
    log.info("%s: %s in %.1fs (%s)", job.name, status, (ended - started).total_seconds(), message or "ok")
    if status == "failed":
        raise JobFailed(f"job {job.name} failed (run {run_id}); its tables were left at their previous versions: {error}")
    return RunRecord(run_id, job.name, status, outcome.rows_in, outcome.rows_out, message, output_versions, outcome.details)
