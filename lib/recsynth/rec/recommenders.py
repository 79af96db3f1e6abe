"""One small contract every model and baseline implements, so that evaluation, selection and
serving treat them alike: `fit` on one period's history, then `recommend` for any users from any
history (the fit periods' at evaluation, every event for serving) under exclusions.

A model returns its own lists, possibly short or empty for a user; the caller fills them up from
the user's source's popular items (`topn.with_fallback` with a source column), so `popularity` itself returns
nothing. `similar_items` is the model's item-to-item list where it defines one (None otherwise:
`recent` and popularity define none).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth.rec import topn
from recsynth.rec.baselines import AlsFit, cooccurrence_counts, fit_als, recent, then_fill
from recsynth.rec.columns import ITEM_ID, LAST_TIME, RANK, SCORE, SIMILAR_ITEM_ID, USER_ID, WEIGHT
from recsynth.rec.neighbours import NEIGHBOUR_ID as NEIGHBOUR
from recsynth.rec.neighbours import SIMILARITY, EaseGram, ease_gram, ease_neighbours, itemknn, score_neighbours


@dataclass(frozen=True)
class History:
    """What a model learns from or scores users from, for some periods: the `events` (source,
    user_id, item_id, event_type, event_time, ...) and their `pairs` (source, user_id, item_id,
    weight, last_time, ...), gold.interactions' shape."""
    events: DataFrame
    pairs: DataFrame


def _as_is(frame: DataFrame) -> DataFrame:
    return frame


class Recommender(ABC):
    """`complexity` orders the models: a more complex one replaces a simpler one only on evidence;
    `item_to_item` says whether `similar_items` has an answer (without computing it)."""
    name: str
    complexity: int
    item_to_item = False

    def params(self) -> dict:
        """The hyper-parameters to record beside the model's metrics."""
        return {}

    @abstractmethod
    def fit(self, data: History, eligible: DataFrame, keep=_as_is) -> "Recommender":
        """Learn from `data`; only `eligible` (item_id) items may be recommended; what is learnt
        and read again goes through `keep` (e.g. `runtime.cache.cached_frames`). Returns self."""

    @abstractmethod
    def recommend(self, users: DataFrame, history: History, k: int, exclusions: DataFrame | None) -> DataFrame:
        """(user_id, rank, item_id, score): up to k items per user of `users`, none excluded."""

    def similar_items(self, k: int) -> DataFrame | None:
        """(item_id, rank, similar_item_id, score), or None when the model has no item-item scores."""
        return None

    def follows(self) -> "Recommender | None":
        """The model whose lists this one's build on (None: none); an evaluation that already holds
        them for the same users, history and exclusions passes them to `recommend_after`."""
        return None

    def recommend_after(self, lists: DataFrame, users: DataFrame, history: History, k: int,
                        exclusions: DataFrame | None) -> DataFrame:
        """`recommend`, given the lists of `follows()` (as it recommends them, or filled up). A model
        that follows none has nothing to build on, so it recommends as `recommend` does."""
        return self.recommend(users, history, k, exclusions)


class Popularity(Recommender):
    """Nothing of its own: the fallback (each source's most popular items) is the whole list."""
    name, complexity = "popularity", 0

    def fit(self, data, eligible, keep=_as_is):
        self.eligible = eligible
        return self

    def recommend(self, users, history, k, exclusions):
        return users.sparkSession.createDataFrame([], "user_id string, rank int, item_id string, score double")


class Recent(Recommender):
    """The user's own items, the most recent first: the list a shop already shows."""
    name, complexity = "recent", 1

    def fit(self, data, eligible, keep=_as_is):
        self.eligible = eligible
        return self

    def recommend(self, users, history, k, exclusions):
        return recent(history.pairs, users, k, exclusions=exclusions, items=self.eligible)


def _bounded(pairs: DataFrame, users: DataFrame, max_items: int) -> DataFrame:
    """(user_id, item_id, weight 1.0): each user's `max_items` most recent distinct items."""
    latest = Window.partitionBy(USER_ID).orderBy(F.col(LAST_TIME).desc(), F.col(ITEM_ID))
    per_pair = pairs.join(users.select(USER_ID).distinct(), USER_ID, "left_semi").groupBy(USER_ID, ITEM_ID).agg(
        F.max(LAST_TIME).alias(LAST_TIME))
    return (per_pair.withColumn("_n", F.row_number().over(latest)).where(F.col("_n") <= max_items)
            .select(USER_ID, ITEM_ID, F.lit(1.0).alias(WEIGHT)))


class NeighbourModel(Recommender):
    """An item-to-item model: a table of weighted neighbours scored by `score_neighbours` over
    the user's `history_items` most recent items."""
    neighbours: DataFrame
    item_to_item = True

    def __init__(self, history_items: int):
        self.history_items = history_items

    def fit(self, data, eligible, keep=_as_is):
        self.eligible = eligible
        self.neighbours = keep(self._neighbours(data))
        return self

    @abstractmethod
    def _neighbours(self, data: History) -> DataFrame:
        """(item_id, neighbour_id, similarity) learnt from `data`."""

    def recommend(self, users, history, k, exclusions):
        return score_neighbours(_bounded(history.pairs, users, self.history_items), self.neighbours, k,
                                exclusions=exclusions, items=self.eligible)

    def similar_items(self, k):
        neighbours = (self.neighbours.join(self.eligible, ITEM_ID, "left_semi")
                      .join(self.eligible.withColumnRenamed(ITEM_ID, NEIGHBOUR), NEIGHBOUR, "left_semi")
                      .where((F.col(SIMILARITY) > 0) & (F.col(ITEM_ID) != F.col(NEIGHBOUR))))
        order = Window.partitionBy(ITEM_ID).orderBy(F.col(SIMILARITY).desc(), F.col(NEIGHBOUR))
        return (neighbours.withColumn(RANK, F.row_number().over(order)).where(F.col(RANK) <= k)
                .select(ITEM_ID, F.col(RANK).cast("int").alias(RANK), F.col(NEIGHBOUR).alias(SIMILAR_ITEM_ID),
                        F.col(SIMILARITY).cast("double").alias(SCORE)))


class Cooccurrence(NeighbourModel):
    """Neighbours = how many users had both items."""
    name, complexity = "cooccurrence", 2

    def __init__(self, history_items: int, min_count: int):
        super().__init__(history_items)
        self.min_count = min_count

    def params(self):
        return {"max_items_per_user": self.history_items, "min_count": self.min_count}

    def _neighbours(self, data):
        counts = cooccurrence_counts(data.pairs, max_items_per_user=self.history_items)
        return counts.where(F.col("n") >= self.min_count).select(
            F.col("item_a").alias(ITEM_ID), F.col("item_b").alias(NEIGHBOUR), F.col("n").cast("double").alias(SIMILARITY))


class ItemKnn(NeighbourModel):
    """Neighbours = cosine of the items' user sets, the `max_neighbours` closest."""
    name, complexity = "itemknn", 3

    def __init__(self, history_items: int, max_neighbours: int):
        super().__init__(history_items)
        self.max_neighbours = max_neighbours

    def params(self):
        return {"max_neighbours": self.max_neighbours, "max_items_per_user": self.history_items}

    def _neighbours(self, data):
        return itemknn(data.pairs, max_neighbours=self.max_neighbours, max_items_per_user=self.history_items)


class Ease(NeighbourModel):
    """EASE (Steck 2019) over the `max_items` items with the most users. Models fitted on the same data
    may share a `grams` dict: one Gram matrix per max_items, so a search over l2 builds it once."""
    name, complexity = "ease", 4

    def __init__(self, history_items: int, max_items: int, max_neighbours: int, l2: float,
                 grams: dict[int, EaseGram] | None = None):
        super().__init__(history_items)
        self.max_items, self.max_neighbours, self.l2 = max_items, max_neighbours, l2
        self.grams = {} if grams is None else grams

    def params(self):
        return {"l2": self.l2, "max_items": self.max_items, "max_neighbours": self.max_neighbours}

    def _neighbours(self, data):
        if self.max_items not in self.grams:
            self.grams[self.max_items] = ease_gram(data.pairs, max_items=self.max_items)
        return ease_neighbours(data.pairs.sparkSession, self.grams[self.max_items], l2=self.l2,
                               max_neighbours=self.max_neighbours)


class RecentThenEase(Recommender):
    """The user's own items, newest first (`recent`), then EASE's items in the places left: the
    shop's "recently viewed" list with its empty slots filled by a model instead of by the
    source's most popular items. On `discovery` (own items excluded) it is EASE's list.

    `ease` is an EASE model already fitted on the same data (the `ease` model of the same
    setting), so its inversion and neighbours are computed once for both."""
    name, complexity = "recent_ease", 6
    item_to_item = True

    def __init__(self, ease: Ease):
        self.ease = ease

    def params(self):
        return self.ease.params()

    def fit(self, data, eligible, keep=_as_is):
        self.eligible = eligible
        return self

    def recommend(self, users, history, k, exclusions):
        return self.recommend_after(self.ease.recommend(users, history, k, exclusions), users, history, k, exclusions)

    def follows(self):
        return self.ease

    def recommend_after(self, lists, users, history, k, exclusions):
        """The user's own items, then EASE's `lists` (filled up from the popular items or not: the
        list is the same)."""
        own = recent(history.pairs, users, k, exclusions=exclusions, items=self.eligible)
        return then_fill(own, lists, k)

    def similar_items(self, k):
        return self.ease.similar_items(k)


class Als(Recommender):
    """Spark MLlib implicit ALS. A user's vector is folded in from their history (the one scored
    from) against the fitted item factors, so users outside the fit, or real users against item
    factors learnt from synthetic events, get lists too."""
    name, complexity = "als", 5
    item_to_item = True

    def __init__(self, rank: int, reg_param: float, alpha: float, max_iter: int, seed: int, block_rows: int | None,
                 blocks: int | None = None):
        self.settings = {"rank": rank, "reg_param": reg_param, "alpha": alpha, "max_iter": max_iter, "seed": seed,
                         "blocks": blocks}
        self.block_rows = block_rows
        self.fitted: AlsFit | None = None

    def params(self):
        return dict(self.settings)

    def fit(self, data, eligible, keep=_as_is):
        self.fitted = fit_als(data.pairs.select(USER_ID, ITEM_ID, WEIGHT), **self.settings)
        self.items = keep(self.fitted.item_factors.join(eligible, ITEM_ID, "left_semi"))
        return self

    def recommend(self, users, history, k, exclusions):
        pairs = history.pairs.join(users.select(USER_ID).distinct(), USER_ID, "left_semi").select(USER_ID, ITEM_ID, WEIGHT)
        return topn.top_n(self.fitted.fold_in(pairs), self.items,
                          exclusions, k, block_rows=self.block_rows)

    def similar_items(self, k):
        return topn.similar_items(self.items, k, block_rows=self.block_rows)
