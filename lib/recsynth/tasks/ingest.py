"""Ingest: raw files of every enabled source -> bronze tables, each file exactly once."""
from __future__ import annotations

import logging
from functools import reduce
from operator import or_

from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import CATALOG_COLUMNS, CATEGORY_COLUMNS, EVENT_COLUMNS
from recsynth.errors import SourceError
from recsynth.etl.bronze import new_files, with_lineage
from recsynth.runtime.runs import Job, Outcome, RunContext
from recsynth.sources import fingerprints, list_files, read_raw, to_canonical

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = {"events": EVENT_COLUMNS, "catalog": CATALOG_COLUMNS, "category_tree": CATEGORY_COLUMNS}


def drop_unrecorded_rows(lake, entity: str) -> None:
    """Delete bronze rows whose files were never recorded in ops.ingested_files: a run killed
    between appending a batch and recording its files left them, and since the files count as
    new, this run ingests them again."""
    table = T.BRONZE_TABLE_OF_ENTITY[entity]
    if not lake.exists(table):
        return
    batches = lake.read(table).select(T.SOURCE, F.col(T.INGEST_RUN_ID).alias("run_id")).distinct()
    if lake.exists(T.OPS_INGESTED_FILES):
        recorded = lake.read(T.OPS_INGESTED_FILES).filter(F.col("entity") == entity).select("source", "run_id")
        batches = batches.join(recorded, (batches[T.SOURCE] == recorded["source"]) & (batches["run_id"] == recorded["run_id"]), "left_anti")
    unrecorded = batches.collect()  # (source, run) pairs of killed runs: a handful at most
    if unrecorded:
        log.warning("%s: removing rows of interrupted ingest run(s) that never recorded their files: %s; "
                    "those files are ingested again now", table, ", ".join(f"{r['run_id']} ({r[T.SOURCE]})" for r in unrecorded))
        lake.delete(table, reduce(or_, [(F.col(T.SOURCE) == r[T.SOURCE]) & (F.col(T.INGEST_RUN_ID) == r["run_id"]) for r in unrecorded]))


def _fail_if_changed(spark, raw, listed: list) -> None:
    """Raise if a file was removed or rewritten since it was listed: what was read may then not
    be what its recorded fingerprint says, so the run fails (bronze rolls back) rather than
    record it, and the next run ingests the file as it is then."""
    now = fingerprints(spark, [f["path"] for f in listed])
    vanished = [f["path"] for f in listed if f["path"] not in now]
    changed = [f["path"] for f in listed if f["path"] in now and now[f["path"]] != f["fingerprint"]]
    if vanished or changed:
        what = "; ".join(f"{kind}: {paths}" for kind, paths in (("removed", vanished), ("rewritten", changed)) if paths)
        raise SourceError(
            f"{raw.path}: source files changed while this run was reading them ({what}); nothing of this run is kept. "
            "Run ingest again once the files are complete; a producer should write each file under a temporary name "
            "and rename it when done")


def ingest(ctx: RunContext) -> Outcome:
    spark, lake = ctx.spark, ctx.lake
    rows_in, files_in, details = 0, 0, {}
    for entity in CANONICAL_COLUMNS:
        drop_unrecorded_rows(lake, entity)
    for source_name, source in ctx.conf.enabled_sources.items():
        for entity in CANONICAL_COLUMNS:
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
            try:
                canonical = to_canonical(read_raw(spark, raw, [f["path"] for f in fresh]), raw.columns, CANONICAL_COLUMNS[entity], source_name)
                # add_columns: a lake ingested before a canonical column existed (quantity) takes it on
                lake.append(table, with_lineage(canonical, ctx.run_id, ctx.started_at), add_columns=True)
            except Exception:
                _fail_if_changed(spark, raw, fresh)  # the likelier cause, said plainly
                raise
            _fail_if_changed(spark, raw, fresh)
            written = (
                lake.read(table)
                .filter((F.col(T.INGEST_RUN_ID) == ctx.run_id) & (F.col(T.SOURCE) == source_name))
                .groupBy(F.col(T.FILE).alias("path")).agg(F.count(F.lit(1)).alias("rows"))
            )
            listed = spark.createDataFrame(fresh)
            record = listed.join(written, "path", "left").select(
                F.lit(source_name).alias("source"), F.lit(entity).alias("entity"), "path", "fingerprint", "size",
                "modified_at", F.coalesce("rows", F.lit(0)).alias("rows"),
                F.lit(ctx.run_id).alias("run_id"), F.lit(ctx.started_at).alias("ingested_at"),
            )
            record = record.select(*[F.col(c).cast(kind).alias(c) for c, kind in T.schema_columns(T.schema(T.OPS_INGESTED_FILES))])
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
    conf_keys=("sources",),
    body=ingest,
    skip_when_unchanged=False,
    description="raw files -> bronze.events, bronze.catalog, bronze.category_tree (each file once)",
)
