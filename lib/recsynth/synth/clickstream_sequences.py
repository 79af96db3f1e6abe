"""Inputs of the sequence generator (the sequence model of `recsynth.rec.sequence` with
`generator` on), as pure DataFrame transforms.

A person's sequence is every step of every session (`clickstream.session_steps`: repeats kept,
so sessions keep their real lengths), sessions in the order they started, as (item index, type
index, context) tokens: the type index is the event type's (1 view, 2 cart, 3 purchase), + 3 on a
session's last step (the next token opens a new session); the context is the session's top
category (`clickstream.session_contexts`), its purchases and carts from the token on (the token
included) and the steps left after it (`sequence.context_code`): what the writer knows of a
planned session as it writes it. The sequence opens with a begin token (the out-of-vocabulary
index, "view", + 3, no context), so that the first step of the first session is a target too. Only
`vocabulary` items are steps. The generator hands in steps where an item fewer than
`clickstream.min_people` real people touched is on its category's stand-in
(`recsynth.synth.rare_items`), or, with `clickstream.sequence.rare_items` off, left out, as the
Markov chain leaves it out of its states.

Categories are indexed per source (`category_vocabulary`: the `max_categories` with the most
sessions; 0 is padding, 1 any other), so the network reads a bounded table.

A synthetic person's plan is their sessions (id, length, start, duration and context from real
templates) in start order, the rows the walker (`recsynth.synth.sequence_walker`) fills in.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.rec.features import ITEM_INDEX, OOV
from recsynth.rec.sequence import EVENT_TYPES, EVENTS_LEFT, SOURCE_INDEX, STEPS_LEFT, context_code
from recsynth.rec.sequence_features import SEQUENCE, source_index_column

SESSION_END = len(EVENT_TYPES)   # added to a type index on a session's last step
BEGIN = (OOV, 1 + SESSION_END)   # the token every sequence opens with
PLAN = "sessions"
CATEGORY_INDEX, OTHER_CATEGORY = "category_idx", 1


def category_vocabulary(contexts: DataFrame, max_categories: int) -> DataFrame:
    """(source, top_category, category_idx 2..): the `max_categories` top categories of the most
    sessions in `contexts` (`clickstream.session_contexts`), ties by name."""
    counted = contexts.groupBy("source", "top_category").agg(F.count(F.lit(1)).alias("_sessions"))
    ranked = F.row_number().over(Window.orderBy(F.col("_sessions").desc(), "source", "top_category"))
    return counted.withColumn(CATEGORY_INDEX, (ranked + OTHER_CATEGORY).cast("int")).where(
        F.col(CATEGORY_INDEX) <= max_categories + OTHER_CATEGORY).select("source", "top_category", CATEGORY_INDEX)


def with_category_index(sessions: DataFrame, categories: DataFrame) -> DataFrame:
    """`sessions` (with source, top_category) with `category_idx` from `categories`
    (`category_vocabulary`, bounded: broadcast), OTHER_CATEGORY where it has none."""
    return sessions.join(F.broadcast(categories), ["source", "top_category"], "left").withColumn(
        CATEGORY_INDEX, F.coalesce(F.col(CATEGORY_INDEX), F.lit(OTHER_CATEGORY)).cast("int"))


def person_sequences(steps: DataFrame, vocabulary: DataFrame, sources: dict[str, int], contexts: DataFrame,
                     categories: DataFrame) -> DataFrame:
    """(source, user_id, source_idx, _sequence array<struct<item, type, context>>) from `steps`
    (source, user_id, session_id, position, item_id, event_type, event_time), `vocabulary`
    (item_id, item_idx), the sessions' `contexts` and the `categories` they are indexed by."""
    kinds = F.create_map(*[F.lit(x) for index, kind in enumerate(EVENT_TYPES) for x in (kind, index + 1)])
    session = Window.partitionBy("source", "session_id")
    indexed = with_category_index(contexts, categories).select("source", "session_id", CATEGORY_INDEX)
    from_here = session.orderBy("position").rowsBetween(Window.currentRow, Window.unboundedFollowing)
    still = lambda kind: F.least(F.sum((F.col("type") == EVENT_TYPES.index(kind) + 1).cast("int")).over(from_here),  # noqa: E731
                                 F.lit(EVENTS_LEFT - 1))
    tokens = (steps.join(vocabulary.select("item_id", ITEM_INDEX), "item_id")
              .join(indexed, ["source", "session_id"])
              .select("source", "user_id", "session_id", "position", F.min("event_time").over(session).alias("_opened"),
                      F.col(ITEM_INDEX).cast("int").alias("item"),
                      F.coalesce(kinds[F.col("event_type")], F.lit(1)).cast("int").alias("type"),
                      F.col(CATEGORY_INDEX))
              .withColumn("_left", F.count(F.lit(1)).over(session) - F.row_number().over(session.orderBy("position")))
              .withColumn("context", context_code(F.col(CATEGORY_INDEX), still("purchase"), still("cart"),
                                                  F.least(F.col("_left"), F.lit(STEPS_LEFT - 1))).cast("int")))
    ordered = tokens.groupBy("source", "user_id").agg(F.sort_array(F.collect_list(
        F.struct("_opened", "session_id", "position", "item", "type", "context"))).alias("_tokens"))
    following = lambda i: F.col("_tokens")[i + 1]["session_id"]   # noqa: E731 - null after the last
    marked = F.transform("_tokens", lambda t, i: F.struct(t["item"].alias("item"), (t["type"] + F.when(
        following(i).isNull() | (following(i) != t["session_id"]), F.lit(SESSION_END)).otherwise(F.lit(0))).alias("type"),
        t["context"].alias("context")))
    begin = F.array(F.struct(F.lit(BEGIN[0]).alias("item"), F.lit(BEGIN[1]).alias("type"), F.lit(0).alias("context")))
    return ordered.select("source", "user_id", source_index_column(sources).alias(SOURCE_INDEX),
                          F.concat(begin, marked).alias(SEQUENCE))


def person_plans(walks: DataFrame, sources: dict[str, int], categories: DataFrame) -> DataFrame:
    """(source, user_id, source_idx, _key, sessions array<struct<start_s, session_id, length,
    duration_s, category_idx, n_purchases, n_carts>>): each synthetic person's planned sessions
    (`walks`: one row each, with a seeded `_key` and its context) in start order; the person's
    key is their first session's."""
    plan = F.sort_array(F.collect_list(F.struct("start_s", "session_id", "length", "duration_s", CATEGORY_INDEX,
                                                *[F.col(n).cast("int").alias(n) for n in ("n_purchases", "n_carts")])))
    return (with_category_index(walks, categories).groupBy("source", "user_id")
            .agg(plan.alias(PLAN), F.min("_key").alias("_key"))
            .select("source", "user_id", source_index_column(sources).alias(SOURCE_INDEX), "_key", PLAN))
