"""Job runs: every run leaves one row in ops.job_runs, and a failed run leaves the tables it
touched at their previous versions. A job whose inputs and conf keys are unchanged since its last
successful run is skipped, so re-running the pipeline writes no new table versions. Each job
declares the conf keys it reads (`Job.conf_keys`): only those are in its fingerprint, and its body
sees only those (and the keys no output depends on, config.UNFINGERPRINTED)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import Conf, ConfView, check_keys
from recsynth.errors import JobFailed, RecsynthError
from recsynth.lake import Lake
from recsynth.runtime.locks import job_lock

log = logging.getLogger(__name__)

JOB_RUNS_SCHEMA = T.schema(T.OPS_JOB_RUNS)


@dataclass
class RunContext:
    """What a job body gets: the session, the conf restricted to the job's keys, the lake, its run
    id and start time, and the fingerprint of its conf keys (recorded in ops.job_runs)."""

    spark: object
    conf: ConfView
    lake: Lake
    run_id: str
    started_at: dt.datetime
    fingerprint: str


@dataclass
class Outcome:
    """What a job body returns."""

    rows_in: int = 0
    rows_out: int = 0
    message: str = ""
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """A named step of the pipeline: the tables it reads, the tables it writes, the conf keys it
    reads (dotted, e.g. "gold.event_weights"; config.UNFINGERPRINTED need no mention), its body.
    `optional_inputs` are read when they exist; `inputs_under` names the tables read only under
    some conf, so that a new version of one makes the job re-run only under that conf."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    conf_keys: tuple[str, ...]
    body: Callable[[RunContext], Outcome]
    optional_inputs: tuple[str, ...] = ()
    inputs_under: Callable[[Conf], tuple[str, ...]] = lambda conf: ()
    skip_when_unchanged: bool = True
    runs_on_synthetic: bool = False   # may run with lake.clickstream=synthetic (see Lake.located)
    description: str = ""

    def __post_init__(self):
        check_keys(self.conf_keys)


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
    seconds: float


def new_run_id(job: str, now: dt.datetime) -> str:
    return f"{job}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _run_note(job: str, status: str, conf_hash: str, inputs: dict[str, int]) -> str:
    """What the commit of a run's row in ops.job_runs keeps in its userMetadata: what a later run
    of the job compares, readable from the Delta log without a Spark job (see last_success)."""
    return json.dumps({"job": job, "status": status, "conf_hash": conf_hash, "input_versions": inputs}, sort_keys=True)


def _read_note(commit_info: dict) -> dict | None:
    try:
        note = json.loads(commit_info.get("userMetadata") or "null")
    except ValueError:  # someone else's userMetadata
        return None
    return note if isinstance(note, dict) and {"job", "status", "conf_hash", "input_versions"} <= set(note) else None


def last_success(lake: Lake, job: str) -> dict | None:
    """conf_hash and input_versions of the job's last successful run, or None.

    A skipped run matched the last success, so the job's newest succeeded or skipped run says the
    same: it is looked up in the run notes of ops.job_runs' newest commits, from the Delta log
    without a Spark job. Where the log does not tell (a commit without a note: rows written before
    notes, or changed by other than a run; commits removed by log clean-up) the table is queried."""
    for commit in lake.commit_infos(T.OPS_JOB_RUNS):
        note = _read_note(commit)
        if note is None:
            break
        if note["job"] == job and note["status"] in ("succeeded", "skipped"):
            return note
    if lake.version(T.OPS_JOB_RUNS) is None:
        return None
    row = (
        lake.read(T.OPS_JOB_RUNS)
        .filter((F.col("job") == job) & (F.col("status") == "succeeded"))
        .orderBy(F.col("ended_at").desc())
        .limit(1)
        .head()
    )
    return None if row is None else {"conf_hash": row["conf_hash"], "input_versions": dict(row["input_versions"] or {})}


def _unchanged(previous: dict | None, conf_hash: str, inputs: dict[str, int], lake: Lake, outputs) -> bool:
    if previous is None or previous["conf_hash"] != conf_hash:
        return False
    if previous["input_versions"] != inputs:
        return False
    return all(version is not None for version in lake.versions(outputs).values())


def run_name(job: Job, lake: Lake) -> str:
    """The job's name in ops.job_runs, its lock and its run ids: runs on the synthetic clickstream
    are told apart from (and skipped independently of) runs on the real one."""
    return job.name if lake.clickstream == "real" else f"{job.name}@synthetic"


def run_job(job: Job, spark, conf: Conf, lake: Lake, force: bool = False) -> RunRecord:
    """Run one job with all-or-nothing writes and a row in ops.job_runs; raise JobFailed on error.
    One run of a job at a time per lake: raise JobLocked if another holds it past ops.lock_wait_s."""
    if lake.clickstream != "real" and not job.runs_on_synthetic:
        raise JobFailed(f"job {job.name} runs on the real clickstream only; lake.clickstream={lake.clickstream} "
                        "applies to the gold and recommend jobs (`recsynth --set lake.clickstream=synthetic pipeline` "
                        "runs those two)")
    name = run_name(job, lake)
    started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    run_id = new_run_id(name.replace("@", "-"), started)  # run ids name files and model versions: no @
    with job_lock(lake.root, name, run_id, conf.ops.lock_wait_s):
        return _run_locked(job, name, spark, conf, lake, force, run_id, started)


def _run_locked(job: Job, name: str, spark, conf: Conf, lake: Lake, force: bool, run_id: str,
                started: dt.datetime) -> RunRecord:
    conf_hash = conf.fingerprint(job.conf_keys)
    inputs = lake.versions((*job.inputs, *job.optional_inputs, *job.inputs_under(conf)))
    missing = [table for table in job.inputs if inputs[table] is None]
    inputs = {table: version for table, version in inputs.items() if version is not None}
    status, error, outcome = "succeeded", None, Outcome()
    if missing:
        status, error = "failed", (f"input table(s) {[lake.located(m) for m in missing]} do not exist; run the jobs "
                                   "that write them first")
    elif job.skip_when_unchanged and not force and _unchanged(last_success(lake, name), conf_hash, inputs, lake, job.outputs):
        status, outcome = "skipped", Outcome(message="inputs and conf keys unchanged since the last successful run")
    else:
        log.info("%s: started (run %s)", name, run_id)
        try:
            with lake.all_or_nothing():
                outcome = job.body(RunContext(spark, ConfView(conf, job.conf_keys, job.name), lake, run_id, started, conf_hash))
        except RecsynthError as err:
            log.debug("%s failed", name, exc_info=True)  # the message is the user's; the trace goes to the log file
            status, error = "failed", str(err)
        except Exception as err:  # any other failure is recorded too, with its type
            log.exception("%s failed", name)
            status, error = "failed", f"{type(err).__name__}: {err}"
    output_versions = lake.versions(job.outputs)
    ended = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    message = error or outcome.message
    row = [(run_id, name, status, conf_hash, started, ended, outcome.rows_in, outcome.rows_out,
            inputs, {k: v for k, v in output_versions.items() if v is not None}, message)]
    try:
        lake.append(T.OPS_JOB_RUNS, spark.createDataFrame(row, JOB_RUNS_SCHEMA),
                    note=_run_note(name, status, conf_hash, inputs))
    except RecsynthError as err:  # e.g. the disk filled up: say so, and what the job itself did
        raise JobFailed(f"job {name} {status} (run {run_id}) but could not record its run in {T.OPS_JOB_RUNS}: {err}"
                        + (f"; the job's own error: {error}" if error else "")) from None
    seconds = (ended - started).total_seconds()
    log.info("%s: %s in %.1fs (%s)", name, status, seconds, message or "ok")
    if status == "failed":
        raise JobFailed(f"job {name} failed (run {run_id}); its tables were left at their previous versions: {error}")
    return RunRecord(run_id, name, status, outcome.rows_in, outcome.rows_out, message, output_versions, outcome.details,
                     seconds)
