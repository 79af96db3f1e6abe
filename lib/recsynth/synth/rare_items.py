"""Rare items in the sequence generator: learnt as stand-ins, written as catalogue items.

An item that fewer than `clickstream.min_people` real people touched is never replayed: it would
point at the few people who touched it. Leaving its steps out of training skews what the
generator learns, though. On the bundled sample such steps are a third of the views but an
eighth of the carts, so event types learnt on the shared steps alone come out with too many
carts. So each rare step stays in training as a stand-in item, one per source and top-level
category (`with_stand_ins`). A stand-in the generator writes becomes a catalogue item of that
category outside the generator's vocabulary (`filled_stand_ins`), drawn uniformly by a seeded
hash. A step on the same stand-in as the step before stays on that step's item as often as real
people stayed on one rare item there (`same_item_shares`, by the two steps' event types), and
otherwise draws another: on the bundled sample a cart after a view of the category's rare item
is that item 93% of the time, a view after a view 36%. (One item per run of a stand-in made 96%
of the moves out of a rare item repeats, against 25% real.)

The items are drawn from the catalogue, not from the rare items real people touched, so neither
the training people's nor the holdout people's items are favoured. A category with no catalogue
item outside the vocabulary draws from its source's whole catalogue.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsynth.etl.gold import UNKNOWN_CATEGORY
from recsynth.synth.clickstream import indexed, seeded_uniform

STAND_IN = "~rare~"   # stand-ins' ids start with this; catalogue ids are "<source>:<id>" (silver), so none does
POOL = "_pool"


def stand_in_id(source: Column, category: Column) -> Column:
    """The stand-in item of a source's category (the unknown category where it is null)."""
    return F.concat(F.lit(STAND_IN), source, F.lit("~"), F.coalesce(category, F.lit(UNKNOWN_CATEGORY)))


def _source_pool(source: Column) -> Column:
    return F.concat(F.lit(STAND_IN), source)


def with_stand_ins(steps: DataFrame, shared: DataFrame, item_categories: DataFrame) -> DataFrame:
    """`steps` (with source, item_id) where each step on an item not in `shared` (source,
    item_id) is on its stand-in instead, by its category in `item_categories` (source, item_id,
    category)."""
    marked = shared.select("source", "item_id", F.lit(True).alias("_shared"))
    categories = item_categories.select("source", "item_id", F.col("category").alias("_category"))
    joined = steps.join(marked, ["source", "item_id"], "left").join(categories, ["source", "item_id"], "left")
    item = F.when(F.col("_shared"), F.col("item_id")).otherwise(stand_in_id(F.col("source"), F.col("_category")))
    return joined.select(*[item.alias(c) if c == "item_id" else F.col(c) for c in steps.columns])


def stand_in_pools(catalogue: DataFrame, known: DataFrame) -> tuple[DataFrame, DataFrame]:
    """What stand-ins are drawn from, as an indexed table and its sizes (`clickstream.indexed`,
    by source and pool): the items of `catalogue` (source, item_id, category) outside `known`
    (item_id: the generator's vocabulary, bounded) in their category's pool, and every
    catalogue item of a source in the source's pool."""
    outside = catalogue.join(F.broadcast(known.select("item_id")), "item_id", "left_anti")
    pools = outside.select("source", stand_in_id(F.col("source"), F.col("category")).alias(POOL), "item_id") \
        .unionByName(catalogue.select("source", _source_pool(F.col("source")).alias(POOL), "item_id"))
    return indexed(pools, ["source", POOL], ["item_id"])


def same_item_shares(steps: DataFrame, shared: DataFrame, item_categories: DataFrame) -> DataFrame:
    """(source, _type_before, event_type, _same): of the steps of `steps` (`clickstream.session_steps`)
    on the same stand-in as the step before them in their session (`with_stand_ins`: rare items of
    one category, by `shared` and `item_categories`), the share on the very item before, by the
    two steps' event types."""
    tokens = with_stand_ins(steps.withColumn("_item", F.col("item_id")), shared, item_categories)
    session = Window.partitionBy("source", "session_id").orderBy("position")
    pairs = tokens.select("source", "event_type", "item_id", "_item", F.lag("item_id").over(session).alias("_token_before"),
                          F.lag("_item").over(session).alias("_item_before"),
                          F.lag("event_type").over(session).alias("_type_before"))
    return pairs.where(F.col("item_id").startswith(STAND_IN) & (F.col("_token_before") == F.col("item_id"))) \
        .groupBy("source", "_type_before", "event_type").agg(
            F.avg((F.col("_item") == F.col("_item_before")).cast("double")).alias("_same"))


def filled_stand_ins(steps: DataFrame, pools: tuple[DataFrame, DataFrame], same: DataFrame, seed: int) -> DataFrame:
    """Written `steps` (source, user_id, session_id, position, item_id, event_type, ...) with every
    stand-in replaced by an item of its pool (`stand_in_pools`), its source's pool when its
    category's is empty. A step on the stand-in of the step before keeps that step's item with
    the probability `same` gives its source and two event types (`same_item_shares`; 1 where it
    has none), else it draws again; draws by `seed`, the session and the step. One pass over the
    steps (the other steps go through the same left joins unchanged), so the written steps are
    read once, not once per branch of a union."""
    table, sizes = pools
    session = Window.partitionBy("source", "user_id", "session_id").orderBy("position")
    stays = (F.lag("item_id").over(session) == F.col("item_id")) & (
        seeded_uniform(seed, "stand_in_stays", "session_id", "position") < F.coalesce("_same", F.lit(1.0)))
    runs = (steps.withColumn("_type_before", F.lag("event_type").over(session))
            .join(F.broadcast(same), ["source", "_type_before", "event_type"], "left")
            .withColumn("_run", F.sum((~F.coalesce(stays, F.lit(False))).cast("int")).over(session)))
    filled_pools = F.broadcast(sizes.select("source", F.col(POOL).alias("item_id"), F.lit(True).alias("_filled")))
    pool = (F.when(~F.col("item_id").startswith(STAND_IN), F.lit(None))
            .when(F.col("_filled"), F.col("item_id")).otherwise(_source_pool(F.col("source"))))
    drawn = (runs.join(filled_pools, ["source", "item_id"], "left").withColumn(POOL, pool)
             .join(F.broadcast(sizes), ["source", POOL], "left")
             .withColumn("_k", F.floor(seeded_uniform(seed, "stand_in", "session_id", "_run") * F.col("_n"))
                         .cast("long")))
    picked = table.select("source", POOL, "_k", F.col("item_id").alias("_picked"))
    filled = drawn.join(picked, ["source", POOL, "_k"], "left").select(
        *[F.coalesce("_picked", "item_id").alias(c) if c == "item_id" else F.col(c) for c in steps.columns])
    return filled.where(~F.col("item_id").startswith(STAND_IN))   # a source without a catalogue: no item to write
