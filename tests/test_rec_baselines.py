"""Recommendation baselines on tiny planted interactions whose answers can be worked out by hand."""
import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from recsynth.errors import RecommenderError
from recsynth.rec.baselines import (
    als, cooccurrence, cooccurrence_counts, fit_als, popular_per_source, popularity, recent, then_fill,
)

pytestmark = pytest.mark.spark

TRAIN = "user_id string, item_id string, weight double"
RECS = "user_id string, rank int, item_id string, score double"
# rank 2 for two blocks: a larger rank over-fits 8 items and blurs the blocks (held-out scores ~0.97 vs ~0.002 here)
ALS_PARAMS = {"rank": 2, "reg_param": 0.1, "alpha": 10.0, "max_iter": 10, "seed": 7}


def users_of(spark, *names):
    return spark.createDataFrame([(n,) for n in names], "user_id string")


def assert_well_formed(recs, train, k, exclude_seen=True):
    """Ranks 1..n contiguous with n <= k per user, scores non-increasing, no seen item."""
    assert recs.columns == ["user_id", "rank", "item_id", "score"]
    lists = {r["user_id"]: sorted(r["l"]) for r in recs.groupBy("user_id").agg(F.collect_list(F.struct("rank", "score")).alias("l")).collect()}
    for user, entries in lists.items():
        ranks = [e["rank"] for e in entries]
        scores = [e["score"] for e in entries]
        assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) <= k, (user, ranks)
        assert scores == sorted(scores, reverse=True), (user, scores)
    if exclude_seen:
        assert recs.join(train, ["user_id", "item_id"]).count() == 0


@pytest.fixture(scope="module")
def shop(spark):
    # distinct users: a 3, b 2, c 2, d 1; summed weight: a 3, b 2, c 4, d 5
    # -> by users, weight breaking ties: a (3), c (2, w 4), b (2, w 2), d (1) - d's weight does not lift it
    return spark.createDataFrame([
        ("u1", "a", 1.0), ("u1", "b", 1.0),
        ("u2", "a", 1.0), ("u2", "c", 1.0),
        ("u3", "a", 0.5), ("u3", "a", 0.5), ("u3", "b", 1.0), ("u3", "d", 5.0),   # a repeated: one user
        ("u4", "c", 3.0),
    ], TRAIN)


def test_popularity_excludes_seen_items(spark, shop):
    recs = popularity(shop, users_of(spark, "u1", "u2", "u3", "u4", "u5", "u5"), 2, exclude_seen=True)
    expected = spark.createDataFrame([
        ("u1", 1, "c", 2.0), ("u1", 2, "d", 1.0),   # saw a, b
        ("u2", 1, "b", 2.0), ("u2", 2, "d", 1.0),   # saw a, c
        ("u3", 1, "c", 2.0),                         # saw a, b, d: only c is left
        ("u4", 1, "a", 3.0), ("u4", 2, "b", 2.0),   # saw c
        ("u5", 1, "a", 3.0), ("u5", 2, "c", 2.0),   # not in train: plain popularity (cold start)
    ], RECS)
    assertDataFrameEqual(recs, expected)
    assert_well_formed(recs, shop, 2)


def test_popularity_with_seen_items(spark, shop):
    recs = popularity(shop, users_of(spark, "u1", "u3"), 3, exclude_seen=False)
    expected = spark.createDataFrame([(u, r, i, s) for u in ("u1", "u3") for r, i, s in ((1, "a", 3.0), (2, "c", 2.0), (3, "b", 2.0))], RECS)
    assertDataFrameEqual(recs, expected)


@pytest.fixture(scope="module")
def baskets(spark):
    # u1 {a, b}, u2 {a, b, c} (weights 3 2 1), u3 {b, c}, u4 {d, e}, u5 {a}
    return spark.createDataFrame([
        ("u1", "a", 1.0), ("u1", "b", 1.0),
        ("u2", "a", 3.0), ("u2", "b", 2.0), ("u2", "c", 1.0),
        ("u3", "b", 1.0), ("u3", "c", 1.0),
        ("u4", "d", 1.0), ("u4", "e", 1.0),
        ("u5", "a", 1.0),
    ], TRAIN)


def test_cooccurrence_counts_bounded_history(spark, baskets):
    # with 2 items per user u2 keeps a, b (its heaviest) and drops c:
    # a-b: u1, u2 -> 2; b-c: u3 -> 1; d-e: u4 -> 1; a-c: nobody; u5 alone has no pair
    expected = spark.createDataFrame([("a", "b", 2), ("b", "a", 2), ("b", "c", 1), ("c", "b", 1), ("d", "e", 1), ("e", "d", 1)],
                                     "item_a string, item_b string, n bigint")
    assertDataFrameEqual(cooccurrence_counts(baskets, max_items_per_user=2), expected)


def test_cooccurrence_recommendations(spark, baskets):
    # full histories: a-b 2 (u1, u2), a-c 1 (u2), b-c 2 (u2, u3), d-e 1 (u4)
    # u5 {a}: b = 2, c = 1
    # u1 {a, b}: a = co(b, a) = 2, b = co(a, b) = 2, c = co(a, c) + co(b, c) = 1 + 2 = 3 -> unseen: c
    # u4 {d, e}: only d and e, both seen -> no row; u6 is not in train -> no row
    users = users_of(spark, "u1", "u4", "u5", "u6")
    recs = cooccurrence(baskets, users, 2, exclude_seen=True)
    expected = spark.createDataFrame([("u1", 1, "c", 3.0), ("u5", 1, "b", 2.0), ("u5", 2, "c", 1.0)], RECS)
    assertDataFrameEqual(recs, expected)
    assert_well_formed(recs, baskets, 2)
    # keeping seen items, u1: c 3, then a and b at 2 (tie -> item_id)
    kept = cooccurrence(baskets, users_of(spark, "u1"), 3, exclude_seen=False)
    assertDataFrameEqual(kept, spark.createDataFrame([("u1", 1, "c", 3.0), ("u1", 2, "a", 2.0), ("u1", 3, "b", 2.0)], RECS))


def test_cooccurrence_takes_serving_rules_as_frames(spark, baskets):
    # keeping seen items, u1 {a, b}: c 3, a 2, b 2; u5 {a}: b 2, c 1. The rules exclude b for u1 and
    # c for u5 and allow only a and c: u1 keeps c and a, u5 has nothing left
    exclusions = spark.createDataFrame([("u1", "b"), ("u5", "c")], "user_id string, item_id string")
    allowed = spark.createDataFrame([("a",), ("c",)], "item_id string")
    recs = cooccurrence(baskets, users_of(spark, "u1", "u5"), 3, exclude_seen=False, exclusions=exclusions, items=allowed)
    assertDataFrameEqual(recs, spark.createDataFrame([("u1", 1, "c", 3.0), ("u1", 2, "a", 2.0)], RECS))


def test_cooccurrence_min_count(spark, baskets):
    # pairs seen by one user dropped: only a-b (2) and b-c (2) remain; u5 {a}: b = 2
    recs = cooccurrence(baskets, users_of(spark, "u5"), 2, min_count=2)
    assertDataFrameEqual(recs, spark.createDataFrame([("u5", 1, "b", 2.0)], RECS))


@pytest.fixture(scope="module")
def blocks(spark):
    """Two disjoint groups: A users take items i1..i4, B users take j1..j4. Four users each
    miss one item of their own block (the held-out item ALS has to find)."""
    held_out = {"a1": "i4", "a2": "i1", "b1": "j2", "b2": "j3"}
    rows = []
    for group, block in (("a", "i"), ("b", "j")):
        for u in range(1, 7):
            user = f"{group}{u}"
            rows += [(user, f"{block}{n}", 1.0 + (u + n) % 3) for n in range(1, 5) if held_out.get(user) != f"{block}{n}"]
    return spark.createDataFrame(rows, TRAIN), held_out


@pytest.fixture(scope="module")
def fitted(blocks):
    train, _ = blocks
    return fit_als(train, **ALS_PARAMS)


def test_als_finds_the_held_out_item(spark, blocks, fitted):
    train, held_out = blocks
    recs = fitted.recommend(users_of(spark, *held_out, "a3", "stranger"), 3, exclude_seen=True)
    top = {r["user_id"]: r["item_id"] for r in recs.where("rank = 1").collect()}
    assert top == held_out | {"a3": top.get("a3")} and "stranger" not in top   # strangers get nothing (cold start)
    assert top["a3"].startswith("j")   # a3 saw its whole block: only B items are left
    assert_well_formed(recs, train, 3)
    assert recs.groupBy("user_id").count().where("count != 3").count() == 0   # over-fetch keeps k items


def test_als_factor_frames(fitted):
    users, items = fitted.user_factors, fitted.item_factors
    assert users.dtypes == [("user_id", "string"), ("vector", "array<float>")]
    assert items.dtypes == [("item_id", "string"), ("vector", "array<float>")]
    assert sorted(r["user_id"] for r in users.collect()) == [f"{g}{u}" for g in "ab" for u in range(1, 7)]
    vectors = {r["item_id"]: r["vector"] for r in items.collect()}
    assert sorted(vectors) == [f"{b}{n}" for b in "ij" for n in range(1, 5)] and {len(v) for v in vectors.values()} == {ALS_PARAMS["rank"]}


def test_als_blocks_default_to_the_sessions_shuffle_partitions(spark, blocks, fitted):
    """One MLlib block per shuffle partition unless `blocks` says otherwise: the factor frames
    keep one partition per block."""
    train, _ = blocks
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    assert fitted.model.userFactors.rdd.getNumPartitions() == partitions
    three = fit_als(train, **ALS_PARAMS, blocks=3)
    assert (three.model.userFactors.rdd.getNumPartitions(), three.model.itemFactors.rdd.getNumPartitions()) == (3, 3)
    with pytest.raises(RecommenderError, match="blocks must be an integer >= 1"):
        fit_als(train, **ALS_PARAMS, blocks=0)


def test_fold_in_gives_training_users_their_model_factors_and_a_stranger_a_vector(spark, blocks, fitted):
    """Fold-in is ALS's own last half-iteration: each training user gets the factors the model
    holds; a user the fit never saw gets a vector from their items (an unknown item is ignored)
    that ranks the rest of their block first."""
    train, _ = blocks
    folded = {r["user_id"]: np.array(r["vector"]) for r in fitted.fold_in(train).collect()}
    model = {r["user_id"]: np.array(r["vector"]) for r in fitted.user_factors.collect()}
    assert sorted(folded) == sorted(model)
    for user, vector in model.items():
        np.testing.assert_allclose(folded[user], vector, rtol=1e-4, atol=1e-5, err_msg=user)
    stranger = spark.createDataFrame([("s", "i1", 1.0), ("s", "i2", 2.0), ("s", "unknown", 5.0)], TRAIN)
    (row,) = fitted.fold_in(stranger).collect()
    items = {r["item_id"]: np.array(r["vector"]) for r in fitted.item_factors.collect()}
    unseen = sorted((items[i] @ np.array(row["vector"]), i) for i in items if i not in ("i1", "i2"))
    assert row["user_id"] == "s" and {i for _, i in unseen[-2:]} == {"i3", "i4"}


def test_als_can_keep_seen_items(spark, blocks):
    train, _ = blocks
    recs = als(train, users_of(spark, "a1", "b1"), 2, **ALS_PARAMS, exclude_seen=False)
    assert_well_formed(recs, train, 2, exclude_seen=False)
    blocks_of = {r["user_id"]: {r2[0] for r2 in r["items"]} for r in recs.groupBy("user_id").agg(F.collect_set("item_id").alias("items")).collect()}
    assert blocks_of == {"a1": {"i"}, "b1": {"j"}}   # without exclusion the best items are in the user's own block


@pytest.mark.parametrize("call, message", [
    (lambda train, users: popularity(train.drop("weight"), users, 2), "train lacks column(s) ['weight']"),
    (lambda train, users: popularity(train, users.withColumnRenamed("user_id", "uid"), 2), "users lacks column(s) ['user_id']"),
    (lambda train, users: cooccurrence(train, users, 0), "k must be an integer >= 1, got 0"),
    (lambda train, users: cooccurrence(train, users, 2, max_items_per_user=0), "max_items_per_user must be an integer >= 1"),
    (lambda train, users: popularity(train.withColumn("weight", F.lit("x")), users, 2), "'weight' must be numeric, got string"),
    (lambda train, users: als(train, users, 2, reg_param=-1.0), "reg_param must be a number >= 0, got -1.0"),
])
def test_bad_input(spark, shop, call, message):
    with pytest.raises(RecommenderError) as error:
        call(shop, users_of(spark, "u1"))
    assert message in str(error.value)


def test_recent_lists_the_users_own_items_newest_first_then_most_used(spark):
    history = spark.createDataFrame([
        ("u1", "a", 1.0, "2026-01-01 10:00:00"), ("u1", "b", 3.0, "2026-01-03 10:00:00"),
        ("u1", "c", 1.0, "2026-01-03 10:00:00"), ("u1", "d", 9.0, "2026-01-02 10:00:00"),
        ("u1", "a", 1.0, "2026-01-01 09:00:00"),                   # a second row of a pair: one candidate
        ("u2", "x", 1.0, "2026-01-05 10:00:00"), ("u3", "y", 1.0, "2026-01-05 10:00:00"),
    ], "user_id string, item_id string, weight double, last_time string").withColumn(
        "last_time", F.to_timestamp("last_time"))
    exclusions = spark.createDataFrame([("u1", "c")], "user_id string, item_id string")
    items = spark.createDataFrame([(i,) for i in "abcdx"], "item_id string")
    recs = recent(history, users_of(spark, "u1", "u2", "u3", "u4"), 3, exclusions=exclusions, items=items)
    at = lambda text: dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp()  # noqa: E731
    # u1: b (newest, and heavier than c at the same time, but c is excluded anyway), d, a; u3's y is not
    # in the catalogue; u4 has no history
    expected = spark.createDataFrame([
        ("u1", 1, "b", at("2026-01-03T10:00:00")), ("u1", 2, "d", at("2026-01-02T10:00:00")),
        ("u1", 3, "a", at("2026-01-01T10:00:00")), ("u2", 1, "x", at("2026-01-05T10:00:00")),
    ], RECS)
    assertDataFrameEqual(recs, expected)
    tied = recent(history, users_of(spark, "u1"), 2)
    assert [r["item_id"] for r in tied.orderBy("rank").collect()] == ["b", "c"]   # same time: the heavier first


def test_a_list_is_filled_from_another_without_repeating_its_items(spark):
    own = spark.createDataFrame([("u1", 1, "a", 9.0), ("u1", 2, "b", 8.0), ("u2", 1, "x", 5.0)], RECS)
    model = spark.createDataFrame([("u1", 1, "b", 0.9), ("u1", 2, "c", 0.8), ("u1", 3, "d", 0.7), ("u1", 4, "e", 0.6),
                                   ("u3", 1, "z", 0.5), ("u3", 2, "y", 0.4)], RECS)
    # u1: a, b of its own, then the model's c, d (b is already listed, e is past k); u2 has no model list;
    # u3 has no own items: the model's list from rank 1
    expected = spark.createDataFrame([("u1", 1, "a", 9.0), ("u1", 2, "b", 8.0), ("u1", 3, "c", 0.8),
                                      ("u1", 4, "d", 0.7), ("u2", 1, "x", 5.0), ("u3", 1, "z", 0.5),
                                      ("u3", 2, "y", 0.4)], RECS)
    assertDataFrameEqual(then_fill(own, model, 4), expected)


def test_popular_per_source_counts_distinct_users_within_each_source(spark):
    train = spark.createDataFrame([
        ("s1", "u1", "a"), ("s1", "u1", "a"), ("s1", "u2", "a"), ("s1", "u2", "b"), ("s2", "v1", "x"),
    ], "source string, user_id string, item_id string")
    assertDataFrameEqual(popular_per_source(train), spark.createDataFrame(
        [("s1", "a", 2.0), ("s1", "b", 1.0), ("s2", "x", 1.0)], "source string, item_id string, score double"))
