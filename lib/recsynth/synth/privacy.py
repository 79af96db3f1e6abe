"""Privacy of synthetic rows, computed with Spark so that it runs on whole tables:

- the holdout is split by person (`split_by_person`): nobody has rows on both sides, so a
  holdout row is not a training row under another session id;
- exact copies and distance to closest record (DCR) judge the generator on the rows where a
  copy means something: the rare ones, equal to fewer than `min_copy_support` training rows
  (a one-view session recurs in any sample; 76% of sample holdout sessions have a twin in
  training, which made the median DCR 0 and the ratio undefined). Among the rare generated rows
  (before `drop_rare_copies`), the share that copies a training row and their median DCR to
  training are set against the same figures for the rare holdout rows; a memorising generator
  copies rare training rows and fails both;
- membership inference: how well "closer to the published synthetic data" separates training
  rows (members) from holdout rows (non-members), as an AUC (0.5: no signal).

Nearest neighbours are exact: a bounded random sample of query rows (`query_rows`, broadcast)
is compared with every distinct row of the reference table, one reference partition at a time
(numpy, blocked), and the per-partition minima are reduced by Spark. Cost grows linearly with
the reference table, so the reference is always the whole table; only the statistics over
queries (medians, AUC) are estimated from the sample: at 10,000 queries the DCR ratio moved by
about ±9% between samples in benchmarks (BENCHMARKS.md), so raise `query_rows` for tight gates.

Rows are compared in the transformer's space: continuous columns standardised, categorical
columns one-hot over their fitted values (a mismatch adds 1 to the squared distance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.synth.transformer import OTHER, FittedTransformer

ROW_ID = "_row_id"


@dataclass(frozen=True)
class PrivacyReport:
    exact_copy_share: float      # of the rare generated rows (see the module doc)
    holdout_copy_share: float    # of the rare holdout rows
    median_dcr_synthetic: float  # rare generated rows -> training
    median_dcr_holdout: float    # rare holdout rows -> training
    dcr_ratio: float             # synthetic over holdout: well below 1 means rows were memorised
    membership_auc: float

    def failures(self, max_excess_copy_share: float, min_dcr_ratio: float, max_membership_auc: float) -> list[str]:
        """The gates this report fails, in words (empty: it passes)."""
        problems = []
        excess = self.exact_copy_share - self.holdout_copy_share
        if excess > max_excess_copy_share:
            problems.append(f"exact copies of training rows {self.exact_copy_share:.4f} exceed the holdout's "
                            f"{self.holdout_copy_share:.4f} by more than {max_excess_copy_share}")
        if self.dcr_ratio < min_dcr_ratio:
            problems.append(f"DCR ratio (synthetic/holdout) {self.dcr_ratio:.3f} < {min_dcr_ratio}")
        if self.membership_auc > max_membership_auc:
            problems.append(f"membership inference AUC {self.membership_auc:.3f} > {max_membership_auc}")
        return problems


def features(table: DataFrame, fitted: FittedTransformer) -> DataFrame:
    """(_row_id, features vector, key) with `key` the rounded row, for exact-copy matching."""
    parts, key_parts = [], []
    for c in fitted.continuous:
        present = 1.0 - (c.zero_share / max(1.0 - c.null_share, 1e-12) if c.zero_inflated else 0.0)  # the mixture's share
        mean = present * sum(w * m for w, m in zip(c.weights, c.means))
        variance = present * sum(w * (s * s + m * m) for w, m, s in zip(c.weights, c.means, c.stds)) - mean * mean
        scale = math.sqrt(max(variance, 1e-12))
        x = F.col(c.name).cast("double")
        parts += [F.coalesce((x - F.lit(mean)) / F.lit(scale), F.lit(0.0)), x.isNull().cast("double")]
        key_parts.append(F.coalesce(F.format_number(x, 6), F.lit("null")))
    for c in fitted.categorical:
        text = F.col(c.name).cast("string")
        known = [v for v in c.values if v != OTHER]
        folded = F.when(text.isin(*known), text).otherwise(F.lit(OTHER)) if known else F.lit(OTHER)
        parts += [(folded == F.lit(v)).cast("double") * F.lit(math.sqrt(0.5)) for v in c.values]
        key_parts.append(F.coalesce(text, F.lit("null")))
    return table.select(
        F.col(ROW_ID),
        F.array(*parts).alias("features"),
        F.sha2(F.concat_ws("|", *key_parts), 256).alias("key"),
    )


QUERY_BLOCK = 2048  # query rows per distance block: 2048 x 10,000 reference rows = 80 MB
# |a|^2 + |b|^2 - 2ab leaves rounding noise where a == b; real differences are far larger (a
# categorical mismatch adds 1, continuous columns are standardised), so below this is a twin
TWIN_SQUARED_DISTANCE = 1e-9


def _nearest_squared(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per query row, the squared distance to its closest reference row (blocked, float64)."""
    reference_norms = (reference ** 2).sum(axis=1)
    best = np.empty(len(queries))
    for start in range(0, len(queries), QUERY_BLOCK):
        block = queries[start:start + QUERY_BLOCK]
        squared = (block ** 2).sum(axis=1)[:, None] + reference_norms[None, :] - 2.0 * block @ reference.T
        best[start:start + QUERY_BLOCK] = squared.min(axis=1)
    return np.where(best < TWIN_SQUARED_DISTANCE, 0.0, best)


def _closest(queries: DataFrame, reference: DataFrame) -> DataFrame:
    """(_row_id, dcr): exact distance of each (sampled, bounded) query row to its closest row of
    `reference`. The queries are broadcast; every reference partition yields one minimum per
    query, and Spark keeps the smallest."""
    import pandas as pd

    local = queries.select(ROW_ID, "features").toPandas()  # bounded by the caller's sample
    spark = queries.sparkSession
    shipped = spark.sparkContext.broadcast((local[ROW_ID].to_numpy(), np.stack(local["features"].to_numpy())))

    def minima(batches):
        ids, points = shipped.value
        best = np.full(len(ids), np.inf)
        for batch in batches:
            if len(batch):
                best = np.minimum(best, _nearest_squared(points, np.stack(batch["features"].to_numpy())))
        yield pd.DataFrame({ROW_ID: ids, "squared": best})

    per_partition = reference.select("features").mapInPandas(minima, f"{ROW_ID} string, squared double")
    return per_partition.groupBy(ROW_ID).agg(F.sqrt(F.min("squared")).alias("dcr"))


def _with_ids(table: DataFrame, prefix: str) -> DataFrame:
    return table.withColumn(ROW_ID, F.concat(F.lit(prefix), F.monotonically_increasing_id().cast("string")))


def _sample(frame: DataFrame, total: int, rows: int, seed: int) -> DataFrame:
    return frame.sample(fraction=min(1.0, 1.2 * rows / max(total, 1)), seed=seed).limit(rows)


def split_by_person(table: DataFrame, fraction: float, person: str = "user_id", fallback: str = "session_id",
                    salt: str = "holdout"):
    """(rest, holdout): about `fraction` of the people (by a hash of `salt`, source and `person`,
    or of `fallback` where `person` is null) and all of their rows go to the holdout. Another
    salt draws another, independent set of people."""
    who = F.coalesce(F.col(person), F.concat(F.lit("\0"), F.col(fallback)))
    in_holdout = (F.abs(F.xxhash64(F.lit(salt), F.col("source"), who)) % 1000) < int(round(fraction * 1000))
    return table.filter(~in_holdout), table.filter(in_holdout)


def drop_rare_copies(synthetic: DataFrame, real: DataFrame, columns: list[str], min_support: int) -> DataFrame:
    """`synthetic` without the rows equal, on every model column (nulls equal to nulls), to a real
    row shared by fewer than `min_support` real rows.

    Such a row is a verbatim copy of a few real sessions (a canary, an outlier customer), so it
    must never be released. Rows that many real sessions share ("one view, nothing else") say
    nothing about anyone and stay, so the published distribution is not cut at its peak."""
    if min_support <= 1:
        return synthetic
    rare = real.groupBy(*columns).count().where(F.col("count") < min_support).drop("count")
    same_row = [F.col(f"s.{c}").eqNullSafe(F.col(f"r.{c}")) for c in columns]
    return synthetic.alias("s").join(rare.alias("r"), same_row, "left_anti")


def _median(frame: DataFrame):
    return frame.agg(F.percentile_approx("dcr", 0.5)).head()[0]


def assess(train: DataFrame, holdout: DataFrame, generated: DataFrame, published: DataFrame, fitted: FittedTransformer, *,
           min_copy_support: int, query_rows: int = 10_000, seed: int = 0) -> PrivacyReport:
    """Copies and DCR of the rare `generated` rows, membership inference of the `published` ones,
    against `train`, with `holdout` (people the model never saw) as the yardstick."""
    train_f = features(_with_ids(train, "t"), fitted).cache()
    frames = {"train": train_f}
    try:
        support = train_f.groupBy("key").agg(F.count(F.lit(1)).alias("support"))
        for name, table, prefix in (("holdout", holdout, "h"), ("generated", generated, "g"), ("published", published, "s")):
            frames[name] = features(_with_ids(table, prefix), fitted).join(support, "key", "left").fillna(0, ["support"]).cache()
        counts = {name: frame.count() for name, frame in frames.items()}
        rare = {name: frames[name].where(F.col("support") < max(min_copy_support, 1)) for name in ("holdout", "generated")}
        # one pass per side: its rare rows, and those of them that equal a training row
        tallies = {name: frame.agg(F.count(F.lit(1)), F.count(F.when(F.col("support") > 0, 1))).head()
                   for name, frame in rare.items()}
        counts.update({f"rare {name}": total for name, (total, _) in tallies.items()})
        copy_share, holdout_share = (tallies[name][1] / max(tallies[name][0], 1) for name in ("generated", "holdout"))
        frames.update({f"rare {name}": frame for name, frame in rare.items()})
        distinct_train, distinct_published = train_f.dropDuplicates(["key"]), frames["published"].dropDuplicates(["key"])
        queries = {name: _sample(frames[name], counts[name], query_rows, seed)
                   for name in ("train", "holdout", "rare generated", "rare holdout")}
        median_s = _median(_closest(queries["rare generated"], distinct_train)) if counts["rare generated"] else None
        median_h = _median(_closest(queries["rare holdout"], distinct_train)) if counts["rare holdout"] else None
        # membership: members (train) vs non-members (holdout), scored by closeness to the published rows
        scored = _closest(queries["train"], distinct_published).withColumn("label", F.lit(1.0)).unionByName(
            _closest(queries["holdout"], distinct_published).withColumn("label", F.lit(0.0)))
        auc = BinaryClassificationEvaluator(rawPredictionCol="score", labelCol="label", metricName="areaUnderROC").evaluate(
            scored.withColumn("score", -F.col("dcr")))
        return PrivacyReport(copy_share, holdout_share, _or_nan(median_s), _or_nan(median_h),
                             _ratio(median_s, median_h), float(auc))
    finally:
        for frame in frames.values():
            frame.unpersist()


def _or_nan(value) -> float:
    return math.nan if value is None else float(value)


def _ratio(synthetic, holdout) -> float:
    """Median DCR of the rare generated rows over the rare holdout rows'. No rare generated row
    copies anything (inf); no rare holdout row leaves nothing to compare with (1: no evidence)."""
    if synthetic is None:
        return math.inf
    if holdout is None:
        return 1.0
    if holdout == 0:
        return 1.0 if synthetic == 0 else math.inf
    return float(synthetic / holdout)
