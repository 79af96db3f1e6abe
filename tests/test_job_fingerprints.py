"""A job re-runs when its own conf keys or its inputs changed, and only then: the ETL jobs on the
retailrocket slice, re-run under changed conf. The skip check reads the Delta logs, no table."""
import pytest
from delta.tables import DeltaTable

from conftest import ROOT, gold_lake_copy, model_job_overrides
from recsynth.config import load_conf
from recsynth.runtime.runs import last_success, run_job
from recsynth.pipeline import ETL, JOBS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DATA_TABLES = [t for job in ETL for t in job.outputs if not t.startswith("ops.")]


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory, etl_reference):
    base = tmp_path_factory.mktemp("fingerprints")
    conf, lake = gold_lake_copy(spark, etl_reference, model_job_overrides(base))
    return base, conf, lake


def recorded(lake, job: str) -> dict:
    """The newest row of a job in ops.job_runs."""
    return lake.read("ops.job_runs").filter(f"job = '{job}'").orderBy("ended_at", ascending=False).head().asDict()


def test_a_job_reruns_on_its_own_keys_or_inputs_only(built, spark):
    base, conf, lake = built
    before = lake.versions(DATA_TABLES)

    recs_changed = load_conf("local", model_job_overrides(base, "recs.k=20"), ROOT / "conf")
    records = [run_job(job, spark, recs_changed, lake) for job in ETL]
    assert [r.status for r in records] == ["succeeded", "skipped", "skipped"]  # ingest is never skipped
    assert records[0].message == "no new files: nothing to ingest"
    assert lake.versions(DATA_TABLES) == before

    gap_changed = load_conf("local", model_job_overrides(base, "clean.session_gap_minutes=5"), ROOT / "conf")
    gold_before = recorded(lake, "gold")
    records = [run_job(job, spark, gap_changed, lake) for job in ETL]
    assert [r.status for r in records] == ["succeeded", "succeeded", "succeeded"]
    gold_after = recorded(lake, "gold")
    assert gold_after["conf_hash"] == gold_before["conf_hash"] == gap_changed.fingerprint(JOBS["gold"].conf_keys)
    assert gold_after["input_versions"]["silver.events"] == gold_before["input_versions"]["silver.events"] + 1
    assert recorded(lake, "clean")["conf_hash"] == gap_changed.fingerprint(JOBS["clean"].conf_keys) != \
        conf.fingerprint(JOBS["clean"].conf_keys)

    records = [run_job(job, spark, gap_changed, lake) for job in ETL]
    assert [r.status for r in records] == ["succeeded", "skipped", "skipped"]


def test_the_skip_check_reads_the_delta_logs_and_runs_no_spark_job(built, spark):
    _, _, lake = built
    tables = [*DATA_TABLES, "ops.job_runs"]
    context = spark.sparkContext
    context.setJobGroup("skip-check", "what a skipped job reads")
    try:
        versions = lake.versions(tables)
        previous = {job.name: last_success(lake, job.name) for job in ETL}
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert list(context.statusTracker().getJobIdsForGroup("skip-check")) == []

    history = {name: DeltaTable.forPath(spark, lake.path(name)).history(1).head()["version"]
               if DeltaTable.isDeltaTable(spark, lake.path(name)) else None for name in tables}
    assert versions == history and versions["bronze.catalog"] is None  # the slice has no catalogue
    assert lake.version("gold.no_such_table") is None
    for job in ETL:  # the run notes in the log agree with the table's newest successful row
        newest = (lake.read("ops.job_runs").filter(f"job = '{job.name}' AND status = 'succeeded'")
                  .orderBy("ended_at", ascending=False).head())
        assert (previous[job.name]["conf_hash"], previous[job.name]["input_versions"]) == (
            newest["conf_hash"], dict(newest["input_versions"]))
