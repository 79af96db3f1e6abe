"""Bootstrap intervals of per-user means, computed in Spark.

An offline NDCG over a few hundred users moves by more than the gap between two models, so every
mean is reported with a 95% interval over users, and a model replaces another only when the
interval of their paired difference lies above zero.

The Poisson bootstrap is used (each user's weight in a replicate is a Poisson(1) draw, which
approximates resampling users with replacement, Hanley & MacGibbon 2006) because it needs no
global shuffle: the weight is a hash of (user, replicate, seed), so it is reproducible, needs no
Python UDF, and a user gets the same weight in every model's replicate, which makes the
difference of two models' replicate means a paired bootstrap. users x replicates rows are
aggregated on the executors; one row per group reaches the driver.
"""
from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import USER_ID, require_positive

REPLICATES = 200
CONFIDENCE = 0.95
_HASH_RANGE = 2 ** 31
# P(X <= n) for X ~ Poisson(1), n = 0..8: a uniform draw above c_n adds one to the weight
_POISSON_CDF = [sum(math.exp(-1) / math.factorial(j) for j in range(n + 1)) for n in range(9)]


def poisson_weight(user: Column, replicate: Column, seed: int) -> Column:
    """A Poisson(1) draw that depends only on (user, replicate, seed) (capped at 9, P < 1e-6)."""
    uniform = F.pmod(F.xxhash64(user, replicate, F.lit(seed)), F.lit(_HASH_RANGE)) / F.lit(float(_HASH_RANGE))
    return sum((uniform >= F.lit(c)).cast("int") for c in _POISSON_CDF)


def bootstrap_means(per_user: DataFrame, values: list[str], by: list[str], *, interval_of: str | None = None,
                    replicates: int = REPLICATES, confidence: float = CONFIDENCE, seed: int = 0) -> DataFrame:
    """One row per group of `by`: `users`, the mean of each column of `values`, and for
    `interval_of` (default: the first of `values`) `<name>_low` and `<name>_high`, the
    percentile interval of the bootstrap replicate means at `confidence`.

    `per_user` has one row per (group, user_id) and is read once: replicate -1 carries weight 1
    (the means themselves). A replicate in which every user of a group drew weight 0 has no mean
    and is left out, so a group of one user gets an interval of width 0."""
    require_columns(per_user, "per_user", (USER_ID, *by, *values), RecommenderError)
    replicates = require_positive("replicates", replicates)
    if not 0 < confidence < 1:
        raise RecommenderError(f"confidence must be within (0, 1), got {confidence!r}")
    target = interval_of or values[0]
    spark = per_user.sparkSession
    draws = per_user.select(*by, USER_ID, *values).crossJoin(
        F.broadcast(spark.range(-1, replicates).withColumnRenamed("id", "_replicate")))
    point = F.col("_replicate") < 0
    weight = F.when(point, F.lit(1)).otherwise(poisson_weight(F.col(USER_ID), F.col("_replicate"), seed))
    per_replicate = draws.withColumn("_w", weight).groupBy(*by, "_replicate").agg(
        F.sum(F.when(point, 1).otherwise(0)).alias("users"),
        *[(F.sum(F.col("_w") * F.col(v)) / F.sum("_w")).alias(v) for v in values])
    tail = (1 - confidence) / 2
    bounds = F.percentile(F.when(~point, F.col(target)), F.array(F.lit(tail), F.lit(1 - tail)))
    summary = per_replicate.groupBy(*by).agg(
        F.max(F.when(point, F.col("users"))).alias("users"),
        *[F.max(F.when(point, F.col(v))).alias(v) for v in values], bounds.alias("_bounds"))
    return summary.select(*by, "users", *values, F.col("_bounds")[0].alias(f"{target}_low"),
                          F.col("_bounds")[1].alias(f"{target}_high"))


def paired_differences(per_user: DataFrame, value: str, key: str, pairs: list[tuple[str, str]], *,
                       replicates: int = REPLICATES, confidence: float = CONFIDENCE, seed: int = 0) -> DataFrame:
    """Per pair (better, baseline) of `key` values: the mean over users of value[key = better] -
    value[key = baseline] and its paired bootstrap interval (`better`, `baseline`, `users`,
    `difference`, `difference_low`, `difference_high`), all pairs in one Spark job; users
    present for both keys only (every model is scored on the same users, so that is all of
    them). `per_user` has one row per (key, user_id); a pair without a common user has no row."""
    require_columns(per_user, "per_user", (USER_ID, key, value), RecommenderError)
    if not pairs:
        raise RecommenderError("no pairs to compare")
    names = sorted({name for pair in pairs for name in pair})
    index = F.create_map(*[F.lit(v) for n, name in enumerate(names) for v in (name, n)])
    wide = (per_user.where(F.col(key).isin(names)).select(USER_ID, index[F.col(key)].alias("_key"), value)
            .groupBy(USER_ID).pivot("_key", list(range(len(names)))).agg(F.first(value).cast("double")))
    column = {name: F.col(f"`{n}`") for n, name in enumerate(names)}
    stacked = wide.select(USER_ID, F.explode(F.array(*[
        F.struct(F.lit(better).alias("better"), F.lit(baseline).alias("baseline"),
                 (column[better] - column[baseline]).alias("difference")) for better, baseline in pairs])).alias("_pair"))
    differences = stacked.select(USER_ID, "_pair.*").where(F.col("difference").isNotNull())
    return bootstrap_means(differences, ["difference"], ["better", "baseline"], replicates=replicates,
                           confidence=confidence, seed=seed)
