"""The whole pipeline spark-submitted to a real Spark standalone cluster on 127.0.0.1 (master and
worker started from the installed pyspark by `recsynth cluster`), the way scripts/submit-pipeline.sh
does it on a user's cluster: recsynth shipped as a wheel, Delta as its jars, Horovod ranks in two
executors."""
from __future__ import annotations

import subprocess

import pytest

from conftest import DATA, ROOT, SMALL_GAN, SMALL_RECS, delta, events_of, lake_overrides, standalone_cluster

# the module's whole pipeline runs inside its first test's time budget
pytestmark = [pytest.mark.slow, pytest.mark.horovod, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory):
    """(lake folder, event log folder, spark-submit's result) of one pipeline run on the cluster."""
    base = tmp_path_factory.mktemp("cluster")
    events = base / "eventlog"
    events.mkdir()
    job_options = [f"--set={o}" for o in [
        *lake_overrides(base), "spark.driver_memory=1g", "sources.rees46.enabled=false", *SMALL_GAN, *SMALL_RECS,
        f"spark.extra={{spark.ui.enabled: 'false', spark.eventLog.enabled: 'true', spark.eventLog.dir: '{events}'}}"]]
    with standalone_cluster(base) as env:
        done = subprocess.run([str(ROOT / "scripts" / "submit-pipeline.sh"), *job_options], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=2400)
        yield base / "lake", events, done


def test_every_job_succeeded_on_the_cluster(spark, submitted):
    lake, _, done = submitted
    assert done.returncode == 0, done.stderr[-4000:]
    runs = delta(spark, lake, "ops.job_runs")
    assert sorted((r["job"], r["status"]) for r in runs.collect()) == sorted(
        (job, "succeeded") for job in ("ingest", "clean", "gold", "synthesize", "recommend"))


def test_the_tables_hold_what_the_raw_files_and_the_models_say(spark, submitted):
    lake, _, _ = submitted
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
    _, events, _ = submitted
    ends = events_of(events, "SparkListenerTaskEnd")
    assert {e["Task Info"]["Executor ID"] for e in ends} == {"0", "1"}  # no work on the driver
    names = {e["Stage Info"]["Stage ID"]: e["Stage Info"]["Stage Name"] for e in events_of(events, "SparkListenerStageCompleted")}
    # horovod.spark.run starts its ranks as the tasks of one stage (its call site is in horovod/spark)
    rank_stages = {stage for stage, name in names.items() if "horovod" in name}
    assert len(rank_stages) >= 3, names  # GAN, two-tower, augmented two-tower
    for stage in rank_stages:
        executors = [e["Task Info"]["Executor ID"] for e in ends if e["Stage ID"] == stage]
        assert sorted(executors) == ["0", "1"], (names[stage], executors)  # one rank in each executor
