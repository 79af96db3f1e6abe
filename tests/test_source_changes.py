"""Raw files that vanish or are truncated after ingest listed them and before it read them: the
run fails saying which file and how, bronze and ops.ingested_files stay as they were, and the
re-run leaves bronze exactly as a clean run over the files as they are then (nothing twice,
nothing lost). One drop holds both faults: each ingest run is a job's worth of the suite's time."""
from __future__ import annotations

import re
import shutil

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from conftest import DATA
from recsynth import tables as T
from recsynth.errors import JobFailed
from recsynth.lake import Lake
from recsynth.runtime.runs import run_job
from recsynth.pipeline import JOBS
from recsynth.tasks import ingest as ingest_task

pytestmark = [pytest.mark.spark, pytest.mark.slow]

RUN_COLUMNS = [T.INGEST_RUN_ID, T.INGESTED_AT]  # differ between any two runs by design


def _split_events(folder) -> list:
    """The events slice as three files: the first ingested before the fault, two in the drop."""
    header, *lines = (DATA / "retailrocket" / "events.csv").read_text().splitlines()
    third = len(lines) // 3
    files = []
    for number, chunk in enumerate((lines[:third], lines[third:2 * third], lines[2 * third:])):
        path = folder / f"events-{number}.csv"
        path.write_text("\n".join([header, *chunk]) + "\n")
        files.append(path)
    return files


def _ingest_lake(spark, conf_for, source_folder):
    conf = conf_for(f"sources.retailrocket.events.path={source_folder}/events-*.csv", "sources.rees46.enabled=false")
    return conf, Lake(spark, conf)


def _bronze(lake):
    return lake.read(T.BRONZE_EVENTS).drop(*RUN_COLUMNS).withColumn(T.FILE, F.regexp_extract(T.FILE, r"[^/]+$", 0))


def _vanish(path):
    path.unlink()


def _truncate(path):
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])  # mid-line, as a producer still writing it leaves it


def test_files_changing_under_ingest_fail_the_run_and_the_rerun_matches_a_clean_run(spark, conf_for, tmp_path, monkeypatch):
    faulted, clean = tmp_path / "faulted", tmp_path / "clean"
    faulted.mkdir()
    first, second, third = _split_events(faulted)
    conf, lake = _ingest_lake(spark, conf_for, faulted)
    third.rename(third.with_suffix(".hold"))  # the drop arrives after the first ingest
    second.rename(second.with_suffix(".hold"))
    run_job(JOBS["ingest"], spark, conf, lake)
    second.with_suffix(".hold").rename(second)
    third.with_suffix(".hold").rename(third)
    before = lake.versions([T.BRONZE_EVENTS, T.OPS_INGESTED_FILES, T.BRONZE_CATEGORY_TREE])

    real_read, injected = ingest_task.read_raw, []

    def read_after_the_faults(spark_, raw, paths):
        if not injected and any(p.endswith(third.name) for p in paths):
            _vanish(second)
            _truncate(third)
            injected.append(third)
        return real_read(spark_, raw, paths)

    monkeypatch.setattr(ingest_task, "read_raw", read_after_the_faults)
    with pytest.raises(JobFailed, match=r"source files changed while this run was reading them \(removed: ") as failed:
        run_job(JOBS["ingest"], spark, conf, lake)
    removed, rewritten = re.search(r"removed: (\[[^]]*\]); rewritten: (\[[^]]*\])", str(failed.value)).groups()
    assert second.name in removed and third.name not in removed and third.name in rewritten
    for name, version in before.items():  # bronze and the file record hold what they held (a RESTORE commit at most)
        assertDataFrameEqual(lake.read(name), lake.read(name, version=version))

    rerun = run_job(JOBS["ingest"], spark, conf, lake)
    assert rerun.status == "succeeded"
    shutil.copytree(faulted, clean)  # the files as they are now
    clean_conf, clean_lake = _ingest_lake(spark, conf_for, clean)
    run_job(JOBS["ingest"], spark, clean_conf, clean_lake)
    assertDataFrameEqual(_bronze(lake), _bronze(clean_lake))
    recorded = lake.read(T.OPS_INGESTED_FILES).filter("entity = 'events'").groupBy(F.regexp_extract("path", r"[^/]+$", 0).alias("file")).count()
    assert {r["file"]: r["count"] for r in recorded.collect()} == {p.name: 1 for p in (first, second, third) if p.exists()}
    assert run_job(JOBS["ingest"], spark, conf, lake).rows_in == 0  # and nothing is ingested twice
