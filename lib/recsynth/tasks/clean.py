"""Clean: bronze -> silver.categories, silver.items, silver.events (sessionized), silver.returns
and silver.quarantine, with per-source counts reconciled into ops.data_quality."""
from __future__ import annotations

import logging
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.etl import catalog as C
from recsynth.etl import reasons as R
from recsynth.etl.clean_events import accepted_events, classify_events, parse_events, returned_events
from recsynth.reporting import quality
from recsynth.runtime.runs import Job, Outcome, RunContext

log = logging.getLogger(__name__)


def _union(frames: list[DataFrame]) -> DataFrame | None:
    return reduce(DataFrame.unionByName, frames) if frames else None


def _per_source(lake, table: str, sources: dict, parse) -> DataFrame | None:
    """Apply a per-source parser to that source's rows of a bronze table; None if none apply."""
    if not sources or not lake.exists(table):
        return None
    bronze = lake.read(table)
    return _union([parse(bronze.filter(F.col(T.SOURCE) == name), source) for name, source in sources.items()])


def _quarantine_rows(classified: DataFrame, entity: str, ctx: RunContext) -> DataFrame:
    rejected = classified.filter(R.outcome(F.col(T.REASON)) == "quarantined")
    return rejected.select(
        T.SOURCE, F.lit(entity).alias("entity"), F.col(T.REASON).alias("reason"), F.col(T.RAW).alias("raw"),
        F.col(T.FILE).alias("file"), F.col(T.INGEST_RUN_ID).alias("ingest_run_id"),
        F.lit(ctx.run_id).alias("run_id"), F.lit(ctx.started_at).cast("timestamp").alias("quarantined_at"),
    )


def _account(classified: DataFrame | None, entity: str, bronze_table: str, sources, lake) -> list[tuple]:
    """Data-quality rows for one entity; the input count is taken from bronze independently."""
    if classified is None:
        return []
    inputs = {
        row[T.SOURCE]: row["count"]
        for row in lake.read(bronze_table).filter(F.col(T.SOURCE).isin(*sources)).groupBy(T.SOURCE).count().collect()
    }
    outcomes = [tuple(row) for row in quality.outcome_counts(classified).collect()]
    return quality.quality_rows(entity, inputs, outcomes)


def clean(ctx: RunContext) -> Outcome:
    conf, lake, spark = ctx.conf, ctx.lake, ctx.spark
    sources = conf.enabled_sources
    with_tree = {n: s for n, s in sources.items() if s.category_tree is not None}
    with_catalog = {n: s for n, s in sources.items() if s.catalog is not None}
    persisted = []

    def keep(frame):
        if frame is not None:
            persisted.append(frame.persist(StorageLevel.MEMORY_AND_DISK))
        return frame

    parsed_categories = _per_source(lake, T.BRONZE_CATEGORY_TREE, with_tree, C.parse_categories)
    categories = keep(C.classify_categories(parsed_categories, conf.clean.max_category_depth)) if parsed_categories is not None else None
    good_categories = C.accepted_categories(categories) if categories is not None else spark.createDataFrame(
        [], f"{T.SOURCE} string, category_id string, parent_id string, path array<string>, depth int, {T.FILE} string, {T.INGEST_RUN_ID} string")

    parsed_items = _per_source(lake, T.BRONZE_CATALOG, with_catalog, lambda df, s: C.parse_items(df, s, conf.clean))
    items = keep(C.classify_items(parsed_items, good_categories, list(with_tree))) if parsed_items is not None else None
    catalog_items = C.accepted_items(items) if items is not None else None

    parsed_events = _per_source(lake, T.BRONZE_EVENTS, sources, lambda df, s: parse_events(df, s, conf.clean, ctx.started_at))
    events = keep(classify_events(parsed_events, catalog_items, list(with_catalog) if catalog_items is not None else [], conf.clean))
    silver_events = accepted_events(events)
    seen_items = C.items_seen_in_events(silver_events, [n for n in sources if n not in with_catalog])
    silver_items = seen_items if catalog_items is None else catalog_items.unionByName(seen_items)

    dq_rows = (
        _account(categories, "category_tree", T.BRONZE_CATEGORY_TREE, with_tree, lake)
        + _account(items, "catalog", T.BRONZE_CATALOG, with_catalog, lake)
        + _account(events, "events", T.BRONZE_EVENTS, sources, lake)
    )
    quarantine = _union([_quarantine_rows(frame, entity, ctx) for frame, entity in
                         ((categories, "category_tree"), (items, "catalog"), (events, "events")) if frame is not None])

    lake.overwrite(T.SILVER_CATEGORIES, good_categories)
    lake.overwrite(T.SILVER_ITEMS, silver_items)
    lake.overwrite(T.SILVER_EVENTS, silver_events)
    lake.overwrite(T.SILVER_RETURNS, returned_events(events))
    lake.overwrite(T.SILVER_QUARANTINE, quarantine)
    lake.append(T.OPS_DATA_QUALITY, quality.to_frame(spark, dq_rows, ctx.run_id, "clean", ctx.started_at))
    for frame in persisted:
        frame.unpersist()

    rows_in = sum(r[4] for r in dq_rows if r[2] == "input")
    accepted = {r[1]: 0 for r in dq_rows}
    for r in dq_rows:
        if r[2] == "accepted":
            accepted[r[1]] += r[4]
    quarantined = sum(r[4] for r in dq_rows if r[2] == "quarantined")
    duplicates = sum(r[4] for r in dq_rows if r[2] == "duplicate")
    returns = sum(r[4] for r in dq_rows if r[2] == "return")
    message = f"accepted {accepted}, returns {returns}, quarantined {quarantined}, duplicates removed {duplicates}"
    return Outcome(rows_in=rows_in, rows_out=accepted.get("events", 0), message=message, details={"data_quality": dq_rows})


CLEAN = Job(
    name="clean",
    inputs=(T.BRONZE_EVENTS,),
    optional_inputs=(T.BRONZE_CATALOG, T.BRONZE_CATEGORY_TREE),
    outputs=(T.SILVER_CATEGORIES, T.SILVER_ITEMS, T.SILVER_EVENTS, T.SILVER_RETURNS, T.SILVER_QUARANTINE),
    conf_keys=("sources", "clean"),
    body=clean,
    description="bronze -> silver (dedup, types, time zones, bots, broken references, returns; rejects to quarantine)",
)
