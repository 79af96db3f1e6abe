"""Synthetic interactions for the augmentation experiment: does the recommender get better when
it also trains on synthetic behaviour?

`synthetic.behavior` holds sessions, not items: the GAN learns a session's shape (source, top
category, how many items, hour, ...), never which item a real user touched. So each synthetic
session becomes a pseudo-user whose `n_items` items are drawn from its top category with that
category's real popularity in the training period. What the synthetic data adds is therefore
*how many* sessions of each category and size there are, not item-level taste; the experiment
measures whether that helps, whichever way it goes.

Drawing is an equi-join, not a range join: each (source, category) gets `slots` slots, slot s
belonging to the item whose cumulative popularity interval holds (s + 0.5) / slots, and each
drawn item is a random slot. Items with less than 1/slots of their category's users may get no
slot (they are never drawn). Sessions whose category has no item (e.g. the GAN's `__other__`)
draw nothing. Pseudo-user ids start with `synthetic:` and can never equal a real id.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import EVENT_TIME, ITEM_ID, USER_ID, require_positive
from recsynth.rec.metrics import N_USERS, item_popularity

SYNTHETIC_USER_PREFIX = "synthetic:"
SOURCE = "source"
CATEGORY = "category_l1"
UNKNOWN_CATEGORY = "unknown"  # what gold.behavior's top_category says for items without a category
SESSION_COLUMNS = ("synthetic_id", SOURCE, "top_category", "n_items")


def category_slots(train_events: DataFrame, item_features: DataFrame, slots: int) -> DataFrame:
    """(source, category_l1, slot, item_id): `slots` slots per category, shared out by the items'
    distinct training users."""
    require_columns(train_events, "train_events", (USER_ID, ITEM_ID), RecommenderError)
    require_columns(item_features, "item_features", (SOURCE, ITEM_ID, CATEGORY), RecommenderError)
    users = item_popularity(train_events).withColumnRenamed(N_USERS, "_users")
    items = item_features.select(SOURCE, ITEM_ID, F.coalesce(CATEGORY, F.lit(UNKNOWN_CATEGORY)).alias(CATEGORY))
    popular = items.join(users, ITEM_ID)
    category = Window.partitionBy(SOURCE, CATEGORY)
    running = category.orderBy(F.desc("_users"), ITEM_ID).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    shares = popular.select(
        SOURCE, CATEGORY, ITEM_ID,
        ((F.sum("_users").over(running) - F.col("_users")) / F.sum("_users").over(category)).alias("_low"),
        (F.sum("_users").over(running) / F.sum("_users").over(category)).alias("_high"),
    )
    # slot s is the item's when low <= (s + 0.5) / slots < high
    first = F.ceil(F.col("_low") * slots - 0.5).cast("int")
    last = (F.ceil(F.col("_high") * slots - 0.5) - 1).cast("int")
    return (shares.filter(last >= first)
            .select(SOURCE, CATEGORY, ITEM_ID, F.explode(F.sequence(first, last)).alias("slot")))


def synthetic_events(sessions: DataFrame, train_events: DataFrame, item_features: DataFrame, *, seed: int,
                     start_time: dt.datetime, slots: int = 1000, max_items_per_session: int = 50) -> DataFrame:
    """(user_id, item_id, event_time) of pseudo-users made from synthetic sessions: items drawn
    from the session's top category by popularity, one second apart from `start_time`."""
    require_columns(sessions, "synthetic sessions", SESSION_COLUMNS, RecommenderError)
    require_positive("slots", slots)
    require_positive("max_items_per_session", max_items_per_session)
    count = F.least(F.greatest(F.coalesce(F.col("n_items").cast("int"), F.lit(1)), F.lit(1)), F.lit(max_items_per_session))
    draws = sessions.select(
        F.concat(F.lit(SYNTHETIC_USER_PREFIX), F.col("synthetic_id")).alias(USER_ID),
        F.col(SOURCE), F.col("top_category").alias(CATEGORY),
        F.explode(F.sequence(F.lit(1), count)).alias("_position"),
    ).withColumn("slot", F.floor(F.rand(seed) * slots).cast("int"))
    drawn = draws.join(category_slots(train_events, item_features, slots), [SOURCE, CATEGORY, "slot"])
    seconds = F.lit(start_time).cast("timestamp").cast("long") + F.col("_position")
    return drawn.select(USER_ID, ITEM_ID, seconds.cast("timestamp").alias(EVENT_TIME))
