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


PURCHASE = "purchase"


def _count_of(event_type: str):
    return F.sum(F.when(F.col("event_type") == event_type, 1).otherwise(0))


def _units(events: DataFrame):
    """An event's quantity: 1 for frames without one (sources without quantities, synthetic events)."""
    return F.col("quantity") if "quantity" in events.columns else F.lit(1)


def _purchased_units(events: DataFrame):
    return F.sum(F.when(F.col("event_type") == PURCHASE, _units(events)).otherwise(0))


def _type_counts():
    """n_views, n_carts, n_purchases of a group."""
    return [_count_of(t).alias(f"n_{t}s") for t in ("view", "cart", "purchase")]


def _weight(weights: dict[str, float], units, purchase_quantity: str):
    """An event's weight: its type's weight; a purchase's times its units (`units`) or
    1 + ln(units) (`log_units`) where gold.purchase_quantity says so."""
    by_units = {"one": F.lit(1.0), "units": units.cast("double"), "log_units": 1.0 + F.log(units.cast("double"))}
    expression = F.lit(0.0)
    for event_type, weight in weights.items():
        scale = by_units[purchase_quantity] if event_type == PURCHASE else F.lit(1.0)
        expression = F.when(F.col("event_type") == event_type, F.lit(float(weight)) * scale).otherwise(expression)
    return expression


def interactions(events: DataFrame, weights: dict[str, float], purchase_quantity: str = "one") -> DataFrame:
    """One row per (user, item): event counts, purchased units, a weighted strength, first and last time."""
    return events.groupBy(T.SOURCE, "user_id", "item_id").agg(
        *_type_counts(),
        _purchased_units(events).alias("n_units"),
        F.sum(_weight(weights, _units(events), purchase_quantity)).alias("weight"),
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


UNKNOWN_CATEGORY = "unknown"   # a session's category where its item has none in the catalogue


def session_categories(events: DataFrame, category: str) -> DataFrame:
    """(source, session_id, top_category, n_categories) from events with a `category` column: the
    most frequent category wins; among equals, the first in alphabetical order."""
    per_category = events.groupBy(T.SOURCE, "session_id", category).agg(F.count(F.lit(1)).alias("_n"))
    return per_category.groupBy(T.SOURCE, "session_id").agg(
        F.min(F.struct((-F.col("_n")).alias("_rank"), category))[category].alias("top_category"),
        F.count(F.lit(1)).alias("n_categories"),
    )


def behavior(events: DataFrame, items: DataFrame) -> DataFrame:
    """One row per session: the GAN's training table (mixed categorical and continuous)."""
    with_category = events.join(
        items.select(T.SOURCE, "item_id", F.element_at("category_path", 1).alias("category_l1")),
        [T.SOURCE, "item_id"], "left",
    ).withColumn("category_l1", F.coalesce("category_l1", F.lit(UNKNOWN_CATEGORY)))
    categories = session_categories(with_category, "category_l1")
    sessions = with_category.groupBy(T.SOURCE, "session_id").agg(
        F.first("user_id").alias("user_id"),
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("_end"),
        F.count(F.lit(1)).alias("n_events"),
        *_type_counts(),
        F.countDistinct("item_id").alias("n_items"),
        _purchased_units(events).alias("n_units"),
        F.avg("price").alias("mean_price"),
        F.max("price").alias("max_price"),
        F.sum(F.when(F.col("event_type") == PURCHASE, _units(events) * F.col("price"))).alias("spend"),
    )
    return sessions.join(categories, [T.SOURCE, "session_id"]).select(
        T.SOURCE, "session_id", "user_id", "session_start",
        F.hour("session_start").alias("start_hour"),
        F.date_format("session_start", "E").alias("day_of_week"),
        (F.col("_end").cast("double") - F.col("session_start").cast("double")).alias("duration_s"),
        "n_events", "n_views", "n_carts", "n_purchases", "n_units", "n_items", "n_categories",
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


def _with_split(events: DataFrame, cutoffs: DataFrame) -> DataFrame:
    """`events` with `split`: train / validation / test by the event's time and its source's cut-offs."""
    labelled = events.join(F.broadcast(cutoffs), T.SOURCE, "left")
    split = (
        F.when(F.col("event_time") >= F.col("test_start"), "test")
        .when(F.col("event_time") >= F.col("validation_start"), "validation")
        .otherwise("train")
    )
    return labelled.withColumn("split", split).drop("validation_start", "test_start")


def splits(events: DataFrame, cutoffs: DataFrame) -> DataFrame:
    """Every accepted event labelled train / validation / test by its time, with its price: a
    period's sessions can be summarised from it (`behavior`)."""
    return _with_split(events, cutoffs).select(T.SOURCE, "event_id", "user_id", "session_id", "item_id", "event_type",
                                               "event_time", "price", _units(events).alias("quantity"), "split")


def net_of_returns(events: DataFrame, returns: DataFrame, cutoffs: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Net purchases of returns: (events, return counts per source).

    A return is matched against the same user's purchases of the item in the same split period,
    up to the units bought before it; a group's matched units (at most what it bought) are taken
    from its purchase lines oldest first. A line all of whose units went back leaves the events; a
    partly returned one keeps the rest as its quantity. Returns with nothing bought before them
    are counted (unmatched), not netted. Counts: source, return_lines, unmatched_lines,
    returned_units, netted_units."""
    key = [T.SOURCE, "user_id", "item_id", "split"]
    is_return = F.col("_is_return")
    lines = (_with_split(events.where(F.col("event_type") == PURCHASE), cutoffs)
             .select(*key, "event_id", "event_time", "quantity", F.lit(False).alias("_is_return"))
             .unionByName(_with_split(returns, cutoffs)
                          .select(*key, "event_id", "event_time", "quantity", F.lit(True).alias("_is_return"))))
    in_time = Window.partitionBy(*key).orderBy("event_time", "_is_return", "event_id")
    group = Window.partitionBy(*key)
    bought = F.when(~is_return, F.col("quantity")).otherwise(0)
    lines = lines.withColumn("_bought_so_far", F.sum(bought).over(in_time.rowsBetween(Window.unboundedPreceding, 0)))
    matched = F.when(is_return, F.least("quantity", "_bought_so_far"))
    lines = lines.withColumn("_netted", F.least(F.coalesce(F.sum(matched).over(group), F.lit(0)), F.sum(bought).over(group)))
    taken = F.least(F.greatest(F.col("_netted") - (F.col("_bought_so_far") - F.col("quantity")), F.lit(0)), F.col("quantity"))
    lines = lines.withColumn("_taken", F.when(~is_return, taken))
    left = lines.where(~is_return & (F.col("_taken") > 0)).select("event_id", (F.col("quantity") - F.col("_taken")).alias("_left"))
    netted = (events.join(left, "event_id", "left")
              .withColumn("quantity", F.coalesce(F.col("_left").cast("int"), "quantity")).drop("_left")
              .where(F.col("quantity") > 0))
    counts = lines.groupBy(T.SOURCE).agg(
        F.sum(is_return.cast("long")).alias("return_lines"),
        F.sum((is_return & (F.col("_bought_so_far") == 0)).cast("long")).alias("unmatched_lines"),
        F.sum(F.when(is_return, F.col("quantity")).otherwise(0)).cast("long").alias("returned_units"),
        F.sum(F.when(~is_return, F.col("_taken")).otherwise(0)).cast("long").alias("netted_units"),
    ).where(F.col("return_lines") > 0)
    return netted, counts
