"""Inputs of the sequence generator (the sequence model of `recsynth.rec.sequence` with
`generator` on), as pure DataFrame transforms.

A person's sequence is every step of every session (`clickstream.session_steps`: repeats kept,
so sessions keep their real lengths), sessions in the order they started, as (item index, type
index) tokens: the type index is the event type's (1 view, 2 cart, 3 purchase), + 3 on a
session's last step (the next token opens a new session). The sequence opens with a begin token
(the out-of-vocabulary index, "view", + 3), so that the first step of the first session is a
target too. Only `vocabulary` items are steps: an item fewer than `clickstream.min_people` real
people touched is left out of the sequence, as the Markov chain leaves it out of its states.

A synthetic person's plan is their sessions (id, length, start and duration from real templates)
in start order, the rows the walker (`recsynth.synth.sequence_walker`) fills in.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.rec.features import ITEM_INDEX, OOV
from recsynth.rec.sequence import EVENT_TYPES, SOURCE_INDEX
from recsynth.rec.sequence_features import SEQUENCE, source_index_column

SESSION_END = len(EVENT_TYPES)   # added to a type index on a session's last step
BEGIN = (OOV, 1 + SESSION_END)   # the token every sequence opens with
PLAN = "sessions"


def person_sequences(steps: DataFrame, vocabulary: DataFrame, sources: dict[str, int]) -> DataFrame:
    """(source, user_id, source_idx, _sequence array<struct<item, type>>) from `steps` (source,
    user_id, session_id, position, item_id, event_type, event_time) and `vocabulary` (item_id,
    item_idx)."""
    kinds = F.create_map(*[F.lit(x) for index, kind in enumerate(EVENT_TYPES) for x in (kind, index + 1)])
    opened = F.min("event_time").over(Window.partitionBy("source", "session_id"))
    tokens = (steps.join(vocabulary.select("item_id", ITEM_INDEX), "item_id")
              .select("source", "user_id", "session_id", "position", opened.alias("_opened"),
                      F.col(ITEM_INDEX).cast("int").alias("item"),
                      F.coalesce(kinds[F.col("event_type")], F.lit(1)).cast("int").alias("type")))
    ordered = tokens.groupBy("source", "user_id").agg(F.sort_array(F.collect_list(
        F.struct("_opened", "session_id", "position", "item", "type"))).alias("_tokens"))
    following = lambda i: F.col("_tokens")[i + 1]["session_id"]   # noqa: E731 - null after the last
    marked = F.transform("_tokens", lambda t, i: F.struct(t["item"].alias("item"), (t["type"] + F.when(
        following(i).isNull() | (following(i) != t["session_id"]), F.lit(SESSION_END)).otherwise(F.lit(0))).alias("type")))
    begin = F.array(F.struct(F.lit(BEGIN[0]).alias("item"), F.lit(BEGIN[1]).alias("type")))
    return ordered.select("source", "user_id", source_index_column(sources).alias(SOURCE_INDEX),
                          F.concat(begin, marked).alias(SEQUENCE))


def person_plans(walks: DataFrame, sources: dict[str, int]) -> DataFrame:
    """(source, user_id, source_idx, _key, sessions array<struct<start_s, session_id, length,
    duration_s>>): each synthetic person's planned sessions (`walks`: one row each, with a seeded
    `_key`) in start order; the person's key is their first session's."""
    plan = F.sort_array(F.collect_list(F.struct("start_s", "session_id", "length", "duration_s")))
    return (walks.groupBy("source", "user_id").agg(plan.alias(PLAN), F.min("_key").alias("_key"))
            .select("source", "user_id", source_index_column(sources).alias(SOURCE_INDEX), "_key", PLAN))
