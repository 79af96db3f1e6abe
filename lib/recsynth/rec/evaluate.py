"""Every model's lists scored on both tasks against one truth, per source and pooled, with a
bootstrap 95% interval beside every mean NDCG.

A pooled mean is dominated by the largest source, so each source gets its own rows besides the
pooled one (source `all`). Every list's per-user metrics are computed into one frame, so all
intervals take one Spark job; what reaches the driver is one row per (model, task, source).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import ITEM_ID, RANK, SOURCE, USER_ID
from recsynth.rec.intervals import REPLICATE, replicate_means, summarised
from recsynth.rec.metrics import N_USERS, per_user_metrics
from recsynth.rec.rules import TASKS

POOLED = "all"
MODEL, TASK = "model", "task"
NDCG = "ndcg_at_k"
# per_user_metrics' columns -> the means' names in recs.metrics
MEANS = {"precision_at_k": "precision_at_k", "recall_at_k": "recall_at_k", NDCG: NDCG, "ap_at_k": "map_at_k",
         "hit_at_k": "hit_rate_at_k"}


@dataclass(frozen=True)
class Yardstick:
    """What every model is scored against on one held-out period: per task, the truth (user_id,
    item_id), what lists must leave out and the most any evaluated user has to leave out; the
    evaluated users' sources (user_id, source); k."""
    truth: dict[str, DataFrame]
    exclusions: dict[str, DataFrame | None]
    max_excluded: dict[str, int]
    user_sources: DataFrame
    k: int

    def users(self, task: str) -> DataFrame:
        """(user_id, source) of the users evaluated on `task`: those with a relevant item."""
        return self.user_sources.join(self.truth[task].select(USER_ID).distinct(), USER_ID, "left_semi")


def _top_of_lists(lists: dict[tuple[str, str], DataFrame], k: int) -> DataFrame:
    """(model, task, user_id, rank, item_id): every list's first k places, in one frame."""
    for _, task in lists:
        if task not in TASKS:
            raise RecommenderError(f"task must be one of {TASKS}, got {task!r}")
    return functools.reduce(DataFrame.unionByName, [
        recommendations.where(F.col(RANK) <= k).select(F.lit(model).alias(MODEL), F.lit(task).alias(TASK), USER_ID, RANK,
                                                       ITEM_ID)
        for (model, task), recommendations in lists.items()])


def per_user(top: DataFrame, lists: list[tuple[str, str]], yardstick: Yardstick) -> DataFrame:
    """(model, task, source, user_id, metrics...) of every list of `top` (`_top_of_lists`; `lists`
    its (model, task) keys): every user evaluated on the list's task, twice, under their source and
    under source `all`. One plan for all lists: their shuffles are shared, not repeated per list."""
    truth = functools.reduce(DataFrame.unionByName, [
        yardstick.truth[task].select(F.lit(model).alias(MODEL), F.lit(task).alias(TASK), USER_ID, ITEM_ID)
        for model, task in lists])
    scored = per_user_metrics(top, truth, yardstick.k, by=(MODEL, TASK))
    return _with_pooled(scored.select(MODEL, TASK, USER_ID, *MEANS).join(yardstick.user_sources, USER_ID))


def _with_pooled(frame: DataFrame) -> DataFrame:
    """Each row under its source and once more under `all` (one read of `frame`)."""
    return frame.withColumn(SOURCE, F.explode(F.array(F.col(SOURCE), F.lit(POOLED))))


def _list_level(top: DataFrame, lists: list[tuple[str, str]], yardstick: Yardstick, popularity: DataFrame,
                total_users: int) -> DataFrame:
    """(model, task, source, _items, novelty): distinct items in the evaluated users' top k, and
    the mean self-information -log2 p(item) of the listed pairs (p from the fit period's users)."""
    users = functools.reduce(DataFrame.unionByName, [
        yardstick.users(task).select(F.lit(task).alias(TASK), USER_ID, SOURCE) for task in {task for _, task in lists}])
    listed = top.join(users, [TASK, USER_ID]).select(MODEL, TASK, SOURCE, USER_ID, ITEM_ID)
    share = F.greatest(F.coalesce(F.col(N_USERS), F.lit(1)), F.lit(1)) / F.lit(float(total_users))
    return (_with_pooled(listed).join(popularity, ITEM_ID, "left").groupBy(MODEL, TASK, SOURCE)
            .agg(F.countDistinct(ITEM_ID).alias("_items"), F.avg(-F.log2(share)).alias("novelty")))


def evaluate(lists: dict[tuple[str, str], DataFrame], yardstick: Yardstick, *, catalogue_items: dict[str, int],
             popularity: DataFrame, total_users: int, replicates: int, seed: int, keep=lambda frame: frame
             ) -> tuple[list[dict], dict[tuple[str, str], np.ndarray]]:
    """The rows of recs.metrics for `lists` ((model, task) -> lists): model, task, source, users,
    the means of MEANS, ndcg_at_k_low / _high, catalogue_coverage, novelty, catalogue_items; and
    per (model, task) the pooled NDCG's replicate means (index 0 the mean, then the bootstrap
    replicates), from which `intervals.paired_difference` compares two models without another
    job. Every list's per-user metrics go into one frame, so the intervals of all lists take one
    Spark job (its replicate means through `keep`), and the list-level measures one more.
    `catalogue_items` is the eligible catalogue's size per source and under `all`; `popularity`
    (item_id, n_users) and `total_users` are the fit period's."""
    require_columns(yardstick.user_sources, "user_sources", (USER_ID, SOURCE), RecommenderError)
    if not lists:
        raise RecommenderError("no lists to evaluate")
    top = _top_of_lists(lists, yardstick.k)
    replicated = keep(replicate_means(per_user(top, list(lists), yardstick), list(MEANS), [MODEL, TASK, SOURCE],
                                      replicates=replicates, seed=seed))
    means = summarised(replicated, list(MEANS), [MODEL, TASK, SOURCE], interval_of=NDCG)
    level = {(r[MODEL], r[TASK], r[SOURCE]): r
             for r in _list_level(top, list(lists), yardstick, popularity, total_users).collect()}
    rows = []
    for row in means.collect():
        key = (row[MODEL], row[TASK], row[SOURCE])
        listed, catalogue = level.get(key), catalogue_items.get(row[SOURCE], 0)
        rows.append({MODEL: row[MODEL], TASK: row[TASK], SOURCE: row[SOURCE], "users": int(row["users"]),
                     **{name: _number(row[column]) for column, name in MEANS.items()},
                     f"{NDCG}_low": _number(row[f"{NDCG}_low"]), f"{NDCG}_high": _number(row[f"{NDCG}_high"]),
                     "catalogue_coverage": (listed["_items"] / catalogue) if listed and catalogue else 0.0,
                     "novelty": _number(listed["novelty"]) if listed else None, "catalogue_items": catalogue})
    pooled = np.full((len(lists), replicates + 1), np.nan)
    order = {key: n for n, key in enumerate(lists)}
    for row in replicated.where(F.col(SOURCE) == POOLED).select(MODEL, TASK, REPLICATE, NDCG).collect():
        if row[NDCG] is not None:   # lists x replicates rows: bounded by the conf, not by users
            pooled[order[(row[MODEL], row[TASK])], row[REPLICATE] + 1] = row[NDCG]
    return sorted(rows, key=lambda r: (r[TASK], r[SOURCE], r[MODEL])), {key: pooled[n] for key, n in order.items()}


def _number(value) -> float | None:
    return None if value is None else float(value)
