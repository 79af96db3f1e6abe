"""Top-N recommendations for every user and similar items per item, scored on executors.

The catalogue (item vectors) is small enough to broadcast: it is collected once to the driver as
one float32 matrix, sorted by item id, and broadcast. Users never leave the executors: each
partition of users is scored in blocks of `block_rows` users (block @ items.T with numpy), the
user's excluded items are masked to -inf, and a bounded top-k per user is taken with
np.argpartition, so no users x items cross join is ever materialised in Spark.

Ties are broken by item id (ascending), so the output is deterministic. "Active" items are the
rows of the current catalogue table passed to `eligible_items` (gold.item_features or
silver.items): the sources carry no availability flag, so an item is active while it is in the
current catalogue (see `eligible_items`).
"""
from __future__ import annotations

import datetime as dt
import numbers
import re
from functools import partial

import numpy as np
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType, DoubleType, FloatType, IntegerType, LongType, StringType, StructField, StructType,
)

from recsynth import tables as T
from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import (
    GENERATED_AT, ITEM_ID, MODEL_VERSION, RANK, SCORE, SOURCE, USER_ID, VECTOR,
)
from recsynth.rec.columns import require_positive
from recsynth.train.scoring import score_on_executors
EXCLUDED = "_excluded"
_ROW = "_row"

# Memory one scored block may take on an executor's Python worker: the float scores plus
# np.argpartition's int64 indices and a boolean mask, about 16 bytes per (user, item) cell.
BLOCK_BYTES = 64 * 2**20
BYTES_PER_CELL = 16
MAX_BLOCK_ROWS = 1024

_TYPES = {"string": StringType, "int": IntegerType, "double": DoubleType}


def _scored(table: str) -> StructType:
    """What the scorer returns for `table`: its registry columns but model_version and generated_at
    (which `_write` adds), never null."""
    return StructType([StructField(name, _TYPES[kind](), False) for name, kind in T.schema_columns(T.schema(table))
                       if name not in (MODEL_VERSION, GENERATED_AT)])


TOP_N_SCHEMA = _scored(T.RECS_TOP_N)                  # user_id, rank, item_id, score
SIMILAR_ITEMS_SCHEMA = _scored(T.RECS_SIMILAR_ITEMS)  # item_id, rank, similar_item_id, score

_NUMBERS = (DoubleType, FloatType, IntegerType, LongType)
_EXCLUSION_COLUMNS = {USER_ID: (StringType,), ITEM_ID: (StringType,)}   # (user, item) pairs never recommended
_MODEL_VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


# --- input checks ------------------------------------------------------------------------------
def _require_vectors(frame: DataFrame, what: str, id_column: str) -> None:
    require_columns(frame, what, {id_column: (StringType,), VECTOR: (ArrayType,)}, RecommenderError)
    element = frame.schema[VECTOR].dataType.elementType
    if not isinstance(element, (FloatType, DoubleType)):
        raise RecommenderError(f"{what}: column 'vector' is array<{element.simpleString()}>, "
                               "expected array<float> or array<double>")


def _check_k(k) -> int:
    return require_positive("k", k)


def _check_block_rows(block_rows, n_items: int) -> int:
    if block_rows is None:
        return max(1, min(MAX_BLOCK_ROWS, BLOCK_BYTES // (BYTES_PER_CELL * max(n_items, 1))))
    if isinstance(block_rows, bool) or not isinstance(block_rows, numbers.Integral) or block_rows < 1:
        raise RecommenderError(f"block_rows must be an integer >= 1 or None, got {block_rows!r}")
    return int(block_rows)


def _check_user_vectors(user_vectors: DataFrame, dim: int) -> None:
    """One aggregate pass over the users (only three numbers reach the driver)."""
    bad_element = F.exists(VECTOR, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == F.lit(float("inf"))))
    stats = user_vectors.filter(F.col(VECTOR).isNotNull()).agg(
        F.min(F.size(VECTOR)).alias("shortest"),
        F.max(F.size(VECTOR)).alias("longest"),
        F.count(F.when(bad_element, 1)).alias("bad"),
    ).head()
    if stats["shortest"] is None:
        return
    if stats["shortest"] != dim or stats["longest"] != dim:
        raise RecommenderError(f"user_vectors: vector lengths {stats['shortest']}..{stats['longest']} do not match "
                               f"the item vectors' length {dim}")
    if stats["bad"]:
        raise RecommenderError(f"user_vectors: {stats['bad']} vectors contain null, NaN or infinite elements")


# --- the catalogue on the driver ---------------------------------------------------------------
def _collect_items(item_vectors: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Item ids (sorted ascending, numpy str) and their vectors as one float32 matrix."""
    local = item_vectors.select(ITEM_ID, VECTOR).toPandas()
    if local[ITEM_ID].isna().any() or local[VECTOR].isna().any():
        raise RecommenderError("item_vectors: null item_id or vector")
    if local.empty:
        raise RecommenderError("item_vectors: no items (is the eligibility or category filter too strict?)")
    ids = local[ITEM_ID].to_numpy(dtype=str)
    lengths = {len(v) for v in local[VECTOR]}
    if len(lengths) != 1:
        raise RecommenderError(f"item_vectors: vectors have different lengths {sorted(lengths)}")
    matrix = np.stack([np.asarray(v, dtype=np.float32) for v in local[VECTOR]])
    if not np.isfinite(matrix).all():
        raise RecommenderError("item_vectors: vectors contain null, NaN or infinite elements")
    order = np.argsort(ids, kind="stable")
    ids, matrix = ids[order], np.ascontiguousarray(matrix[order])
    duplicated = ids[1:][ids[1:] == ids[:-1]]
    if duplicated.size:
        raise RecommenderError(f"item_vectors: duplicate item_id {duplicated[0]!r}")
    return ids, matrix


# --- the executor kernel -----------------------------------------------------------------------
def _positions(ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `wanted` ids in the sorted `ids`, and which of them are present."""
    at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
    return at, ids[at] == wanted


def rank_block(scores: np.ndarray, excluded, ids: np.ndarray, k: int):
    """Top-k per row of a (rows, items) score block, best first, ties by item id.

    `scores` is modified in place: non-finite scores and each row's `excluded` ids (a sequence,
    one array-like or None per row) are set to -inf and never returned. Returns (row, rank,
    item position, score) arrays; a row has fewer than k entries when fewer items are left."""
    n_rows, n_items = scores.shape
    scores[~np.isfinite(scores)] = -np.inf
    rows = [np.full(len(e), r) for r, e in enumerate(excluded) if e is not None and len(e)]
    if rows:
        wanted = np.concatenate([np.asarray(e, dtype=str) for e in excluded if e is not None and len(e)])
        at, present = _positions(ids, wanted)
        scores[np.concatenate(rows)[present], at[present]] = -np.inf
    kk = min(k, n_items)
    if kk < n_items:
        top = np.argpartition(scores, n_items - kk, axis=1)[:, n_items - kk:]
        top = _break_boundary_ties(scores, top, kk)
    else:
        top = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    values = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((top, -values), axis=1)
    top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
    row, column = np.nonzero(values > -np.inf)  # -inf sorts last, so kept entries are a prefix
    return row, column + 1, top[row, column], values[row, column]


def _break_boundary_ties(scores: np.ndarray, top: np.ndarray, kk: int) -> np.ndarray:
    """argpartition picks arbitrary items among those tied with the k-th score; pick the ones
    with the smallest item ids instead (only rows with such ties are redone)."""
    picked = np.take_along_axis(scores, top, axis=1)
    kth = picked.min(axis=1)
    tied = (scores == kth[:, None]).sum(axis=1) != (picked == kth[:, None]).sum(axis=1)
    for r in np.nonzero(tied & (kth > -np.inf))[0]:
        above = np.nonzero(scores[r] > kth[r])[0]
        equal = np.nonzero(scores[r] == kth[r])[0][: kk - len(above)]
        top[r] = np.concatenate([above, equal])
    return top


def _score_on_executors(queries: DataFrame, key: str, schema: StructType, ids: np.ndarray, matrix: np.ndarray,
                        mode: str, k: int, block_rows: int) -> DataFrame:
    """mapInPandas over `queries` (key, _excluded[, vector | _row]) with (ids, matrix) broadcast;
    `mode` says how a block is scored: 'dot' (query vectors @ matrix.T), 'self' (the key's own row
    of matrix @ matrix.T) or 'constant' (matrix row `_row` of the query: one score per item, the
    same for every query of a source, -inf for items of other sources)."""
    ranker = partial(_ranker, key, [f.name for f in schema.fields], mode, k)
    return score_on_executors(queries, schema, (ids, matrix), ranker, block_rows)


def _ranker(key: str, names: list[str], mode: str, k: int, payload):
    """A function from a block of queries to their top-k rows (`names`: key, rank, item, score)."""
    import pandas as pd

    item_ids, items = payload

    def top_k(part):
        keys = part[key].to_numpy(dtype=str)
        if mode == "dot":
            block = np.stack([np.asarray(v, dtype=np.float32) for v in part[VECTOR]]) @ items.T
        elif mode == "self":  # unit vectors: a cosine, kept within [-1, 1] despite float32 rounding
            block = np.clip(items[_positions(item_ids, keys)[0]] @ items.T, -1.0, 1.0)
        else:  # one score row per source; the query's `_row` says which (a copy: the block is masked in place)
            block = items[part[_ROW].to_numpy(dtype=np.int64)]
        row, rank, position, value = rank_block(block, part[EXCLUDED].tolist(), item_ids, k)
        return pd.DataFrame({
            names[0]: keys[row], names[1]: rank.astype(np.int32),
            names[2]: item_ids[position], names[3]: value.astype(np.float64),
        })

    return top_k


def with_exclusion_arrays(queries: DataFrame, exclusions: DataFrame | None) -> DataFrame:
    """Each user's excluded item ids as one array column (null: none)."""
    if exclusions is None:
        return queries.withColumn(EXCLUDED, F.lit(None).cast("array<string>"))
    require_columns(exclusions, "exclusions", _EXCLUSION_COLUMNS, RecommenderError)
    per_user = (exclusions.filter(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
                .groupBy(USER_ID).agg(F.collect_set(ITEM_ID).alias(EXCLUDED)))
    return queries.join(per_user, USER_ID, "left")


# --- public API --------------------------------------------------------------------------------
def eligible_items(items: DataFrame, catalogue: DataFrame, *, categories: list[str] | None = None) -> DataFrame:
    """The rows of `items` (any frame with item_id: item vectors, popularity) whose item is in
    the current `catalogue` and, when `categories` is given, in one of those categories.

    `catalogue` is gold.item_features or silver.items: the newest row per item. The sources carry
    no availability flag, so "active" means present in that table. A category matches an item's
    `category_id` exactly, or its `category_path` (`/`-joined, root first; an array path is
    joined) exactly or as a prefix ending at a `/`, so "a" matches "a/b" but not "ab". Items
    without a category never match a category filter."""
    require_columns(items, "items", {ITEM_ID: (StringType,)}, RecommenderError)
    require_columns(catalogue, "catalogue", {ITEM_ID: (StringType,)}, RecommenderError)
    current = catalogue
    if categories is not None:
        if isinstance(categories, str) or not categories or not all(isinstance(c, str) and c for c in categories):
            raise RecommenderError("categories must be a non-empty list of non-empty strings (None: no filter), "
                                   f"got {categories!r}")
        fields = {f.name: f.dataType for f in catalogue.schema.fields}
        if "category_path" not in fields and "category_id" not in fields:
            raise RecommenderError("catalogue: a category filter needs a 'category_path' or 'category_id' column")
        match = F.lit(False)
        if "category_path" in fields:
            path = F.col("category_path")
            if isinstance(fields["category_path"], ArrayType):
                path = F.array_join(path, "/")
            for category in categories:
                match = match | (path == F.lit(category)) | path.startswith(F.lit(category.rstrip("/") + "/"))
        if "category_id" in fields:
            match = match | F.col("category_id").cast("string").isin(*categories)
        current = current.filter(F.coalesce(match, F.lit(False)))
    return items.join(current.select(ITEM_ID), ITEM_ID, "left_semi")


def cold_users(users: DataFrame, user_vectors: DataFrame) -> DataFrame:
    """Distinct user_id of `users` that have no (non-null) vector: the popularity fallback's users."""
    require_columns(users, "users", {USER_ID: (StringType,)}, RecommenderError)
    require_columns(user_vectors, "user_vectors", {USER_ID: (StringType,)}, RecommenderError)
    warm = user_vectors.filter(F.col(VECTOR).isNotNull()) if VECTOR in user_vectors.columns else user_vectors
    return users.select(USER_ID).filter(F.col(USER_ID).isNotNull()).distinct().join(warm.select(USER_ID), USER_ID, "left_anti")


def top_n(user_vectors: DataFrame, item_vectors: DataFrame, exclusions: DataFrame | None, k: int, *,
          block_rows: int | None = None) -> DataFrame:
    """Top-k items per user by dot product: (user_id, rank 1..k, item_id, score double).

    `user_vectors` (user_id, vector; one row per user, null vectors skipped) stay on the
    executors; `item_vectors` (item_id, vector) are the eligible catalogue, broadcast.
    `exclusions` (user_id, item_id) are never recommended to that user; a user gets fewer than
    k rows when fewer items are left. `block_rows` users are scored at a time (None: as many as
    fit BLOCK_BYTES for this catalogue, at most MAX_BLOCK_ROWS)."""
    k = _check_k(k)
    _require_vectors(user_vectors, "user_vectors", USER_ID)
    _require_vectors(item_vectors, "item_vectors", ITEM_ID)
    ids, matrix = _collect_items(item_vectors)
    block_rows = _check_block_rows(block_rows, len(ids))
    if exclusions is not None:
        require_columns(exclusions, "exclusions", _EXCLUSION_COLUMNS, RecommenderError)
    _check_user_vectors(user_vectors, matrix.shape[1])
    queries = user_vectors.select(USER_ID, VECTOR).filter(F.col(USER_ID).isNotNull() & F.col(VECTOR).isNotNull())
    return _score_on_executors(with_exclusion_arrays(queries, exclusions), USER_ID, TOP_N_SCHEMA, ids, matrix, "dot", k,
                               block_rows)


def most_excluded(users: DataFrame, exclusions: DataFrame | None) -> int:
    """The most items any user of `users` has in `exclusions` (one aggregate to the driver): how
    many popular items beyond k a fallback must fetch so that every user still finds k."""
    if exclusions is None:
        return 0
    counts = (exclusions.join(users.select(USER_ID), USER_ID, "left_semi").filter(F.col(ITEM_ID).isNotNull())
              .groupBy(USER_ID).agg(F.countDistinct(ITEM_ID).alias("n")).agg(F.max("n").alias("n")).head())
    return counts["n"] or 0


def popularity_fallback(users: DataFrame, popular_items: DataFrame, k: int, exclusions: DataFrame | None = None, *,
                        block_rows: int | None = None, max_excluded: int | None = None) -> DataFrame:
    """The k most popular items for each distinct user of `users`, skipping the user's
    `exclusions`: (user_id, rank, item_id, score = the item's popularity score).

    `popular_items` (item_id, score; higher is more popular, ties by item id) should already be
    eligible (see `eligible_items`). With a `source` column in `popular_items` (and in `users`),
    each user gets their own source's items only, and users of a source without popular items
    get nothing. Only each source's top k + (most exclusions any of these users has:
    `max_excluded`, or `most_excluded` when None) items are collected and broadcast, which is
    enough for every user."""
    k = _check_k(k)
    require_columns(users, "users", {USER_ID: (StringType,)}, RecommenderError)
    require_columns(popular_items, "popular_items", {ITEM_ID: (StringType,), SCORE: _NUMBERS}, RecommenderError)
    by_source = SOURCE in popular_items.columns
    if by_source:
        require_columns(users, "users", {SOURCE: (StringType,)}, RecommenderError)
    queries = users.select(USER_ID, *([SOURCE] if by_source else [])).filter(F.col(USER_ID).isNotNull()).distinct()
    if exclusions is not None:
        require_columns(exclusions, "exclusions", _EXCLUSION_COLUMNS, RecommenderError)
    if max_excluded is None:
        max_excluded = most_excluded(queries, exclusions)
    source = F.col(SOURCE) if by_source else F.lit("")
    top = (popular_items.filter(F.col(ITEM_ID).isNotNull() & F.col(SCORE).isNotNull() & ~F.isnan(SCORE))
           .select(source.alias("_source"), ITEM_ID, F.col(SCORE).cast("double").alias(SCORE))
           .withColumn("_n", F.row_number().over(Window.partitionBy("_source").orderBy(F.col(SCORE).desc(), ITEM_ID)))
           .where(F.col("_n") <= k + max_excluded).drop("_n").toPandas())
    if top.empty:
        raise RecommenderError("popular_items: no items with a score (is the eligibility or category filter too strict?)")
    duplicated = top.duplicated([ITEM_ID])
    if duplicated.any():
        raise RecommenderError(f"popular_items: duplicate item_id {top[ITEM_ID][duplicated].iloc[0]!r}")
    ids = np.sort(top[ITEM_ID].to_numpy(dtype=str))
    sources = sorted(top["_source"].unique())
    scores = np.full((len(sources), len(ids)), -np.inf)
    scores[np.searchsorted(sources, top["_source"]), np.searchsorted(ids, top[ITEM_ID].to_numpy(dtype=str))] = top[SCORE]
    row = F.create_map(*[F.lit(v) for i, s in enumerate(sources) for v in (s, i)])[source]
    queries = queries.withColumn(_ROW, row).where(F.col(_ROW).isNotNull()).select(USER_ID, _ROW)
    block_rows = _check_block_rows(block_rows, len(ids))
    return _score_on_executors(with_exclusion_arrays(queries, exclusions), USER_ID, TOP_N_SCHEMA, ids, scores, "constant", k,
                               block_rows)


def similar_items(item_vectors: DataFrame, k: int, *, block_rows: int | None = None,
                  partitions: int | None = None) -> DataFrame:
    """The k most cosine-similar other items per item: (item_id, rank, similar_item_id, score).

    The item itself is never among its neighbours; items with a zero vector have none and are
    nobody's. Items are scored on executors against the broadcast, normalised catalogue, spread
    over `partitions` tasks (None: spark.sql.shuffle.partitions)."""
    k = _check_k(k)
    _require_vectors(item_vectors, "item_vectors", ITEM_ID)
    ids, matrix = _collect_items(item_vectors)
    block_rows = _check_block_rows(block_rows, len(ids))
    if partitions is not None and (isinstance(partitions, bool) or not isinstance(partitions, numbers.Integral)
                                   or partitions < 1):
        raise RecommenderError(f"partitions must be an integer >= 1 or None, got {partitions!r}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, matrix / norms, np.nan).astype(np.float32)
    spark = item_vectors.sparkSession
    partitions = partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    queries = (item_vectors.select(ITEM_ID).filter(F.col(ITEM_ID).isNotNull()).repartition(partitions)
               .withColumn(EXCLUDED, F.array(ITEM_ID)))
    return _score_on_executors(queries, ITEM_ID, SIMILAR_ITEMS_SCHEMA, ids, unit, "self", k, block_rows)


# --- writes ------------------------------------------------------------------------------------
def _check_model_version(model_version) -> str:
    if not isinstance(model_version, str) or not _MODEL_VERSION_PATTERN.fullmatch(model_version):
        raise RecommenderError(f"model_version must be 1-128 characters of letters, digits and . _ : - "
                               f"(starting with a letter or digit), got {model_version!r}")
    return model_version


def version_predicate(model_version: str) -> str:
    """The SQL predicate selecting one model version's rows (the version is validated and quoted)."""
    escaped = _check_model_version(model_version).replace("\\", "\\\\").replace("'", "\\'")
    return f"{MODEL_VERSION} = '{escaped}'"


def _write(lake, name: str, frame: DataFrame, schema: StructType, model_version: str, generated_at) -> None:
    require_columns(frame, name, schema.fieldNames(), RecommenderError)
    predicate = version_predicate(model_version)
    if not isinstance(generated_at, dt.datetime):
        raise RecommenderError(f"generated_at must be a datetime, got {generated_at!r}")
    rows = frame.select(
        *[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields],
        F.lit(model_version).alias(MODEL_VERSION),
        F.lit(generated_at).cast("timestamp").alias(GENERATED_AT),
    )
    if lake.exists(name):
        lake.overwrite(name, rows, replace_where=predicate)
    else:  # first write: nothing to replace, and the table takes this schema
        lake.overwrite(name, rows)


def write_top_n(lake, frame: DataFrame, model_version: str, generated_at: dt.datetime) -> None:
    """Write `top_n` / `popularity_fallback` rows to recs.top_n for `model_version`, replacing
    that version's rows (a re-run never duplicates them); other versions' rows are kept."""
    _write(lake, T.RECS_TOP_N, frame, TOP_N_SCHEMA, model_version, generated_at)


def write_similar_items(lake, frame: DataFrame, model_version: str, generated_at: dt.datetime) -> None:
    """Write `similar_items` rows to recs.similar_items for `model_version`, replacing that
    version's rows; other versions' rows are kept."""
    _write(lake, T.RECS_SIMILAR_ITEMS, frame, SIMILAR_ITEMS_SCHEMA, model_version, generated_at)


def drop_old_versions(lake, name: str, keep: int) -> list[str]:
    """Delete from recs.top_n / recs.similar_items the rows of every model version but the `keep`
    newest (by generation time), so that re-trained versions do not pile up; returns the dropped
    versions. One row per version reaches the driver."""
    if keep < 1:
        raise RecommenderError(f"keep must be at least 1, got {keep}")
    versions = (lake.read(name).groupBy(MODEL_VERSION).agg(F.max(GENERATED_AT).alias(GENERATED_AT))
                .orderBy(F.desc(GENERATED_AT), F.desc(MODEL_VERSION)).collect())
    stale = [row[MODEL_VERSION] for row in versions[keep:]]
    if stale:
        lake.delete(name, F.col(MODEL_VERSION).isin(stale))
    return stale


# --- filling lists up --------------------------------------------------------------------------
def with_fallback(recommendations: DataFrame, users: DataFrame, popular_items: DataFrame, k: int,
                  exclusions: DataFrame | None = None, *, block_rows: int | None = None,
                  max_excluded: int | None = None) -> DataFrame:
    """k rows for every distinct user of `users`: the user's `recommendations` (user_id, rank,
    item_id, score; ranks 1.. contiguous, as every function here returns them) first, then the
    most popular items (`popular_items`, see `popularity_fallback`) that the user was neither
    recommended nor excluded from, ranked after them with their popularity score (with a `source`
    column in `popular_items` and `users`: their own source's items). A user without
    recommendations (cold, or unknown to the model) gets the popularity list alone; rows of
    users not in `users` are dropped. Fewer than k rows only when too few eligible items are left.
    `max_excluded`: `most_excluded(users, exclusions)` when the caller knows it (it is one job)."""
    k = _check_k(k)
    require_columns(recommendations, "recommendations",
                    {USER_ID: (StringType,), RANK: (IntegerType, LongType), ITEM_ID: (StringType,), SCORE: _NUMBERS},
                    RecommenderError)
    require_columns(users, "users", {USER_ID: (StringType,)}, RecommenderError)
    sources = [SOURCE] if SOURCE in popular_items.columns else []
    targets = users.select(USER_ID, *sources).filter(F.col(USER_ID).isNotNull()).distinct()
    listed = (recommendations.join(targets, USER_ID, "left_semi").filter(F.col(RANK) <= k)
              .select(USER_ID, F.col(RANK).cast("int").alias(RANK), ITEM_ID, F.col(SCORE).cast("double").alias(SCORE)))
    lengths = listed.groupBy(USER_ID).agg(F.max(RANK).alias("_listed"))
    short = targets.join(lengths, USER_ID, "left").fillna(0, ["_listed"]).filter(F.col("_listed") < k)
    taken = listed.select(USER_ID, ITEM_ID)
    if exclusions is not None:
        require_columns(exclusions, "exclusions", _EXCLUSION_COLUMNS, RecommenderError)
        taken = exclusions.select(USER_ID, ITEM_ID).unionByName(taken)
    bound = None if max_excluded is None else max_excluded + k   # taken = exclusions + at most k listed
    fill = (popularity_fallback(short.select(USER_ID, *sources), popular_items, k, taken, block_rows=block_rows,
                                max_excluded=bound)
            .join(short.select(USER_ID, "_listed"), USER_ID)
            .select(USER_ID, (F.col(RANK) + F.col("_listed")).cast("int").alias(RANK), ITEM_ID, SCORE)
            .filter(F.col(RANK) <= k))
    return listed.unionByName(fill)
