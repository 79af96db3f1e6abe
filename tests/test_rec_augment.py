"""Synthetic sessions become pseudo-users whose items follow their category's real popularity."""
import datetime as dt

import pytest

from recsynth.errors import RecommenderError
from recsynth.rec.augment import SYNTHETIC_USER_PREFIX, category_slots, synthetic_events

pytestmark = pytest.mark.spark

START = dt.datetime(2024, 1, 1)


@pytest.fixture(scope="module")
def catalogue(spark):
    items = spark.createDataFrame(
        [("shop", "a1", "A"), ("shop", "a2", "A"), ("shop", "b1", "B"), ("shop", "n1", None), ("other", "a9", "A")],
        "source string, item_id string, category_l1 string")
    # category A: a1 has 3 distinct users, a2 has 1 (a1's repeat by u1 counts once); B: b1 only
    train = spark.createDataFrame(
        [("u1", "a1"), ("u1", "a1"), ("u2", "a1"), ("u3", "a1"), ("u4", "a2"), ("u1", "b1"), ("u5", "n1"), ("u6", "a9")],
        "user_id string, item_id string")
    return items, train


def test_slots_share_a_category_by_distinct_users(catalogue):
    items, train = catalogue
    slots = {(r["source"], r["category_l1"], r["item_id"]): r["n"] for r in
             category_slots(train, items, 100).groupBy("source", "category_l1", "item_id").count()
             .withColumnRenamed("count", "n").collect()}
    # A in shop: a1 owns [0, 0.75) -> slots 0..74, a2 [0.75, 1) -> 75..99; items without a category are "unknown"
    assert slots == {("shop", "A", "a1"): 75, ("shop", "A", "a2"): 25, ("shop", "B", "b1"): 100,
                     ("shop", "unknown", "n1"): 100, ("other", "A", "a9"): 100}


def test_sessions_draw_from_their_category_by_popularity(spark, catalogue):
    items, train = catalogue
    sessions = spark.createDataFrame(
        [(f"s{k}", "shop", "A", 1) for k in range(400)] + [("big", "shop", "B", 500), ("odd", "shop", "__other__", 3)],
        "synthetic_id string, source string, top_category string, n_items long")
    events = synthetic_events(sessions, train, items, seed=7, start_time=START, max_items_per_session=4).cache()
    a_items = [r["item_id"] for r in events.filter(events.user_id.startswith(f"{SYNTHETIC_USER_PREFIX}s")).collect()]
    assert len(a_items) == 400 and set(a_items) == {"a1", "a2"}
    assert a_items.count("a1") / 400 == pytest.approx(0.75, abs=0.07)
    big = events.filter(events.user_id == f"{SYNTHETIC_USER_PREFIX}big").orderBy("event_time").collect()
    assert [r["item_id"] for r in big] == ["b1"] * 4  # capped at max_items_per_session
    assert [r["event_time"] for r in big] == [START + dt.timedelta(seconds=k) for k in range(1, 5)]
    assert events.filter(events.user_id == f"{SYNTHETIC_USER_PREFIX}odd").count() == 0  # no item in __other__
    again = synthetic_events(sessions, train, items, seed=7, start_time=START, max_items_per_session=4)
    assert sorted(again.collect()) == sorted(events.collect())


def test_bad_input_is_named(spark, catalogue):
    items, train = catalogue
    sessions = spark.createDataFrame([("s", "shop", 1)], "synthetic_id string, source string, n_items long")
    with pytest.raises(RecommenderError, match="top_category"):
        synthetic_events(sessions, train, items, seed=1, start_time=START)
