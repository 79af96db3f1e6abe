"""Serving rules and the known-user / known-item filters of the recommend job, on tiny frames."""
import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import RecommenderError
from recsynth.rec import features as feat
from recsynth.rec import rules

pytestmark = [pytest.mark.spark]

EVENTS = "source string, user_id string, item_id string, event_type string"
PAIRS = "user_id string, item_id string"


@pytest.fixture(scope="module")
def events(spark):
    return spark.createDataFrame([
        ("shop", "u1", "a", "view"), ("shop", "u1", "a", "purchase"), ("shop", "u1", "b", "cart"),
        ("shop", "u1", "c", "view"), ("shop", "u2", "c", "purchase"), ("shop", "u2", "c", "purchase"),
        ("shop", "u3", None, "purchase"),
        ("orders", "o1", "x", "purchase"), ("orders", "o1", "y", "purchase"),   # an order export: purchases only
    ], EVENTS)


def test_exclusions_follow_each_sources_rule(spark, events):
    def excluded(**rule):
        return rules.exclusions(events, {"shop": rules.Exclusion(**rule), "orders": rules.Exclusion(False, False)})

    assertDataFrameEqual(excluded(purchased=True, viewed=False), spark.createDataFrame([("u1", "a"), ("u2", "c")], PAIRS))
    assertDataFrameEqual(excluded(purchased=True, viewed=True),
                         spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "c")], PAIRS))
    assertDataFrameEqual(excluded(purchased=False, viewed=True),
                         spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u1", "c")], PAIRS))
    assert excluded(purchased=False, viewed=False) is None
    both = rules.exclusions(events, {"shop": rules.Exclusion(True, False), "orders": rules.Exclusion(True, False)})
    assertDataFrameEqual(both, spark.createDataFrame([("u1", "a"), ("u2", "c"), ("o1", "x"), ("o1", "y")], PAIRS))


def test_purchases_stay_recommendable_in_an_order_export_unless_conf_says_otherwise(events):
    assert rules.source_exclusions(events, purchased=None, viewed=False) == {
        "shop": rules.Exclusion(True, False), "orders": rules.Exclusion(False, False)}
    assert rules.source_exclusions(events, purchased=True, viewed=True) == {
        "shop": rules.Exclusion(True, True), "orders": rules.Exclusion(True, True)}
    assert rules.source_exclusions(events, purchased=None, viewed=False,
                                   overrides={"orders": rules.Exclusion(True, False)})["orders"] == rules.Exclusion(True, False)


def test_discovery_keeps_only_new_items_and_excludes_every_seen_one(spark):
    truth = spark.createDataFrame([("u1", "a"), ("u1", "n"), ("u2", "b")], PAIRS)
    seen = spark.createDataFrame([("u1", "a"), ("u2", "b"), ("u2", "z")], PAIRS)
    bought = spark.createDataFrame([("u3", "q")], PAIRS)
    assert rules.task_truth(truth, seen, rules.NEXT) is truth
    # u2 had only items they already knew: they drop out of discovery
    assertDataFrameEqual(rules.task_truth(truth, seen, rules.DISCOVERY), spark.createDataFrame([("u1", "n")], PAIRS))
    assert rules.task_exclusions(bought, seen, rules.NEXT) is bought
    assertDataFrameEqual(rules.task_exclusions(bought, seen, rules.DISCOVERY),
                         spark.createDataFrame([("u1", "a"), ("u2", "b"), ("u2", "z"), ("u3", "q")], PAIRS))
    assertDataFrameEqual(rules.task_exclusions(None, seen, rules.DISCOVERY), seen)
    with pytest.raises(RecommenderError, match="task must be one of"):
        rules.task_truth(truth, seen, "later")


def test_relevant_items_are_distinct_pairs_of_the_chosen_types(spark, events):
    assertDataFrameEqual(rules.relevant_items(events.where("source = 'shop'"), ["cart", "purchase"]),
                         spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "c")], PAIRS))
    with pytest.raises(RecommenderError, match="event_types"):
        rules.relevant_items(events, [])
    with pytest.raises(RecommenderError, match=r"events lacks column\(s\) \['event_type'\]"):
        rules.relevant_items(events.drop("event_type"), ["view"])


def test_known_histories_and_items_need_a_vocabulary_entry(spark):
    histories = spark.createDataFrame([("u1", [1, 1, 0]), ("u2", [1, 2, 0]), ("u3", [0, 0, 0])],
                                      "user_id string, history array<int>")
    assertDataFrameEqual(feat.known_histories(histories),
                         spark.createDataFrame([("u2", [1, 2, 0])], "user_id string, history array<int>"))
    indices = spark.createDataFrame([("new", 1, 0, 0, 1, 0), ("new-in-known-brand", 1, 0, 0, 2, 0), ("seen", 5, 0, 0, 0, 0)],
                                    "item_id string, item_idx int, category_l1_idx int, category_l2_idx int, "
                                    "brand_idx int, price_band_idx int")
    assertDataFrameEqual(feat.known_items(indices).select("item_id"),
                         spark.createDataFrame([("new-in-known-brand",), ("seen",)], "item_id string"))
