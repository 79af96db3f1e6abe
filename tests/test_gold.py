"""Gold transforms on a hand-made week of events with exact expected values."""
import datetime as dt
import math

import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth.config import load_conf
from recsynth.etl import gold as G

pytestmark = pytest.mark.spark

EVENTS = "event_id string, source string, event_time timestamp, user_id string, session_id string, item_id string, event_type string, price double, event_date date"
WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}


def at(day, hour=10, minute=0):
    return dt.datetime(2015, 6, day, hour, minute)


@pytest.fixture(scope="module")
def events(spark):
    rows = [
        ("e1", "rr", at(1), "rr:u1", "s1", "rr:a", "view", 10.0),
        ("e2", "rr", at(1, 10, 5), "rr:u1", "s1", "rr:a", "cart", 10.0),
        ("e3", "rr", at(1, 10, 9), "rr:u1", "s1", "rr:a", "purchase", 10.0),
        ("e4", "rr", at(1, 10, 10), "rr:u1", "s1", "rr:b", "view", 300.0),
        ("e5", "rr", at(8), "rr:u2", "s2", "rr:b", "view", 300.0),
        ("e6", "rr", at(9), "rr:u2", "s3", "rr:a", "view", None),
    ]
    return spark.createDataFrame([(*r, r[2].date()) for r in rows], EVENTS)


@pytest.fixture(scope="module")
def items(spark):
    return spark.createDataFrame(
        [("rr", "rr:a", "c1", ["shoes", "running"], "acme", 10.0), ("rr", "rr:b", None, None, None, 300.0)],
        "source string, item_id string, category_id string, category_path array<string>, brand string, price double",
    )


def test_interactions(spark, events):
    expected = spark.createDataFrame(
        [("rr", "rr:u1", "rr:a", 1, 1, 1, 1, 9.0, at(1), at(1, 10, 9)), ("rr", "rr:u1", "rr:b", 1, 0, 0, 0, 1.0, at(1, 10, 10), at(1, 10, 10)),
         ("rr", "rr:u2", "rr:b", 1, 0, 0, 0, 1.0, at(8), at(8)), ("rr", "rr:u2", "rr:a", 1, 0, 0, 0, 1.0, at(9), at(9))],
        "source string, user_id string, item_id string, n_views bigint, n_carts bigint, n_purchases bigint, n_units bigint, "
        "weight double, first_time timestamp, last_time timestamp",
    )
    assertDataFrameEqual(G.interactions(events, WEIGHTS), expected)


def test_user_features(events, items):
    features = G.user_features(events, G.interactions(events, WEIGHTS), G.behavior(events, items))
    rows = {r["user_id"]: r for r in features.collect()}
    u1, u2 = rows["rr:u1"], rows["rr:u2"]
    assert (u1["n_events"], u1["n_sessions"], u1["n_items"], u1["n_purchases"], u1["active_days"]) == (4, 1, 2, 1, 1)
    assert (u2["n_events"], u2["n_sessions"], u2["active_days"], u2["purchase_rate"], u2["events_per_session"]) == (2, 2, 2, 0.0, 1.0)


def test_item_features_and_price_bands(events, items):
    rows = {r["item_id"]: r for r in G.item_features(G.interactions(events, WEIGHTS), items, [10, 50, 200]).collect()}
    a, b = rows["rr:a"], rows["rr:b"]
    assert (a["category_l1"], a["category_l2"], a["category_path"], a["price_band"]) == ("shoes", "running", "shoes/running", 1)
    assert (a["n_views"], a["n_purchases"], a["n_users"], a["popularity"], a["popularity_rank"]) == (2, 1, 2, 10.0, 1)
    assert (b["price_band"], b["popularity"], b["popularity_rank"], b["conversion_rate"]) == (3, 2.0, 2, 0.0)


def test_behavior_one_row_per_session(events, items):
    rows = {r["session_id"]: r for r in G.behavior(events, items).collect()}
    s1 = rows["s1"]
    assert (s1["n_events"], s1["n_views"], s1["n_carts"], s1["n_purchases"], s1["n_items"]) == (4, 2, 1, 1, 2)
    assert (s1["duration_s"], s1["spend"], s1["purchased"], s1["start_hour"], s1["day_of_week"]) == (600.0, 10.0, True, 10, "Mon")
    assert s1["top_category"] == "shoes" and s1["mean_price"] == pytest.approx(82.5)
    assert (rows["s2"]["top_category"], rows["s2"]["purchased"], rows["s2"]["spend"]) == ("unknown", False, 0.0)
    assert len(rows) == 3


def test_splits_absolute_and_quantile(events):
    conf = load_conf("local", ["gold.splits.mode=absolute",
                               "gold.splits.cutoffs={retailrocket: {validation_start: '2015-06-08 00:00:00', test_start: '2015-06-09 00:00:00'}, rees46: {validation_start: '2019-01-01', test_start: '2019-02-01'}, rr: {validation_start: '2015-06-08 00:00:00', test_start: '2015-06-09 00:00:00'}}"])
    labels = {r["event_id"]: r["split"] for r in G.splits(events, G.split_cutoffs(events, conf.gold)).collect()}
    assert labels == {"e1": "train", "e2": "train", "e3": "train", "e4": "train", "e5": "validation", "e6": "test"}
    quantile = load_conf("local", ["gold.splits.validation_fraction=0.2", "gold.splits.test_fraction=0.2"])
    labels = G.splits(events, G.split_cutoffs(events, quantile.gold)).groupBy("split").count()
    # the cut-offs are the event times at the 60% and 80% quantiles (e4, e5): each starts its split
    assert {r["split"]: r["count"] for r in labels.collect()} == {"train": 3, "validation": 1, "test": 2}


ORDERS = EVENTS + ", quantity int"
CUTOFFS = "source string, validation_start timestamp, test_start timestamp"


def order_lines(spark, rows):
    """(event_id, day, hour, user, invoice, item, event type, price, quantity) -> silver.events rows of source `or`."""
    return spark.createDataFrame([(e, "or", at(d, h), u, s, i, t, p, at(d, h).date(), q) for e, d, h, u, s, i, t, p, q in rows],
                                 ORDERS)


def test_purchases_weigh_one_their_units_or_one_plus_their_log(spark):
    lines = order_lines(spark, [("v", 1, 9, "u", "s0", "a", "view", 2.5, 1), ("p1", 1, 10, "u", "i1", "a", "purchase", 2.5, 2),
                                ("p2", 2, 10, "u", "i2", "a", "purchase", 2.5, 3)])
    weight = {mode: G.interactions(lines, WEIGHTS, mode).head() for mode in ("one", "units", "log_units")}
    assert (weight["one"]["n_purchases"], weight["one"]["n_units"]) == (2, 5)
    assert weight["one"]["weight"] == 1 + 5 + 5
    assert weight["units"]["weight"] == 1 + 5 * 2 + 5 * 3
    assert weight["log_units"]["weight"] == pytest.approx(1 + 5 * (1 + math.log(2)) + 5 * (1 + math.log(3)))


def test_returns_are_netted_within_their_period_oldest_purchase_first(spark, items):
    events = order_lines(spark, [
        ("view", 2, 9, "u", "s0", "a", "view", 2.5, 1),
        ("p1", 1, 10, "u", "i1", "a", "purchase", 2.5, 2),      # all 2 units go back (r1): leaves gold
        ("p2", 2, 10, "u", "i2", "a", "purchase", 2.5, 3),      # 2 of 3 go back (r1): 1 left
        ("p3", 8, 10, "u", "i3", "a", "purchase", 2.5, 1),      # validation: r2 (test) cannot touch it
        ("pv", 2, 10, "v", "i4", "b", "purchase", 9.0, 5),      # all 5 go back (rv returns 10)
    ])
    returns = order_lines(spark, [
        ("r0", 1, 9, "u", "C1", "a", "purchase", 2.5, 1),       # before any purchase: unmatched
        ("r1", 3, 10, "u", "C2", "a", "purchase", 2.5, 4),      # 5 bought before it: 4 matched
        ("r2", 9, 10, "u", "C3", "a", "purchase", 2.5, 1),      # test period, nothing bought then: unmatched
        ("rv", 4, 10, "v", "C4", "b", "purchase", 9.0, 10),     # 5 bought before it: 5 of 10 matched
    ])
    cutoffs = spark.createDataFrame([("or", at(8, 0), at(9, 0))], CUTOFFS)
    netted, counts = G.net_of_returns(events, returns, cutoffs)
    assert {r["event_id"]: r["quantity"] for r in netted.collect()} == {"view": 1, "p2": 1, "p3": 1}
    assert [tuple(r) for r in counts.collect()] == [("or", 4, 2, 16, 9)]
    sessions = {r["session_id"]: r for r in G.behavior(netted, items).collect()}
    assert (sessions["i2"]["n_units"], sessions["i2"]["spend"], sessions["i2"]["n_purchases"]) == (1, 2.5, 1)
    assert G.splits(netted, cutoffs).where("event_id = 'p3'").head()["quantity"] == 1
