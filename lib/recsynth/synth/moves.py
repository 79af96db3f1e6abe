"""The real moves between items that the sequence generator may replay as it writes.

The network learns where a person goes next from every training window at once; on a small shop
(the bundled sample: 36,000 training people, 9,000 items) its softmax over the whole vocabulary
spreads mass over items no one went to next, and the item-side models trained on what it writes
learn those pairs as co-occurrences. The Markov chain, which replays the moves real people took,
taught them more (TSTR 0.63x on the sample, on a plan where the generator reached 0.31x) but
keeps no person's taste across sessions. `clickstream.sequence.replay` mixes the two: within a session, that share of the steps
take their item from the real moves out of the previous item, where it has any, and the network
writes the rest and every step's event type. Only moves that at least `clickstream.min_people`
people took are replayed, so no move points at one person, as the chain's do not. Two common
moves can still chain into a path only one person took, and on Online Retail's long invoices
replaying moves alone put training people's distinctive 3-item paths into the output 0.094 of
the time against the holdout's 0.057 (the gate allows 0.02 more). So a replayed step draws only
among the moves that do not complete, with the two steps before it in its session, a 3-item path
that fewer than `min_people` people took (`Replay.replayed`). Which of the real moves a person
takes can follow the crowd (how often each was taken) or also the network's reading of the
person (`clickstream.sequence.replay_taste`).

The network itself can write a training person's own path back. Whatever writes a step, it
never completes a 3-item path that fewer than `clickstream.privacy.min_ngram_support` training
people took (`distinctive_paths`, read as the privacy gate reads a person: their items across
sessions, a repeat collapsed); the writer draws again from the network without that item
(`clickstream.sequence.avoid_distinctive_paths`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.rec.features import ITEM_INDEX
from recsynth.synth.clickstream import Blocks
from recsynth.synth.rare_items import STAND_IN

MAX_SUCCESSORS = 100   # the most-taken moves kept out of each item, and paths into each kept move: what the
                       # writer holds stays bounded (items x 100 moves, x 100 paths)


def _neighbours(steps: DataFrame, vocabulary: DataFrame) -> DataFrame:
    """`steps` by item index (`_index`), with the items before (`_before`) and after (`_next`)
    each within its session: what both the moves and the paths count."""
    index = vocabulary.select("item_id", F.col(ITEM_INDEX).cast("int").alias("_index"))
    session = Window.partitionBy("source", "session_id").orderBy("position")
    return steps.join(index, "item_id").withColumn("_before", F.lag("_index").over(session)) \
        .withColumn("_next", F.lead("_index").over(session))


def item_moves(steps: DataFrame, vocabulary: DataFrame, min_people: int) -> DataFrame:
    """(item, next, taken): per item index of `vocabulary` (item_id, item_idx), the items taken
    right after it within a session of `steps` (source, user_id, session_id, position, item_id)
    by at least `min_people` people, and how often; the `MAX_SUCCESSORS` most taken per item."""
    pairs = _neighbours(steps, vocabulary).where(F.col("_next").isNotNull())
    counted = pairs.groupBy(F.col("_index").alias("item"), F.col("_next").alias("next")).agg(
        F.countDistinct("user_id").alias("_people"), F.count(F.lit(1)).alias("taken")).where(
        F.col("_people") >= min_people)
    ranked = Window.partitionBy("item").orderBy(F.desc("taken"), "next")
    return counted.withColumn("_rank", F.row_number().over(ranked)).where(F.col("_rank") <= MAX_SUCCESSORS) \
        .select("item", "next", "taken")


def item_paths(steps: DataFrame, vocabulary: DataFrame, moves: DataFrame, min_people: int, items: int) -> DataFrame:
    """(path long): the 3-item paths within a session of `steps` that at least `min_people`
    people took, each as one code of its item indices (`path_code`; `items` indices). Only the
    paths a replayed step can ask about: those ending in one of `moves` (`item_moves`), the
    `MAX_SUCCESSORS` most taken into each."""
    triples = _neighbours(steps, vocabulary).where(F.col("_before").isNotNull() & F.col("_next").isNotNull())
    counted = triples.groupBy("_before", F.col("_index").alias("item"), F.col("_next").alias("next")).agg(
        F.countDistinct("user_id").alias("_people"), F.count(F.lit(1)).alias("_taken")).where(
        F.col("_people") >= min_people).join(moves.select("item", "next"), ["item", "next"], "left_semi")
    ranked = Window.partitionBy("item", "next").orderBy(F.desc("_taken"), "_before")
    return counted.withColumn("_rank", F.row_number().over(ranked)).where(F.col("_rank") <= MAX_SUCCESSORS).select(
        path_code(F.col("_before"), F.col("item"), F.col("next"), items).alias("path"))


def distinctive_paths(steps: DataFrame, vocabulary: DataFrame, min_support: int, items: int) -> np.ndarray:
    """The sorted codes (`path_code`) of the 3-item paths of `steps`' people that fewer than
    `min_support` of them took: each person's items in time order across their sessions, a
    repeat of the item before collapsed (as `person_privacy.paths` cuts the paths whose
    exposure the privacy gate measures), over the items of `vocabulary` but its stand-ins (a
    written stand-in becomes a catalogue item at random, no one's path)."""
    person = Window.partitionBy("source", "user_id").orderBy("event_time", "session_id", "position")
    collapsed = steps.withColumn("_before", F.lag("item_id").over(person)).where(
        F.col("_before").isNull() | (F.col("_before") != F.col("item_id")))
    grams = collapsed.select("source", "user_id", F.col("item_id").alias("_a"),
                             F.lead("item_id", 1).over(person).alias("_b"), F.lead("item_id", 2).over(person).alias("_c"))
    index = vocabulary.where(~F.col("item_id").startswith(STAND_IN)).select("item_id", F.col(ITEM_INDEX).cast("long"))
    for name in ("_a", "_b", "_c"):
        grams = grams.join(F.broadcast(index.withColumnRenamed("item_id", name).withColumnRenamed(ITEM_INDEX, f"{name}i")),
                           name)
    rare = grams.groupBy("_ai", "_bi", "_ci").agg(F.countDistinct("source", "user_id").alias("_people")).where(
        F.col("_people") < min_support).select(path_code(F.col("_ai"), F.col("_bi"), F.col("_ci"), items).alias("path"))
    return np.sort(np.array([r["path"] for r in rare.collect()], dtype=np.int64))


def closes_distinctive(distinctive: np.ndarray, second: np.ndarray, last: np.ndarray, item: np.ndarray,
                       items: int) -> np.ndarray:
    """Whether writing `item` after a person's path ends in `second`, `last` (its last two items,
    a repeat collapsed; -1: none yet) completes one of the `distinctive` 3-item paths (sorted codes)."""
    codes = path_code(np.maximum(second, 0), np.maximum(last, 0), item.astype(np.int64), items)
    return (second >= 0) & (item != last) & sorted_member(distinctive, codes)


def sorted_member(codes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Whether each of `found` is in the sorted array `codes`."""
    if not len(codes):
        return np.zeros(len(found), dtype=bool)
    return codes[np.minimum(np.searchsorted(codes, found), len(codes) - 1)] == found


def path_code(before, item, following, items: int):
    """A 3-item path as one number (item indices below `items`, so distinct paths differ); works
    on Spark columns and on numpy arrays alike."""
    return (before * items + item) * items + following


@dataclass(frozen=True)
class Replay:
    """What the writer replays: the moves out of each item (weighted choices by item index), the
    sorted codes of the 3-item paths enough people took, and the number of item indices."""
    moves: Blocks
    paths: np.ndarray
    items: int

    def replayed(self, before: np.ndarray, previous: np.ndarray, chosen: np.ndarray, third: np.ndarray,
                 u: np.ndarray, scores: np.ndarray | None = None,
                 taste: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Which steps replay, and the item each takes (by u): those `chosen` (within a session, by
        the replay share) whose `previous` item has a move. A step at least its session's `third`
        draws only among the moves that close, from the item `before` the previous one, a path in
        `paths` (none: it does not replay), so that no replayed step completes a 3-item path fewer
        people took. A move is drawn by how often people took it, times its probability under the
        network's `scores` (a row per step, a column per item) to the power `taste`: at 0 every
        person takes the crowd's moves; at 1 the network, which has read the person's earlier
        steps, picks among them (a product of the two)."""
        rows = np.flatnonzero(chosen & self.moves.offers(previous))

        def weigh(row: np.ndarray, following: np.ndarray) -> np.ndarray:
            step = rows[row]
            factor = np.ones(len(row))
            if taste:
                logits = scores[step, following]
                firsts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
                factor = np.exp(taste * (logits - np.maximum.reduceat(logits, firsts)[row]))
            codes = path_code(before[step].astype(np.int64), previous[step].astype(np.int64), following, self.items)
            return np.where(~third[step] | sorted_member(self.paths, codes), factor, 0.0)

        drawn = np.full(len(previous), -1, dtype=np.int64)
        if len(rows):
            drawn[rows] = self.moves.draw_weighed(previous[rows], u[rows], weigh)
        return drawn >= 0, np.maximum(drawn, 0)


def replay_of(steps: DataFrame, vocabulary: DataFrame, min_people: int, items: int) -> Replay:
    """`item_moves` and `item_paths` of the training steps, for the writer: at most
    `MAX_SUCCESSORS` moves per item, and as many 3-item paths into each, reach the driver."""
    kept = item_moves(steps, vocabulary, min_people).collect()
    moves = Blocks.of(items, [(r["item"], r["next"], r["taken"]) for r in kept])
    paths = item_paths(steps, vocabulary, steps.sparkSession.createDataFrame(
        [(r["item"], r["next"]) for r in kept], "item int, next int"), min_people, items)
    return Replay(moves, np.sort(np.array([r["path"] for r in paths.collect()], dtype=np.int64)), items)
