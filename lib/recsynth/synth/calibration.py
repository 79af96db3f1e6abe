"""Rows drawn so the published table keeps the real share of each kind of session.

A GAN trained by sampling sees rare categories often (that is how it learns them at all), and
writes them too often: 7x the real share of purchase sessions on the bundled sample, which
ctgan shares (6x). Calibration generates more rows than it publishes and keeps each row with a
probability set per stratum (one combination of the conf's conditions: purchased, a cart, a
paid purchase, ...), so every stratum's share of the published rows is its share of the
training rows. Rows are kept whole, so every identity and every learned relation within a row
stays as the GAN wrote it. Only the strata's shares of the training rows are read: a few
counts, the same kind of aggregate as the column shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsynth.synth.clickstream import seeded_uniform

STRATUM = "_stratum"


def stratum(conditions: list[str]) -> Column:
    """The row's stratum: one 0/1 digit per condition (unknown counts as 0), e.g. '101'."""
    return F.concat(F.lit(""), *[F.coalesce(F.expr(c), F.lit(False)).cast("int").cast("string") for c in conditions])


def stratum_counts(frame: DataFrame, conditions: list[str]) -> dict[str, int]:
    """Rows per stratum: at most 2^len(conditions) groups, so the result is small."""
    return {r[STRATUM]: r["rows"] for r in frame.groupBy(stratum(conditions).alias(STRATUM))
            .agg(F.count(F.lit(1)).alias("rows")).collect()}


@dataclass
class Calibration:
    keep: dict[str, float]    # stratum -> probability that a generated row of it is published
    short: dict[str, float]   # strata generated below their real share even when all kept: published / wanted

    def describe(self, conditions: list[str]) -> str:
        def named(s: str) -> str:
            return " AND ".join(c if bit == "1" else f"NOT ({c})" for c, bit in zip(conditions, s)) or "every row"
        return "; ".join(f"{named(s)}: {share:.0%} of its real share" for s, share in sorted(self.short.items()))


def keep_rates(real: dict[str, int], generated: dict[str, int], rows: int) -> Calibration:
    """Per stratum, the share of generated rows to keep so that about `rows` are published with
    the real strata's shares; a stratum no real row is in keeps none."""
    total = sum(real.values())
    keep, short = {}, {}
    for s, count in generated.items():
        wanted = rows * real.get(s, 0) / total
        keep[s] = min(1.0, wanted / count)
        if count < wanted:
            short[s] = count / wanted
    short.update({s: 0.0 for s in real if s not in generated})
    return Calibration(keep, short)


def calibrated(generated: DataFrame, conditions: list[str], calibration: Calibration, seed: int,
               id_column: str = "synthetic_id") -> DataFrame:
    """The generated rows each stratum keeps, drawn by a seeded hash of the row's id (the same
    rows whatever the partitioning)."""
    rates = F.create_map(*[F.lit(x) for s, rate in calibration.keep.items() for x in (s, rate)])
    return (generated.withColumn(STRATUM, stratum(conditions))
            .where(seeded_uniform(seed, "calibration", F.col(id_column)) < F.coalesce(rates[F.col(STRATUM)], F.lit(0.0)))
            .drop(STRATUM))
