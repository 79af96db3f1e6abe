"""Category tree and catalogue cleaning: paths, broken references, cycles, newest row wins."""
import datetime as dt

import pytest

from recsynth.config import load_conf
from recsynth.etl import catalog as C
from recsynth.etl import reasons as R

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 1, 1)
TREE = "source string, category_id string, parent_id string, _raw string, _malformed boolean, _file string, _ingest_run_id string, _ingested_at timestamp"
CATALOG = (
    "source string, item_id string, category_id string, category_path string, brand string, price string, title string, "
    "description string, updated_at string, _raw string, _malformed boolean, _file string, _ingest_run_id string, _ingested_at timestamp"
)


@pytest.fixture(scope="module")
def conf():
    return load_conf("local", [])


def tree(spark, pairs):
    rows = [("rr", c, p, f"{c}>{p}", False, "t.csv", "run", NOW) for c, p in pairs]
    return spark.createDataFrame(rows, TREE)


def test_paths_broken_parents_and_cycles(spark, conf):
    pairs = [("1", None), ("2", "1"), ("3", "2"), ("4", "99"), ("5", "4"), ("6", "7"), ("7", "6"), ("8", "6"), ("x", "1")]
    parsed = C.parse_categories(tree(spark, pairs), conf.sources["retailrocket"])
    classified = C.classify_categories(parsed, max_depth=5)
    reasons = {r["_raw"]: r["_reason"] for r in classified.collect()}
    assert reasons == {
        "1>None": None, "2>1": None, "3>2": None,
        "4>99": R.MISSING_PARENT, "5>4": R.MISSING_PARENT,  # its ancestor's parent is missing
        "6>7": R.CATEGORY_CYCLE, "7>6": R.CATEGORY_CYCLE, "8>6": R.CATEGORY_CYCLE,
        "x>1": R.BAD_ID,
    }
    paths = {r["category_id"]: (r["path"], r["depth"]) for r in C.accepted_categories(classified).collect()}
    assert paths == {"rr:1": (["rr:1"], 0), "rr:2": (["rr:1", "rr:2"], 1), "rr:3": (["rr:1", "rr:2", "rr:3"], 2)}


def test_too_deep_tree(spark, conf):
    pairs = [("1", None)] + [(str(k), str(k - 1)) for k in range(2, 6)]
    classified = C.classify_categories(C.parse_categories(tree(spark, pairs), conf.sources["retailrocket"]), max_depth=3)
    reasons = {r["category_id"]: r["_reason"] for r in classified.collect()}
    assert reasons == {"rr:1": None, "rr:2": None, "rr:3": None, "rr:4": None, "rr:5": R.CATEGORY_TOO_DEEP}


def catalog(spark, rows):
    full = [("rees46", r["item"], r.get("cat"), r.get("path"), r.get("brand"), r.get("price"), None, None, r.get("at"),
             r["raw"], False, "c.csv", "run", NOW) for r in rows]
    return spark.createDataFrame(full, CATALOG)


def test_newest_catalogue_row_wins_and_paths_split(spark, conf):
    rows = [
        {"item": "1", "cat": "10", "path": "electronics.smartphone", "brand": " Apple ", "price": "100", "at": "2019-10-01 00:00:00 UTC", "raw": "old"},
        {"item": "1", "cat": "10", "path": "electronics.smartphone", "brand": "apple", "price": "90", "at": "2019-10-02 00:00:00 UTC", "raw": "new"},
        {"item": "2", "price": "0", "at": "2019-10-02 00:00:00 UTC", "raw": "free"},
        {"item": "", "raw": "no_id"},
    ]
    parsed = C.parse_items(catalog(spark, rows), conf.sources["rees46"], conf.clean)
    empty_tree = spark.createDataFrame([], "source string, category_id string, path array<string>")
    classified = C.classify_items(parsed, empty_tree, [])
    assert {r["_raw"]: r["_reason"] for r in classified.collect()} == {
        "old": R.SUPERSEDED, "new": None, "free": R.BAD_PRICE, "no_id": R.MISSING_FIELD}
    item = C.accepted_items(classified).head()
    assert (item["item_id"], item["brand"], item["price"]) == ("rees46:1", "apple", 90.0)
    assert item["category_path"] == ["electronics", "smartphone"]


def test_items_need_a_known_category_where_a_tree_exists(spark, conf):
    rows = [{"item": "1", "cat": "10", "raw": "known"}, {"item": "2", "cat": "11", "raw": "unknown"}, {"item": "3", "raw": "none"}]
    parsed = C.parse_items(catalog(spark, rows), conf.sources["rees46"], conf.clean)
    categories = spark.createDataFrame([("rees46", "rees46:10", ["rees46:1", "rees46:10"])], "source string, category_id string, path array<string>")
    classified = C.classify_items(parsed, categories, ["rees46"])
    assert {r["_raw"]: r["_reason"] for r in classified.collect()} == {"known": None, "unknown": R.UNKNOWN_CATEGORY, "none": None}
    paths = {r["item_id"]: r["category_path"] for r in C.accepted_items(classified).collect()}
    assert paths["rees46:1"] == ["rees46:1", "rees46:10"]  # taken from the tree


def test_items_seen_in_events_for_sources_without_catalogue(spark):
    events = spark.createDataFrame(
        [("rr", "rr:1", 5.0, dt.datetime(2015, 6, 1)), ("rr", "rr:1", 7.0, dt.datetime(2015, 6, 2)),
         ("rr", "rr:1", None, dt.datetime(2015, 6, 3)), ("other", "other:9", 1.0, dt.datetime(2015, 6, 1))],
        "source string, item_id string, price double, event_time timestamp",
    )
    rows = C.items_seen_in_events(events, ["rr"]).collect()
    assert [(r["item_id"], r["price"], r["updated_at"], r["origin"]) for r in rows] == [
        ("rr:1", 7.0, dt.datetime(2015, 6, 3), "events")]
