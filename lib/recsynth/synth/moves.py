"""The real moves between items that the sequence generator may replay as it writes.

The network learns where a person goes next from every training window at once; on a small shop
(the bundled sample: 36,000 training people, 9,000 items) its softmax over the whole vocabulary
spreads mass over items no one went to next, and the item-side models trained on what it writes
learn those pairs as co-occurrences. The Markov chain, which replays the moves real people took,
taught them more (TSTR 0.63x against 0.41x on the sample) but keeps no person's taste across
sessions. `clickstream.sequence.replay` mixes the two: within a session, that share of the steps
take their item from the real moves out of the previous item, where it has any, and the network
writes the rest and every step's event type. Only moves that at least `clickstream.min_people`
people took are replayed, so no move points at one person, as the chain's do not.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.rec.features import ITEM_INDEX
from recsynth.synth.clickstream import Blocks

MAX_SUCCESSORS = 100   # the most-taken moves kept out of each item: what the writer holds stays bounded


def item_moves(steps: DataFrame, vocabulary: DataFrame, min_people: int) -> DataFrame:
    """(item, next, taken): per item index of `vocabulary` (item_id, item_idx), the items taken
    right after it within a session of `steps` (source, user_id, session_id, position, item_id)
    by at least `min_people` people, and how often; the `MAX_SUCCESSORS` most taken per item."""
    index = vocabulary.select("item_id", F.col(ITEM_INDEX).cast("int").alias("_index"))
    following = Window.partitionBy("source", "session_id").orderBy("position")
    pairs = (steps.join(index, "item_id").withColumn("_next", F.lead("_index").over(following))
             .where(F.col("_next").isNotNull()))
    counted = pairs.groupBy(F.col("_index").alias("item"), F.col("_next").alias("next")).agg(
        F.countDistinct("user_id").alias("_people"), F.count(F.lit(1)).alias("taken")).where(
        F.col("_people") >= min_people)
    ranked = Window.partitionBy("item").orderBy(F.desc("taken"), "next")
    return counted.withColumn("_rank", F.row_number().over(ranked)).where(F.col("_rank") <= MAX_SUCCESSORS) \
        .select("item", "next", "taken")


def successor_blocks(moves: DataFrame, items: int) -> Blocks:
    """`item_moves` as weighted choices by item index (0..`items` - 1), for the writer; at most
    `MAX_SUCCESSORS` rows per item reach the driver."""
    return Blocks.of(items, [(r["item"], r["next"], r["taken"]) for r in moves.collect()])
