"""Item-to-item models and their one scorer.

Every item-item recommender here (item-kNN, EASE, later co-occurrence) is only a table of weighted
neighbours (item_id, neighbour_id, similarity double): "a user of item_id gets `similarity` towards
neighbour_id". One scorer, `score_neighbours`, turns any such table and a user history into the
ranked frame of `recsynth.rec.metrics`, so the models differ in their table and nothing else.

Spark built-ins only. Nothing that grows with users or events reaches the driver; EASE's Gram
matrix (at most max_items², a conf value) is the only model built there.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import math

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns, spark_settings
from recsynth.rec.baselines import (
    MAX_ITEMS_PER_USER, _allowed, _bounded_history, _interactions, _ranked, cooccurrence_counts,
)
from recsynth.rec.columns import ITEM_ID, SCORE, USER_ID, WEIGHT, require_positive

NEIGHBOUR_ID = "neighbour_id"
SIMILARITY = "similarity"
NEIGHBOURS_SCHEMA = f"{ITEM_ID} string, {NEIGHBOUR_ID} string, {SIMILARITY} double"
EASE_MAX_ITEMS_PER_USER = 200   # EASE Gram: kept items per user (bounds the self-join to 200² pairs a user)


def _arrow(spark: SparkSession):
    """Arrow for the pandas transfers of this module (the Gram's cells, EASE's weights: up to
    millions of rows, which the row-by-row path converts in Python)."""
    return spark_settings(spark, {"spark.sql.execution.arrow.pyspark.enabled": "true"})


def _require_positive_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise RecommenderError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _top_neighbours(table: DataFrame, max_neighbours: int) -> DataFrame:
    """The `max_neighbours` most similar neighbours of each item (ties: neighbour_id ascending)."""
    best = Window.partitionBy(ITEM_ID).orderBy(F.col(SIMILARITY).desc(), F.col(NEIGHBOUR_ID).asc())
    return (table.withColumn("_n", F.row_number().over(best)).where(F.col("_n") <= max_neighbours)
            .select(ITEM_ID, NEIGHBOUR_ID, F.col(SIMILARITY).cast("double").alias(SIMILARITY)))


def score_neighbours(history: DataFrame, neighbours: DataFrame, k: int, *, exclusions: DataFrame | None = None,
                     items: DataFrame | None = None) -> DataFrame:
    """The top k per user of history (user_id, item_id, weight) by Σ_h weight(h) × similarity(h →
    candidate) over the user's history items h (a repeated history row counts each time), as
    (user_id, rank, item_id, score); ties by item_id. Scores <= 0 are dropped (EASE has negative
    weights), so a user may get fewer than k rows, or none. A history item is a legitimate
    candidate (repeat purchases): only `exclusions` (user_id, item_id) remove a pair, and `items`
    (item_id), when given, are the only candidates."""
    k = require_positive("k", k)
    require_columns(history, "history", {USER_ID: None, ITEM_ID: None, WEIGHT: (NumericType,)}, RecommenderError)
    require_columns(neighbours, "neighbours", {ITEM_ID: None, NEIGHBOUR_ID: None, SIMILARITY: (NumericType,)},
                    RecommenderError)
    if items is not None:
        require_columns(items, "items", (ITEM_ID,), RecommenderError)
        neighbours = neighbours.join(items.select(F.col(ITEM_ID).alias(NEIGHBOUR_ID)), NEIGHBOUR_ID, "left_semi")
    candidates = (history.select(USER_ID, ITEM_ID, WEIGHT).join(neighbours.select(ITEM_ID, NEIGHBOUR_ID, SIMILARITY), ITEM_ID)
                  .groupBy(USER_ID, F.col(NEIGHBOUR_ID).alias(ITEM_ID))
                  .agg(F.sum(F.col(WEIGHT).cast("double") * F.col(SIMILARITY).cast("double")).alias(SCORE))
                  .where(F.col(SCORE) > 0))
    return _ranked(_allowed(candidates, exclusions, None), k, F.col(SCORE).desc())


def itemknn(pairs: DataFrame, *, max_neighbours: int, max_items_per_user: int = MAX_ITEMS_PER_USER) -> DataFrame:
    """Item-kNN: cosine similarity of items on the binary user × item matrix, n_ab / sqrt(n_a n_b),
    counted on each user's `max_items_per_user` heaviest items (as `cooccurrence_counts`, which
    bounds the self-join), the `max_neighbours` most similar per item. Normalising by n_a n_b keeps
    the blockbusters, that co-occur with everything, from being everyone's neighbour."""
    max_neighbours = require_positive("max_neighbours", max_neighbours)
    max_items_per_user = require_positive("max_items_per_user", max_items_per_user)
    counts = cooccurrence_counts(pairs, max_items_per_user=max_items_per_user)
    users = (_bounded_history(_interactions(pairs), max_items_per_user)
             .groupBy(ITEM_ID).agg(F.count(F.lit(1)).cast("double").alias("_users")))
    users_a = users.select(F.col(ITEM_ID).alias("item_a"), F.col("_users").alias("_na"))
    users_b = users.select(F.col(ITEM_ID).alias("item_b"), F.col("_users").alias("_nb"))
    cosine = (counts.join(users_a, "item_a").join(users_b, "item_b")
              .select(F.col("item_a").alias(ITEM_ID), F.col("item_b").alias(NEIGHBOUR_ID),
                      (F.col("n") / F.sqrt(F.col("_na") * F.col("_nb"))).alias(SIMILARITY)))
    return _top_neighbours(cosine, max_neighbours)


@dataclass(frozen=True, eq=False)
class EaseGram:
    """G = XᵀX of the binary user × item matrix X over `item_ids` (ascending, so that a column's
    index order is the neighbour_id order), float32 n × n: G_aa = users of a, G_ab = users of both."""
    item_ids: np.ndarray
    gram: np.ndarray


def ease_gram(pairs: DataFrame, *, max_items: int, max_items_per_user: int = EASE_MAX_ITEMS_PER_USER) -> EaseGram:
    """The Gram matrix of EASE over the `max_items` items with the most distinct users (ties:
    item_id). Co-counts come from a Spark self-join of each user's kept items, bounded to the
    user's `max_items_per_user` heaviest of them (that bounded X is the X of G, diagonal included);
    only the non-zero upper triangle (a, b, n), at most max_items² rows, reaches the driver."""
    max_items = require_positive("max_items", max_items)
    max_items_per_user = require_positive("max_items_per_user", max_items_per_user)
    interactions = _interactions(pairs)
    top = (interactions.groupBy(ITEM_ID).agg(F.count(F.lit(1)).alias("_users"))
           .orderBy(F.col("_users").desc(), F.col(ITEM_ID).asc()).limit(max_items).select(ITEM_ID).collect())
    item_ids = np.array(sorted(r[ITEM_ID] for r in top), dtype=str)
    gram = np.zeros((len(item_ids), len(item_ids)), dtype=np.float32)
    if not len(item_ids):
        return EaseGram(item_ids=item_ids, gram=gram)
    index = interactions.sparkSession.createDataFrame([(str(i), n) for n, i in enumerate(item_ids)], f"{ITEM_ID} string, _idx int")
    kept = _bounded_history(interactions.join(F.broadcast(index.select(ITEM_ID)), ITEM_ID, "left_semi"), max_items_per_user)
    indexed = kept.join(F.broadcast(index), ITEM_ID).select(USER_ID, "_idx")
    with _arrow(interactions.sparkSession):
        cells = (indexed.alias("a").join(indexed.alias("b"), USER_ID).where(F.col("a._idx") <= F.col("b._idx"))
                 .groupBy(F.col("a._idx").alias("_a"), F.col("b._idx").alias("_b")).agg(F.count(F.lit(1)).alias("_n"))
                 .toPandas())
    a, b, n = (cells[c].to_numpy(dtype=np.int64) for c in ("_a", "_b", "_n"))
    gram[a, b] = n
    gram[b, a] = n
    return EaseGram(item_ids=item_ids, gram=gram)


def ease_neighbours(spark: SparkSession, gram: EaseGram, *, l2: float, max_neighbours: int) -> DataFrame:
    """EASE (Steck 2019): B = I − P·diag(1/diag P), P = (G + l2·I)⁻¹ in float32, i.e. B_ij =
    −P_ij / P_jj, B_jj = 0; user u's score of j is Σ_i x_ui B_ij, so row i (a history item) is
    item_id and column j (the candidate) neighbour_id. Kept per item: the `max_neighbours` largest
    B_ij > 0 (ties: neighbour_id), as (item_id, neighbour_id, similarity)."""
    l2 = _require_positive_real("l2", l2)
    max_neighbours = require_positive("max_neighbours", max_neighbours)
    n = len(gram.item_ids)
    if gram.gram.shape != (n, n):
        raise RecommenderError(f"gram must be {n} × {n} (one row per item), got {gram.gram.shape}")
    rows = cols = np.zeros(0, dtype=np.int64)
    weights = np.zeros((n, n), dtype=np.float32)
    if n:
        precision = np.linalg.inv(gram.gram.astype(np.float32) + np.float32(l2) * np.eye(n, dtype=np.float32))
        weights = -precision / np.diag(precision)[None, :]
        np.fill_diagonal(weights, 0.0)
        keep = weights > 0
        if max_neighbours < n:
            # the m-th largest per row; values above it all kept, values equal to it in column order
            cut = -np.partition(-weights, max_neighbours - 1, axis=1)[:, max_neighbours - 1:max_neighbours]
            above = weights > cut
            ties = weights == cut
            room = max_neighbours - above.sum(axis=1, keepdims=True)
            keep &= above | (ties & (np.cumsum(ties, axis=1, dtype=np.int32) <= room))
        rows, cols = np.nonzero(keep)
    local = pd.DataFrame({ITEM_ID: gram.item_ids[rows].astype(object), NEIGHBOUR_ID: gram.item_ids[cols].astype(object),
                          SIMILARITY: weights[rows, cols].astype(np.float64)})
    with _arrow(spark):
        return spark.createDataFrame(local, NEIGHBOURS_SCHEMA)
