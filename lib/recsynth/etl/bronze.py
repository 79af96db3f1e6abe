"""Raw canonical rows -> bronze rows: lineage columns added, nothing dropped or typed yet."""
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T


def with_lineage(canonical: DataFrame, run_id: str, ingested_at) -> DataFrame:
    """Stamp each row with the ingest run that brought it in (the file is already there)."""
    return canonical.withColumn(T.INGEST_RUN_ID, F.lit(run_id)).withColumn(
        T.INGESTED_AT, F.lit(ingested_at).cast("timestamp")
    )


def new_files(listed: DataFrame, already_ingested: DataFrame | None) -> DataFrame:
    """Files whose (path, fingerprint) has not been ingested before: a changed file counts as new."""
    if already_ingested is None:
        return listed
    return listed.join(already_ingested.select("path", "fingerprint"), ["path", "fingerprint"], "left_anti")
