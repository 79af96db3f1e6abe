"""Recommendation baselines any learned recommender has to beat: most popular items, the user's
own recent items, item-to-item co-occurrence, and implicit-feedback ALS (Spark MLlib).

All take `train` = (user_id, item_id, weight) - e.g. gold.interactions of the train split;
rows repeating a (user, item) pair are summed - and `users` = a frame with a user_id column
(the users to recommend for; duplicates are fine). All return the frame shape of
`recsynth.rec.metrics`: (user_id string, rank int 1..k contiguous, item_id string, score
double), at most k rows per user, best first; ties are broken by item_id so a run is
reproducible. With `exclude_seen=True` no user gets an item they have in `train`.

Built from Spark built-ins only (joins, windows partitioned by user, aggregates); what reaches
the driver is one number (the largest training history among the users) and, for popularity,
the short list of top items that is broadcast.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from numbers import Real

from pyspark.ml.feature import StringIndexer, StringIndexerModel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.als_fold_in import factor_arrays, fold_in
from recsynth.rec.columns import ITEM_ID, LAST_TIME, RANK, SCORE, SOURCE, USER_ID, WEIGHT, require_positive

# Over-fetch cap: candidates beyond k reserved for already-seen items (see `_extra_candidates`).
MAX_EXTRA_CANDIDATES = 1000
MAX_ITEMS_PER_USER = 50   # co-occurrence: history items kept per user (bounds the self-join to 50² pairs)
_USER_IDX = "_user_idx"
_ITEM_IDX = "_item_idx"


def _interactions(train: DataFrame) -> DataFrame:
    """(user_id, item_id, weight): one row per pair, null ids dropped, weights summed."""
    require_columns(train, "train", (USER_ID, ITEM_ID, WEIGHT), RecommenderError)
    weight_type = train.schema[WEIGHT].dataType
    if not isinstance(weight_type, NumericType):
        raise RecommenderError(f"train column {WEIGHT!r} must be numeric, got {weight_type.simpleString()}")
    return (train.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
            .groupBy(USER_ID, ITEM_ID).agg(F.sum(F.col(WEIGHT).cast("double")).alias(WEIGHT)))


def _targets(users: DataFrame) -> DataFrame:
    require_columns(users, "users", (USER_ID,), RecommenderError)
    return users.select(USER_ID).where(F.col(USER_ID).isNotNull()).distinct()


def _seen(pairs: DataFrame, targets: DataFrame) -> DataFrame:
    """(user_id, item_id) the target users have in train."""
    return pairs.select(USER_ID, ITEM_ID).join(targets, USER_ID, "left_semi")


def _extra_candidates(seen: DataFrame, max_extra: int) -> int:
    """How many candidates beyond k to fetch so that k unseen remain: the largest history among
    the target users (one aggregate to the driver), capped at `max_extra`. A user who has seen
    more than the cap among the fetched candidates gets fewer than k items."""
    largest = seen.groupBy(USER_ID).agg(F.count(F.lit(1)).alias("_n")).agg(F.max("_n")).head()[0]
    return min(int(largest or 0), max_extra)


def _ranked(candidates: DataFrame, k: int, *order: Column) -> DataFrame:
    """The top k per user by `order` (then item_id), as (user_id, rank, item_id, score)."""
    window = Window.partitionBy(USER_ID).orderBy(*order, F.col(ITEM_ID).asc())
    return (candidates.withColumn(RANK, F.row_number().over(window)).where(F.col(RANK) <= k)
            .select(USER_ID, F.col(RANK).cast("int").alias(RANK), ITEM_ID, F.col(SCORE).cast("double").alias(SCORE)))


def popularity(train: DataFrame, users: DataFrame, k: int, exclude_seen: bool = True, *,
               max_extra: int = MAX_EXTRA_CANDIDATES) -> DataFrame:
    """The most popular items for every user in `users` (users unknown to train included: this
    is the cold-start fallback). Popularity = number of distinct training users of the item
    (robust to one user's heavy weight; it is gold.item_features.n_users), ties broken by
    summed weight, then item_id; score = that user count.

    Never crosses all users with all items: the top k (+ the largest target history, at most
    `max_extra`, when excluding seen items) items are taken once, broadcast, crossed with the
    users, seen pairs removed, and ranked."""
    k = require_positive("k", k)
    max_extra = require_positive("max_extra", max_extra) if exclude_seen else 0
    pairs = _interactions(train)
    targets = _targets(users)
    per_item = pairs.groupBy(ITEM_ID).agg(F.count(F.lit(1)).alias(SCORE), F.sum(WEIGHT).alias("_weight"))
    extra = 0
    if exclude_seen:
        seen = _seen(pairs, targets)
        extra = _extra_candidates(seen, max_extra)
    top = per_item.orderBy(F.col(SCORE).desc(), F.col("_weight").desc(), F.col(ITEM_ID).asc()).limit(k + extra)
    candidates = targets.crossJoin(F.broadcast(top))
    if exclude_seen:
        candidates = candidates.join(seen, [USER_ID, ITEM_ID], "left_anti")
    return _ranked(candidates, k, F.col(SCORE).desc(), F.col("_weight").desc())


def popular_per_source(train: DataFrame) -> DataFrame:
    """(source, item_id, score): each source's items by distinct training users (the fallback's
    input; a user is offered their own source's popular items, never another shop's)."""
    require_columns(train, "train", (SOURCE, USER_ID, ITEM_ID), RecommenderError)
    return (train.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
            .groupBy(SOURCE, ITEM_ID).agg(F.countDistinct(USER_ID).cast("double").alias(SCORE)))


def recent(history: DataFrame, users: DataFrame, k: int, *, exclusions: DataFrame | None = None,
           items: DataFrame | None = None) -> DataFrame:
    """What a shop's "recently viewed" list shows: each user's own items, the most recent first
    and, at the same time, the most often used first. `history` is (user_id, item_id, weight,
    last_time), e.g. gold.interactions; score = the item's last time in epoch seconds. Users
    without history get no rows; `exclusions` and `items` as in `cooccurrence`."""
    k = require_positive("k", k)
    require_columns(history, "history", (USER_ID, ITEM_ID, WEIGHT, LAST_TIME), RecommenderError)
    candidates = (history.join(_targets(users), USER_ID, "left_semi")
                  .groupBy(USER_ID, ITEM_ID)
                  .agg(F.max(LAST_TIME).cast("double").alias(SCORE), F.sum(WEIGHT).alias("_weight")))
    candidates = _allowed(candidates, exclusions, items)
    return _ranked(candidates, k, F.col(SCORE).desc(), F.col("_weight").desc())


def then_fill(first: DataFrame, then: DataFrame, k: int) -> DataFrame:
    """`first`'s lists (user_id, rank, item_id, score), each followed by the items of `then`'s
    list for the same user that `first` does not hold, in `then`'s order, up to k per user.
    Ranks stay contiguous; scores are each list's own (comparable within one part only)."""
    k = require_positive("k", k)
    for name, frame in (("first", first), ("then", then)):
        require_columns(frame, name, (USER_ID, RANK, ITEM_ID, SCORE), RecommenderError)
    lengths = first.groupBy(USER_ID).agg(F.max(RANK).alias("_first"))
    rest = (then.join(first.select(USER_ID, ITEM_ID), [USER_ID, ITEM_ID], "left_anti")
            .join(lengths, USER_ID, "left").fillna(0, ["_first"]))
    order = Window.partitionBy(USER_ID).orderBy(F.col(RANK), F.col(ITEM_ID))
    rest = rest.withColumn(RANK, F.row_number().over(order) + F.col("_first"))
    return (first.select(USER_ID, RANK, ITEM_ID, SCORE).unionByName(rest.select(USER_ID, RANK, ITEM_ID, SCORE))
            .where(F.col(RANK) <= k)
            .select(USER_ID, F.col(RANK).cast("int").alias(RANK), ITEM_ID, F.col(SCORE).cast("double").alias(SCORE)))


def _allowed(candidates: DataFrame, exclusions: DataFrame | None, items: DataFrame | None) -> DataFrame:
    """`candidates` (user_id, item_id, ...) without the `exclusions` pairs, within `items`."""
    if exclusions is not None:
        require_columns(exclusions, "exclusions", (USER_ID, ITEM_ID), RecommenderError)
        candidates = candidates.join(exclusions.select(USER_ID, ITEM_ID), [USER_ID, ITEM_ID], "left_anti")
    if items is not None:
        require_columns(items, "items", (ITEM_ID,), RecommenderError)
        candidates = candidates.join(items.select(ITEM_ID), ITEM_ID, "left_semi")
    return candidates


def _bounded_history(pairs: DataFrame, max_items_per_user: int) -> DataFrame:
    """(user_id, item_id): each user's `max_items_per_user` heaviest items (ties: item_id)."""
    heaviest = Window.partitionBy(USER_ID).orderBy(F.col(WEIGHT).desc(), F.col(ITEM_ID).asc())
    return pairs.withColumn("_n", F.row_number().over(heaviest)).where(F.col("_n") <= max_items_per_user).select(USER_ID, ITEM_ID)


def cooccurrence_counts(train: DataFrame, *, max_items_per_user: int = MAX_ITEMS_PER_USER) -> DataFrame:
    """(item_a, item_b, n): the number of training users with both items in their bounded
    history (each user's `max_items_per_user` heaviest items), for item_a != item_b, both
    directions. The bound keeps the per-user self-join at most max_items_per_user² pairs."""
    max_items_per_user = require_positive("max_items_per_user", max_items_per_user)
    history = _bounded_history(_interactions(train), max_items_per_user)
    left = history.select(USER_ID, F.col(ITEM_ID).alias("item_a"))
    right = history.select(USER_ID, F.col(ITEM_ID).alias("item_b"))
    return (left.join(right, USER_ID).where(F.col("item_a") != F.col("item_b"))
            .groupBy("item_a", "item_b").agg(F.count(F.lit(1)).alias("n")))


def cooccurrence(train: DataFrame, users: DataFrame, k: int, exclude_seen: bool = True, *,
                 max_items_per_user: int = MAX_ITEMS_PER_USER, min_count: int = 1,
                 exclusions: DataFrame | None = None, items: DataFrame | None = None) -> DataFrame:
    """Item-to-item recommendations: a candidate's score is the sum, over the user's bounded
    history items h, of the number of users who had both h and the candidate
    (`cooccurrence_counts`, pairs seen by fewer than `min_count` users dropped).

    Users with no candidate (not in train, or whose items co-occur with nothing) get no rows,
    and a user may get fewer than k: the caller fills up from `popularity`. Excluding seen
    items removes the user's whole training history, not only the bounded part. Serving rules
    come as frames: `exclusions` (user_id, item_id) are never recommended to that user (with
    exclude_seen=False they are the only pairs excluded), and with `items` (item_id) only those
    items are candidates (e.g. `recsynth.rec.topn.eligible_items`)."""
    k = require_positive("k", k)
    max_items_per_user = require_positive("max_items_per_user", max_items_per_user)
    min_count = require_positive("min_count", min_count)
    pairs = _interactions(train)
    targets = _targets(users)
    counts = cooccurrence_counts(train, max_items_per_user=max_items_per_user).where(F.col("n") >= min_count)
    history = _bounded_history(pairs, max_items_per_user).join(targets, USER_ID, "left_semi")
    candidates = (history.join(counts, history[ITEM_ID] == counts["item_a"])
                  .groupBy(USER_ID, F.col("item_b").alias(ITEM_ID)).agg(F.sum("n").alias(SCORE)))
    if exclude_seen:
        candidates = candidates.join(_seen(pairs, targets), [USER_ID, ITEM_ID], "left_anti")
    return _ranked(_allowed(candidates, exclusions, items), k, F.col(SCORE).desc())


@dataclass(frozen=True)
class AlsFit:
    """A fitted implicit ALS with its string-id mappings. `users` is (user_id, _user_idx int),
    `items` is (item_id, _item_idx int): lazy frames (StringIndexer models applied to the
    distinct ids), so nothing large is built on the driver."""
    model: ALSModel
    interactions: DataFrame   # the aggregated training pairs (for exclude_seen)
    users: DataFrame
    items: DataFrame
    reg_param: float
    alpha: float

    @property
    def user_factors(self) -> DataFrame:
        """(user_id, vector array<float>) for every training user."""
        factors = self.model.userFactors.select(F.col("id").alias(_USER_IDX), F.col("features").alias("vector"))
        return factors.join(self.users, _USER_IDX).select(USER_ID, "vector")

    @property
    def item_factors(self) -> DataFrame:
        """(item_id, vector array<float>) for every training item."""
        factors = self.model.itemFactors.select(F.col("id").alias(_ITEM_IDX), F.col("features").alias("vector"))
        return factors.join(self.items, _ITEM_IDX).select(ITEM_ID, "vector")

    def fold_in(self, pairs: DataFrame) -> DataFrame:
        """(user_id, vector array<float>) for the users of `pairs` (user_id, item_id, weight) from
        their own items and the fitted item factors (`als_fold_in`): a training user's factors, and
        a vector for users the fit never saw."""
        return fold_in(_interactions(pairs), self._factor_arrays, reg_param=self.reg_param, alpha=self.alpha)

    @cached_property
    def _factor_arrays(self):
        """The item factors gathered once (each fold-in broadcasts them)."""
        return factor_arrays(self.item_factors)

    def recommend(self, users: DataFrame, k: int, exclude_seen: bool = True, *,
                  max_extra: int = MAX_EXTRA_CANDIDATES) -> DataFrame:
        """Top k by predicted preference (score = user · item factors) for the users of `users`
        that are in train (others get no rows: fall back to `popularity`). With exclude_seen
        it asks ALS for k + the largest target history (at most `max_extra`) and drops seen
        items, so k remain unless a user saw more than that among them."""
        k = require_positive("k", k)
        max_extra = require_positive("max_extra", max_extra) if exclude_seen else 0
        targets = _targets(users).join(self.users, USER_ID)
        extra = 0
        if exclude_seen:
            seen = _seen(self.interactions, targets.select(USER_ID))
            extra = _extra_candidates(seen, max_extra)
        fetched = self.model.recommendForUserSubset(targets.select(_USER_IDX), k + extra)
        exploded = fetched.select(_USER_IDX, F.explode("recommendations").alias("_r")).select(
            _USER_IDX, F.col(f"_r.{_ITEM_IDX}").alias(_ITEM_IDX), F.col("_r.rating").alias(SCORE))
        candidates = exploded.join(targets, _USER_IDX).join(self.items, _ITEM_IDX).select(USER_ID, ITEM_ID, SCORE)
        if exclude_seen:
            candidates = candidates.join(seen, [USER_ID, ITEM_ID], "left_anti")
        return _ranked(candidates, k, F.col(SCORE).desc())


def _index(pairs: DataFrame, column: str, index: str) -> tuple[StringIndexerModel, DataFrame]:
    """A StringIndexer over `column` (alphabetical, so reproducible) and the (id, index int)
    mapping of the distinct ids, computed on executors."""
    model = StringIndexer(inputCol=column, outputCol=index, stringOrderType="alphabetAsc").fit(pairs.select(column))
    mapping = model.transform(pairs.select(column).distinct()).select(column, F.col(index).cast("int").alias(index))
    return model, mapping


def fit_als(train: DataFrame, *, rank: int = 32, reg_param: float = 0.1, alpha: float = 10.0,
            max_iter: int = 10, seed: int = 42, blocks: int | None = None) -> AlsFit:
    """Implicit-feedback ALS (implicitPrefs=True) on the summed weight as confidence, string
    ids indexed by StringIndexer. Returns the model, its id mappings and factor frames.

    `blocks` is MLlib's number of user blocks and of item blocks (one task each per iteration);
    None: the session's shuffle partitions. MLlib's own default, 10, took 23-32 s against 13-15 s
    with 2 to fit the bundled sample on 2 cores."""
    rank = require_positive("rank", rank)
    max_iter = require_positive("max_iter", max_iter)
    blocks = int(train.sparkSession.conf.get("spark.sql.shuffle.partitions")) if blocks is None else \
        require_positive("blocks", blocks)
    for name, value in (("reg_param", reg_param), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, Real) or value < 0:
            raise RecommenderError(f"{name} must be a number >= 0, got {value!r}")
    pairs = _interactions(train)
    user_indexer, users = _index(pairs, USER_ID, _USER_IDX)
    item_indexer, items = _index(pairs, ITEM_ID, _ITEM_IDX)
    indexed = item_indexer.transform(user_indexer.transform(pairs)).select(
        F.col(_USER_IDX).cast("int").alias(_USER_IDX), F.col(_ITEM_IDX).cast("int").alias(_ITEM_IDX), WEIGHT)
    estimator = ALS(rank=rank, maxIter=max_iter, regParam=float(reg_param), alpha=float(alpha), implicitPrefs=True,
                    userCol=_USER_IDX, itemCol=_ITEM_IDX, ratingCol=WEIGHT, seed=int(seed), coldStartStrategy="drop",
                    numUserBlocks=blocks, numItemBlocks=blocks)
    return AlsFit(model=estimator.fit(indexed), interactions=pairs, users=users, items=items, reg_param=float(reg_param),
                  alpha=float(alpha))


def als(train: DataFrame, users: DataFrame, k: int, *, rank: int = 32, reg_param: float = 0.1, alpha: float = 10.0,
        max_iter: int = 10, seed: int = 42, exclude_seen: bool = True) -> DataFrame:
    """`fit_als(...).recommend(users, k, exclude_seen)`: ALS recommendations in the common
    shape. Call `fit_als` yourself to also keep the factor frames."""
    fit = fit_als(train, rank=rank, reg_param=reg_param, alpha=alpha, max_iter=max_iter, seed=seed)
    return fit.recommend(users, k, exclude_seen)
