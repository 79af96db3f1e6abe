"""Offline ranking metrics of a recommendations frame against held-out interactions.

Everything runs as Spark built-ins (joins, a per-user window, aggregates; no Python UDF) and
only one row of aggregates per call reaches the driver, so it scales with the cluster, not the
driver.

Contract of the frames (shared by `recsynth.rec.baselines`):
- `recommendations`: (user_id, rank, item_id, score) - rank is the 1-based position in the
  user's list and is what the metrics discount by; `score` is not read here. If an item is
  listed twice for a user, only its best rank counts.
- `truth`: (user_id, item_id) - the items each user interacted with in the held-out period;
  duplicates are collapsed and null ids dropped.

The evaluated users are the users in `truth`: a user there without recommendations scores 0
on every accuracy metric, and recommendations for users not in `truth` are ignored by every
metric (coverage and novelty included), so all numbers describe one population.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import ITEM_ID, RANK, USER_ID, require_positive

N_USERS = "n_users"                                  # item_popularity: users who interacted with the item

METRICS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k")


def _check_recommendations(recommendations: DataFrame) -> None:
    require_columns(recommendations, "recommendations", (USER_ID, RANK, ITEM_ID), RecommenderError)
    rank_type = recommendations.schema[RANK].dataType
    if not isinstance(rank_type, IntegralType):
        raise RecommenderError(f"recommendations column {RANK!r} must be an integer type, got {rank_type.simpleString()}")


def _top_k(recommendations: DataFrame, k: int, by: tuple[str, ...]) -> DataFrame:
    """(by..., user_id, item_id, rank): each item once per user and list, at its best rank within the first k."""
    return (recommendations
            .where((F.col(RANK) >= 1) & (F.col(RANK) <= k) & F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
            .groupBy(*by, USER_ID, ITEM_ID).agg(F.min(RANK).alias(RANK)))


def _distinct_truth(truth: DataFrame, by: tuple[str, ...]) -> DataFrame:
    return truth.select(*by, USER_ID, ITEM_ID).where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull()).distinct()


def _ideal_dcg(relevant: Column) -> Column:
    """sum_{i=1..relevant} 1 / log2(i + 1): the DCG of a list with every relevant item on top."""
    return F.aggregate(F.sequence(F.lit(1), relevant.cast("int")), F.lit(0.0), lambda acc, i: acc + 1.0 / F.log2(i + 1))


def per_user_metrics(recommendations: DataFrame, truth: DataFrame, k: int, by: tuple[str, ...] = ()) -> DataFrame:
    """One row per user in `truth`: user_id, n_truth (distinct held-out items), n_hits (of them
    in the top k), precision_at_k (n_hits / k), recall_at_k (n_hits / n_truth), ndcg_at_k
    (binary relevance, ideal DCG over min(k, n_truth)), ap_at_k (sum of precision at each hit's
    rank / min(k, n_truth)) and hit_at_k (1.0 if any hit else 0.0). Users without
    recommendations get zeros. Lazy: nothing runs until the caller acts on it.

    `by` names columns of both frames that tell lists apart (e.g. model and task): then each
    (by..., user_id) of `truth` is scored against the recommendations of the same `by`, so many
    lists take one plan's shuffles instead of one plan each, and each row starts with them."""
    _check_recommendations(recommendations)
    by = tuple(by)
    require_columns(recommendations, "recommendations", by, RecommenderError)
    require_columns(truth, "truth", (*by, USER_ID, ITEM_ID), RecommenderError)
    k = require_positive("k", k)
    user = [*by, USER_ID]
    relevant = _distinct_truth(truth, by)
    hits = _top_k(recommendations, k, by).join(relevant, [*user, ITEM_ID])
    # the n-th hit of a user at rank r adds precision@r = n / r to the average precision
    nth = F.row_number().over(Window.partitionBy(*user).orderBy(RANK, ITEM_ID))
    per_hit = hits.select(*user, RANK, nth.alias("_nth"))
    hit_sums = per_hit.groupBy(*user).agg(
        F.count(F.lit(1)).alias("n_hits"),
        F.sum(1.0 / F.log2(F.col(RANK) + 1)).alias("_dcg"),
        F.sum(F.col("_nth") / F.col(RANK)).alias("_ap"),
    )
    counts = relevant.groupBy(*user).agg(F.count(F.lit(1)).alias("n_truth"))
    joined = counts.join(hit_sums, user, "left").fillna(0, ["n_hits", "_dcg", "_ap"])
    cut = F.least(F.col("n_truth"), F.lit(k))
    return joined.select(
        *user, "n_truth", "n_hits",
        (F.col("n_hits") / F.lit(float(k))).alias("precision_at_k"),
        (F.col("n_hits") / F.col("n_truth")).alias("recall_at_k"),
        (F.col("_dcg") / _ideal_dcg(cut)).alias("ndcg_at_k"),
        (F.col("_ap") / cut).alias("ap_at_k"),
        F.when(F.col("n_hits") > 0, 1.0).otherwise(0.0).alias("hit_at_k"),
    )


def item_popularity(interactions: DataFrame) -> DataFrame:
    """(item_id, n_users): distinct users per item, the `item_popularity` input of
    `ranking_metrics` (build it from the training interactions; pass their distinct user
    count as `total_users`)."""
    require_columns(interactions, "interactions", (USER_ID, ITEM_ID), RecommenderError)
    return interactions.groupBy(ITEM_ID).agg(F.countDistinct(USER_ID).alias(N_USERS))


def ranking_metrics(recommendations: DataFrame, truth: DataFrame, k: int, *, catalogue_size: int,
                    item_popularity: DataFrame | None = None, total_users: int | None = None) -> dict:
    """Mean per-user metrics at k over the users in `truth`, plus list-level measures.

    Returns {precision_at_k, recall_at_k, ndcg_at_k, map_at_k, hit_rate_at_k: means of
    `per_user_metrics` (map_at_k is the mean of ap_at_k); catalogue_coverage: distinct items in
    the evaluated users' top k / catalogue_size; novelty: mean over the evaluated users'
    recommended (user, item) pairs in the top k of -log2(p(item)), or None without
    `item_popularity`; users: the number of evaluated users}. With no evaluated user the means
    are None.

    Novelty contract: `item_popularity` is (item_id, n_users) - the number of distinct users who
    interacted with the item in the reference (training) period, one row per item (if an item
    repeats, its largest count is used) - and `total_users` is the number of distinct users of
    that period; p(item) = max(n_users, 1) / total_users, so an item absent from the frame (or
    with 0 users) counts as seen by one user. `item_popularity()` builds the frame."""
    _check_recommendations(recommendations)
    require_columns(truth, "truth", (USER_ID, ITEM_ID), RecommenderError)
    k = require_positive("k", k)
    catalogue_size = require_positive("catalogue_size", catalogue_size)
    if item_popularity is not None:
        require_columns(item_popularity, "item_popularity", (ITEM_ID, N_USERS), RecommenderError)
        total_users = require_positive("total_users (needed with item_popularity)", total_users)

    means = per_user_metrics(recommendations, truth, k).agg(
        F.count(F.lit(1)).alias("users"),
        *[F.avg(m).alias(m) for m in ("precision_at_k", "recall_at_k", "ndcg_at_k", "hit_at_k")],
        F.avg("ap_at_k").alias("map_at_k"),
    ).head()

    evaluated = _distinct_truth(truth, ()).select(USER_ID).distinct()
    listed = _top_k(recommendations, k, ()).join(evaluated, USER_ID, "left_semi")
    list_level = [F.countDistinct(ITEM_ID).alias("_items")]
    if item_popularity is not None:
        counts = item_popularity.groupBy(ITEM_ID).agg(F.max(N_USERS).alias(N_USERS))
        listed = listed.join(counts, ITEM_ID, "left")
        share = F.greatest(F.coalesce(F.col(N_USERS), F.lit(1)), F.lit(1)) / F.lit(float(total_users))
        list_level.append(F.avg(-F.log2(share)).alias("_novelty"))
    lists = listed.agg(*list_level).head()

    def number(value):
        return None if value is None else float(value)

    return {
        "precision_at_k": number(means["precision_at_k"]),
        "recall_at_k": number(means["recall_at_k"]),
        "ndcg_at_k": number(means["ndcg_at_k"]),
        "map_at_k": number(means["map_at_k"]),
        "hit_rate_at_k": number(means["hit_at_k"]),
        "catalogue_coverage": lists["_items"] / catalogue_size,
        "novelty": number(lists["_novelty"]) if item_popularity is not None else None,
        "users": int(means["users"]),
    }
