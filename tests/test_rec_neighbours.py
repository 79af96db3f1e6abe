"""Item-to-item neighbour tables (item-kNN, EASE) and their scorer, on planted data small enough to
work out by hand, or (EASE) against numpy's closed form in float64."""
import math

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import RecommenderError
from recsynth.rec.neighbours import EaseGram, ease_gram, ease_neighbours, itemknn, score_neighbours

pytestmark = pytest.mark.spark

TRAIN = "user_id string, item_id string, weight double"
RECS = "user_id string, rank int, item_id string, score double"
NEIGHBOURS = "item_id string, neighbour_id string, similarity double"


@pytest.fixture(scope="module")
def scored(spark):
    # u1 {a: 1, b: 2}, u2 {c: 1}, u3 {a: 1}
    history = spark.createDataFrame([("u1", "a", 1.0), ("u1", "b", 2.0), ("u2", "c", 1.0), ("u3", "a", 1.0)], TRAIN)
    neighbours = spark.createDataFrame([
        ("a", "b", 0.5), ("a", "c", 0.5), ("a", "d", 1.0),
        ("b", "c", 0.25), ("b", "d", -1.0), ("b", "a", 0.5),
        ("c", "a", -0.5), ("c", "e", 0.0),
    ], NEIGHBOURS)
    return history, neighbours


def test_score_neighbours_sums_weighted_similarities(spark, scored):
    # u1: a = 2·0.5 = 1 (its own history item stays), c = 0.5 + 2·0.25 = 1 (tie: a first), b = 0.5,
    #     d = 1 + 2·(−1) = −1 dropped; u2: a −0.5 and e 0 dropped -> no row; u3: d 1, b 0.5, c 0.5
    history, neighbours = scored
    expected = [("u1", 1, "a", 1.0), ("u1", 2, "c", 1.0), ("u1", 3, "b", 0.5),
                ("u3", 1, "d", 1.0), ("u3", 2, "b", 0.5), ("u3", 3, "c", 0.5)]
    assertDataFrameEqual(score_neighbours(history, neighbours, 3), spark.createDataFrame(expected, RECS))
    top2 = [r for r in expected if r[1] <= 2]
    assertDataFrameEqual(score_neighbours(history, neighbours, 2), spark.createDataFrame(top2, RECS))


def test_score_neighbours_takes_serving_rules_as_frames(spark, scored):
    # exclusions remove u1's a and u3's d; only a, c and d are allowed: u1 keeps c (1), u3 keeps c (0.5)
    history, neighbours = scored
    exclusions = spark.createDataFrame([("u1", "a"), ("u3", "d")], "user_id string, item_id string")
    allowed = spark.createDataFrame([("a",), ("c",), ("d",)], "item_id string")
    recs = score_neighbours(history, neighbours, 3, exclusions=exclusions, items=allowed)
    assertDataFrameEqual(recs, spark.createDataFrame([("u1", 1, "c", 1.0), ("u3", 1, "c", 0.5)], RECS))


@pytest.fixture(scope="module")
def three_users(spark):
    # u1 {a, b}, u2 {a: 3, b: 2, c: 1}, u3 {a, c} (a repeated: one user)
    return spark.createDataFrame([("u1", "a", 1.0), ("u1", "b", 1.0), ("u2", "a", 3.0), ("u2", "b", 2.0), ("u2", "c", 1.0),
                                  ("u3", "a", 0.5), ("u3", "a", 0.5), ("u3", "c", 1.0)], TRAIN)


def test_itemknn_cosine(spark, three_users):
    # users: a 3, b 2, c 2; both: ab 2, ac 2, bc 1 -> ab = ac = 2/√6, bc = 1/√4
    ab, bc = 2 / math.sqrt(6), 0.5
    full = [("a", "b", ab), ("b", "a", ab), ("a", "c", ab), ("c", "a", ab), ("b", "c", bc), ("c", "b", bc)]
    assertDataFrameEqual(itemknn(three_users, max_neighbours=2), spark.createDataFrame(full, NEIGHBOURS))
    # one neighbour each: a's tie between b and c goes to b
    assertDataFrameEqual(itemknn(three_users, max_neighbours=1),
                         spark.createDataFrame([("a", "b", ab), ("b", "a", ab), ("c", "a", ab)], NEIGHBOURS))


def test_itemknn_bounded_history(spark, three_users):
    # two items per user: u2 keeps a, b (heaviest) -> users a 3, b 2, c 1; both: ab 2, ac 1 (u3), bc 0
    ab, ac = 2 / math.sqrt(6), 1 / math.sqrt(3)
    expected = [("a", "b", ab), ("b", "a", ab), ("a", "c", ac), ("c", "a", ac)]
    assertDataFrameEqual(itemknn(three_users, max_neighbours=5, max_items_per_user=2), spark.createDataFrame(expected, NEIGHBOURS))


# users × items a..e of the EASE example: distinct users a 4, b 3, c 3, d 3, e 3
X = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0], [0, 0, 1, 1, 1],
              [0, 0, 0, 1, 1], [1, 0, 0, 0, 1], [0, 1, 0, 0, 0]])
ITEMS = np.array(list("abcde"))


@pytest.fixture(scope="module")
def ease_train(spark):
    rows = [(f"u{u + 1}", str(ITEMS[i]), float(1 + i)) for u, i in zip(*np.nonzero(X))]   # weight 1 + item index
    return spark.createDataFrame(rows + [("u2", "a", 1.0)], TRAIN)   # a repeated: still one user


def test_ease_gram_counts(ease_train):
    gram = ease_gram(ease_train, max_items=10)
    assert gram.item_ids.tolist() == list("abcde") and gram.gram.dtype == np.float32
    np.testing.assert_array_equal(gram.gram, X.T @ X)   # G_aa = 4 users of a, G_ab = 2 users of both, ...


def test_ease_gram_keeps_the_most_used_items(ease_train):
    # a (4 users), then b, c, d, e tie at 3: b and c by item_id
    gram = ease_gram(ease_train, max_items=3)
    assert gram.item_ids.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(gram.gram, X[:, :3].T @ X[:, :3])
    # one kept item per user, the heaviest: u1 b, u2 c (a 2, b 2, c 3), u3 c, u4 c, u5 none (d, e not kept), u6 a, u7 b
    bounded = ease_gram(ease_train, max_items=3, max_items_per_user=1)
    np.testing.assert_array_equal(bounded.gram, np.diag([1, 2, 3]))


def reference_ease(gram: np.ndarray, l2: float) -> np.ndarray:
    """The closed form in float64: B = I − P diag(1/diag P), P = (G + l2 I)⁻¹."""
    precision = np.linalg.inv(gram.astype(np.float64) + l2 * np.eye(len(gram)))
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def test_ease_neighbours_match_the_closed_form(spark, ease_train):
    gram = ease_gram(ease_train, max_items=10)
    reference = reference_ease(X.T @ X, 1.0)
    table = ease_neighbours(spark, gram, l2=1.0, max_neighbours=5)
    assert table.dtypes == [("item_id", "string"), ("neighbour_id", "string"), ("similarity", "double")]
    got = {(r[0], r[1]): r[2] for r in table.collect()}
    positive = {(ITEMS[i], ITEMS[j]): reference[i, j] for i, j in zip(*np.nonzero(reference > 0))}
    assert sorted(got) == sorted(positive)   # every positive weight, no negative one, no diagonal
    assert len(positive) == 12 and all(i != j for i, j in got)
    for pair, value in positive.items():
        assert got[pair] == pytest.approx(value, abs=1e-5), pair
    # the best neighbour of each history item (worked out from the reference: e.g. B_cd 0.432 > B_ca 0.364)
    best = {r["item_id"]: r["neighbour_id"] for r in ease_neighbours(spark, gram, l2=1.0, max_neighbours=1).collect()}
    assert best == {"a": "b", "b": "a", "c": "d", "d": "e", "e": "d"}
    two = ease_neighbours(spark, gram, l2=1.0, max_neighbours=2)
    assert two.groupBy("item_id").count().where("count != 2").count() == 0
    assert {(r[0], r[1]) for r in two.collect()} == {("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "d"), ("c", "a"),
                                                     ("d", "e"), ("d", "c"), ("e", "d"), ("e", "a")}


def test_ease_neighbours_break_ties_by_neighbour_id(spark, monkeypatch):
    # a P with unit diagonal and −0.5 elsewhere: every B_ij is 0.5, so the first neighbour_ids win
    monkeypatch.setattr(np.linalg, "inv", lambda m: np.full(m.shape, -0.5, dtype=np.float32) + 1.5 * np.eye(len(m), dtype=np.float32))
    gram = EaseGram(item_ids=np.array(list("abcd")), gram=np.eye(4, dtype=np.float32))
    table = ease_neighbours(spark, gram, l2=1.0, max_neighbours=2)
    expected = [("a", "b", 0.5), ("a", "c", 0.5), ("b", "a", 0.5), ("b", "c", 0.5),
                ("c", "a", 0.5), ("c", "b", 0.5), ("d", "a", 0.5), ("d", "b", 0.5)]
    assertDataFrameEqual(table, spark.createDataFrame(expected, NEIGHBOURS))


def test_ease_neighbours_of_an_empty_gram(spark):
    empty = EaseGram(item_ids=np.array([], dtype=str), gram=np.zeros((0, 0), dtype=np.float32))
    assert ease_neighbours(spark, empty, l2=1.0, max_neighbours=3).count() == 0


@pytest.mark.parametrize("call, message", [
    (lambda s, h, n: score_neighbours(h, n, 0), "k must be an integer >= 1, got 0"),
    (lambda s, h, n: score_neighbours(h.drop("weight"), n, 2), "history lacks column(s) ['weight']"),
    (lambda s, h, n: score_neighbours(h, n.withColumn("similarity", F.lit("x")), 2), "column 'similarity' is string, expected numeric"),
    (lambda s, h, n: score_neighbours(h, n, 2, items=h.select("user_id")), "items lacks column(s) ['item_id']"),
    (lambda s, h, n: itemknn(h, max_neighbours=0), "max_neighbours must be an integer >= 1, got 0"),
    (lambda s, h, n: itemknn(h, max_neighbours=2, max_items_per_user=0), "max_items_per_user must be an integer >= 1"),
    (lambda s, h, n: ease_gram(h, max_items=0), "max_items must be an integer >= 1, got 0"),
    (lambda s, h, n: ease_gram(h.drop("weight"), max_items=2), "train lacks column(s) ['weight']"),
    (lambda s, h, n: ease_neighbours(s, EaseGram(np.array(["a"]), np.ones((1, 1), np.float32)), l2=0.0, max_neighbours=1),
     "l2 must be a finite number > 0, got 0.0"),
    (lambda s, h, n: ease_neighbours(s, EaseGram(np.array(["a"]), np.ones((1, 1), np.float32)), l2=True, max_neighbours=1),
     "l2 must be a finite number > 0, got True"),
    (lambda s, h, n: ease_neighbours(s, EaseGram(np.array(["a"]), np.ones((1, 1), np.float32)), l2=1.0, max_neighbours=0),
     "max_neighbours must be an integer >= 1, got 0"),
    (lambda s, h, n: ease_neighbours(s, EaseGram(np.array(["a"]), np.ones((2, 2), np.float32)), l2=1.0, max_neighbours=1),
     "gram must be 1 × 1"),
])
def test_bad_input(spark, scored, call, message):
    history, neighbours = scored
    with pytest.raises(RecommenderError) as error:
        call(spark, history, neighbours)
    assert message in str(error.value)
