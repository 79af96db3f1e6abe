"""`recsynth status` on real job runs: the newest run of each job, table versions and row counts, the
quarantine by reason, failed runs with exit code 1 until the job runs fine again, the empty lake."""
import datetime as dt
import io
import json

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from rich.console import Console

from conftest import DATA, ROOT, lake_overrides, model_job_overrides
from recsynth import tables as T
from recsynth.cli import main
from recsynth.config import load_conf
from recsynth.errors import JobFailed
from recsynth.lake import Lake
from recsynth.reporting.status import EMPTY_LAKE, collect_status, latest_runs, render
from recsynth.runtime.runs import JOB_RUNS_SCHEMA, run_job
from recsynth.pipeline import JOBS, PIPELINE
from recsynth.tasks.sample import sample_job

PIPELINE_JOBS = tuple(job.name for job in PIPELINE)


def cli_args(overrides):
    return [*(f"--set={o}" for o in overrides), "--conf-dir", str(ROOT / "conf")]


def printed(status) -> str:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    render(status, console)
    return console.file.getvalue()


def test_every_table_a_job_writes_is_listed():
    written = {name for job in (*JOBS.values(), sample_job(1, {}, None, 0)) for name in job.outputs}
    assert set(T.ALL) == written | {T.OPS_JOB_RUNS, T.OPS_DATA_QUALITY}
    assert len(T.ALL) == len(set(T.ALL))


@pytest.mark.spark
def test_latest_runs_counts_failures_since_the_last_succeeded_or_skipped_run(spark):
    def at(minute):
        return dt.datetime(2026, 11, 26, 12, minute)

    def run(job, run_id, status, minute, message=""):
        return (run_id, job, status, "hash", at(minute), at(minute) + dt.timedelta(seconds=30), 10, 5, {}, {}, message)

    runs = spark.createDataFrame([
        run("ingest", "i1", "succeeded", 1), run("ingest", "i2", "failed", 2, "boom"), run("ingest", "i3", "failed", 3, "boom again"),
        run("clean", "c1", "failed", 1), run("clean", "c2", "succeeded", 2), run("clean", "c3", "failed", 3), run("clean", "c4", "skipped", 4),
        run("gold", "g1", "failed", 1), run("gold", "g2", "failed", 2, "still broken"),
    ], JOB_RUNS_SCHEMA)
    ended = {m: at(m) + dt.timedelta(seconds=30) for m in range(1, 5)}
    expected = spark.createDataFrame([
        ("ingest", "i3", "failed", at(3), ended[3], 10, 5, "boom again", 3, "i1", ended[1], 2),
        ("clean", "c4", "skipped", at(4), ended[4], 10, 5, "", 4, "c4", ended[4], 0),
        ("gold", "g2", "failed", at(2), ended[2], 10, 5, "still broken", 2, None, None, 2),
    ], "job string, run_id string, status string, started_at timestamp, ended_at timestamp, rows_in bigint, rows_out bigint,"
       " message string, runs bigint, last_ok_run_id string, last_ok_at timestamp, failures_since_ok bigint")
    assertDataFrameEqual(latest_runs(runs), expected)


# Rows planted in the slices so that clean quarantines some, with known reasons.
PLANTED_EVENTS = [
    "1433221332117,257597,click,355908,",   # unknown_event_type
    "1433221332118,257598,hover,355908,",   # unknown_event_type
    "1433221332119,,view,355908,",          # missing_field
    "9999999999999,257599,view,355908,",    # time_out_of_range (year 2286)
    "1433221332120,x257600,view,355908,",   # bad_id (ids are integers)
]
PLANTED_CATEGORIES = ["1,", "2,1", "3,999"]  # 3: missing_parent
QUARANTINED = {("events", "unknown_event_type"): 2, ("events", "missing_field"): 1, ("events", "time_out_of_range"): 1,
               ("events", "bad_id"): 1, ("category_tree", "missing_parent"): 1}


@pytest.fixture(scope="module")
def etl(spark, tmp_path_factory):
    """A lake after ingest and clean of 200 retailrocket events plus planted bad rows, with its status
    and the truth to check it against, both taken right then (a later test adds runs)."""
    base = tmp_path_factory.mktemp("status")
    events = (DATA / "retailrocket" / "events.csv").read_text().splitlines()[:201]
    (base / "events.csv").write_text("\n".join([*events, *PLANTED_EVENTS]) + "\n")
    (base / "category_tree.csv").write_text("\n".join(["categoryid,parentid", *PLANTED_CATEGORIES]) + "\n")
    overrides = model_job_overrides(base, f"sources.retailrocket.events.path={base}/events.csv",
                                    f"sources.retailrocket.category_tree.path={base}/category_tree.csv")
    conf = load_conf("local", overrides, ROOT / "conf")
    lake = Lake(spark, conf)
    records = {name: run_job(JOBS[name], spark, conf, lake) for name in ("ingest", "clean")}
    status = collect_status(lake, PIPELINE_JOBS)
    truth = {name: (lake.version(name), lake.read(name).count()) for name in T.ALL if lake.exists(name)}
    clean_run = records["clean"].run_id
    quarantined = sorted(
        tuple(row) for row in lake.read(T.OPS_DATA_QUALITY)
        .where((F.col("run_id") == clean_run) & (F.col("metric") == "quarantined"))
        .select("run_id", "source", "entity", "reason", "rows").collect())
    return {"overrides": overrides, "conf": conf, "lake": lake, "records": records, "status": status,
            "truth": truth, "quarantined": quarantined}


@pytest.mark.spark
def test_status_after_ingest_and_clean(etl):
    status, records = etl["status"], etl["records"]
    assert [(j.job, j.status, j.run_id, j.rows_in, j.rows_out, j.message, j.runs, j.last_ok_run_id, j.failures_since_ok)
            for j in status.jobs] == [
        (name, "succeeded", r.run_id, r.rows_in, r.rows_out, r.message, 1, r.run_id, 0) for name, r in records.items()]
    assert status.never_run == ("gold", "synthesize", "recommend")
    assert status.failing == () and status.exit_code == 0

    assert {t.name: (t.version, t.rows) for t in status.tables if t.exists} == etl["truth"]
    assert set(etl["truth"]) == {T.BRONZE_EVENTS, T.BRONZE_CATEGORY_TREE, T.OPS_INGESTED_FILES, T.SILVER_CATEGORIES,
                                 T.SILVER_ITEMS, T.SILVER_EVENTS, T.SILVER_RETURNS, T.SILVER_QUARANTINE, T.OPS_JOB_RUNS,
                                 T.OPS_DATA_QUALITY}
    assert all(t.version is None and t.rows is None and t.modified_at is None for t in status.tables if not t.exists)
    tables = {t.name: t for t in status.tables}
    assert tables[T.SILVER_EVENTS].rows == records["clean"].rows_out
    assert (tables[T.OPS_JOB_RUNS].version, tables[T.OPS_JOB_RUNS].operation) == (1, "WRITE")
    assert tables[T.SILVER_EVENTS].modified_at.tzinfo == dt.timezone.utc

    # silver.quarantine by reason, reconciled with the run's own accounting in ops.data_quality
    assert [(q.run_id, q.source, q.entity, q.reason, q.rows) for q in sorted(
        status.quarantine, key=lambda q: (q.source, q.entity, q.reason))] == etl["quarantined"]
    assert {(q.entity, q.reason): q.rows for q in status.quarantine} == QUARANTINED
    assert {q.run_id for q in status.quarantine} == {records["clean"].run_id}


@pytest.mark.spark
def test_status_is_printed_at_a_glance(etl):
    status = etl["status"]
    text = printed(status)
    lines = text.splitlines()
    for name, (version, rows) in etl["truth"].items():
        line = next(line for line in lines if f" {name} " in line)
        assert f" {version} " in line and f" {rows} " in line
    for j in status.jobs:
        assert any(j.job in line and "succeeded" in line and j.run_id in line for line in lines)
    assert any(" gold " in line and "never run" in line for line in lines)
    assert f"Quarantined in all: {sum(q.rows for q in status.quarantine)} rows" in text
    assert "OK: the newest run of every job succeeded or was skipped." in text and "FAILED" not in text


@pytest.mark.spark
def test_a_failed_run_exits_1_until_the_job_runs_fine_again(etl, spark, monkeypatch, capsys):
    conf, lake, args = etl["conf"], etl["lake"], cli_args(etl["overrides"])
    main([*args, "status", "--json"])  # returns: exit code 0
    before = json.loads(capsys.readouterr().out)
    assert (before["ok"], before["failing"]) == (True, [])
    clean_before = next(j for j in before["jobs"] if j["job"] == "clean")

    def broken(*args, **kwargs):
        raise ValueError("disk on fire")

    monkeypatch.setattr("recsynth.tasks.clean.classify_events", broken)
    for _ in range(2):
        with pytest.raises(JobFailed, match="disk on fire"):
            run_job(JOBS["clean"], spark, conf, lake, force=True)

    with pytest.raises(SystemExit) as exited:
        main([*args, "status", "--json"])
    assert exited.value.code == 1
    after = json.loads(capsys.readouterr().out)
    assert (after["ok"], after["failing"]) == (False, ["clean"])
    clean = next(j for j in after["jobs"] if j["job"] == "clean")
    assert (clean["status"], clean["message"], clean["runs"], clean["failures_since_ok"], clean["last_ok_run_id"]) == (
        "failed", "ValueError: disk on fire", clean_before["runs"] + 2, 2, clean_before["last_ok_run_id"])
    # the failed runs wrote nothing but their two rows in ops.job_runs
    versions_before, versions_after = ({t["name"]: t["version"] for t in state["tables"]} for state in (before, after))
    assert versions_after == {**versions_before, T.OPS_JOB_RUNS: versions_before[T.OPS_JOB_RUNS] + 2}
    assert dt.datetime.fromisoformat(clean["started_at"]).tzinfo == dt.timezone.utc

    with pytest.raises(SystemExit) as exited:
        main([*args, "status"])
    assert exited.value.code == 1
    text = capsys.readouterr().out
    assert "FAILED clean (run" in text and "OK:" not in text

    # a plain re-run is skipped (inputs and conf as at the last success): the tables are current again
    monkeypatch.undo()
    rerun = run_job(JOBS["clean"], spark, conf, lake)
    assert rerun.status == "skipped"
    main([*args, "status", "--json"])
    fixed = json.loads(capsys.readouterr().out)
    clean = next(j for j in fixed["jobs"] if j["job"] == "clean")
    assert (fixed["ok"], clean["status"], clean["run_id"], clean["failures_since_ok"], clean["last_ok_run_id"]) == (
        True, "skipped", rerun.run_id, 0, rerun.run_id)


@pytest.mark.spark
def test_empty_lake(spark, tmp_path, capsys):
    overrides = lake_overrides(tmp_path)
    lake = Lake(spark, load_conf("local", overrides, ROOT / "conf"))
    status = collect_status(lake, PIPELINE_JOBS)
    assert (status.jobs, status.never_run, status.quarantine, status.exit_code) == ((), PIPELINE_JOBS, (), 0)
    assert [t.exists for t in status.tables] == [False] * len(T.ALL)
    assert printed(status) == f"{EMPTY_LAKE} (lake: {lake.root})\n"

    main([*cli_args(overrides), "status", "--json"])  # returns: exit code 0
    state = json.loads(capsys.readouterr().out)
    assert (state["ok"], state["jobs"], state["never_run"], state["quarantine"]) == (
        True, [], list(PIPELINE_JOBS), {"total": 0, "by_reason": []})
    main([*cli_args(overrides), "status"])
    assert EMPTY_LAKE in capsys.readouterr().out


@pytest.mark.spark
def test_a_real_lakes_status_lists_the_tables_the_synthetic_clickstream_wrote(spark, tmp_path):
    """gold and recommend under lake.clickstream=synthetic write synthetic_gold.* and
    synthetic_recs.*: the real lake's status lists them after its own tables, by where they are."""
    lake = Lake(spark, load_conf("local", lake_overrides(tmp_path), ROOT / "conf"))
    row = ("s", "e1", "u1", "s1", "i1", "view", dt.datetime(2026, 1, 1), 5.0, 1, "train")
    lake.other_clickstream().overwrite(T.GOLD_SPLITS, spark.createDataFrame([row, row], T.schema(T.GOLD_SPLITS)))
    status = collect_status(lake, PIPELINE_JOBS)
    assert [t.name for t in status.tables[:len(T.ALL)]] == list(T.ALL)
    assert [(t.name, t.rows) for t in status.tables[len(T.ALL):]] == [("synthetic_gold.splits", 2)]
    assert not lake.exists(T.GOLD_SPLITS)
    assert "synthetic_gold.splits" in printed(status)
