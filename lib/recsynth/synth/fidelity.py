"""Checks that averages cannot hide: a generator that never emits a rare value, never reaches a
column's tail or breaks a session's arithmetic scores well on column shapes and pair trends
(the rare side is 0.1% of the TVD), but fails here.

- range coverage (SDMetrics RangeCoverage): how much of a continuous column's real [min, max]
  the synthetic values reach, nulls ignored;
- category coverage (SDMetrics CategoryCoverage): the share of a categorical column's real
  values (nulls ignored) that appear in the synthetic table;
- constraint validity: the share of rows satisfying each `synth.constraints` condition;
- rare shares: per named condition (`synth.quality.rare_shares`), its share of synthetic rows
  over its share of real rows.

Everything is aggregated in Spark; only one number per column or condition reaches the driver.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.synth.constraints import validity


@dataclass
class Fidelity:
    range_coverage: dict[str, float]                    # continuous column -> [0, 1]; nan where real is constant
    category_coverage: dict[str, float]                 # categorical column -> [0, 1]
    constraint_validity: dict[str, tuple[float, float]]  # condition -> (real, synthetic) share of rows
    rare_shares: dict[str, tuple[float, float]]          # name -> (real, synthetic) share of rows

    def rare_share_ratios(self) -> dict[str, float]:
        """Synthetic over real share, per rare kind (nan where the real share is 0)."""
        return {name: (s / r) if r else math.nan for name, (r, s) in self.rare_shares.items()}

    def failures(self, quality, constraints: list[str]) -> list[str]:
        """The gates these scores fail, in words (empty: they pass). `quality` is synth.quality."""
        problems = [f"constraint {c!r} fails in {1 - s:.2%} of synthetic rows" for c in constraints
                    for s in [self.constraint_validity[c][1]] if s < 1.0]
        problems += [f"range coverage of {c} {v:.3f} < {quality.min_range_coverage}"
                     for c, v in self.range_coverage.items() if v < quality.min_range_coverage]
        problems += [f"category coverage of {c} {v:.3f} < {quality.min_category_coverage}"
                     for c, v in self.category_coverage.items() if v < quality.min_category_coverage]
        for name, (real, synthetic) in self.rare_shares.items():
            low, high = quality.rare_shares[name].within
            ratio = synthetic / real if real else math.nan
            if 0 < real < 1 and not low <= ratio <= high:
                problems.append(f"rare share {name} ({quality.rare_shares[name].where}): {synthetic:.4%} of synthetic "
                                f"rows against {real:.4%} of real ones (x{ratio:.2f}, allowed {low}-{high})")
        return problems

    def summary(self) -> dict[str, float]:
        """The scalars of synthetic.quality: mean coverages and the worst constraint's validity."""
        ranges = [v for v in self.range_coverage.values() if not math.isnan(v)]
        return {"range_coverage": float(sum(ranges) / len(ranges)) if ranges else math.nan,
                "category_coverage": (float(sum(self.category_coverage.values()) / len(self.category_coverage))
                                      if self.category_coverage else math.nan),
                "constraint_validity": min((s for _, s in self.constraint_validity.values()), default=1.0)}


def range_coverage(real: DataFrame, synthetic: DataFrame, continuous: list[str]) -> dict[str, float]:
    """1 - (the part of the real range below the synthetic minimum + the part above the synthetic
    maximum) / the real range, at least 0; nan where the real column is constant or empty."""
    if not continuous:
        return {}

    def bounds(frame):
        return frame.agg(*[e for c in continuous for e in (F.min(F.when(~F.isnan(c), F.col(c))).alias(f"{c}__lo"),
                                                           F.max(F.when(~F.isnan(c), F.col(c))).alias(f"{c}__hi"))]).head()

    r, s = bounds(real), bounds(synthetic)
    scores = {}
    for c in continuous:
        low, high = r[f"{c}__lo"], r[f"{c}__hi"]
        if low is None or high is None or high == low:
            scores[c] = math.nan
        elif s[f"{c}__lo"] is None:
            scores[c] = 0.0
        else:
            below = max((s[f"{c}__lo"] - low) / (high - low), 0.0)
            above = max((high - s[f"{c}__hi"]) / (high - low), 0.0)
            scores[c] = max(1.0 - (below + above), 0.0)
    return scores


def category_coverage(real: DataFrame, synthetic: DataFrame, categorical: list[str]) -> dict[str, float]:
    """Per column, the share of distinct real values (nulls ignored) that the synthetic table has."""
    if not categorical:
        return {}

    def values(frame, side):
        return frame.select(F.explode(F.array(*[
            F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in categorical])).alias("cell")
        ).select("cell.*").where(F.col("value").isNotNull()).distinct().withColumn(side, F.lit(1))

    joined = values(real, "real").join(values(synthetic, "synthetic"), ["column", "value"], "left")
    rows = joined.groupBy("column").agg((F.count("synthetic") / F.count(F.lit(1))).alias("coverage")).collect()
    return {row["column"]: float(row["coverage"]) for row in rows}


def assess(real: DataFrame, synthetic: DataFrame, continuous: list[str], categorical: list[str],
           constraints: list[str], rare_shares: dict[str, str]) -> Fidelity:
    """Every fidelity check of `synthetic` against `real` (`rare_shares`: {name: SQL condition})."""
    conditions = list(constraints) + [c for c in rare_shares.values() if c not in constraints]
    real_shares, synthetic_shares = validity(real, conditions), validity(synthetic, conditions)
    return Fidelity(range_coverage(real, synthetic, continuous), category_coverage(real, synthetic, categorical),
                    {c: (real_shares[c], synthetic_shares[c]) for c in constraints},
                    {name: (real_shares[c], synthetic_shares[c]) for name, c in rare_shares.items()})
