"""Privacy of synthetic rows, computed with Spark so that it runs on whole tables:

- exact copies: the share of synthetic rows identical (after rounding) to a training row,
  against the same share for holdout rows (common rows, such as a one-view session, recur
  in any real sample: only copies beyond that baseline count against the model);
- distance to closest record (DCR): synthetic -> train against holdout -> train. Nearest
  neighbours come from MLlib's bucketed random-projection LSH similarity join, not a cross
  join; distances beyond `radius` are censored at `radius`;
- membership inference: how well "closer to the synthetic data" separates training rows
  (members) from holdout rows (non-members), as an AUC (0.5: no signal).

Rows are compared in the transformer's space: continuous columns standardised, categorical
columns one-hot over their fitted values (a mismatch adds 1 to the squared distance).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import BucketedRandomProjectionLSH
from pyspark.ml.functions import array_to_vector
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.synth.transformer import OTHER, FittedTransformer

ROW_ID = "_row_id"


@dataclass(frozen=True)
class PrivacyReport:
    exact_copy_share: float
    holdout_copy_share: float
    median_dcr_synthetic: float
    median_dcr_holdout: float
    dcr_ratio: float          # synthetic over holdout: well below 1 means rows were memorised
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
        mean = sum(w * m for w, m in zip(c.weights, c.means))
        variance = sum(w * (s * s + m * m) for w, m, s in zip(c.weights, c.means, c.stds)) - mean * mean
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
        array_to_vector(F.array(*parts)).alias("features"),
        F.sha2(F.concat_ws("|", *key_parts), 256).alias("key"),
    )


def _closest(queries: DataFrame, distinct_reference: DataFrame, model, radius: float) -> DataFrame:
    """(_row_id, dcr): distance of each query row to its closest reference row, capped at radius.

    Real behaviour tables repeat the same few rows (one-view sessions) thousands of times, which
    would put them all in one LSH bucket. So identical rows are searched once: a query whose
    row also occurs in the reference is at distance 0, the other distinct rows go through the
    LSH join against the distinct reference rows, and the result is joined back by row key."""
    distinct_queries = queries.dropDuplicates(["key"])
    exact = distinct_queries.join(distinct_reference.select("key"), "key", "left_semi").select("key", F.lit(0.0).alias("dcr"))
    others = distinct_queries.join(distinct_reference.select("key"), "key", "left_anti")
    pairs = model.approxSimilarityJoin(others, distinct_reference, radius, distCol="distance")
    nearest = pairs.groupBy(F.col("datasetA.key").alias("key")).agg(F.min("distance").alias("dcr"))
    by_key = exact.unionByName(nearest)
    return queries.select(ROW_ID, "key").join(by_key, "key", "left").select(ROW_ID, F.coalesce("dcr", F.lit(radius)).alias("dcr"))


def _with_ids(table: DataFrame, prefix: str) -> DataFrame:
    return table.withColumn(ROW_ID, F.concat(F.lit(prefix), F.monotonically_increasing_id().cast("string")))


def assess(train: DataFrame, holdout: DataFrame, synthetic: DataFrame, fitted: FittedTransformer, *,
           radius: float = 3.0, bucket_length: float = 1.0, hash_tables: int = 3, seed: int = 0) -> PrivacyReport:
    """Exact copies, DCR and membership inference of `synthetic` against `train`, with `holdout`
    (real rows the model never saw) as the yardstick."""
    train_f = features(_with_ids(train, "t"), fitted).cache()
    holdout_f = features(_with_ids(holdout, "h"), fitted).cache()
    synthetic_f = features(_with_ids(synthetic, "s"), fitted).cache()
    distinct_train = train_f.dropDuplicates(["key"]).cache()  # searched twice (synthetic, holdout)
    distinct_synthetic = synthetic_f.dropDuplicates(["key"]).cache()  # searched twice (members, non-members)
    try:
        train_keys = distinct_train.select("key")
        copy_share, holdout_share = (
            frame.join(train_keys, "key", "left_semi").count() / max(frame.count(), 1) for frame in (synthetic_f, holdout_f))
        lsh = BucketedRandomProjectionLSH(inputCol="features", outputCol="hashes", bucketLength=bucket_length,
                                          numHashTables=hash_tables, seed=seed).fit(train_f)
        dcr_synthetic = _closest(synthetic_f, distinct_train, lsh, radius)
        dcr_holdout = _closest(holdout_f, distinct_train, lsh, radius)
        median_s = dcr_synthetic.agg(F.percentile_approx("dcr", 0.5)).head()[0]
        median_h = dcr_holdout.agg(F.percentile_approx("dcr", 0.5)).head()[0]
        # membership: members (train) vs non-members (holdout), scored by closeness to the synthetic rows
        to_synthetic = BucketedRandomProjectionLSH(inputCol="features", outputCol="hashes", bucketLength=bucket_length,
                                                   numHashTables=hash_tables, seed=seed).fit(synthetic_f)
        scored = _closest(train_f, distinct_synthetic, to_synthetic, radius).withColumn("label", F.lit(1.0)).unionByName(
            _closest(holdout_f, distinct_synthetic, to_synthetic, radius).withColumn("label", F.lit(0.0)))
        auc = BinaryClassificationEvaluator(rawPredictionCol="score", labelCol="label", metricName="areaUnderROC").evaluate(
            scored.withColumn("score", -F.col("dcr")))
        ratio = (median_s / median_h) if median_h else (1.0 if not median_s else float("inf"))
        return PrivacyReport(copy_share, holdout_share, float(median_s), float(median_h), float(ratio), float(auc))
    finally:
        for frame in (train_f, holdout_f, synthetic_f, distinct_train, distinct_synthetic):
            frame.unpersist()
