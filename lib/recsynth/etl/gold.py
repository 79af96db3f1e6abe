"""silver.events + silver.items -> the gold tables that training and analysis read.

gold.behavior is the table the GAN learns: one row per session, mixing categorical columns
(source, start_hour, day_of_week, top_category, purchased) and continuous ones (counts,
duration, prices, spend). docs/TABLES.md describes every column.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import GoldConf


def _count_of(event_type: str):
    return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0))


def _type_counts():
    """n_views, n_carts, n_purchases of a group."""
    return [_count_of(t).alias(f"n_{t}s") for t in ("view", "cart", "purchase")]


def _weight(weights: dict[str, float]):
    expression = F.lit(0.0)
    for event_type, weight in weights.items():
        expression = F.when(F.col("event_type") == event_type, F.lit(float(weight))).otherwise(expression)
    return expression


def interactions(events: DataFrame, weights: dict[str, float]) -> DataFrame:
    """One row per (user, item): event counts, a weighted strength, first and last time."""
    return events.groupBy(T.SOURCE, "user_id", "item_id").agg(
        *_type_counts(),
        F.sum(_weight(weights)).alias("weight"),
        F.min("event_time").alias("first_time"),
        F.max("event_time").alias("last_time"),
    )


def user_features(events: DataFrame, interactions: DataFrame, behavior: DataFrame) -> DataFrame:
    """Per user activity: volume, breadth, conversion, recency span.

    Built from the (much smaller) interactions and sessions tables; only the active days need
    the events, as a single distinct count."""
    by_items = interactions.groupBy(T.SOURCE, "user_id").agg(
        F.sum(F.col("n_views") + F.col("n_carts") + F.col("n_purchases")).alias("n_events"),
        F.count(F.lit(1)).alias("n_items"),
        *[F.sum(c).alias(c) for c in ("n_views", "n_carts", "n_purchases")],
        F.min("first_time").alias("first_seen"),
        F.max("last_time").alias("last_seen"),
    )
    by_sessions = behavior.groupBy(T.SOURCE, "user_id").agg(F.count(F.lit(1)).alias("n_sessions"))
    by_days = events.groupBy(T.SOURCE, "user_id").agg(F.countDistinct("event_date").alias("active_days"))
    joined = by_items.join(by_sessions, [T.SOURCE, "user_id"]).join(by_days, [T.SOURCE, "user_id"])
    return joined.select(
        T.SOURCE, "user_id", "n_events", "n_sessions", "n_items", "n_views", "n_carts", "n_purchases", "active_days",
        "first_seen", "last_seen",
        (F.col("n_events") / F.col("n_sessions")).alias("events_per_session"),
        (F.col("n_purchases") / F.col("n_sessions")).alias("purchase_rate"),
    )


def price_band(price, edges: list[float]):
    """The number of band edges at or below the price (0 .. len(edges)); null for no price."""
    band = F.lit(0)
    for edge in edges:
        band = band + F.when(price >= F.lit(float(edge)), 1).otherwise(0)
    return F.when(price.isNotNull(), band)


def item_features(interactions: DataFrame, items: DataFrame, edges: list[float]) -> DataFrame:
    """Per item: catalogue attributes (category levels, brand, price band) and popularity,
    from the interactions (one row per user and item, so users are counted by rows)."""
    activity = interactions.groupBy(T.SOURCE, "item_id").agg(
        *[F.sum(c).alias(c) for c in ("n_views", "n_carts", "n_purchases")],
        F.count(F.lit(1)).alias("n_users"),
        F.sum("weight").alias("popularity"),
    )
    joined = items.join(activity, [T.SOURCE, "item_id"], "left").fillna(0, ["n_views", "n_carts", "n_purchases", "n_users", "popularity"])
    by_source = Window.partitionBy(T.SOURCE).orderBy(F.col("popularity").desc(), "item_id")
    return joined.select(
        T.SOURCE, "item_id", "category_id",
        F.element_at("category_path", 1).alias("category_l1"),
        F.element_at("category_path", 2).alias("category_l2"),
        F.array_join("category_path", "/").alias("category_path"),
        "brand", "price",
        price_band(F.col("price"), edges).alias("price_band"),
        "n_views", "n_carts", "n_purchases", "n_users", "popularity",
        F.when(F.col("n_views") > 0, F.col("n_purchases") / F.col("n_views")).alias("conversion_rate"),
        F.row_number().over(by_source).alias("popularity_rank"),
    )


def behavior(events: DataFrame, items: DataFrame) -> DataFrame:
    """One row per session: the GAN's training table (mixed categorical and continuous)."""
    with_category = events.join(
        items.select(T.SOURCE, "item_id", F.element_at("category_path", 1).alias("category_l1")),
        [T.SOURCE, "item_id"], "left",
    ).withColumn("category_l1", F.coalesce("category_l1", F.lit("unknown")))
    per_category = with_category.groupBy(T.SOURCE, "session_id", "category_l1").agg(F.count(F.lit(1)).alias("_n"))
    # the most frequent category wins; among equals, the first in alphabetical order
    categories = per_category.groupBy(T.SOURCE, "session_id").agg(
        F.min(F.struct((-F.col("_n")).alias("_rank"), "category_l1"))["category_l1"].alias("top_category"),
        F.count(F.lit(1)).alias("n_categories"),
    )
    sessions = with_category.groupBy(T.SOURCE, "session_id").agg(
        F.first("user_id").alias("user_id"),
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("_end"),
        F.count(F.lit(1)).alias("n_events"),
        *_type_counts(),
        F.countDistinct("item_id").alias("n_items"),
        F.avg("price").alias("mean_price"),
        F.max("price").alias("max_price"),
        F.sum(F.when(F.col("event_type") == "purchase", F.col("price"))).alias("spend"),
    )
    return sessions.join(categories, [T.SOURCE, "session_id"]).select(
        T.SOURCE, "session_id", "user_id", "session_start",
        F.hour("session_start").alias("start_hour"),
        F.date_format("session_start", "E").alias("day_of_week"),
        (F.col("_end").cast("double") - F.col("session_start").cast("double")).alias("duration_s"),
        "n_events", "n_views", "n_carts", "n_purchases", "n_items", "n_categories",
        "mean_price", "max_price", F.coalesce("spend", F.lit(0.0)).alias("spend"),
        "top_category",
        (F.col("n_purchases") > 0).alias("purchased"),
    )


def split_cutoffs(events: DataFrame, conf: GoldConf) -> DataFrame:
    """Per source: validation_start and test_start, from conf (absolute) or event-time quantiles."""
    splits = conf.splits
    if splits.mode == "absolute":
        rows = [(name, cut.validation_start, cut.test_start) for name, cut in splits.cutoffs.items()]
        literal = events.sparkSession.createDataFrame(rows, f"{T.SOURCE} string, validation_start string, test_start string")
        return literal.select(T.SOURCE, F.to_timestamp("validation_start").alias("validation_start"), F.to_timestamp("test_start").alias("test_start"))
    lower = 1.0 - splits.validation_fraction - splits.test_fraction
    upper = 1.0 - splits.test_fraction
    quantiles = F.percentile_approx(F.col("event_time").cast("double"), [lower, upper], 10000)
    return events.groupBy(T.SOURCE).agg(quantiles.alias("_q")).select(
        T.SOURCE,
        F.timestamp_seconds(F.col("_q")[0]).alias("validation_start"),
        F.timestamp_seconds(F.col("_q")[1]).alias("test_start"),
    )


def splits(events: DataFrame, cutoffs: DataFrame) -> DataFrame:
    """Every accepted event labelled train / validation / test by its time."""
    labelled = events.join(F.broadcast(cutoffs), T.SOURCE, "left")
    split = (
        F.when(F.col("event_time") >= F.col("test_start"), "test")
        .when(F.col("event_time") >= F.col("validation_start"), "validation")
        .otherwise("train")
    )
    return labelled.select(T.SOURCE, "event_id", "user_id", "session_id", "item_id", "event_type", "event_time", split.alias("split"))
