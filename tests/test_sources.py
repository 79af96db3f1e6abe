"""Raw input through the real ingest and clean jobs: corrupt lines land in quarantine with
their reason and raw text, counts reconcile, and a third source needs only a conf mapping."""
import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import JobFailed
from recsynth.lake import Lake
from recsynth.runtime.runs import run_job
from recsynth.pipeline import JOBS

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ONLY_RETAILROCKET = ["sources.rees46.enabled=false"]


def ingest_and_clean(spark, conf):
    lake = Lake(spark, conf)
    for name in ("ingest", "clean"):
        run_job(JOBS[name], spark, conf, lake)
    return lake


def quarantine_by_reason(lake, entity="events"):
    rows = lake.read(T.SILVER_QUARANTINE).filter(F.col("entity") == entity).groupBy("reason").count().collect()
    return {r["reason"]: r["count"] for r in rows}


def test_corrupt_lines_are_quarantined_with_reasons(spark, conf_for, tmp_path):
    lines = [
        "timestamp,visitorid,event,itemid,transactionid",
        "1433221332117,1,view,10,",
        "1433221332117,1,view,10,",                  # exact duplicate
        "this line is garbage",                      # malformed: one field
        "1433221332117,2,view,11,,surplus,fields",   # malformed: too many fields
        "not-a-time,3,view,12,",                     # bad time stamp
        ",4,view,13,",                               # missing time
        "1433221332117,abc,view,14,",                # wrong id type
        "1433221332117,5,click,15,",                 # unknown event type
        "99999999999999,6,view,16,",                 # far future
        '1433221332117,7,view,17,"<script>alert(1)</script>"',  # junk in an unused field: still accepted
    ]
    (tmp_path / "events-bad.csv").write_text("\n".join(lines) + "\n")
    conf = conf_for(*ONLY_RETAILROCKET, f"sources.retailrocket.events.path={tmp_path}/events-*.csv")
    lake = ingest_and_clean(spark, conf)
    assert quarantine_by_reason(lake) == {
        "malformed_row": 2, "bad_timestamp": 1, "missing_field": 1, "bad_id": 1, "unknown_event_type": 1, "time_out_of_range": 1}
    assert lake.read(T.SILVER_EVENTS).count() == 2
    raw = {r["reason"]: r["raw"] for r in lake.read(T.SILVER_QUARANTINE).collect()}
    assert "garbage" in raw["malformed_row"] or "surplus" in raw["malformed_row"]
    assert json.loads(raw["bad_id"])["visitorid"] == "abc"
    events = {(r["metric"], r["reason"]): r["rows"] for r in lake.read(T.OPS_DATA_QUALITY).filter("entity = 'events'").collect()}
    assert events[("input", None)] == 10 == events[("accepted", None)] + events[("duplicate", "exact_duplicate")] + 7


def test_missing_source_files_fail_clearly_and_change_nothing(spark, conf_for, tmp_path):
    conf = conf_for(*ONLY_RETAILROCKET, f"sources.retailrocket.events.path={tmp_path}/nothing-*.csv")
    lake = Lake(spark, conf)
    with pytest.raises(JobFailed, match="matches no file"):
        run_job(JOBS["ingest"], spark, conf, lake)
    assert lake.version(T.BRONZE_EVENTS) is None
    assert lake.read(T.OPS_JOB_RUNS).head()["status"] == "failed"


def test_a_third_source_needs_only_a_mapping(spark, conf_for, tmp_path):
    """JSON events with their own names, epoch seconds in Berlin time and vocabulary; a Parquet catalogue."""
    events = tmp_path / "shop3" / "events"
    events.mkdir(parents=True)
    records = [
        {"ts": 1560000000, "visitor": "v1", "visit": "s1", "sku": "A", "action": "pageview", "amount": 9.5},
        {"ts": 1560000060, "visitor": "v1", "visit": "s1", "sku": "A", "action": "basket", "amount": 9.5},
        {"ts": 1560000120, "visitor": "v1", "visit": "s1", "sku": "A", "action": "order", "amount": 9.5},
        {"ts": 1560000120, "visitor": "v2", "visit": "s2", "sku": "Z", "action": "pageview", "amount": 1.0},
    ]
    (events / "part-1.json").write_text("\n".join(json.dumps(r) for r in records) + "\n{broken json\n")
    catalog = tmp_path / "shop3" / "catalog"
    spark.createDataFrame([("A", "Shoes > Running", "Acme", 9.5)], "sku string, cat string, maker string, cost double") \
        .write.parquet(str(catalog))
    mapping = {
        "enabled": True, "id_format": "string",
        "events": {"path": f"{events}/*.json", "format": "json",
                   "columns": {"event_time": "ts", "user_id": "visitor", "session_id": "visit", "item_id": "sku",
                               "event_type": "action", "price": "amount"},
                   "time": {"unit": "epoch_s", "timezone": "UTC"},
                   "event_types": {"pageview": "view", "basket": "cart", "order": "purchase"}},
        "catalog": {"path": str(catalog), "format": "parquet",
                    "columns": {"item_id": "sku", "category_path": "cat", "brand": "maker", "price": "cost"},
                    "category_path_separator": " > "},
    }
    conf = conf_for("sources.rees46.enabled=false", "sources.retailrocket.enabled=false", f"sources.shop3={json.dumps(mapping)}")
    lake = ingest_and_clean(spark, conf)
    accepted = lake.read(T.SILVER_EVENTS).orderBy("event_time").collect()
    assert [(r["user_id"], r["item_id"], r["event_type"], r["session_id"]) for r in accepted] == [
        ("shop3:v1", "shop3:A", "view", "shop3:s1"), ("shop3:v1", "shop3:A", "cart", "shop3:s1"),
        ("shop3:v1", "shop3:A", "purchase", "shop3:s1")]
    assert accepted[0]["event_time"] == dt.datetime(2019, 6, 8, 13, 20)
    assert quarantine_by_reason(lake) == {"unknown_item": 1, "malformed_row": 1}
    item = lake.read(T.SILVER_ITEMS).head()
    assert (item["item_id"], item["category_path"], item["brand"]) == ("shop3:A", ["Shoes", "Running"], "acme")


def test_an_orders_export_reconciles_through_ingest_clean_and_gold(spark, conf_for):
    """The 16 real Online Retail lines of tests/data/online_retail, through the real jobs: every line is
    accounted for, returns are netted in gold. By hand, events: the three lines of 536365, one of the two
    equal 22111 lines and the purchases 536488 (8 x 22960) and 537195 (12 x 35004C) are accepted; the
    second 22111 line is an exact duplicate; POST and D are not products; C536506 (-6 x 22960, after
    536488), C536383 (-1 x 35004C, before any purchase) and C537805 (-1 x 35004C, after 537195) are
    returns; the guest line, the stock adjustment and the bad-debt line have no customer; 22841 at
    price 0 is a bad price. Catalogue: the same lines, the newest per item kept."""
    conf = conf_for("sources.retailrocket.enabled=false", "sources.rees46.enabled=false",
                    "sources.online_retail.enabled=true")
    lake = Lake(spark, conf)
    for name in ("ingest", "clean", "gold"):
        record = run_job(JOBS[name], spark, conf, lake)
    quality = {(r["entity"], r["metric"], r["reason"]): r["rows"] for r in lake.read(T.OPS_DATA_QUALITY).collect()}
    assert quality == {
        ("events", "input", None): 16, ("events", "accepted", None): 6, ("events", "return", "return"): 3,
        ("events", "duplicate", "exact_duplicate"): 1, ("events", "quarantined", "not_a_product"): 2,
        ("events", "quarantined", "missing_field"): 3, ("events", "quarantined", "bad_price"): 1,
        ("catalog", "input", None): 16, ("catalog", "accepted", None): 7, ("catalog", "duplicate", "superseded"): 4,
        ("catalog", "quarantined", "not_a_product"): 3, ("catalog", "quarantined", "bad_price"): 2,
    }
    returns = {r["transaction_id"]: r["quantity"] for r in lake.read(T.SILVER_RETURNS).collect()}
    assert returns == {"C536506": 6, "C536383": 1, "C537805": 1}
    events = lake.read(T.SILVER_EVENTS)
    assert events.where("event_type = 'purchase'").count() == 6
    assert {r["item_id"]: r["quantity"] for r in events.where("transaction_id = '536365'").collect()} == {
        "online_retail:85123A": 6, "online_retail:71053": 6, "online_retail:84406B": 8}
    assert lake.read(T.SILVER_ITEMS).where("item_id = 'online_retail:35004C'").head()["title"] == "SET OF 3 COLOURED  FLYING DUCKS"
    sessions = {r["n_units"]: r["spend"] for r in lake.read(T.GOLD_BEHAVIOR).collect()}
    assert sessions == {20: pytest.approx(6 * 2.55 + 6 * 3.39 + 8 * 2.75), 1: 4.95, 2: 2 * 4.25, 11: pytest.approx(11 * 4.65)}
    assert record.message.endswith("returns: 3 lines, 1 unmatched, 7 of 8 units netted")
