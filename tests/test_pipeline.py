"""raw -> bronze -> silver -> gold on slices of both real sources, through the real jobs:
counts reconcile with what is in the raw files, re-runs change nothing, a new file is picked
up alone, and a failing job leaves every table at its previous version."""
import csv
import shutil
from collections import Counter

import pytest
from pyspark.sql import functions as F

from conftest import DATA, assert_registered_schemas
from recsynth import tables as T
from recsynth.errors import JobFailed
from recsynth.etl.pseudonyms import load_key, pseudonym
from recsynth.lake import Lake
from recsynth.runtime.runs import run_job
from recsynth.pipeline import ETL, JOBS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

DATA_TABLES = [t for job in ETL for t in job.outputs if not t.startswith("ops.")]


def raw_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ran(spark, tmp_path_factory):
    from conftest import ROOT, lake_overrides
    from recsynth.config import load_conf

    base = tmp_path_factory.mktemp("pipeline")
    raw = base / "raw" / "retailrocket"  # a copy: test_new_file_is_ingested_alone adds a file to it
    shutil.copytree(DATA / "retailrocket", raw)
    conf = load_conf("local", [*lake_overrides(base.parent), f"lake.root={base}/lake",
                               f"sources.retailrocket.events.path={raw}/events*.csv"], ROOT / "conf")
    lake = Lake(spark, conf)
    records = [run_job(job, spark, conf, lake) for job in ETL]
    return conf, lake, records


def dq(lake, entity, source):
    rows = lake.read(T.OPS_DATA_QUALITY).filter((F.col("entity") == entity) & (F.col("source") == source)).collect()
    return {(r["metric"], r["reason"]): r["rows"] for r in rows}


def test_counts_reconcile_with_the_raw_files(ran):
    conf, lake, records = ran
    assert [r.status for r in records] == ["succeeded"] * 3
    rr = raw_rows(DATA / "retailrocket" / "events.csv")
    rr_exact_dups = sum(n - 1 for n in Counter(tuple(r.values()) for r in rr).values())
    counts = dq(lake, "events", "retailrocket")
    assert counts[("input", None)] == len(rr) == 3000
    assert counts.get(("duplicate", "exact_duplicate"), 0) == rr_exact_dups
    assert sum(v for (metric, _), v in counts.items() if metric != "input") == len(rr)

    rees = raw_rows(DATA / "rees46" / "2019-Oct_head800.csv")
    zero_price = sum(1 for r in rees if float(r["price"]) <= 0)
    counts = dq(lake, "events", "rees46")
    assert counts[("input", None)] == len(rees) == 800
    assert counts.get(("quarantined", "bad_price"), 0) == zero_price
    catalog = dq(lake, "catalog", "rees46")
    products_with_a_good_row = {r["product_id"] for r in rees if float(r["price"]) > 0}
    assert catalog[("accepted", None)] == len(products_with_a_good_row)
    assert dq(lake, "category_tree", "retailrocket") == {("input", None): 1669, ("accepted", None): 1669}

    accepted = lake.read(T.SILVER_EVENTS).groupBy("source").count().collect()
    expected = {s: dq(lake, "events", s)[("accepted", None)] for s in ("retailrocket", "rees46")}
    assert {r["source"]: r["count"] for r in accepted} == expected
    quarantined = lake.read(T.SILVER_QUARANTINE).filter("entity = 'events' AND source = 'rees46'").count()
    assert quarantined == zero_price


def test_gold_tables_agree_with_silver(ran, spark):
    conf, lake, _ = ran
    events = lake.read(T.SILVER_EVENTS)
    interactions = lake.read(T.GOLD_INTERACTIONS)
    assert interactions.agg(F.sum(F.col("n_views") + F.col("n_carts") + F.col("n_purchases"))).head()[0] == events.count()
    assert lake.read(T.GOLD_BEHAVIOR).count() == events.select("source", "session_id").distinct().count()
    assert lake.read(T.GOLD_SPLITS).count() == events.count()
    assert {r["split"] for r in lake.read(T.GOLD_SPLITS).select("split").distinct().collect()} == {"train", "validation", "test"}
    # rees46 items carry their category path from category_code
    path = lake.read(T.SILVER_ITEMS).filter("item_id = 'rees46:3900821'").head()["category_path"]
    assert path == ["appliances", "environment", "water_heater"]
    # and every table answers SQL by its logical name
    assert spark.sql("SELECT count(*) AS n FROM gold.interactions").head()["n"] == interactions.count()


def test_the_tables_have_the_registered_schemas(ran):
    _, lake, _ = ran
    assert_registered_schemas(lake, [name for name in [*DATA_TABLES, T.OPS_DATA_QUALITY, T.OPS_INGESTED_FILES,
                                                       T.OPS_JOB_RUNS] if T.REGISTRY[name].schema])


def personal_ids(lake, ids: set[str]) -> set[str]:
    """Real user and session ids, less the strings that are also item or category ids (a numeric
    visitor id can equal an item id of the same source)."""
    catalogue = lake.read(T.SILVER_ITEMS).select("item_id").union(lake.read(T.SILVER_ITEMS).select("category_id"))
    return ids - {r[0] for r in catalogue.distinct().collect()}


def test_gold_holds_pseudonyms_and_no_real_id(ran):
    conf, lake, _ = ran
    key = load_key(conf.privacy.pseudonym)
    silver = lake.read(T.SILVER_EVENTS)
    real_users = {r[0] for r in silver.select("user_id").distinct().collect()}
    real_sessions = {r[0] for r in silver.select("session_id").distinct().collect()}
    expected = {"user_id": {pseudonym(u, key) for u in real_users},
                "session_id": {pseudonym(s, key) for s in real_sessions}}
    for name in [t for t in DATA_TABLES if t.startswith("gold.")]:
        table = lake.read(name)
        for column in ("user_id", "session_id"):
            if column in table.columns:
                assert {r[0] for r in table.select(column).distinct().collect()} == expected[column], (name, column)
        for column in (f.name for f in table.schema.fields if f.dataType.simpleString() == "string"):
            values = {r[0] for r in table.select(column).distinct().collect()}
            assert not values & personal_ids(lake, real_users | real_sessions), (name, column)


def test_rerun_changes_no_table(ran, spark):
    conf, lake, _ = ran
    before = lake.versions(DATA_TABLES)
    runs_before = run_counts(lake)
    again = [run_job(job, spark, conf, lake) for job in ETL]
    assert [r.status for r in again] == ["succeeded", "skipped", "skipped"]
    assert again[0].rows_in == 0 and "nothing to ingest" in again[0].message
    assert lake.versions(DATA_TABLES) == before
    assert run_counts(lake) - runs_before == Counter({("ingest", "succeeded"): 1, ("clean", "skipped"): 1,
                                                      ("gold", "skipped"): 1})


def run_counts(lake) -> Counter:
    """Rows of ops.job_runs by (job, status)."""
    runs = lake.read(T.OPS_JOB_RUNS).groupBy("job", "status").count().collect()
    return Counter({(r["job"], r["status"]): r["count"] for r in runs})


def test_failed_job_leaves_tables_at_previous_versions(ran, spark, monkeypatch):
    conf, lake, _ = ran
    before = lake.versions(JOBS["gold"].outputs)
    rows_before = lake.read(T.GOLD_INTERACTIONS).count()

    def broken_behavior(events, items):
        return events.select(F.raise_error(F.lit("disk on fire")).cast("string").alias("boom"))

    # interactions is written before behavior fails in Spark
    monkeypatch.setattr("recsynth.etl.gold.behavior", broken_behavior)
    with pytest.raises(JobFailed, match="disk on fire"):
        run_job(JOBS["gold"], spark, conf, lake, force=True)
    after = lake.versions(JOBS["gold"].outputs)
    # the table written before the failure got a new write, then a RESTORE to the old one
    assert {name: after[name] - before[name] for name in after} == {
        T.GOLD_INTERACTIONS: 2, T.GOLD_BEHAVIOR: 0, T.GOLD_USER_FEATURES: 0, T.GOLD_ITEM_FEATURES: 0, T.GOLD_SPLITS: 0}
    assert lake.read(T.GOLD_INTERACTIONS).count() == rows_before
    restored = [r["operation"] for r in lake.history(T.GOLD_INTERACTIONS).orderBy(F.desc("version")).limit(2).collect()]
    assert restored[0] == "RESTORE"
    failed = lake.read(T.OPS_JOB_RUNS).filter("status = 'failed'").head()
    assert failed["job"] == "gold" and "disk on fire" in failed["message"]


def test_new_file_is_ingested_alone(ran, spark, tmp_path):
    conf, lake, _ = ran
    extra = tmp_path / "events-2.csv"
    lines = (DATA / "retailrocket" / "events.csv").read_text().splitlines()
    extra.write_text("\n".join([lines[0], "1433300000000,1,view,2,", "1433300000500,1,view,3,"]) + "\n")
    shutil.copy(extra, conf.sources["retailrocket"].events.path.replace("events*.csv", "events-2.csv"))
    records = [run_job(job, spark, conf, lake) for job in ETL]
    assert [r.status for r in records] == ["succeeded"] * 3
    assert records[0].rows_in == 2
    assert dq_latest_input(lake, "retailrocket") == 3002


def dq_latest_input(lake, source):
    latest = lake.read(T.OPS_DATA_QUALITY).agg(F.max("measured_at")).head()[0]
    row = lake.read(T.OPS_DATA_QUALITY).filter(
        (F.col("measured_at") == latest) & (F.col("source") == source) & (F.col("entity") == "events") & (F.col("metric") == "input")).head()
    return row["rows"]
