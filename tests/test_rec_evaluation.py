"""Bootstrap intervals, the per-source evaluation on both tasks and the selection of the served
model, on hand-made frames whose answers can be worked out by hand."""
import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.rec.evaluate import Yardstick, evaluate
from recsynth.rec.intervals import (REPLICATES, bootstrap_means, paired_difference, paired_ratio, poisson_weight,
                                   replicate_means)
from recsynth.rec.rules import DISCOVERY, NEXT
from recsynth.rec.select import best_setting, champion

pytestmark = pytest.mark.spark

PER_USER = "model string, user_id string, value double"
RECS = "user_id string, rank int, item_id string, score double"
PAIRS = "user_id string, item_id string"


def test_poisson_weights_have_the_mean_and_spread_of_a_poisson_1(spark):
    draws = spark.range(200_000).select(poisson_weight(F.col("id").cast("string"), F.lit(3), 7).alias("w"))
    stats = draws.agg(F.avg("w").alias("mean"), F.variance("w").alias("var"), F.max("w").alias("max"),
                      F.avg((F.col("w") == 0).cast("double")).alias("zeros")).head()
    assert abs(stats["mean"] - 1) < 0.01 and abs(stats["var"] - 1) < 0.02
    assert abs(stats["zeros"] - math.exp(-1)) < 0.005 and stats["max"] <= 9
    again = spark.range(5).select(poisson_weight(F.col("id").cast("string"), F.lit(3), 7).alias("w")).collect()
    assert again == spark.range(5).select(poisson_weight(F.col("id").cast("string"), F.lit(3), 7).alias("w")).collect()


def test_intervals_hold_the_mean_and_shrink_to_it_when_users_agree(spark):
    rows = [("same", f"u{i}", 0.5) for i in range(30)] + [("spread", f"u{i}", float(i % 2)) for i in range(30)]
    rows.append(("alone", "u0", 0.25))
    result = {r["model"]: r for r in bootstrap_means(spark.createDataFrame(rows, PER_USER), ["value"], ["model"],
                                                     replicates=100).collect()}
    assert (result["same"]["users"], result["same"]["value"]) == (30, 0.5)
    assert result["same"]["value_low"] == result["same"]["value_high"] == 0.5
    assert result["alone"]["value_low"] == result["alone"]["value_high"] == 0.25   # one user: nothing to resample
    spread = result["spread"]
    assert spread["value"] == 0.5 and 0.25 < spread["value_low"] < 0.5 < spread["value_high"] < 0.75
    with pytest.raises(RecommenderError, match="replicates"):
        bootstrap_means(spark.createDataFrame(rows, PER_USER), ["value"], ["model"], replicates=0)


def _replicates(frame, by, replicates=REPLICATES, seed=0):
    """{group of `by`: the vector evaluate() hands the selection} from per-user rows."""
    rows = replicate_means(frame, ["value"], by, replicates=replicates, seed=seed).collect()
    vectors = {}
    for row in rows:
        vectors.setdefault(tuple(row[b] for b in by), np.full(replicates + 1, np.nan))[row["_replicate"] + 1] = row["value"]
    return vectors


def test_a_paired_difference_sees_a_constant_gain_that_unpaired_intervals_hide(spark):
    # every user gains 0.02 from a to b, while users differ by far more: the paired interval is exact
    rows = [(m, f"u{i}", (i % 5) / 5 + (0.02 if m == "b" else 0.0)) for i in range(40) for m in ("a", "b")]
    frame = spark.createDataFrame(rows, PER_USER)
    means = {r["model"]: r for r in bootstrap_means(frame, ["value"], ["model"]).collect()}
    assert means["b"]["value_low"] < means["a"]["value_high"]    # the intervals overlap
    vectors = _replicates(frame, ["model"])
    gain = paired_difference(vectors[("b",)], vectors[("a",)])
    assert gain.difference == pytest.approx(0.02)
    assert gain.low == pytest.approx(0.02) and gain.high == pytest.approx(0.02)
    assert paired_difference(vectors[("a",)], vectors[("b",)]).difference == pytest.approx(-0.02)


def test_the_difference_of_replicate_means_is_the_bootstrap_of_the_per_user_differences(spark):
    # the same users and weights on both sides: the shortcut equals resampling the differences
    rng = np.random.default_rng(3)
    a, b = rng.random(50), rng.random(50) * 0.8 + 0.15
    rows = [(m, f"u{i}", float(v[i])) for i in range(50) for m, v in (("a", a), ("b", b))]
    vectors = _replicates(spark.createDataFrame(rows, PER_USER), ["model"], replicates=100, seed=5)
    shortcut = paired_difference(vectors[("b",)], vectors[("a",)])
    differences = spark.createDataFrame([("d", f"u{i}", float(b[i] - a[i])) for i in range(50)], PER_USER)
    direct = bootstrap_means(differences, ["value"], ["model"], replicates=100, seed=5).head()
    assert shortcut.difference == pytest.approx(direct["value"], abs=1e-12)
    assert (shortcut.low, shortcut.high) == (pytest.approx(direct["value_low"], abs=1e-12),
                                             pytest.approx(direct["value_high"], abs=1e-12))
    assert shortcut.low < shortcut.difference < shortcut.high
    with pytest.raises(RecommenderError, match="two equal vectors"):
        paired_difference(vectors[("b",)], vectors[("a",)][:5])


def test_a_paired_ratio_is_exact_when_every_user_scores_the_same_share_of_the_reference(spark):
    """Every user of b scores 0.6 of a's score, while users differ five-fold: each mean's own
    interval is wide, the paired ratio's is exactly [0.6, 0.6]. With two unrelated models the
    ratio interval is wide and holds the ratio of the means; a reference mean of 0 gives NaN."""
    rows = [(m, f"u{i}", (1 + i % 5) / 10 * (0.6 if m == "b" else 1.0)) for i in range(40) for m in ("a", "b")]
    frame = spark.createDataFrame(rows, PER_USER)
    means = {r["model"]: r for r in bootstrap_means(frame, ["value"], ["model"]).collect()}
    assert means["b"]["value_high"] / means["a"]["value_low"] > 0.7   # unpaired, the share looks uncertain
    vectors = _replicates(frame, ["model"])
    share = paired_ratio(vectors[("b",)], vectors[("a",)])
    assert (share.ratio, share.low, share.high) == (pytest.approx(0.6), pytest.approx(0.6), pytest.approx(0.6))
    rng = np.random.default_rng(4)
    noisy = [(m, f"u{i}", float(rng.random())) for i in range(40) for m in ("a", "b")]
    vectors = _replicates(spark.createDataFrame(noisy, PER_USER), ["model"])
    loose = paired_ratio(vectors[("b",)], vectors[("a",)])
    assert loose.ratio == pytest.approx(vectors[("b",)][0] / vectors[("a",)][0])
    assert loose.low < loose.ratio < loose.high and loose.high - loose.low > 0.2
    assert np.isnan(paired_ratio(np.array([0.1, 0.1]), np.array([0.0, 0.2])).ratio)
    with pytest.raises(RecommenderError, match="two equal vectors"):
        paired_ratio(vectors[("b",)], vectors[("a",)][:5])


@pytest.fixture(scope="module")
def yardstick(spark):
    # u1 (shop s1) comes back to a and finds n; u2 (s1) only comes back to b; u3 (s2) finds m
    truth = spark.createDataFrame([("u1", "a"), ("u1", "n"), ("u2", "b"), ("u3", "m")], PAIRS)
    seen = spark.createDataFrame([("u1", "a"), ("u2", "b"), ("u3", "q")], PAIRS)
    return Yardstick(truth={NEXT: truth, DISCOVERY: truth.join(seen, ["user_id", "item_id"], "left_anti")},
                     exclusions={NEXT: None, DISCOVERY: seen}, max_excluded={NEXT: 0, DISCOVERY: 1},
                     user_sources=spark.createDataFrame([("u1", "s1"), ("u2", "s1"), ("u3", "s2")],
                                                        "user_id string, source string"), k=2)


def test_every_model_is_scored_per_task_and_source_and_pooled(spark, yardstick):
    lists = {
        ("recent", NEXT): spark.createDataFrame([("u1", 1, "a", 1.0), ("u2", 1, "b", 1.0), ("u3", 1, "q", 1.0)], RECS),
        ("recent", DISCOVERY): spark.createDataFrame([], RECS),
        ("knn", NEXT): spark.createDataFrame([("u1", 1, "n", 1.0), ("u1", 2, "a", 0.5), ("u3", 2, "m", 1.0)], RECS),
        ("knn", DISCOVERY): spark.createDataFrame([("u1", 1, "n", 1.0), ("u3", 1, "z", 2.0), ("u3", 2, "m", 1.0)], RECS),
    }
    popularity = spark.createDataFrame([("a", 4), ("n", 1)], "item_id string, n_users bigint")
    rows, replicates = evaluate(lists, yardstick, catalogue_items={"s1": 10, "s2": 5, "all": 15}, popularity=popularity,
                       total_users=4, replicates=50, seed=1)
    got = {(r["model"], r["task"], r["source"]): r for r in rows}
    assert sorted(got) == sorted((m, t, s) for m in ("knn", "recent") for t in (NEXT, DISCOVERY)
                                 for s in ("s1", "s2", "all"))
    ideal2 = 1 + 1 / math.log2(3)
    # next, recent: u1 hits a at 1 of 2 relevant (1/ideal2), u2 hits b (1), u3 misses
    assert got[("recent", NEXT, "s1")]["ndcg_at_k"] == pytest.approx((1 / ideal2 + 1) / 2)
    assert got[("recent", NEXT, "s2")]["ndcg_at_k"] == 0.0
    assert got[("recent", NEXT, "all")]["ndcg_at_k"] == pytest.approx((1 / ideal2 + 1) / 3)
    assert got[("recent", NEXT, "all")]["users"] == 3 and got[("recent", DISCOVERY, "all")]["users"] == 2
    # discovery: u2 has nothing new and is not scored; knn finds n for u1 at 1, m for u3 at 2
    assert got[("knn", DISCOVERY, "s1")]["users"] == 1 and got[("knn", DISCOVERY, "s1")]["ndcg_at_k"] == 1.0
    assert got[("knn", DISCOVERY, "s2")]["ndcg_at_k"] == pytest.approx(1 / math.log2(3))
    assert got[("recent", DISCOVERY, "all")]["ndcg_at_k"] == 0.0
    # coverage per source's catalogue: knn lists n, a for s1 users (2 of 10), m for u3 (1 of 5)
    assert got[("knn", NEXT, "s1")]["catalogue_coverage"] == 0.2 and got[("knn", NEXT, "s2")]["catalogue_coverage"] == 0.2
    assert got[("knn", NEXT, "all")]["catalogue_coverage"] == pytest.approx(3 / 15)
    # novelty: -log2(n_users / 4): a (4 users) tells nothing, b (unknown: one user) 2 bits
    assert got[("recent", NEXT, "s1")]["novelty"] == pytest.approx((0 + 2) / 2)
    for row in rows:
        assert row["ndcg_at_k_low"] <= row["ndcg_at_k"] <= row["ndcg_at_k_high"]
    # the selection's vectors: the pooled mean first, then every replicate
    assert sorted(replicates) == sorted((m, t) for m in ("knn", "recent") for t in (NEXT, DISCOVERY))
    assert replicates[("recent", NEXT)][0] == pytest.approx(got[("recent", NEXT, "all")]["ndcg_at_k"])
    assert replicates[("knn", DISCOVERY)].shape == (51,) and not np.isnan(replicates[("knn", DISCOVERY)][1:]).all()


def test_selection_keeps_the_simpler_model_unless_the_paired_gain_is_clear(spark):
    users = [f"u{i}" for i in range(60)]
    rows = ([("simple", u, 0.3, "next", "all") for u in users]
            + [("noisy", u, 0.3 + (0.05 if i % 2 else -0.04), "next", "all") for i, u in enumerate(users)]
            + [("better", u, 0.35, "next", "all") for u in users]
            + [("better", u, 0.9, "discovery", "all") for u in users])   # another task chooses nothing
    frame = spark.createDataFrame(rows, "model string, user_id string, value double, task string, source string")
    replicates = _replicates(frame, ["model", "task"], replicates=100)
    chosen, steps = champion(replicates, ["simple", "noisy"])
    assert chosen == "simple" and not steps[0].won and steps[0].low < 0 < steps[0].high
    chosen, steps = champion(replicates, ["simple", "noisy", "better"])
    assert chosen == "better" and [s.won for s in steps] == [False, True]
    assert steps[1].difference == pytest.approx(0.05)


def test_the_best_setting_is_the_highest_pooled_validation_score():
    rows = [{"model": "ease l2=100", "task": NEXT, "source": "all", "ndcg_at_k": 0.20},
            {"model": "ease l2=400", "task": NEXT, "source": "all", "ndcg_at_k": 0.25},
            {"model": "ease l2=400", "task": NEXT, "source": "s1", "ndcg_at_k": 0.01},
            {"model": "ease l2=100", "task": DISCOVERY, "source": "all", "ndcg_at_k": 0.10},
            {"model": "ease l2=400", "task": DISCOVERY, "source": "all", "ndcg_at_k": 0.05}]
    assert best_setting(rows, ["ease l2=100", "ease l2=400"], NEXT) == "ease l2=400"
    assert best_setting(rows, ["ease l2=100", "ease l2=400"], DISCOVERY) == "ease l2=100"
    with pytest.raises(RecommenderError, match="no validation NDCG"):
        best_setting(rows, ["ease l2=100", "ease l2=1600"], NEXT)
