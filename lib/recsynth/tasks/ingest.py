"""Ingest: raw files of every enabled source -> bronze tables, each file exactly once."""
from __future__ import annotations

import logging

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import CATALOG_COLUMNS, CATEGORY_COLUMNS, EVENT_COLUMNS
from recsynth.etl.bronze import new_files, with_lineage
from recsynth.ops.runs import Job, Outcome, RunContext
from recsynth.sources import list_files, read_raw, to_canonical

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = {"events": EVENT_COLUMNS, "catalog": CATALOG_COLUMNS, "category_tree": CATEGORY_COLUMNS}
INGESTED_FILES_COLUMNS = ("source", "entity", "path", "fingerprint", "size", "modified_at", "rows", "run_id", "ingested_at")


def ingest(ctx: RunContext) -> Outcome:
    spark, lake = ctx.spark, ctx.lake
    rows_in, files_in, details = 0, 0, {}
    for source_name, source in ctx.conf.enabled_sources.items():
        for entity in ("events", "catalog", "category_tree"):
            raw = getattr(source, entity)
            if raw is None:
                continue
            seen = None
            if lake.exists(T.OPS_INGESTED_FILES):
                seen = lake.read(T.OPS_INGESTED_FILES).filter((F.col("source") == source_name) & (F.col("entity") == entity))
            fresh = new_files(list_files(spark, raw), seen).collect()  # one row per new file
            if not fresh:
                log.info("%s/%s: no new files", source_name, entity)
                continue
            table = T.BRONZE_TABLE_OF_ENTITY[entity]
            canonical = to_canonical(read_raw(spark, raw, [f["path"] for f in fresh]), raw.columns, CANONICAL_COLUMNS[entity], source_name)
            lake.append(table, with_lineage(canonical, ctx.run_id, ctx.started_at))
            written = (
                lake.read(table)
                .filter((F.col(T.INGEST_RUN_ID) == ctx.run_id) & (F.col(T.SOURCE) == source_name))
                .groupBy(F.col(T.FILE).alias("path")).agg(F.count(F.lit(1)).alias("rows"))
            )
            listed = spark.createDataFrame(fresh)
            record = listed.join(written, "path", "left").select(
                F.lit(source_name).alias("source"), F.lit(entity).alias("entity"), "path", "fingerprint", "size",
                "modified_at", F.coalesce("rows", F.lit(0)).cast("bigint").alias("rows"),
                F.lit(ctx.run_id).alias("run_id"), F.lit(ctx.started_at).cast("timestamp").alias("ingested_at"),
            )
            lake.append(T.OPS_INGESTED_FILES, record)
            count = record.agg(F.sum("rows")).head()[0] or 0
            log.info("%s/%s: %d new file(s), %d rows -> %s", source_name, entity, len(fresh), count, table)
            rows_in += count
            files_in += len(fresh)
            details[f"{source_name}/{entity}"] = count
    message = f"{files_in} new file(s)" if files_in else "no new files: nothing to ingest"
    return Outcome(rows_in=rows_in, rows_out=rows_in, message=message, details=details)


INGEST = Job(
    name="ingest",
    inputs=(),
    outputs=(T.BRONZE_EVENTS, T.BRONZE_CATALOG, T.BRONZE_CATEGORY_TREE, T.OPS_INGESTED_FILES),
    body=ingest,
    skip_when_unchanged=False,
    description="raw files -> bronze.events, bronze.catalog, bronze.category_tree (each file once)",
)
