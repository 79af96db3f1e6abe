"""Quality of synthetic data against real data, computed with Spark on whole tables (the
SDMetrics quality-report definitions), so that it scales with the tables and the driver only
ever receives bounded aggregates.

- Column shapes: 1 - KS statistic for a continuous column, 1 - total variation distance (TVD)
  for a categorical one.
- Column pair trends: 1 - |corr_real - corr_synthetic| / 2 (Pearson) for two continuous
  columns; 1 - TVD of the joint contingency tables for any other pair, a continuous column
  cut into deciles of its real values (SDMetrics cuts into 10 equal-width bins; deciles keep
  skewed columns such as durations from landing in one bin). Synthetic values outside the real
  range fall into the outer deciles.

Nulls (and NaN) are dropped from the KS and the correlations, as SDMetrics and
`quality.ks_complement` do; everywhere else a null is a value of its own (NULL).

The KS statistic comes from one Bucketizer pass of counts: each of about `grid` quantiles of
the union gets a bucket of its own (exactly the values equal to it), and the values between two
of them another. Both CDFs are exact at every bucket edge, so the statistic is exact for a
column whose values are all grid points (any value holding more than ~1/grid of the rows is
one, so counts and other discrete columns are exact); otherwise it lies in the (lower, upper)
interval that `ks_bounds` returns, upper - lower being at most the share of one in-between
bucket (~1/grid of the union: ~2/grid of one table when both are the same size).
`column_shapes` scores 1 - lower. TVDs and correlations are exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.feature import Bucketizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.errors import RecsynthError
from recsynth.frames import require_columns
from recsynth.synth.transformer import NULL

SIDE = "_synthetic"  # tag of the union of both tables: False for real rows, True for synthetic rows
KS_GRID = 1000
PAIR_BINS = 10


class QualityError(RecsynthError):
    """The tables cannot be compared as asked (missing column, empty table, bad target)."""


@dataclass
class QualityScores:
    """SDMetrics-style scores; every score is in [0, 1], 1 meaning indistinguishable."""
    column_shapes: float                                   # mean over `columns`
    pair_trends: float                                     # mean over `pairs` (nan without pairs)
    overall: float                                         # mean of the two (of the defined ones)
    columns: dict[str, float]                              # per column
    pairs: dict[tuple[str, str], float]                    # per pair of columns
    continuous: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    # (real, synthetic) Pearson correlation per pair of continuous columns, None where undefined
    correlations: dict[tuple[str, str], tuple[float | None, float | None]] = field(default_factory=dict)
    ks_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # see the module doc


def _tagged(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str]) -> DataFrame:
    """One frame holding both tables: continuous columns as double (NaN -> null), categorical
    columns as strings, plus the SIDE tag (False: real, True: synthetic)."""
    for label, frame in (("real", real), ("synthetic", synthetic)):
        require_columns(frame, f"the {label} table", [*continuous, *categorical], QualityError)

    def prepare(frame: DataFrame, is_synthetic: bool) -> DataFrame:
        numbers = [F.col(c).cast("double") for c in continuous]
        return frame.select(*[F.when(~F.isnan(x), x + F.lit(0.0)).alias(c) for c, x in zip(continuous, numbers)],  # -0.0 -> 0.0
                            *[F.col(c).cast("string").alias(c) for c in categorical],
                            F.lit(is_synthetic).alias(SIDE))

    return prepare(real, False).unionByName(prepare(synthetic, True))


def _real(column):
    return F.when(~F.col(SIDE), column)


def _synthetic(column):
    return F.when(F.col(SIDE), column)


def _sizes(row) -> tuple[int, int]:
    n_real, n_synthetic = row["_n_real"] or 0, row["_n_synthetic"] or 0
    if not n_real or not n_synthetic:
        raise QualityError(f"cannot compare an empty table: {n_real} real rows, {n_synthetic} synthetic rows")
    return n_real, n_synthetic


def _size_aggs() -> list:
    return [F.count(_real(F.lit(1))).alias("_n_real"), F.count(_synthetic(F.lit(1))).alias("_n_synthetic")]


def _quantiles(tagged: DataFrame, grid_columns: list[str], grid: int, decile_columns: list[str]) -> dict:
    """`{c}__grid`: `grid` + 1 quantiles of c over both tables; `{c}__deciles`: deciles of c's
    real values; rank error at most half a grid step. One pass (DataFrame.approxQuantile: the
    probabilities do not become a thousand-literal expression for the optimiser); nulls are
    ignored, [] for a column without values."""
    grid_p = [i / grid for i in range(grid + 1)] if grid_columns else []
    decile_p = [i / PAIR_BINS for i in range(1, PAIR_BINS)] if decile_columns else []
    probabilities = sorted({*grid_p, *decile_p})
    if not probabilities:
        return {}
    frame = tagged.select(*[F.col(c).alias(f"{c}__grid") for c in grid_columns],
                          *[_real(F.col(c)).alias(f"{c}__deciles") for c in decile_columns])
    names = frame.columns
    values = frame.approxQuantile(names, probabilities, 0.5 / max(grid, PAIR_BINS))
    position = {p: k for k, p in enumerate(probabilities)}
    return {name: [q[position[p]] for p in (grid_p if name.endswith("__grid") else decile_p)] if q else []
            for name, q in zip(names, values)}


def _correlations(tagged: DataFrame, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """(real, synthetic) Pearson correlation per pair, over the rows where both values are set,
    None where undefined (a column constant on those rows). One pass: a row per pair, grouped by pair and side,
    rather than one wide aggregation whose hundreds of buffers defeat code generation."""
    if not pairs:
        return {}
    cells = tagged.select(SIDE, F.explode(F.array(*[F.struct(F.lit(k).alias("pair"), F.col(a).alias("x"), F.col(b).alias("y"))
                                                     for k, (a, b) in enumerate(pairs)])).alias("cell"))
    both = cells.filter(F.col("cell.x").isNotNull() & F.col("cell.y").isNotNull())
    spread = [(F.stddev_pop(f"cell.{v}") > F.lit(1e-12) * F.max(F.abs(f"cell.{v}"))) for v in ("x", "y")]
    rows = both.groupBy("cell.pair", SIDE).agg(F.when(spread[0] & spread[1], F.corr("cell.x", "cell.y")).alias("r")).collect()
    found = {(row["pair"], row[SIDE]): row["r"] for row in rows}  # rounding can make a constant column's corr +-1
    return {pair: tuple(_correlation(found.get((k, side))) for side in (False, True)) for k, pair in enumerate(pairs)}


def _atom_splits(cuts: list[float]) -> tuple[list[float], np.ndarray]:
    """Bucketizer splits that give each cut point c a bucket of its own, [c, next double after c),
    which holds exactly the values equal to c; and a mask of the other buckets (open intervals)."""
    splits, interval = [-math.inf], []
    for c in sorted({c + 0.0 for c in cuts if math.isfinite(c)}) or [0.0]:  # + 0.0: -0.0 and 0.0 are one point
        if c > splits[-1]:  # else c is the double right after the previous cut: no interval between them
            splits.append(c)
            interval.append(True)
        after = math.nextafter(c, math.inf)
        if after < math.inf:
            splits.append(after)
            interval.append(False)
    splits.append(math.inf)
    interval.append(True)
    return splits, np.asarray(interval)


def _ks(tagged: DataFrame, continuous: list[str], quantiles: dict) -> dict[str, tuple[float, float]]:
    """(lower, upper) bounds of the KS statistic per column, from one pass of bucket counts."""
    if not continuous:
        return {}
    splits = {c: _atom_splits(quantiles[f"{c}__grid"]) for c in continuous}
    bucketed = Bucketizer(splitsArray=[splits[c][0] for c in continuous], inputCols=continuous,
                          outputCols=[f"{c}__bucket" for c in continuous], handleInvalid="keep").transform(
        tagged.select(*[F.coalesce(F.col(c), F.lit(math.nan)).alias(c) for c in continuous], SIDE))
    cells = bucketed.select(SIDE, F.explode(F.array(*[
        F.struct(F.lit(c).alias("column"), F.col(f"{c}__bucket").cast("int").alias("bucket"), F.isnan(c).alias("missing"))
        for c in continuous])).alias("cell"))
    counts = cells.filter(~F.col("cell.missing")).groupBy("cell.column", "cell.bucket", SIDE).count().collect()
    table = {c: np.zeros((2, len(splits[c][0]) - 1)) for c in continuous}  # rows: real, synthetic
    for row in counts:
        table[row["column"]][int(row[SIDE]), row["bucket"]] = row["count"]
    return {c: _ks_from_counts(table[c][0], table[c][1], splits[c][1]) for c in continuous}


def _ks_from_counts(real: np.ndarray, synthetic: np.ndarray, interval: np.ndarray) -> tuple[float, float]:
    """KS bounds from counts per bucket (in value order): the CDFs are known exactly at bucket
    edges; inside an open-interval bucket each can move by at most its own share of it."""
    if not real.sum() or not synthetic.sum():
        same = float(real.sum() == synthetic.sum())  # as ks_complement: both empty KS 0, one empty KS 1
        return 1.0 - same, 1.0 - same
    r = np.concatenate([[0.0], np.cumsum(real) / real.sum()])
    s = np.concatenate([[0.0], np.cumsum(synthetic) / synthetic.sum()])
    lower = float(np.abs(r - s).max())
    slack = np.maximum(r[1:] - s[:-1], s[1:] - r[:-1])[interval]
    return lower, float(min(max(lower, slack.max(initial=0.0)), 1.0))


def _label(tagged_column, deciles: list[float] | None):
    """A column as a category label: itself (categorical) or its real decile (continuous)."""
    if deciles is None:
        return F.coalesce(tagged_column, F.lit(NULL))
    cuts = sorted(set(deciles))
    bucket = sum((tagged_column > F.lit(c)).cast("int") for c in cuts) if cuts else F.when(tagged_column.isNotNull(), F.lit(0))
    return F.coalesce(bucket.cast("string"), F.lit(NULL))


def _tvds(tagged: DataFrame, keys: dict[str, tuple], n_real: int, n_synthetic: int) -> dict[str, float]:
    """Total variation distance per key (name -> (label a, label b)), all in one aggregation:
    the counts per distinct cell stay in Spark, only one number per key reaches the driver."""
    if not keys:
        return {}
    cells = tagged.select(SIDE, F.explode(F.array(*[
        F.struct(F.lit(name).alias("key"), a.alias("a"), b.alias("b")) for name, (a, b) in keys.items()])).alias("cell"))
    counts = cells.groupBy("cell.key", "cell.a", "cell.b").agg(
        F.count(_real(F.lit(1))).alias("r"), F.count(_synthetic(F.lit(1))).alias("s"))
    distance = F.sum(F.abs(F.col("r") / F.lit(float(n_real)) - F.col("s") / F.lit(float(n_synthetic))))
    return {row["key"]: 0.5 * row["d"] for row in counts.groupBy("key").agg(distance.alias("d")).collect()}


def _correlation(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _similarity(real: float | None, synthetic: float | None) -> float:
    """1 - |difference| / 2; an undefined correlation (a constant column) counts as 0."""
    return 1.0 - abs((real or 0.0) - (synthetic or 0.0)) / 2.0


def _evaluate(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str], *,
              shapes: bool, trends: bool, grid: int) -> QualityScores:
    continuous, categorical = list(continuous), list(categorical)
    columns = [*continuous, *categorical]
    pairs = list(combinations(columns, 2)) if trends else []
    numeric_pairs = [(a, b) for a, b in pairs if a in continuous and b in continuous]
    mixed_pairs = [pair for pair in pairs if pair not in numeric_pairs]
    binned = sorted({c for pair in mixed_pairs for c in pair if c in continuous})
    tagged = _tagged(real, synthetic, continuous, categorical).persist(StorageLevel.MEMORY_AND_DISK)  # read five times
    try:
        n_real, n_synthetic = _sizes(tagged.agg(*_size_aggs()).head())
        quantiles = _quantiles(tagged, continuous if shapes else [], grid, binned)
        correlations = _correlations(tagged, numeric_pairs)
        bounds = _ks(tagged, continuous, quantiles) if shapes else {}
        # each column's label is computed once per row, then shared by all of its keys
        labelled = tagged.select(SIDE, *[_label(F.col(c), quantiles[f"{c}__deciles"] if c in binned else None).alias(c)
                                         for c in columns])
        keys = {f"c:{c}": (F.col(c), F.lit("")) for c in categorical} if shapes else {}
        keys.update({f"p:{k}": (F.col(a), F.col(b)) for k, (a, b) in enumerate(mixed_pairs)})
        tvd = _tvds(labelled, keys, n_real, n_synthetic)
    finally:
        tagged.unpersist()

    column_scores = {}
    if shapes:
        column_scores = {c: 1.0 - bounds[c][0] for c in continuous} | {c: 1.0 - tvd[f"c:{c}"] for c in categorical}
    pair_scores = {pair: _similarity(*correlations[pair]) for pair in numeric_pairs}
    pair_scores.update({pair: 1.0 - tvd[f"p:{k}"] for k, pair in enumerate(mixed_pairs)})
    pair_scores = {pair: pair_scores[pair] for pair in pairs}  # in the order of `columns`
    shape_mean = float(np.mean(list(column_scores.values()))) if column_scores else math.nan
    trend_mean = float(np.mean(list(pair_scores.values()))) if pair_scores else math.nan
    defined = [x for x in (shape_mean, trend_mean) if not math.isnan(x)]
    return QualityScores(shape_mean, trend_mean, float(np.mean(defined)) if defined else math.nan, column_scores,
                         pair_scores, continuous, categorical, correlations, bounds)


def column_shapes(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str], *,
                  grid: int = KS_GRID) -> dict[str, float]:
    """Per column: 1 - KS statistic (continuous; nulls dropped) or 1 - TVD (categorical; null a value)."""
    return _evaluate(real, synthetic, continuous, categorical, shapes=True, trends=False, grid=grid).columns


def ks_bounds(real: DataFrame, synthetic: DataFrame, continuous: list[str], *,
              grid: int = KS_GRID) -> dict[str, tuple[float, float]]:
    """Per continuous column, (lower, upper) bounds of the KS statistic (see the module doc);
    `column_shapes` scores 1 - lower."""
    return _evaluate(real, synthetic, continuous, [], shapes=True, trends=False, grid=grid).ks_bounds


def pair_trends(real: DataFrame, synthetic: DataFrame, continuous: list[str],
                categorical: list[str]) -> dict[tuple[str, str], float]:
    """Per pair of columns (in the order continuous + categorical): correlation similarity for
    two continuous columns, contingency similarity otherwise."""
    return _evaluate(real, synthetic, continuous, categorical, shapes=False, trends=True, grid=KS_GRID).pairs


def score(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str], *,
          grid: int = KS_GRID) -> QualityScores:
    """Column shapes and pair trends together, in five passes over the needed columns of the two
    tables (persisted for them): sizes; quantiles; correlations; KS cell counts; all TVDs."""
    return _evaluate(real, synthetic, continuous, categorical, shapes=True, trends=True, grid=grid)
