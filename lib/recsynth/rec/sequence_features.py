"""Inputs of the sequence model (`recsynth.rec.sequence`), as pure DataFrame transforms.

A user's sequence is their events in time order (ties by item, then type) as (item index, type
index) tokens, with repeated identical consecutive events (a reloaded page) kept once. Item
indices come from `features.item_vocabulary` (0 padding, 1 out of vocabulary, 2.. known items);
type indices are `sequence.EVENT_TYPES` positions + 1.

Training windows cut each sequence from its end into pieces of `max_length + 1` tokens that
overlap by one (each token is a target once), padded with 0 on the left: the model reads the
first `max_length` and predicts the last `max_length`. A serving history is a sequence's last
`max_length` tokens, padded the same way. Every output is flat for Petastorm: fixed-length
array<int> columns and ints. Nothing per user reaches the driver.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import EVENT_TIME, EVENT_TYPE, ITEM_ID, SOURCE, USER_ID
from recsynth.rec.columns import require_positive as _positive
from recsynth.rec.features import ITEM_INDEX, OOV
from recsynth.rec.sequence import CONTEXTS, EVENT_TYPES, ITEMS, SOURCE_INDEX, TYPES

SEQUENCE = "_sequence"
EVENT_COLUMNS = (SOURCE, USER_ID, ITEM_ID, EVENT_TYPE, EVENT_TIME)


def source_indices(sources: list[str]) -> dict[str, int]:
    """Each source's index: its position in sorted order (the model's source masks use it)."""
    return {source: index for index, source in enumerate(sorted(sources))}


def source_index_column(indices: dict[str, int]) -> Column:
    """Each row's source index (`source_indices`), from its source column."""
    mapping = F.create_map(*[F.lit(x) for pair in indices.items() for x in pair])
    return mapping[F.col(SOURCE)].cast("int")


def user_sequences(events: DataFrame, items: DataFrame, sources: dict[str, int]) -> DataFrame:
    """(user_id, source_idx, _sequence array<struct<item, type>>): each user's tokens in time
    order; `items` is the item vocabulary (item_id, item_idx). Events of a source not in
    `sources` are an error of the caller's, caught here."""
    require_columns(events, "events", EVENT_COLUMNS, RecommenderError)
    kinds = F.create_map(*[F.lit(x) for index, kind in enumerate(EVENT_TYPES) for x in (kind, index + 1)])
    tokens = (events.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull() & F.col(EVENT_TIME).isNotNull())
              .join(items.select(ITEM_ID, ITEM_INDEX), ITEM_ID, "left")
              .select(USER_ID, SOURCE, EVENT_TIME, ITEM_ID,
                      F.coalesce(F.col(ITEM_INDEX), F.lit(OOV)).cast("int").alias("item"),
                      F.coalesce(kinds[F.col(EVENT_TYPE)], F.lit(1)).cast("int").alias("type")))
    order = Window.partitionBy(USER_ID).orderBy(EVENT_TIME, ITEM_ID, "type")
    repeated = (F.lag(ITEM_ID).over(order) == F.col(ITEM_ID)) & (F.lag("type").over(order) == F.col("type"))
    kept = tokens.withColumn("_repeated", F.coalesce(repeated, F.lit(False))).where(~F.col("_repeated"))
    per_user = kept.groupBy(USER_ID).agg(
        F.first(SOURCE).alias(SOURCE),
        F.sort_array(F.collect_list(F.struct(EVENT_TIME, ITEM_ID, "type", "item"))).alias("_tokens"))
    sequence = F.transform("_tokens", lambda t: F.struct(t["item"].alias("item"), t["type"].alias("type")))
    return per_user.select(USER_ID, source_index_column(sources).alias(SOURCE_INDEX), sequence.alias(SEQUENCE))


def _padded(tokens: Column, field: str, length: int) -> Column:
    """The `field` of each token of `tokens` (at most `length`), 0-padded on the left to `length`."""
    values = F.transform(tokens, lambda t: t[field])
    return F.concat(F.array_repeat(F.lit(0), F.lit(length) - F.size(values)), values)


def training_windows(sequences: DataFrame, max_length: int) -> DataFrame:
    """(items, types array<int> of max_length + 1, source_idx): the windows of every sequence
    with at least two tokens (see the module doc); with `contexts` too where the tokens have a
    context (a conditioned generator's, `synth.clickstream_sequences`)."""
    length = _positive("max_length", max_length)
    size = F.size(SEQUENCE)
    pieces = F.sequence(F.lit(0), F.greatest(F.lit(0), F.ceil((size - 1) / length).cast("int") - 1))
    window = F.explode(F.transform(pieces, lambda w: F.slice(
        SEQUENCE, F.greatest(F.lit(1), size - w * length - length), F.least(size - w * length, F.lit(length + 1)))))
    cut = sequences.where(size >= 2).select(SOURCE_INDEX, window.alias("_window"))
    fields = [("item", ITEMS), ("type", TYPES)]
    if "context" in sequences.schema[SEQUENCE].dataType.elementType.fieldNames():
        fields.append(("context", CONTEXTS))
    return cut.select(*[_padded(F.col("_window"), field, length + 1).alias(name) for field, name in fields], SOURCE_INDEX)


def serving_histories(sequences: DataFrame, max_length: int) -> DataFrame:
    """(user_id, source_idx, items, types array<int> of max_length): each sequence's last tokens."""
    length = _positive("max_length", max_length)
    last = F.slice(SEQUENCE, F.greatest(F.lit(1), F.size(SEQUENCE) - length + 1), length)
    return sequences.select(USER_ID, SOURCE_INDEX, _padded(last, "item", length).alias(ITEMS),
                            _padded(last, "type", length).alias(TYPES))


def target_counts(windows: DataFrame) -> DataFrame:
    """(item_idx, n): how often each item is a training target (a known item after a real token)."""
    after_real = F.filter(F.slice(ITEMS, 2, F.size(ITEMS)), lambda item, i: F.col(ITEMS)[i] != F.lit(0))
    targets = F.explode(after_real)
    return windows.select(targets.alias(ITEM_INDEX)).where(F.col(ITEM_INDEX) > OOV).groupBy(ITEM_INDEX).agg(
        F.count(F.lit(1)).alias("n"))
