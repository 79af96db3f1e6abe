"""Serving rules and the known-user / known-item filters of the recommend job, on tiny frames."""
import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import RecommenderError
from recsynth.rec import features as feat
from recsynth.rec import rules

pytestmark = [pytest.mark.spark]

EVENTS = "user_id string, item_id string, event_type string"
PAIRS = "user_id string, item_id string"


@pytest.fixture(scope="module")
def events(spark):
    return spark.createDataFrame([
        ("u1", "a", "view"), ("u1", "a", "purchase"), ("u1", "b", "cart"), ("u1", "c", "view"),
        ("u2", "c", "purchase"), ("u2", "c", "purchase"), ("u3", None, "purchase"),
    ], EVENTS)


def test_exclusions_follow_the_rules(spark, events):
    assertDataFrameEqual(rules.exclusions(events, purchased=True, viewed=False),
                         spark.createDataFrame([("u1", "a"), ("u2", "c")], PAIRS))
    assertDataFrameEqual(rules.exclusions(events, purchased=True, viewed=True),
                         spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "c")], PAIRS))
    assertDataFrameEqual(rules.exclusions(events, purchased=False, viewed=True),
                         spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u1", "c")], PAIRS))
    assert rules.exclusions(events, purchased=False, viewed=False) is None


def test_relevant_items_are_distinct_pairs_of_the_chosen_types(spark, events):
    assertDataFrameEqual(rules.relevant_items(events, ["cart", "purchase"]),
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
