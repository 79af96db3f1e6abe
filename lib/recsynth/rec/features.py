"""Inputs of the neural retrieval model (`recsynth.rec.two_tower`), as pure DataFrame transforms.

Vocabularies. Every vocabulary maps a value to a dense int index: 0 is padding or a missing
value, 1 is out of vocabulary (OOV), 2.. are the known values, most frequent first (ties by
value, so a build is reproducible). Each is bounded: the item vocabulary keeps the `max_items`
items with the most distinct training users, a feature vocabulary the `max_values` values held by
the most catalogue items; everything else maps to OOV. An item with no training event (new in
the catalogue) is OOV too: its item tower then rests on its features.

Sequences. A user's sequence is their distinct items, each at the time of its first event in
the period passed in (ties by item id). A training example is one element of that sequence
(the positive) with the user's history = the items before it in the sequence, most recent
first, at most `history_length`, padded with 0 at the end. So the positive is never in its own
history, and nothing from the positive's first event on is either (no leakage: a later revisit
of an earlier item does not move it). A user's serving history (`user_histories`) is the same
window after the last item, i.e. what the next positive would see, so training and serving see
the same kind of history.

Popularity correction. Each example carries `log_q` = log(share of the training examples whose
positive is this item): the probability that the item turns up as an in-batch negative, which
the loss subtracts from its logits (the logQ correction of sampled softmax).

The output frames are flat for Petastorm: ints, floats and one fixed-length array<int> column
(`history`), which Petastorm's batch reader returns as a 2-D array (`read_shard`).
Nothing per user reaches the driver; only `Vocabularies.sizes` collects a few numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import EVENT_TIME, ITEM_ID, USER_ID
from recsynth.rec.columns import require_positive as _positive

ITEM_INDEX = "item_idx"
ITEM_KEY = "item_key"          # xxhash64(item_id): tells in-batch duplicates apart, OOV items included
HISTORY = "history"
LOG_Q = "log_q"
VALUE = "value"
INDEX = "index"
FEATURES = ("category_l1", "category_l2", "brand", "price_band")
PAD = 0
OOV = 1
FIRST_KNOWN = 2
ITEM_VOCABULARY = "item"        # the key of the item vocabulary in `Vocabularies.sizes()`


def feature_index(name: str) -> str:
    """The column holding a feature's vocabulary index, e.g. `brand_idx`."""
    return f"{name}_idx"


FEATURE_INDICES = tuple(feature_index(f) for f in FEATURES)
# What the model reads from the training examples (the Petastorm columns).
MODEL_INPUTS = (HISTORY, ITEM_INDEX, *FEATURE_INDICES, ITEM_KEY, LOG_Q)


@dataclass(frozen=True)
class Vocabularies:
    """The item vocabulary (item_id, item_idx) and one (value, index) frame per item feature."""
    items: DataFrame
    features: dict[str, DataFrame]

    def sizes(self) -> dict[str, int]:
        """Rows each embedding table needs (largest index + 1, at least FIRST_KNOWN), keyed by
        ITEM_VOCABULARY and the feature names: one small aggregate reaches the driver."""
        parts = [self.items.select(F.lit(ITEM_VOCABULARY).alias("_name"), F.col(ITEM_INDEX).alias(INDEX))]
        parts += [frame.select(F.lit(name).alias("_name"), INDEX) for name, frame in self.features.items()]
        union = parts[0]
        for part in parts[1:]:
            union = union.unionByName(part)
        largest = {row["_name"]: row["_max"] for row in union.groupBy("_name").agg(F.max(INDEX).alias("_max")).collect()}
        return {name: max(FIRST_KNOWN, int(largest.get(name) or 0) + 1) for name in (ITEM_VOCABULARY, *self.features)}


def _ranked(counts: DataFrame, key: str, count: str, index: str, limit: int) -> DataFrame:
    """(key, index): the `limit` keys with the largest `count` (ties: key), indexed from FIRST_KNOWN.
    The limit is taken first (top-k per partition, then one partition of at most `limit` rows),
    so the unpartitioned window only ever sees the bounded vocabulary."""
    order = [F.col(count).desc(), F.col(key).asc()]
    top = counts.orderBy(*order).limit(limit)
    bounded = Window.partitionBy(F.lit(0)).orderBy(*order)  # one partition on purpose: at most `limit` rows
    return top.select(key, (F.row_number().over(bounded) + (FIRST_KNOWN - 1)).cast("int").alias(index))


def item_vocabulary(events: DataFrame, max_items: int) -> DataFrame:
    """(item_id, item_idx int): the `max_items` items with the most distinct users in `events`
    (user_id, item_id), indexed 2.. (ties by item id); other items are OOV."""
    require_columns(events, "events", (USER_ID, ITEM_ID), RecommenderError)
    max_items = _positive("max_items", max_items)
    counts = (events.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
              .groupBy(ITEM_ID).agg(F.countDistinct(USER_ID).alias("_users")))
    return _ranked(counts, ITEM_ID, "_users", ITEM_INDEX, max_items)


def value_vocabulary(items: DataFrame, column: str, max_values: int) -> DataFrame:
    """(value string, index int): the `max_values` values of `column` held by the most rows of
    `items` (one row per item), indexed 2..; nulls are not values (they map to 0)."""
    require_columns(items, "items", (column,), RecommenderError)
    max_values = _positive("max_values", max_values)
    counts = (items.select(F.col(column).cast("string").alias(VALUE)).where(F.col(VALUE).isNotNull())
              .groupBy(VALUE).agg(F.count(F.lit(1)).alias("_n")))
    return _ranked(counts, VALUE, "_n", INDEX, max_values)


def build_vocabularies(events: DataFrame, item_features: DataFrame, *, max_items: int = 100_000,
                       max_values: int = 1_000, features=FEATURES) -> Vocabularies:
    """The item vocabulary from the training `events` and one vocabulary per feature column of
    `item_features` (gold.item_features: one row per item). Lazy frames; `.sizes()` runs them."""
    require_columns(item_features, "item_features", (ITEM_ID, *features), RecommenderError)
    return Vocabularies(items=item_vocabulary(events, max_items),
                        features={name: value_vocabulary(item_features, name, max_values) for name in features})


def _lookup(frame: DataFrame, on: Column, vocabulary: DataFrame, key: str, index: str, out: str,
            broadcast: bool = True) -> DataFrame:
    """Add `out` = the vocabulary index of `on` (OOV when unknown, PAD when `on` is null)."""
    renamed = vocabulary.select(F.col(key).alias("_key"), F.col(index).alias("_index"))
    joined = frame.join(F.broadcast(renamed) if broadcast else renamed, on.cast("string") == F.col("_key"), "left")
    value = F.when(on.isNull(), F.lit(PAD)).otherwise(F.coalesce(F.col("_index"), F.lit(OOV)))
    return joined.withColumn(out, value.cast("int")).drop("_key", "_index")


def item_feature_indices(item_features: DataFrame, vocabularies: Vocabularies) -> DataFrame:
    """(item_id, item_idx, <feature>_idx ...): every item of `item_features` with its indices,
    the item tower's input (for `two_tower.item_vectors`)."""
    require_columns(item_features, "item_features", (ITEM_ID, *vocabularies.features), RecommenderError)
    frame = item_features.select(ITEM_ID, *vocabularies.features).where(F.col(ITEM_ID).isNotNull()).dropDuplicates([ITEM_ID])
    frame = _lookup(frame, F.col(ITEM_ID), vocabularies.items, ITEM_ID, ITEM_INDEX, ITEM_INDEX, broadcast=False)
    for name, vocabulary in vocabularies.features.items():
        frame = _lookup(frame, F.col(name), vocabulary, VALUE, INDEX, feature_index(name))
    return frame.select(ITEM_ID, ITEM_INDEX, *[feature_index(n) for n in vocabularies.features])


def sequences(events: DataFrame, vocabularies: Vocabularies, *, time_column: str = EVENT_TIME,
              before=None) -> DataFrame:
    """(user_id, item_id, first_time, item_idx): each user's distinct items at their first event
    (strictly before `before`, a timestamp or string, when given)."""
    require_columns(events, "events", (USER_ID, ITEM_ID, time_column), RecommenderError)
    valid = events.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull() & F.col(time_column).isNotNull())
    if before is not None:
        valid = valid.where(F.col(time_column) < F.lit(before).cast("timestamp"))
    firsts = valid.groupBy(USER_ID, ITEM_ID).agg(F.min(time_column).alias("first_time"))
    return _lookup(firsts, F.col(ITEM_ID), vocabularies.items, ITEM_ID, ITEM_INDEX, ITEM_INDEX, broadcast=False)


def _order() -> Window:
    return Window.partitionBy(USER_ID).orderBy("first_time", ITEM_ID)


def _history(length: int, include_current: bool) -> Column:
    """array<int> of the item indices of the user's earlier rows (with the current row's first,
    when `include_current`), most recent first, `length` long, PAD where the user has fewer."""
    window = _order()
    lags = [F.lag(ITEM_INDEX, offset, PAD).over(window) for offset in range(1, length + 1)]
    values = [F.col(ITEM_INDEX), *lags[:length - 1]] if include_current else lags
    return F.array(*[v.cast("int") for v in values])


def training_examples(events: DataFrame, vocabularies: Vocabularies, item_indices: DataFrame, history_length: int,
                      *, time_column: str = EVENT_TIME) -> DataFrame:
    """One row per (user, positive item) of the training `events` (user_id, item_id, time):
    user_id, item_id, history (array<int>, `history_length`, the items before the positive, see
    the module doc), item_idx and <feature>_idx of the positive (0 when the item is not in
    `item_indices`), item_key (xxhash64 of item_id) and log_q (float: log of the positive's
    share of all examples)."""
    history_length = _positive("history_length", history_length)
    feature_columns = [feature_index(n) for n in vocabularies.features]
    require_columns(item_indices, "item_indices", (ITEM_ID, *feature_columns), RecommenderError)
    sequence = sequences(events, vocabularies, time_column=time_column)
    with_history = sequence.select(USER_ID, ITEM_ID, ITEM_INDEX, _history(history_length, include_current=False).alias(HISTORY))
    features = item_indices.select(ITEM_ID, *feature_columns)
    joined = with_history.join(features, ITEM_ID, "left").fillna(PAD, feature_columns)
    per_item = F.count(F.lit(1)).over(Window.partitionBy(ITEM_ID))
    total = joined.agg(F.count(F.lit(1)).alias("_total"))
    return (joined.withColumn("_n", per_item).crossJoin(F.broadcast(total)).select(
        USER_ID, ITEM_ID, HISTORY, ITEM_INDEX, *feature_columns,
        F.xxhash64(ITEM_ID).alias(ITEM_KEY),
        F.log(F.col("_n") / F.col("_total")).cast("float").alias(LOG_Q),
    ))


def user_histories(events: DataFrame, vocabularies: Vocabularies, history_length: int, *, time_column: str = EVENT_TIME,
                   before=None) -> DataFrame:
    """(user_id, history array<int>): per user of `events`, the `history_length` most recent
    items of their sequence (strictly before `before` when given), most recent first, padded
    with 0 - the history a next positive would get in `training_examples`."""
    history_length = _positive("history_length", history_length)
    sequence = sequences(events, vocabularies, time_column=time_column, before=before)
    latest = F.row_number().over(Window.partitionBy(USER_ID).orderBy(F.col("first_time").desc(), F.col(ITEM_ID).desc()))
    return (sequence.select(USER_ID, _history(history_length, include_current=True).alias(HISTORY), latest.alias("_latest"))
            .where(F.col("_latest") == 1).select(USER_ID, HISTORY))


def known_histories(histories: DataFrame) -> DataFrame:
    """The rows of `histories` (user_id, history) with at least one item of the vocabulary: a
    history of only padding and out-of-vocabulary items tells the model nothing about the user,
    who is cold for it (and gets the popularity fallback)."""
    require_columns(histories, "histories", (USER_ID, HISTORY), RecommenderError)
    return histories.where(F.exists(HISTORY, lambda index: index >= F.lit(FIRST_KNOWN)))


def known_items(item_indices: DataFrame) -> DataFrame:
    """The rows of `item_indices` (`item_feature_indices`) whose item id or at least one feature
    value is in a vocabulary: an item that is new and has no known feature gets the same vector
    as every other such item, which ranks nothing, so it is left out of scoring."""
    columns = [ITEM_INDEX, *FEATURE_INDICES]
    require_columns(item_indices, "item_indices", columns, RecommenderError)
    known = F.lit(False)
    for column in columns:
        known = known | (F.col(column) >= F.lit(FIRST_KNOWN))
    return item_indices.where(known)
