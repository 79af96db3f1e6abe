"""Offline ranking metrics on hand-made recommendations with the arithmetic written out."""
from math import log2

import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import RecommenderError, RecsynthError
from recsynth.rec.metrics import item_popularity, per_user_metrics, ranking_metrics

pytestmark = pytest.mark.spark

RECS = "user_id string, rank int, item_id string, score double"
TRUTH = "user_id string, item_id string"
PER_USER = ("user_id string, n_truth bigint, n_hits bigint, precision_at_k double, recall_at_k double, "
            "ndcg_at_k double, ap_at_k double, hit_at_k double")
K = 3


@pytest.fixture(scope="module")
def recs(spark):
    rows = [("u1", 1, "a"), ("u1", 2, "b"), ("u1", 3, "c"), ("u1", 4, "d"),  # d is beyond k = 3
            ("u2", 1, "b"), ("u2", 2, "e"), ("u2", 3, "a"),
            ("u4", 1, "x"), ("u4", 2, "y"), ("u4", 3, "z")]                 # u4 is not in truth: ignored
    return spark.createDataFrame([(u, r, i, 1.0 / r) for u, r, i in rows], RECS)


@pytest.fixture(scope="module")
def truth(spark):
    # u1: {a, c, x} with a twice; u2: {e}; u3: {a} and no recommendations at all
    return spark.createDataFrame([("u1", "a"), ("u1", "a"), ("u1", "c"), ("u1", "x"), ("u2", "e"), ("u3", "a")], TRUTH)


def test_per_user_metrics(spark, recs, truth):
    # u1: top 3 = a b c, relevant {a, c, x} -> hits at ranks 1 and 3
    #   precision 2/3, recall 2/3, DCG = 1/log2(2) + 1/log2(4) = 1.5,
    #   ideal DCG over min(3, 3) = 3 items = 1 + 1/log2(3) + 1/log2(4),
    #   AP = (1/1 + 2/3) / min(3, 3) = 5/9
    # u2: top 3 = b e a, relevant {e} -> hit at rank 2
    #   precision 1/3, recall 1/1, DCG = 1/log2(3), ideal DCG over min(3, 1) = 1 item = 1,
    #   AP = (1/2) / 1
    # u3: no recommendations -> zeros
    expected = spark.createDataFrame([
        ("u1", 3, 2, 2 / 3, 2 / 3, 1.5 / (1 + 1 / log2(3) + 0.5), 5 / 9, 1.0),
        ("u2", 1, 1, 1 / 3, 1.0, 1 / log2(3), 0.5, 1.0),
        ("u3", 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0),
    ], PER_USER)
    assertDataFrameEqual(per_user_metrics(recs, truth, K), expected)


def test_lists_told_apart_by_keys_score_as_if_apart(spark, recs, truth):
    """`by`: two lists in one frame, each against its own truth, give each list's own rows. List
    "m" is `recs` against `truth`; list "n" gives u1 only x (a hit at rank 1) and has u2 as its
    only evaluated user, with e (no hit): its rows do not leak into m's, nor m's into n's."""
    from pyspark.sql import functions as F

    other_recs = spark.createDataFrame([("u1", 1, "x", 1.0), ("u2", 1, "b", 1.0)], RECS)
    other_truth = spark.createDataFrame([("u2", "e")], TRUTH)
    keyed_recs = recs.withColumn("list", F.lit("m")).unionByName(other_recs.withColumn("list", F.lit("n")))
    keyed_truth = truth.withColumn("list", F.lit("m")).unionByName(other_truth.withColumn("list", F.lit("n")))
    keyed = per_user_metrics(keyed_recs, keyed_truth, K, by=("list",))
    assert keyed.columns[:2] == ["list", "user_id"]
    assertDataFrameEqual(keyed.where("list = 'm'").drop("list"), per_user_metrics(recs, truth, K))
    expected = spark.createDataFrame([("u2", 1, 0, 0.0, 0.0, 0.0, 0.0, 0.0)], PER_USER)
    assertDataFrameEqual(keyed.where("list = 'n'").drop("list"), expected)
    with pytest.raises(RecommenderError, match="list"):
        per_user_metrics(recs, truth, K, by=("list",))


def test_ranking_metrics(spark, recs, truth):
    # popularity: a by 4 of 8 users, b by 2, c by 1; e is absent -> counted as 1 user
    popularity = spark.createDataFrame([("a", 4), ("b", 2), ("c", 1), ("x", 8)], "item_id string, n_users bigint")
    metrics = ranking_metrics(recs, truth, K, catalogue_size=10, item_popularity=popularity, total_users=8)
    assert metrics == {
        "precision_at_k": pytest.approx((2 / 3 + 1 / 3 + 0) / 3),                       # 1/3
        "recall_at_k": pytest.approx((2 / 3 + 1 + 0) / 3),                              # 5/9
        "ndcg_at_k": pytest.approx((1.5 / (1 + 1 / log2(3) + 0.5) + 1 / log2(3) + 0) / 3),  # ~0.44495
        "map_at_k": pytest.approx((5 / 9 + 1 / 2 + 0) / 3),                             # 19/54
        "hit_rate_at_k": pytest.approx(2 / 3),
        # the evaluated users' top 3: u1 {a, b, c}, u2 {b, e, a} -> 4 distinct items of 10
        # (u1's d at rank 4 and u4's x, y, z do not count)
        "catalogue_coverage": pytest.approx(0.4),
        # -log2(p): a = -log2(4/8) = 1, b = -log2(2/8) = 2, c = -log2(1/8) = 3, e = -log2(1/8) = 3;
        # pairs u1: a b c, u2: b e a -> (1 + 2 + 3 + 2 + 3 + 1) / 6 = 2
        "novelty": pytest.approx(2.0),
        "users": 3,
    }


def test_without_popularity_novelty_is_none(recs, truth):
    metrics = ranking_metrics(recs, truth, K, catalogue_size=10)
    assert metrics["novelty"] is None and metrics["users"] == 3


def test_truth_longer_than_k(spark):
    # k = 2, list q a, relevant {a, b, c}: one hit at rank 2
    # precision 1/2, recall 1/3, DCG = 1/log2(3), ideal over min(2, 3) = 2 items = 1 + 1/log2(3),
    # AP = (1/2) / min(2, 3) = 1/4
    recs = spark.createDataFrame([("u", 1, "q", 0.9), ("u", 2, "a", 0.8)], RECS)
    truth = spark.createDataFrame([("u", "a"), ("u", "b"), ("u", "c")], TRUTH)
    expected = spark.createDataFrame([("u", 3, 1, 0.5, 1 / 3, (1 / log2(3)) / (1 + 1 / log2(3)), 0.25, 1.0)], PER_USER)
    assertDataFrameEqual(per_user_metrics(recs, truth, 2), expected)


def test_an_item_listed_twice_counts_once_at_its_best_rank(spark):
    # a at ranks 1 and 2, b at 3; relevant {a, b}: hits at ranks 1 and 3 (not 3 hits)
    # precision 2/3, recall 1, DCG = 1 + 1/log2(4) = 1.5, ideal over 2 = 1 + 1/log2(3),
    # AP = (1/1 + 2/3) / 2 = 5/6
    recs = spark.createDataFrame([("u", 1, "a", 0.9), ("u", 2, "a", 0.8), ("u", 3, "b", 0.7)], RECS)
    truth = spark.createDataFrame([("u", "a"), ("u", "b")], TRUTH)
    expected = spark.createDataFrame([("u", 2, 2, 2 / 3, 1.0, 1.5 / (1 + 1 / log2(3)), 5 / 6, 1.0)], PER_USER)
    assertDataFrameEqual(per_user_metrics(recs, truth, 3), expected)


def test_no_evaluated_users(spark, recs):
    metrics = ranking_metrics(recs, spark.createDataFrame([], TRUTH), K, catalogue_size=10)
    assert metrics == {"precision_at_k": None, "recall_at_k": None, "ndcg_at_k": None, "map_at_k": None,
                       "hit_rate_at_k": None, "catalogue_coverage": 0.0, "novelty": None, "users": 0}


def test_item_popularity_counts_distinct_users(spark):
    interactions = spark.createDataFrame([("u1", "a"), ("u1", "a"), ("u2", "a"), ("u2", "b")], TRUTH)
    expected = spark.createDataFrame([("a", 2), ("b", 1)], "item_id string, n_users bigint")
    assertDataFrameEqual(item_popularity(interactions), expected)


@pytest.mark.parametrize("call, message", [
    (lambda recs, truth: ranking_metrics(recs.drop("rank"), truth, 3, catalogue_size=5), "['rank']"),
    (lambda recs, truth: ranking_metrics(recs, truth.drop("item_id"), 3, catalogue_size=5), "truth lacks column(s) ['item_id']"),
    (lambda recs, truth: ranking_metrics(recs.withColumn("rank", recs["rank"].cast("string")), truth, 3, catalogue_size=5),
     "'rank' must be an integer type, got string"),
    (lambda recs, truth: ranking_metrics(recs, truth, 0, catalogue_size=5), "k must be an integer >= 1, got 0"),
    (lambda recs, truth: per_user_metrics(recs, truth, 2.5), "k must be an integer >= 1, got 2.5"),
    (lambda recs, truth: ranking_metrics(recs, truth, 3, catalogue_size=0), "catalogue_size must be an integer >= 1, got 0"),
    (lambda recs, truth: ranking_metrics(recs, truth, 3, catalogue_size=5, item_popularity=truth), "item_popularity lacks column(s) ['n_users']"),
    (lambda recs, truth: ranking_metrics(recs, truth, 3, catalogue_size=5,
                                         item_popularity=truth.selectExpr("item_id", "1 AS n_users")), "total_users"),
])
def test_bad_input(recs, truth, call, message):
    with pytest.raises(RecommenderError) as error:
        call(recs, truth)
    assert message in str(error.value) and isinstance(error.value, RecsynthError)
