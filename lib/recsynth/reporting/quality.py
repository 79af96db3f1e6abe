"""Data-quality rows: how every input row ended (accepted, duplicate, quarantined by reason),
reconciled against the input count so that nothing disappears silently."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import RecsynthError
from recsynth.etl.reasons import outcome

DATA_QUALITY_SCHEMA = T.schema(T.OPS_DATA_QUALITY)


class ReconciliationError(RecsynthError):
    """Input rows != accepted + duplicates + quarantined."""


def outcome_counts(classified: DataFrame) -> DataFrame:
    """(source, metric, reason, rows) where metric is accepted | duplicate | quarantined."""
    return classified.groupBy(T.SOURCE, outcome(F.col(T.REASON)).alias("metric"), F.col(T.REASON).alias("reason")).agg(
        F.count(F.lit(1)).alias("rows")
    )


def quality_rows(entity: str, input_counts: dict[str, int], outcomes: list) -> list[tuple]:
    """Rows for ops.data_quality (without run columns); raises if a source does not reconcile."""
    rows, accounted = [], {source: 0 for source in input_counts}
    for source, total in sorted(input_counts.items()):
        rows.append((source, entity, "input", None, total))
    for source, metric, reason, count in sorted(outcomes, key=lambda r: (r[0], r[1], r[2] or "")):
        rows.append((source, entity, metric, reason, count))
        accounted[source] = accounted.get(source, 0) + count
    broken = {s: (input_counts.get(s, 0), n) for s, n in accounted.items() if input_counts.get(s, 0) != n}
    if broken:
        raise ReconciliationError(f"{entity}: counts do not reconcile (input vs accounted): {broken}")
    return rows


def to_frame(spark, rows: list[tuple], run_id: str, job: str, measured_at) -> DataFrame:
    full = [(run_id, job, *row, measured_at) for row in rows]
    return spark.createDataFrame(full, DATA_QUALITY_SCHEMA)
