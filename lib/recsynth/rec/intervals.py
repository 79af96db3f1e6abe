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
from dataclasses import dataclass

import numpy as np

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


REPLICATE = "_replicate"   # -1: every user with weight 1 (the means themselves)


def replicate_means(per_user: DataFrame, values: list[str], by: list[str], *, replicates: int = REPLICATES,
                    seed: int = 0) -> DataFrame:
    """(by..., _replicate, users, values...): per group of `by`, the weighted mean of each column of
    `values` in every bootstrap replicate 0..replicates-1, and in replicate -1 (weight 1) the mean
    itself with the group's user count. `per_user` has one row per (group, user_id) and is read
    once. A replicate in which every user of a group drew weight 0 has a null mean."""
    require_columns(per_user, "per_user", (USER_ID, *by, *values), RecommenderError)
    replicates = require_positive("replicates", replicates)
    spark = per_user.sparkSession
    draws = per_user.select(*by, USER_ID, *values).crossJoin(
        F.broadcast(spark.range(-1, replicates).withColumnRenamed("id", REPLICATE)))
    point = F.col(REPLICATE) < 0
    weight = F.when(point, F.lit(1)).otherwise(poisson_weight(F.col(USER_ID), F.col(REPLICATE), seed))
    return draws.withColumn("_w", weight).groupBy(*by, REPLICATE).agg(
        F.sum(F.when(point, 1).otherwise(0)).alias("users"),
        *[(F.sum(F.col("_w") * F.col(v)) / F.sum("_w")).alias(v) for v in values])


def summarised(replicated: DataFrame, values: list[str], by: list[str], *, interval_of: str | None = None,
               confidence: float = CONFIDENCE) -> DataFrame:
    """One row per group of `by` of `replicate_means`' frame: `users`, the mean of each of
    `values`, and for `interval_of` (default: the first of `values`) `<name>_low` and
    `<name>_high`, the percentile interval of its replicate means at `confidence` (replicates
    without a mean left out, so a group of one user gets an interval of width 0)."""
    if not 0 < confidence < 1:
        raise RecommenderError(f"confidence must be within (0, 1), got {confidence!r}")
    target = interval_of or values[0]
    point = F.col(REPLICATE) < 0
    tail = (1 - confidence) / 2
    bounds = F.percentile(F.when(~point, F.col(target)), F.array(F.lit(tail), F.lit(1 - tail)))
    summary = replicated.groupBy(*by).agg(
        F.max(F.when(point, F.col("users"))).alias("users"),
        *[F.max(F.when(point, F.col(v))).alias(v) for v in values], bounds.alias("_bounds"))
    return summary.select(*by, "users", *values, F.col("_bounds")[0].alias(f"{target}_low"),
                          F.col("_bounds")[1].alias(f"{target}_high"))


def bootstrap_means(per_user: DataFrame, values: list[str], by: list[str], *, interval_of: str | None = None,
                    replicates: int = REPLICATES, confidence: float = CONFIDENCE, seed: int = 0) -> DataFrame:
    """`summarised(replicate_means(...))`: per group of `by`, `users`, the means of `values` and
    the bootstrap percentile interval of `interval_of` (see both)."""
    return summarised(replicate_means(per_user, values, by, replicates=replicates, seed=seed), values, by,
                      interval_of=interval_of, confidence=confidence)


@dataclass(frozen=True)
class Difference:
    """better - baseline: the mean difference and its paired bootstrap interval."""
    difference: float
    low: float
    high: float


@dataclass(frozen=True)
class Ratio:
    """model / reference: the ratio of their means and its paired bootstrap interval."""
    ratio: float
    low: float
    high: float


def _check_paired(first: np.ndarray, second: np.ndarray) -> None:
    if first.shape != second.shape or first.ndim != 1 or len(first) < 2:
        raise RecommenderError(f"replicate means must be two equal vectors of the point and >= 1 replicate, got "
                               f"{first.shape} and {second.shape}")


def percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval at `confidence` of the replicates' `values` (NaN ones left out)."""
    values = values[~np.isnan(values)]
    tail = (1 - confidence) / 2
    low, high = np.percentile(values, [100 * tail, 100 * (1 - tail)]) if len(values) else (np.nan, np.nan)
    return float(low), float(high)


def paired_difference(better: np.ndarray, baseline: np.ndarray, confidence: float = CONFIDENCE) -> Difference:
    """The paired bootstrap of better - baseline from two models' `replicate_means` of one value
    over the same users (index 0: replicate -1, the means; then replicates 0..; NaN: no mean).
    A user's weight in a replicate depends only on (user, replicate, seed), so both models'
    replicate r weighs every user alike, and the difference of their weighted means is the
    weighted mean of the per-user differences: exactly the paired bootstrap, without a Spark job."""
    _check_paired(better, baseline)
    return Difference(float(better[0] - baseline[0]), *percentiles(better[1:] - baseline[1:], confidence))


def paired_ratio(model: np.ndarray, reference: np.ndarray, confidence: float = CONFIDENCE) -> Ratio:
    """The paired bootstrap of model / reference from `replicate_means` as in `paired_difference`:
    each replicate's ratio of the two weighted means over the same weighted users, so that what
    the users have in common cancels (a replicate whose reference mean is 0 is left out)."""
    _check_paired(model, reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(reference[1:] > 0, model[1:] / reference[1:], np.nan)
    point = float(model[0] / reference[0]) if reference[0] > 0 else np.nan
    return Ratio(point, *percentiles(ratios, confidence))
