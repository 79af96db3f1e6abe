"""`recsynth status`: the newest run of every job, every table's version, size and last change, and
what the latest clean run quarantined, read from the lake's files alone (tables are read by path,
so it works with or without a metastore).

Spark does the aggregating; only one row per job, per table and per quarantine reason reaches the
driver, so the cost of a status does not grow with events or users.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from rich.table import Table

from recsynth import tables as T
from recsynth.reporting.summary import quarantine_counts, quarantine_table

# A skipped run is as good as a success: it is skipped only when its inputs and conf match those of
# the last success, so its outputs are current and earlier failures no longer tell anything.
OK_STATUSES = ("succeeded", "skipped")
FAILED = "failed"
EMPTY_LAKE = "no runs yet: run recsynth pipeline"

_STYLE = {"succeeded": "green", "skipped": "cyan", FAILED: "bold red"}


@dataclass(frozen=True)
class JobStatus:
    """The newest run of one job; times are UTC."""

    job: str
    run_id: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime
    rows_in: int
    rows_out: int
    message: str
    runs: int
    last_ok_run_id: str | None
    last_ok_at: dt.datetime | None
    failures_since_ok: int


@dataclass(frozen=True)
class TableStatus:
    """One lake table now: its current version, rows at that version, and its newest commit (UTC)."""

    name: str
    exists: bool
    version: int | None = None
    rows: int | None = None
    modified_at: dt.datetime | None = None
    operation: str | None = None


@dataclass(frozen=True)
class QuarantineCount:
    run_id: str
    source: str
    entity: str
    reason: str
    rows: int


@dataclass(frozen=True)
class Status:
    root: str
    jobs: tuple[JobStatus, ...]
    never_run: tuple[str, ...]
    tables: tuple[TableStatus, ...]
    quarantine: tuple[QuarantineCount, ...]

    @property
    def failing(self) -> tuple[JobStatus, ...]:
        return tuple(j for j in self.jobs if j.status == FAILED)

    @property
    def exit_code(self) -> int:
        """1 when any job's newest run failed, else 0 (nothing run yet included): for monitoring."""
        return 1 if self.failing else 0

    def to_dict(self) -> dict:
        """JSON-ready: times as ISO 8601 with their UTC offset."""
        return _jsonable({
            "lake": self.root,
            "ok": self.exit_code == 0,
            "failing": [j.job for j in self.failing],
            "jobs": [asdict(j) for j in self.jobs],
            "never_run": list(self.never_run),
            "tables": [asdict(t) for t in self.tables],
            "quarantine": {"total": sum(q.rows for q in self.quarantine),
                           "by_reason": [asdict(q) for q in self.quarantine]},
        })


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


# --- transforms --------------------------------------------------------------------------------
def latest_runs(runs: DataFrame) -> DataFrame:
    """One row per job of ops.job_runs: its newest run, how many runs it has, its newest succeeded or
    skipped run, and how many runs failed after that one (all its failures if none was ok): a job
    that keeps failing shows how long it has been failing, not only that it failed last."""
    by_job = Window.partitionBy("job")
    newest_first = by_job.orderBy(F.desc("started_at"), F.desc("ended_at"), F.desc("run_id"))
    ok = F.col("status").isin(*OK_STATUSES)
    # structs compare field by field, so the max is the newest ok run (ties broken as in newest_first)
    last_ok = F.max(F.when(ok, F.struct("started_at", "ended_at", "run_id"))).over(by_job)
    failed_after_ok = (F.col("status") == FAILED) & (
        F.col("_last_ok").isNull() | (F.col("started_at") > F.col("_last_ok.started_at")))
    return (
        runs.withColumn("_last_ok", last_ok)
        .withColumn("failures_since_ok", F.sum(failed_after_ok.cast("int")).over(by_job))
        .withColumn("runs", F.count(F.lit(1)).over(by_job))
        .withColumn("_newest", F.row_number().over(newest_first))
        .filter(F.col("_newest") == 1)
        .select("job", "run_id", "status", "started_at", "ended_at", "rows_in", "rows_out", "message", "runs",
                F.col("_last_ok.run_id").alias("last_ok_run_id"), F.col("_last_ok.ended_at").alias("last_ok_at"),
                "failures_since_ok")
    )


# --- reading the lake --------------------------------------------------------------------------
def _utc(stored: dt.datetime | None) -> dt.datetime | None:
    """ops.job_runs stores naive UTC times, which come back as written: mark them as UTC."""
    return None if stored is None else stored.replace(tzinfo=dt.timezone.utc)


def job_statuses(lake, order: tuple[str, ...] = ()) -> tuple[JobStatus, ...]:
    """The newest run of every job in ops.job_runs: the jobs of `order` first, in that order."""
    if not lake.exists(T.OPS_JOB_RUNS):
        return ()
    rank = {name: i for i, name in enumerate(order)}
    rows = sorted(latest_runs(lake.read(T.OPS_JOB_RUNS)).collect(), key=lambda r: (rank.get(r["job"], len(rank)), r["job"]))
    return tuple(
        JobStatus(**{**r.asDict(), "message": r["message"] or "", "started_at": _utc(r["started_at"]),
                     "ended_at": _utc(r["ended_at"]), "last_ok_at": _utc(r["last_ok_at"])})
        for r in rows
    )


def table_status(lake, name: str) -> TableStatus:
    """Counted at the version reported, so a job writing meanwhile cannot make the two disagree.
    The newest commit is read from the Delta log (Delta's history would be one Spark job per table)."""
    version = lake.version(name)  # a commit in the _delta_log: the table exists
    if version is None:
        return TableStatus(name, exists=False)
    commit = lake.commit_info(name, version) or {}
    modified_at = (dt.datetime.fromtimestamp(commit["timestamp"] / 1000, dt.timezone.utc)
                   if "timestamp" in commit else None)
    rows = lake.read(name, version=version).count()
    return TableStatus(lake.located(name), True, version, rows, modified_at, commit.get("operation"))


def lake_tables(lake, tables: tuple[str, ...] = T.ALL) -> tuple[TableStatus, ...]:
    """Every table of `tables` where the lake's clickstream keeps it (not yet written ones too),
    then the ones the other clickstream's gold and recommend jobs wrote (synthetic_gold.*,
    synthetic_recs.* beside a real lake's gold.* and recs.*), so that no table goes unseen."""
    own = tuple(table_status(lake, name) for name in tables)
    listed, other = {t.name for t in own}, lake.other_clickstream()
    elsewhere = (table_status(other, name) for name in tables if other.located(name) not in listed)
    return own + tuple(t for t in elsewhere if t.exists)


def quarantine_status(lake) -> tuple[QuarantineCount, ...]:
    """Rows rejected by the newest clean run that wrote silver.quarantine (each run replaces it)."""
    if not lake.exists(T.SILVER_QUARANTINE):
        return ()
    counts = quarantine_counts(lake.read(T.SILVER_QUARANTINE), "run_id").collect()
    return tuple(QuarantineCount(**row.asDict()) for row in counts)


def collect_status(lake, expected_jobs: tuple[str, ...] = (), tables: tuple[str, ...] = T.ALL) -> Status:
    """The whole status; `expected_jobs` (the pipeline's) are listed in order, never-run ones too."""
    jobs = job_statuses(lake, tuple(expected_jobs))
    ran = {j.job for j in jobs}
    return Status(
        root=lake.root,
        jobs=jobs,
        never_run=tuple(name for name in expected_jobs if name not in ran),
        tables=lake_tables(lake, tables),
        quarantine=quarantine_status(lake),
    )


# --- rendering ---------------------------------------------------------------------------------
def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def render(status: Status, console) -> None:
    """Print the status as tables on a rich Console, ending with one line saying whether all is well."""
    existing = [t for t in status.tables if t.exists]
    if not status.jobs:
        console.print(f"[bold]{EMPTY_LAKE}[/] (lake: {status.root})")
        if not existing:
            return

    if status.jobs:
        jobs = Table("job", "status", "started (UTC)", "took", "rows in", "rows out", "failed since last ok", "run", "note",
                     title="Jobs (newest run of each)")
        for j in status.jobs:
            took = f"{(j.ended_at - j.started_at).total_seconds():.0f} s"
            failures = f"[bold red]{j.failures_since_ok}[/]" if j.failures_since_ok else "0"
            jobs.add_row(j.job, f"[{_STYLE.get(j.status, 'white')}]{j.status}[/]", _when(j.started_at), took,
                         str(j.rows_in), str(j.rows_out), failures, j.run_id, j.message)
        for name in status.never_run:
            jobs.add_row(name, "[dim]never run[/]", *[""] * 7)
        console.print(jobs)

    written = Table("table", "version", "rows", "last change (UTC)", "operation", title="Tables")
    for t in existing:
        written.add_row(t.name, str(t.version), str(t.rows), _when(t.modified_at), t.operation)
    console.print(written)
    missing = [t.name for t in status.tables if not t.exists]
    if missing:
        console.print(f"[dim]Not written yet: {', '.join(missing)}[/]")

    if status.quarantine:
        runs = sorted({q.run_id for q in status.quarantine})
        title = f"Quarantined rows by reason (silver.quarantine, run {', '.join(runs)})"
        console.print(quarantine_table([asdict(q) for q in status.quarantine], title))
        console.print(f"Quarantined in all: {sum(q.rows for q in status.quarantine)} rows")

    for j in status.failing:
        console.print(f"[bold red]FAILED[/] {j.job} (run {j.run_id}, {j.failures_since_ok} failed run(s) since the "
                      f"last ok one): {j.message}")
    if status.jobs and not status.failing:
        console.print("[green]OK[/]: the newest run of every job succeeded or was skipped.")
    console.print(f"Lake: [bold]{status.root}[/]")
