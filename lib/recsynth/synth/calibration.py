"""Rows drawn so the published table keeps the real share of each kind of session and each
column's real distribution.

A GAN trained by sampling sees rare categories often (that is how it learns them at all), and
writes them too often: 7x the real share of purchase sessions on the bundled sample, which
ctgan shares (6x). Its marginals drift too (start hours, long sessions). Calibration generates
more rows than it publishes and keeps each row with a probability fitted by raking (iterative
proportional fitting, as survey statisticians post-stratify a sample, on probabilities capped at
1): one factor per value of each dimension, so that the rows kept on average match the training
rows' share of
- each stratum: one combination of the conf's conditions (purchased, a cart, a paid purchase...),
  within each value of the `within` columns (each source its own);
- each value of every categorical column named in `marginals`;
- each real-quantile bin of every numeric column named there (each value, for a column of few
  values such as a count), alone or combined with other columns (each source's own carts).

The rows are drawn systematically within each stratum (`systematic_draw`), so that a small cell
keeps its expected count to within a row instead of missing it by its square root.

Rows are kept whole, so every identity and every relation within a row stays as the GAN wrote
it. Only one-way shares of the training rows are read (and the strata's joint shares): small
aggregates of the kind the column-shape scores already compare.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from recsynth.synth.clickstream import seeded_uniform
from recsynth.synth.layout import NONZERO, NULL_FLAG, PRESENT, ZERO

log = logging.getLogger(__name__)

STRATUM = "_stratum"
NULL = "null"  # a missing value; every present one is written "=value", so a category spelt "null" stays apart


def stratum(conditions: list[str], within: list[str] = ()) -> Column:
    """The row's stratum: its values of the `within` columns, then one 0/1 digit per condition
    (unknown counts as 0), e.g. '101', or 'rees46|101' within source."""
    digits = F.concat(F.lit(""), *[F.coalesce(F.expr(c), F.lit(False)).cast("int").cast("string") for c in conditions])
    return F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit(NULL)) for c in within], digits)


def stratum_counts(frame: DataFrame, conditions: list[str]) -> dict[str, int]:
    """Rows per stratum: at most 2^len(conditions) groups, so the result is small."""
    return value_counts(frame.select(stratum(conditions).alias(STRATUM)), STRATUM)


def value_counts(frame: DataFrame, column: str, weight: Column | None = None) -> dict[str, float]:
    """Rows (or weights) per value of a low-cardinality column (a stratum, a category, a bin)."""
    total = F.count(F.lit(1)) if weight is None else F.sum(weight)
    return {r[column]: r["rows"] for r in frame.groupBy(column).agg(total.alias("rows")).collect()}


def bin_edges(table: DataFrame, numeric: list[str], bins: int) -> dict[str, list[float]]:
    """Per numeric column, the distinct inner edges of its bins: each value its own bin where the
    rows hold at most `bins` distinct values (a count such as carts, 98% zeros, whose quantiles
    would put every nonzero count in one bin, so that 1 cart and 5 could trade places), else
    `bins` real-quantile bins (a spike, such as 77% of sessions with one event, is one bin)."""
    if not numeric:
        return {}
    levels = [k / bins for k in range(1, bins)]
    row = table.agg(*[F.percentile_approx(c, levels, 10_000).alias(c) for c in numeric],
                    *[F.approx_count_distinct(c).alias(f"_n_{k}") for k, c in enumerate(numeric)]).head()
    few = [c for k, c in enumerate(numeric) if row[f"_n_{k}"] <= bins]
    values = table.agg(*[F.collect_set(c).alias(c) for c in few]).head() if few else {}
    return {c: sorted(set(values[c] if c in few else row[c] or [])) for c in numeric}


def marginal_name(columns: list[str]) -> str:
    """A marginal's dimension name: its column, or its columns joined ("source*n_carts")."""
    return "*".join(columns)


def dimensions(conditions: list[str], marginals: list[list[str]], edges: dict[str, list[float]],
               within: list[str] = ()) -> dict[str, Column]:
    """Dimension -> the row's value in it, as text: per marginal, each of its columns' value (a
    categorical column's value, a numeric one's bin: the number of its edges at or below the
    value), joined where a marginal combines columns (so that, say, each source keeps its own
    distribution of carts); and the stratum last: raking matches the last dimension of a pass
    exactly, and the strata hold the rare kinds of session, whose shares small absolute gaps
    would distort most."""
    def value(c: str) -> Column:
        if c in edges:
            binned = reduce(lambda a, b: a + b, [(F.col(c) >= F.lit(e)).cast("int") for e in edges[c]], F.lit(0))
            return F.coalesce(F.concat(F.lit("="), F.when(F.col(c).isNotNull(), binned).cast("string")), F.lit(NULL))
        return F.coalesce(F.concat(F.lit("="), F.col(c).cast("string")), F.lit(NULL))

    columns = {marginal_name(m): F.concat_ws(",", *[value(c) for c in m]) for m in marginals}
    return columns | {STRATUM: stratum(conditions, within)}


def with_dimensions(frame: DataFrame, dims: dict[str, Column]) -> DataFrame:
    """`frame` with one text column per dimension (named apart from the table's own columns)."""
    return frame.withColumns({_dim(d): c for d, c in dims.items()})


def _dim(name: str) -> str:
    return f"_dim_{name.replace('*', '_x_')}"


@dataclass
class Calibration:
    factors: dict[str, dict[str, float]]  # dimension -> value -> raking factor (0: no training row has the value)
    scale: float = 1.0                    # the share of generated rows kept before raking (rows wanted / generated)
    rows: int = 0                         # rows wanted
    expected: float = 0.0                 # rows the keep probabilities publish on average (fewer where a value is short)
    gaps: dict[str, float] | None = None  # dimension -> largest |weighted share - real share| left after raking
    passes: int = 0                       # raking passes run (`rake` stops early once every value is within a row)

    def weight(self) -> Column:
        """The row's weight, from its dimension columns: the product of its values' factors."""
        terms = [F.coalesce(F.create_map(*[F.lit(x) for v, f in values.items() for x in (v, f)])[F.col(_dim(d))],
                            F.lit(0.0)) for d, values in self.factors.items()]
        return reduce(lambda a, b: a * b, terms, F.lit(self.scale))

    def keep(self) -> Column:
        """The row's keep probability: min(1, its weight)."""
        return F.least(F.lit(1.0), self.weight())

    @property
    def short(self) -> bool:
        """Whether fewer rows than wanted are published on average (by more than 1%): values the
        GAN writes too rarely for `oversample` to fill."""
        return self.expected < 0.99 * self.rows


CELL_ROWS = "_rows"
REFINE_STEPS, REFINE_ROWS = 10, 1.0  # converged: every value within a row of its want (the strata, last, are stepped
                                     # up to 10 more times to get there)


def cells(frame: DataFrame, dims: list[str]) -> DataFrame:
    """Rows per combination of the dimension columns, in one partition: raking reads these a few
    dozen times, and they are far fewer than the rows (at most the product of the dimensions' sizes)."""
    return frame.groupBy(*[_dim(d) for d in dims]).agg(F.count(F.lit(1)).alias(CELL_ROWS)).coalesce(1)


def _sums(cells_: DataFrame, factors: dict[str, dict[str, float]], dims: list[str],
          calibration: Calibration) -> dict[str, dict[str, tuple[float, float]]]:
    """Per value of each of `dims`: (rows kept on average, the smallest positive weight of its rows), in one
    aggregation without a shuffle (raking runs dozens: each Spark job costs far more than the
    cells it reads)."""
    weighted = cells_.select(*[_dim(d) for d in dims], F.col(CELL_ROWS), calibration.weight().alias("_w"))
    kept = F.col(CELL_ROWS) * F.least(F.lit(1.0), F.col("_w"))
    names = {(d, v): k for k, (d, v) in enumerate((d, v) for d in dims for v in factors[d])}
    weight = F.when(F.col("_w") > 0, F.col("_w"))  # rows another dimension never keeps do not count
    row = weighted.agg(*[agg(F.when(F.col(_dim(d)) == F.lit(v), value)).alias(f"{prefix}{k}")
                         for (d, v), k in names.items()
                         for prefix, agg, value in (("s", F.sum, kept), ("m", F.min, weight))]).head()
    return {d: {v: (row[f"s{names[(d, v)]}"] or 0.0, row[f"m{names[(d, v)]}"] or 0.0) for v in factors[d]} for d in dims}


def rake(generated: DataFrame, real: dict[str, dict[str, float]], rows: int, iterations: int) -> Calibration:
    """Raking factors for the `generated` cells (`cells`, cached by the caller) that keep about
    `rows` rows with the `real` shares (dimension -> value -> training rows).

    Raking runs on the keep probabilities themselves, min(1, weight), towards each value's wanted
    rows: where a cell's weight passes 1 (it holds fewer rows than its dimensions ask for), the
    next steps raise the other cells of those values instead, so the table is not left short of
    rows that were there to keep. Only a value with fewer generated rows than it wants stays short,
    and its factor stops where all its rows are kept, so that its rows do not stay pinned at 1
    against the steps of the other dimensions (the strata, stepped last, are then met)."""
    dims = list(real)
    shares = {d: {v: n / sum(counts.values()) for v, n in counts.items()} for d, counts in real.items()}
    present = generated.agg(F.sum(CELL_ROWS).alias("rows"),
                            *[F.collect_set(_dim(d)).alias(f"d{k}") for k, d in enumerate(dims)]).head()
    factors = {d: {v: (1.0 if v in shares[d] else 0.0) for v in present[f"d{k}"]} for k, d in enumerate(dims)}
    scale = rows / present["rows"] if present["rows"] else 0.0
    def step(d: str) -> float:
        """Move dimension d towards its wanted rows; returns its largest gap before the move, in rows,
        over the values the move can change (not one short with every row kept already)."""
        now = _sums(generated, factors, [d], Calibration(factors, scale))[d]
        factors[d] = {v: f * _move(rows * shares[d].get(v, 0.0), *now[v]) for v, f in factors[d].items()}
        return max((abs(rows * shares[d].get(v, 0.0) - kept) for v, (kept, least) in now.items()
                    if not (least >= 1.0 and kept < rows * shares[d].get(v, 0.0))), default=0.0)

    passes = 0
    while passes < iterations:  # one dimension at a time (Gauss-Seidel): each step moves d to its wanted rows,
        passes += 1
        gaps = {d: step(d) for d in dims}
        log.debug("raking pass %d: largest gap in rows per dimension before its step: %s", passes,
                  ", ".join(f"{d} {g:.1f}" for d, g in gaps.items()))
        if max(gaps.values()) <= REFINE_ROWS:   # until a whole pass finds every value within a row
            break
    for _ in range(REFINE_STEPS):  # the strata, last, again: a step leaves a value short where its cells reach 1
        if step(dims[-1]) <= REFINE_ROWS:
            break
    sums = {d: {v: kept for v, (kept, _) in values.items()}
            for d, values in _sums(generated, factors, dims, Calibration(factors, scale)).items()}
    expected = sum(sums[dims[0]].values())
    gaps = {d: max(abs(sums[d].get(v, 0.0) / expected - s) for v, s in shares[d].items()) if expected else 1.0
            for d in dims}
    return Calibration(factors, scale, rows, expected, gaps, passes)


def _move(wanted: float, kept: float, least: float) -> float:
    """The factor a value's factor is multiplied by: wanted / kept rows, but never past the point
    where its smallest weight reaches 1 (every row of it kept: more would change nothing here and
    hold the value's rows at 1 against the other dimensions' steps), after first dropping any
    excess above that point."""
    if not kept or not least:
        return 1.0
    to_all_kept = 1.0 / least
    return min(min(1.0, to_all_kept) * wanted / kept, to_all_kept)


def fill_value(column: str, flag: str | None) -> Column:
    """A `fill` column's value as the GAN can be generated under it: a category as text, or the
    column's flag (`layout.flagged_columns`): a zero flag's 0 / nonzero (the few sessions that
    spent anything), a null flag's present / null (priced or not)."""
    value = F.col(column)
    if flag == ZERO:
        return F.when(value == 0, F.lit(ZERO)).when(value.isNotNull(), F.lit(NONZERO))
    if flag == NULL_FLAG:
        return F.when(value.isNull(), F.lit(NULL_FLAG)).otherwise(F.lit(PRESENT))
    return value.cast("string")


def fill_condition(columns: list[str], flags: dict[str, str]) -> Column:
    """A `fill` entry's values in the row, as the JSON of the condition to generate more such rows
    under ({"purchased": "true", "spend": "nonzero"}); null where any of them is null."""
    values = {c: fill_value(c, flags.get(c)) for c in columns}
    known = reduce(lambda a, b: a & b, [v.isNotNull() for v in values.values()])
    return F.when(known, F.to_json(F.struct(*[v.alias(c) for c, v in values.items()])))


def conditions_kept(frame: DataFrame, generated: dict[int, str], flags: dict[str, str]) -> dict[int, tuple[int, int]]:
    """Per `sample_seed` of `generated` (seed -> the `fill_condition` JSON its rows were generated
    under), its rows in `frame` and how many of them still meet the condition: a derived rule can
    undo it (a count generated as 2 in a row drawn not purchased is set to 0). One pass."""
    counts = []
    for seed, condition in generated.items():
        of_seed = F.col("sample_seed") == seed
        meets = fill_condition(list(json.loads(condition)), flags) == condition
        counts += [F.count(F.when(of_seed, 1)), F.count(F.when(of_seed & meets, 1))]
    row = frame.agg(*counts).head() if counts else []
    return {seed: (row[2 * k], row[2 * k + 1]) for k, seed in enumerate(generated)}


def shortfalls(real: dict[str, int], generated: dict[str, int], drawn: int) -> dict[str, int]:
    """Rows to generate under each value (`fill_condition`'s) that the GAN wrote below its share of
    the training rows: enough for `drawn` rows to hold the real share of it."""
    total = sum(real.values())
    wanted = {v: math.ceil(drawn * n / total) for v, n in real.items() if v is not None}  # nothing is generated as null
    return {v: w - generated.get(v, 0) for v, w in wanted.items() if w > generated.get(v, 0)}


SYSTEMATIC_ROWS = 1_000_000  # rows of one stratum drawn in one ordered run at most: a larger one is split by a hash


def systematic_draw(frame: DataFrame, keep: Column, groups: dict[str, int], order: list[str], seed: int,
                    id_column: str) -> DataFrame:
    """The rows of `frame` kept by systematic sampling: within each group (its `_stratum` dimension
    column; `groups`: stratum -> rows), rows in `order` (then a seeded hash of the id) are walked
    with a running sum of their keep probabilities, and a row is kept where the sum passes the next
    integer past a seeded start. Each row is still kept with its own probability, but each run of
    rows sharing the values of `order`'s first columns (a source's cart sessions of a stratum) keeps
    its expected count to within a row, where independent draws would miss it by about its square
    root (the sample's rees46 has some 20 sessions with a cart: off by 4 or 5, a fifth). A stratum
    of more than SYSTEMATIC_ROWS rows is walked in hash buckets, to within a row per bucket."""
    stratum_col = F.col(_dim(STRATUM))
    buckets = F.create_map(*[F.lit(x) for g, n in groups.items() for x in (g, max(1, math.ceil(n / SYSTEMATIC_ROWS)))])
    bucketed = frame.withColumns({"_keep": keep, "_hash": F.xxhash64(F.lit(seed), F.lit("draw"), F.col(id_column))}) \
        .withColumn("_bucket", F.pmod(F.col("_hash"), F.coalesce(buckets[stratum_col], F.lit(1))))
    run = Window.partitionBy(stratum_col, "_bucket").orderBy(*order, "_hash", id_column)
    start = seeded_uniform(seed, "calibration", stratum_col, F.col("_bucket"))
    walked = bucketed.withColumn("_sum", F.sum("_keep").over(run.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    passed = F.floor(F.col("_sum") + start) > F.floor(F.coalesce(F.lag("_sum").over(run), F.lit(0.0)) + start)
    return walked.withColumn("_passed", passed).where("_passed").drop("_keep", "_hash", "_bucket", "_sum", "_passed")


def calibrate(train: DataFrame, generated: DataFrame, conditions: list[str], marginals: list[list[str]], *, bins: int,
              rows: int, iterations: int, seed: int, within: list[str] = (), draw_order: list[str] = (),
              id_column: str = "synthetic_id") -> tuple[DataFrame, Calibration]:
    """About `rows` of the `generated` rows with the training rows' strata (within each value of
    the `within` columns) and marginals (each a list of columns whose values are combined,
    `dimensions`): each kept with probability
    min(1, weight), drawn systematically within its stratum along `draw_order` (`systematic_draw`:
    the same rows whatever the partitioning). `generated` is read twice: cache it."""
    numeric = {f.name for f in train.schema.fields if isinstance(f.dataType, NumericType)}
    edges = bin_edges(train, sorted({c for m in marginals for c in m if c in numeric}), bins)
    dims = dimensions(conditions, marginals, edges, within)
    real_cells = cells(with_dimensions(train, dims), list(dims)).cache()
    drawn = with_dimensions(generated, dims)
    drawn_cells = cells(drawn, list(dims)).cache()
    try:
        real = {d: value_counts(real_cells, _dim(d), F.col(CELL_ROWS)) for d in dims}
        calibration = rake(drawn_cells, real, rows, iterations)
        strata = value_counts(drawn_cells, _dim(STRATUM), F.col(CELL_ROWS))
    finally:
        real_cells.unpersist()
        drawn_cells.unpersist()
    kept = systematic_draw(drawn, calibration.keep(), strata, list(draw_order), seed, id_column)
    return kept.drop(*[_dim(d) for d in dims]), calibration
