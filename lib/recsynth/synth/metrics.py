"""Quality of synthetic data against real data, computed with Spark on whole tables (the
SDMetrics quality-report definitions), so that it scales with the tables and the driver only
ever receives bounded aggregates.

- Column shapes: 1 - KS statistic for a continuous column, 1 - total variation distance (TVD)
  for a categorical one; nulls dropped from both, as SDMetrics does (null shares are checked by
  `fidelity` rare shares).
- Column pair trends, every pair (`pair_trends`): 1 - |corr_real - corr_synthetic| / 2
  (Pearson) for two continuous columns, 0 where a synthetic column is constant and the real one
  is not (no trend survives); 1 - TVD of the joint contingency tables for any other pair, a
  continuous column cut into 10 equal-width bins of its real range, the outer bins open (the
  design of SDMetrics' ContingencySimilarity), a null a value of its own.
- Column pair trends as SDMetrics' QualityReport scores them (`pair_trends_sdmetrics`): only
  pairs whose real relation is strong count (|Pearson r| > 0.5; Cramer's V > 0.3, uncorrected),
  a pair with a constant continuous column is left out, and a continuous column in a mixed pair
  is cut into 10 equal-width bins of each table's own range (np.histogram_bin_edges and
  np.digitize: the maximum and nulls share bin 11). SDMetrics subsamples contingency pairs to
  50,000 rows without a seed; this is exact. tests/test_quality_metrics.py checks both against
  SDMetrics 0.32 on a fixed table.

Nulls (and NaN) are dropped from the KS and the correlations, as SDMetrics and
`quality.ks_complement` do.

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
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.errors import RecsynthError
from recsynth.frames import require_columns
from recsynth.synth.transformer import NULL

SIDE = "_synthetic"  # tag of the union of both tables: False for real rows, True for synthetic rows
KS_GRID = 1000
PAIR_BINS = 10
SDMETRICS_CORRELATION, SDMETRICS_ASSOCIATION = 0.5, 0.3  # QualityReport's real_*_threshold defaults


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
    pair_trends_sdmetrics: float = math.nan                # mean over the pairs SDMetrics counts (see the module doc)
    sdmetrics_pairs: dict[tuple[str, str], float | None] = field(default_factory=dict)  # None: not counted


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


def _quantiles(tagged: DataFrame, grid_columns: list[str], grid: int) -> dict:
    """`{c}__grid`: `grid` + 1 quantiles of c over both tables, rank error at most half a grid
    step. One pass (DataFrame.approxQuantile: the probabilities do not become a thousand-literal
    expression for the optimiser); nulls are ignored, [] for a column without values."""
    if not grid_columns:
        return {}
    probabilities = [i / grid for i in range(grid + 1)]
    values = tagged.approxQuantile(grid_columns, probabilities, 0.5 / grid)
    return {f"{c}__grid": q for c, q in zip(grid_columns, values)}


def _ranges(tagged: DataFrame, columns: list[str]) -> dict[str, dict[bool, tuple]]:
    """Per continuous column and side (False: real), its (min, max) over non-null values, (None, None) if none."""
    if not columns:
        return {}
    rows = tagged.groupBy(SIDE).agg(*[e for c in columns for e in (F.min(c).alias(f"{c}__lo"), F.max(c).alias(f"{c}__hi"))]).collect()
    found = {row[SIDE]: row for row in rows}
    return {c: {side: (found[side][f"{c}__lo"], found[side][f"{c}__hi"]) if side in found else (None, None)
                for side in (False, True)} for c in columns}


def _constant(bounds: tuple) -> bool:
    return bounds[0] is None or bounds[0] == bounds[1]


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


def _own_edges(bounds: tuple) -> list[float]:
    """np.histogram_bin_edges of one table's values: PAIR_BINS equal-width bins of its own range
    (a constant c: c - 0.5 to c + 0.5; no value: 0 to 1)."""
    low, high = bounds
    values = np.asarray([] if low is None else [low, high], dtype=float)
    return np.histogram_bin_edges(values, bins=PAIR_BINS).tolist()


def _digitize(column, edges: list[float]):
    """np.digitize: the number of `edges` at or below the value; null stays null."""
    return sum((column >= F.lit(e)).cast("int") for e in edges)


def _label(column, bounds: tuple | None):
    """A column as a category label: itself (categorical, `bounds` None) or its bin among
    PAIR_BINS equal-width bins of the real range, the outer bins open; null is NULL."""
    if bounds is None:
        return F.coalesce(column, F.lit(NULL))
    return F.coalesce(_digitize(column, _own_edges(bounds)[1:-1]).cast("string"), F.lit(NULL))


def _digitized(column, real_bounds: tuple, synthetic_bounds: tuple):
    """SDMetrics' QualityReport bin of a continuous column in a mixed pair: np.digitize over each
    table's own edges; a null lands with the maximum (bin PAIR_BINS + 1)."""
    def digitize(edges):
        return F.coalesce(_digitize(column, edges), F.lit(len(edges)))

    return F.when(F.col(SIDE), digitize(_own_edges(synthetic_bounds))).otherwise(digitize(_own_edges(real_bounds))).cast("string")


def _cells(tagged: DataFrame, keys: dict[str, tuple], drop_nulls: set[str]) -> DataFrame:
    """(key, a, b, r, s): real and synthetic row counts per distinct cell of every key (name ->
    (label a, label b)); keys in `drop_nulls` leave out cells whose `a` is NULL."""
    cells = tagged.select(SIDE, F.explode(F.array(*[
        F.struct(F.lit(name).alias("key"), a.alias("a"), b.alias("b")) for name, (a, b) in keys.items()])).alias("cell"))
    counts = cells.groupBy("cell.key", "cell.a", "cell.b").agg(
        F.count(_real(F.lit(1))).alias("r"), F.count(_synthetic(F.lit(1))).alias("s"))
    return counts.where(~(F.col("key").isin(*drop_nulls) & (F.col("a") == F.lit(NULL)))) if drop_nulls else counts


def _tvds(cells: DataFrame) -> dict[str, float]:
    """Total variation distance per key, each side's counts normalised within the key; only one
    number per key reaches the driver."""
    by_key = Window.partitionBy("key")
    shares = cells.select("key", (F.col("r") / F.sum("r").over(by_key)).alias("p"), (F.col("s") / F.sum("s").over(by_key)).alias("q"))
    rows = shares.groupBy("key").agg(F.sum(F.abs(F.coalesce("p", F.lit(0.0)) - F.coalesce("q", F.lit(0.0)))).alias("d")).collect()
    return {row["key"]: 0.5 * row["d"] for row in rows}


def _cramers_v(cells: DataFrame) -> dict[str, float | None]:
    """Cramer's V of the real contingency table per key, without bias or Yates correction
    (scipy.stats.contingency.association): sqrt(chi2 / n / (min(rows, columns) - 1)), with
    chi2 = n (sum n_ab^2 / (n_a n_b) - 1); None where a side has fewer than 2 values."""
    real = cells.where(F.col("r") > 0)
    by_a, by_b = Window.partitionBy("key", "a"), Window.partitionBy("key", "b")
    terms = real.select("key", "a", "b", "r", F.sum("r").over(by_a).alias("n_a"), F.sum("r").over(by_b).alias("n_b"))
    rows = terms.groupBy("key").agg(F.sum("r").alias("n"), F.sum(F.col("r") * F.col("r") / (F.col("n_a") * F.col("n_b"))).alias("t"),
                                    F.countDistinct("a").alias("rows"), F.countDistinct("b").alias("columns")).collect()
    out = {}
    for row in rows:
        k = min(row["rows"], row["columns"])
        out[row["key"]] = math.sqrt(max(row["t"] - 1.0, 0.0) / (k - 1)) if k >= 2 else None
    return out


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
        quantiles = _quantiles(tagged, continuous if shapes else [], grid)
        ranges = _ranges(tagged, continuous if trends else [])
        correlations = _correlations(tagged, numeric_pairs)
        bounds = _ks(tagged, continuous, quantiles) if shapes else {}
        # each column's labels are computed once per row, then shared by all of its keys
        labelled = tagged.select(SIDE, *[_label(F.col(c), ranges[c][False] if c in binned else None).alias(c) for c in columns],
                                 *[_digitized(F.col(c), *ranges[c].values()).alias(f"{c}__own") for c in binned])

        def own(c):
            return F.col(f"{c}__own") if c in binned else F.col(c)

        keys = {f"c:{c}": (F.col(c), F.lit("")) for c in categorical} if shapes else {}
        keys.update({f"p:{k}": (F.col(a), F.col(b)) for k, (a, b) in enumerate(mixed_pairs)})
        keys.update({f"s:{k}": (own(a), own(b)) for k, (a, b) in enumerate(mixed_pairs)})
        cells = _cells(labelled, keys, {f"c:{c}" for c in categorical}).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            tvd, association = _tvds(cells), _cramers_v(cells.where(F.col("key").startswith("s:")))
        finally:
            cells.unpersist()
    finally:
        tagged.unpersist()

    column_scores = {}
    if shapes:
        column_scores = {c: 1.0 - bounds[c][0] for c in continuous} | {c: 1.0 - tvd.get(f"c:{c}", 1.0) for c in categorical}
    flat = {c for c in continuous if c in ranges and _constant(ranges[c][True]) and not _constant(ranges[c][False])}
    pair_scores = {pair: 0.0 if flat & set(pair) else _similarity(*correlations[pair]) for pair in numeric_pairs}
    pair_scores.update({pair: 1.0 - tvd[f"p:{k}"] for k, pair in enumerate(mixed_pairs)})
    pair_scores = {pair: pair_scores[pair] for pair in pairs}  # in the order of `columns`
    sdmetrics = _sdmetrics_pairs(pairs, numeric_pairs, mixed_pairs, ranges, correlations, tvd, association)
    shape_mean = float(np.mean(list(column_scores.values()))) if column_scores else math.nan
    trend_mean = float(np.mean(list(pair_scores.values()))) if pair_scores else math.nan
    counted = [v for v in sdmetrics.values() if v is not None]
    defined = [x for x in (shape_mean, trend_mean) if not math.isnan(x)]
    return QualityScores(shape_mean, trend_mean, float(np.mean(defined)) if defined else math.nan, column_scores,
                         pair_scores, continuous, categorical, correlations, bounds,
                         float(np.mean(counted)) if counted else math.nan, sdmetrics)


def _sdmetrics_pairs(pairs, numeric_pairs, mixed_pairs, ranges, correlations, tvd, association) -> dict:
    """Per pair, its score if SDMetrics' QualityReport counts it, else None (see the module doc)."""
    scores = {}
    for pair in numeric_pairs:
        constant = any(_constant(ranges[c][side]) for c in pair for side in (False, True))
        r_real, r_synthetic = correlations[pair]
        strong = r_real is not None and abs(r_real) > SDMETRICS_CORRELATION
        scores[pair] = None if constant or not strong or r_synthetic is None else 1.0 - abs(r_real - r_synthetic) / 2.0
    for k, pair in enumerate(mixed_pairs):
        v = association.get(f"s:{k}")
        scores[pair] = 1.0 - tvd[f"s:{k}"] if v is not None and v > SDMETRICS_ASSOCIATION else None
    return {pair: scores[pair] for pair in pairs}


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
