"""Bronze catalogue and category tree -> the current catalogue (silver.items) and a valid
category tree with a root-first path per category (silver.categories)."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import CleanConf, SourceConf
from recsynth.etl import reasons as R
from recsynth.etl.columns import bad_id, blank, canonical_id, not_a_product, parse_event_time, parse_price

LINEAGE = (T.RAW, T.FILE, T.INGEST_RUN_ID, T.INGESTED_AT)
ITEM_FIELDS = ("item_id", "category_id", "category_path", "brand", "price", "title", "description", "updated_at")


def _latest_wins(frame: DataFrame, key: list[str], newest_first: list) -> DataFrame:
    """Among pending rows, keep the newest per key; the others are superseded."""
    order = Window.partitionBy(R.pending(), *key).orderBy(*newest_first, F.col(T.RAW))
    return R.flag(frame, F.row_number().over(order) > 1, R.SUPERSEDED)


def parse_categories(bronze: DataFrame, source: SourceConf) -> DataFrame:
    """One source's category rows -> (category_id, parent_id) with row-level faults flagged."""
    src = F.col(T.SOURCE)
    typed = bronze.select(
        src,
        canonical_id(src, F.col("category_id")).alias("category_id"),
        canonical_id(src, F.col("parent_id")).alias("parent_id"),
        F.col("category_id").alias("raw_category_id"),
        F.col("parent_id").alias("raw_parent_id"),
        *[F.col(c) for c in LINEAGE],
        F.col(T.MALFORMED),
        F.lit(None).cast("string").alias(T.REASON),
    )
    checks = [
        (F.col(T.MALFORMED), R.MALFORMED_ROW),
        (blank(F.col("raw_category_id")), R.MISSING_FIELD),
        (bad_id(F.col("raw_category_id"), source.id_format) | bad_id(F.col("raw_parent_id"), source.id_format), R.BAD_ID),
    ]
    return R.flag_first(typed, checks).drop("raw_category_id", "raw_parent_id", T.MALFORMED)


def classify_categories(parsed: DataFrame, max_depth: int) -> DataFrame:
    """Deduplicate, then walk each category up to its root: a missing ancestor, a cycle or
    a chain deeper than `max_depth` rejects it. Accepted rows get `path` (root first) and `depth`."""
    parsed = R.flag(parsed, F.row_number().over(
        Window.partitionBy(R.pending(), T.SOURCE, "category_id", "parent_id").orderBy(T.FILE, T.RAW)) > 1, R.EXACT_DUPLICATE)
    parsed = _latest_wins(parsed, [T.SOURCE, "category_id"], [F.col(T.INGESTED_AT).desc()])
    nodes = parsed.filter(R.pending()).select(
        F.col(T.SOURCE).alias("_node_source"), F.col("category_id").alias("_node"), F.col("parent_id").alias("_up"))
    walk = parsed.filter(R.pending()).select(
        T.SOURCE, "category_id", F.array("category_id").alias("_visited"), F.col("parent_id").alias("_cursor"),
        F.lit(None).cast("string").alias("_walk"),
    )
    for _ in range(max_depth + 1):
        on_parent = (F.col(T.SOURCE) == F.col("_node_source")) & (F.col("_cursor") == F.col("_node"))
        stepped = walk.join(nodes, on_parent, "left")
        walking = F.col("_walk").isNull()
        status = (
            F.when(~walking, F.col("_walk"))
            .when(F.col("_cursor").isNull(), F.lit("root"))
            .when(F.array_contains("_visited", F.col("_cursor")), F.lit(R.CATEGORY_CYCLE))
            .when(F.col("_node").isNull(), F.lit(R.MISSING_PARENT))
        )
        advance = walking & status.isNull()
        walk = stepped.select(
            T.SOURCE, "category_id",
            F.when(advance, F.concat("_visited", F.array("_cursor"))).otherwise(F.col("_visited")).alias("_visited"),
            F.when(advance, F.col("_up")).otherwise(F.col("_cursor")).alias("_cursor"),
            status.alias("_walk"),
        )
    outcome = walk.select(
        T.SOURCE, "category_id",
        F.reverse("_visited").alias("path"),
        (F.size("_visited") - 1).alias("depth"),
        F.coalesce(F.col("_walk"), F.lit(R.CATEGORY_TOO_DEEP)).alias("_walk"),
    )
    joined = parsed.join(outcome, [T.SOURCE, "category_id"], "left")
    for code in (R.MISSING_PARENT, R.CATEGORY_CYCLE, R.CATEGORY_TOO_DEEP):
        joined = R.flag(joined, F.col("_walk") == code, code)
    return joined.drop("_walk")


def accepted_categories(classified: DataFrame) -> DataFrame:
    return classified.filter(R.pending()).select(T.SOURCE, "category_id", "parent_id", "path", "depth", T.FILE, T.INGEST_RUN_ID)


def parse_items(bronze: DataFrame, source: SourceConf, clean: CleanConf) -> DataFrame:
    """One source's catalogue rows -> typed item columns with row-level faults flagged."""
    catalog = source.catalog
    src = F.col(T.SOURCE)
    path_text = F.trim(F.col("category_path"))
    separator = catalog.category_path_separator
    updated_at = parse_event_time(F.col("updated_at"), source.events.time)
    price = parse_price(F.col("price"))
    typed = bronze.select(
        src,
        canonical_id(src, F.col("item_id")).alias("t_item_id"),
        canonical_id(src, F.col("category_id")).alias("t_category_id"),
        F.when(~blank(path_text), F.split(path_text, _regex_literal(separator))).alias("t_category_path"),
        F.when(~blank(F.col("brand")), F.lower(F.trim(F.col("brand")))).alias("t_brand"),
        price.alias("t_price"),
        F.trim(F.col("title")).alias("t_title"),
        F.trim(F.col("description")).alias("t_description"),
        updated_at.alias("t_updated_at"),
        *[F.col(c) for c in bronze.columns if c != T.SOURCE],
        F.lit(None).cast("string").alias(T.REASON),
    )
    checks = [
        (F.col(T.MALFORMED), R.MALFORMED_ROW),
        (blank(F.col("item_id")), R.MISSING_FIELD),
        (bad_id(F.col("item_id"), source.id_format) | bad_id(F.col("category_id"), source.id_format), R.BAD_ID),
        (~blank(F.col("updated_at")) & F.col("t_updated_at").isNull(), R.BAD_TIMESTAMP),
        (not_a_product(F.col("item_id"), source.not_a_product), R.NOT_A_PRODUCT),
        (~blank(F.col("price")) & (F.col("t_price").isNull() | (F.col("t_price") <= 0) | (F.col("t_price") > clean.max_price)), R.BAD_PRICE),
    ]
    flagged = R.flag_first(typed, checks)
    return flagged.select(T.SOURCE, *[F.col(f"t_{c}").alias(c) for c in ITEM_FIELDS], *LINEAGE, T.REASON)


def _regex_literal(text: str) -> str:
    return "".join("\\" + ch if not ch.isalnum() else ch for ch in text)


def classify_items(parsed: DataFrame, categories: DataFrame, sources_with_tree: list[str]) -> DataFrame:
    """Keep the newest row per item; reject items whose category is not in the source's tree.

    Where the source has a tree but no path column, the path comes from the tree."""
    items = _latest_wins(parsed, [T.SOURCE, "item_id"], [F.col("updated_at").desc_nulls_last(), F.col(T.INGESTED_AT).desc()])
    tree = categories.select(T.SOURCE, "category_id", F.col("path").alias("_tree_path"), F.lit(True).alias("_in_tree"))
    joined = items.join(tree, [T.SOURCE, "category_id"], "left")
    unknown = F.col(T.SOURCE).isin(*sources_with_tree) & F.col("category_id").isNotNull() & F.col("_in_tree").isNull() if sources_with_tree else F.lit(False)
    flagged = R.flag(joined, unknown, R.UNKNOWN_CATEGORY)
    return flagged.withColumn("category_path", F.coalesce("category_path", "_tree_path")).drop("_tree_path", "_in_tree")


def accepted_items(classified: DataFrame) -> DataFrame:
    return classified.filter(R.pending()).select(T.SOURCE, *ITEM_FIELDS, F.lit("catalog").alias("origin"))


def items_seen_in_events(accepted: DataFrame, sources: list[str]) -> DataFrame:
    """For sources without a catalogue: one item per id seen in accepted events, last price seen."""
    seen = accepted.filter(F.col(T.SOURCE).isin(*sources)) if sources else accepted.limit(0)
    grouped = seen.groupBy(T.SOURCE, "item_id").agg(
        F.max_by("price", F.when(F.col("price").isNotNull(), F.col("event_time"))).alias("price"),
        F.max("event_time").alias("updated_at"),
    )
    return grouped.select(
        T.SOURCE, "item_id",
        F.lit(None).cast("string").alias("category_id"),
        F.lit(None).cast("array<string>").alias("category_path"),
        F.lit(None).cast("string").alias("brand"),
        "price",
        F.lit(None).cast("string").alias("title"),
        F.lit(None).cast("string").alias("description"),
        "updated_at",
        F.lit("events").alias("origin"),
    )
