"""Baselines the GAN has to beat. `independent_marginals` draws every column on its own from
its real marginal: column shapes are (nearly) perfect and every relation between columns is
gone, so a GAN that scores below it on shapes, or no better on pair trends, adds nothing.

The marginals are fitted with Spark and kept bounded (a fixed number of quantiles per
continuous column, the most frequent values per categorical column), then broadcast as one
row of arrays; rows are generated on executors from `spark.range` with built-in functions
only (`rand` with a seed per column, `element_at` lookups), so a (seed, partitions) pair
reproduces the table."""
from __future__ import annotations

import hashlib

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, IntegerType, IntegralType, StructField, StructType

from recsynth.errors import RecsynthError
from recsynth.synth.transformer import check_columns

QUANTILES = 1000       # continuous: inverse CDF from this many quantile steps
MAX_VALUES = 1000      # categorical: the most frequent values kept; the rest's mass goes to them
ACCURACY = 10_000      # percentile_approx accuracy (relative rank error 1/ACCURACY)


class BaselineError(RecsynthError):
    """The table cannot be sampled as asked (missing or non-numeric column, empty table)."""


def column_seed(seed: int, column: str, purpose: str) -> int:
    """A `rand` seed per (seed, column, purpose). Spark adds the partition index to a rand seed,
    so small consecutive seeds would replay one column's stream in another partition's other
    column; hashed 56-bit seeds keep every stream apart."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{column}:{purpose}".encode()).digest()[:7], "big")


def alias_table(weights) -> tuple[list[float], list[int]]:
    """Walker/Vose alias table: draw index k = floor(u1 * n), keep k if u2 < prob[k] else take
    alias[k]. O(1) per row with two lookups, where a cumulative-probability search would scan
    the whole array per row (Spark has no binary search over an array)."""
    scaled = np.asarray(weights, dtype=float)
    scaled = scaled * len(scaled) / scaled.sum()
    prob, alias = np.ones(len(scaled)), np.arange(len(scaled))
    small = [k for k, p in enumerate(scaled) if p < 1.0]
    large = [k for k, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        s, big = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], big
        scaled[big] -= 1.0 - scaled[s]
        (small if scaled[big] < 1.0 else large).append(big)
    return prob.tolist(), alias.tolist()  # leftovers keep prob 1 (rounding remainders)


def _fit_continuous(real: DataFrame, continuous: list[str], quantiles: int) -> tuple[int, dict]:
    """(rows, {column: (quantile cut points or None when all null, null share)}) in one aggregation."""
    points = [k / quantiles for k in range(quantiles + 1)]
    stats = real.agg(F.count(F.lit(1)).alias("__rows"), *[e for c in continuous for e in (
        F.count(c).alias(f"{c}__n"),
        F.percentile_approx(F.col(c).cast("double"), points, ACCURACY).alias(f"{c}__q"))]).head()
    rows = stats["__rows"]
    return rows, {c: (stats[f"{c}__q"] if stats[f"{c}__n"] else None, 1.0 - stats[f"{c}__n"] / max(rows, 1))
                  for c in continuous}


def _fit_categorical(real: DataFrame, name: str, max_values: int) -> tuple[list, list[int]]:
    """The `max_values` most frequent values (null included) and their counts, in a fixed order."""
    top = (real.groupBy(F.col(name).alias("v")).count()
           .orderBy(F.desc("count"), F.asc_nulls_last("v")).limit(max_values).collect())
    return [r["v"] for r in top], [r["count"] for r in top]


def independent_marginals(spark, real: DataFrame, continuous: list[str], categorical: list[str], rows: int,
                          partitions: int, seed: int, *, quantiles: int = QUANTILES,
                          max_values: int = MAX_VALUES) -> DataFrame:
    """`rows` rows in `partitions` partitions, every column drawn independently from its marginal
    in `real`: continuous columns by inverse CDF (linear between `quantiles` approximate
    quantiles, integral types rounded) with the real null share; categorical columns from the
    real frequencies of their `max_values` most frequent values (null is a value). Columns keep
    the names and types of `real`, after `synthetic_id` ("ind-<seed>-<n>")."""
    check_columns(real, continuous, categorical, BaselineError)
    types = {f.name: f.dataType for f in real.schema.fields}
    total, fitted = _fit_continuous(real, continuous, quantiles)
    if not total:
        raise BaselineError("the table is empty: no marginal to sample from")
    frequencies = {c: _fit_categorical(real, c, max_values) for c in categorical}

    lookup_fields, lookup_row, draws = [], [], [F.col("id")]
    for c in continuous:
        cuts, _ = fitted[c]
        lookup_fields.append(StructField(f"{c}__q", ArrayType(DoubleType())))
        lookup_row.append(cuts)
        draws += [F.rand(column_seed(seed, c, "value")).alias(f"{c}__u"), F.rand(column_seed(seed, c, "null")).alias(f"{c}__n")]
    for c in categorical:
        values, counts = frequencies[c]
        prob, alias = alias_table(counts)
        lookup_fields += [StructField(f"{c}__v", ArrayType(types[c])), StructField(f"{c}__p", ArrayType(DoubleType())),
                          StructField(f"{c}__a", ArrayType(IntegerType()))]
        lookup_row += [values, prob, alias]
        draws += [F.rand(column_seed(seed, c, "slot")).alias(f"{c}__u"), F.rand(column_seed(seed, c, "alias")).alias(f"{c}__n")]
    lookup = spark.createDataFrame([tuple(lookup_row)], StructType(lookup_fields))

    # the draws are taken on spark.range's partitions, before the join, so they depend on (seed, partition) only
    drawn = spark.range(rows, numPartitions=partitions).select(*draws).crossJoin(F.broadcast(lookup))
    columns = [F.concat(F.lit(f"ind-{seed}-"), F.col("id").cast("string")).alias("synthetic_id")]
    for c in continuous:
        cuts, null_share = fitted[c]
        if cuts is None:
            columns.append(F.lit(None).cast(types[c]).alias(c))
            continue
        position = F.col(f"{c}__u") * F.lit(quantiles)
        step = F.least(F.floor(position), F.lit(quantiles - 1)).cast("int")
        low, high = F.element_at(f"{c}__q", step + 1), F.element_at(f"{c}__q", step + 2)
        value = low + (position - step) * (high - low)
        if isinstance(types[c], IntegralType):
            value = F.round(value)
        value = F.when(F.col(f"{c}__n") >= F.lit(null_share), value)
        columns.append(value.cast(types[c]).alias(c))
    for c in categorical:
        width = len(frequencies[c][0])
        slot = F.least(F.floor(F.col(f"{c}__u") * F.lit(width)), F.lit(width - 1)).cast("int") + 1
        index = F.when(F.col(f"{c}__n") < F.element_at(f"{c}__p", slot), slot).otherwise(F.element_at(f"{c}__a", slot) + 1)
        columns.append(F.element_at(f"{c}__v", index).alias(c))
    return drawn.select(*columns)
