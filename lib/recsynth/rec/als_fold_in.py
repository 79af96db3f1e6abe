"""ALS fold-in: a user vector from fitted item factors and the user's own history, without a refit.

It is the very step implicit ALS (Spark MLlib) takes for every user in the last half of each
iteration: solve (YᵀY + Σ c1·y·yᵀ + λ·n·I) x = Σ (1 + c1)·y over the user's items y, with
c1 = alpha·|weight|, n the user's items of positive weight, λ = reg_param. A training user gets
their model factors back; a user ALS never saw (events after the fit, or a real user against item
factors learnt from synthetic events) gets theirs from the same equation.

The item factors are the item side (bounded by the catalogue, as the item matrix that top-N
scoring broadcasts): they are broadcast once, and each task solves its users' small rank × rank
systems in numpy."""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from recsynth.rec.columns import ITEM_ID, USER_ID, WEIGHT
from recsynth.train.scoring import score_on_executors

FOLDED_SCHEMA = StructType([StructField(USER_ID, StringType()), StructField("vector", ArrayType(FloatType()))])
_CHUNK = 20_000   # users solved per call in a task


def factor_arrays(item_factors: DataFrame) -> tuple[list[str], np.ndarray]:
    """The item ids and their factor matrix (float64), gathered once per fitted model."""
    factors = item_factors.collect()
    return [r[ITEM_ID] for r in factors], np.array([r["vector"] for r in factors], dtype=np.float64).reshape(len(factors), -1)


def fold_in(pairs: DataFrame, factors: tuple[list[str], np.ndarray], *, reg_param: float, alpha: float) -> DataFrame:
    """(user_id, vector array<float>) for every user of `pairs` (user_id, item_id, weight: one row
    per pair) with at least one item of `factors` (`factor_arrays`); items without a factor are
    left out of the user's equation."""
    ids, matrix = factors
    histories = pairs.groupBy(USER_ID).agg(F.collect_list(F.struct(ITEM_ID, WEIGHT)).alias("_history")).select(
        USER_ID, F.col(f"_history.{ITEM_ID}").alias("_items"), F.col(f"_history.{WEIGHT}").alias("_weights"))
    return score_on_executors(histories, FOLDED_SCHEMA, (ids, matrix, float(reg_param), float(alpha)), _solver, _CHUNK)


def _solver(payload):
    """A task's solver: a chunk of (user_id, _items, _weights) -> (user_id, vector)."""
    ids, matrix, reg_param, alpha = payload
    row_of = {item: k for k, item in enumerate(ids)}
    gram, eye = matrix.T @ matrix, np.eye(matrix.shape[1])

    def solve(chunk: pd.DataFrame) -> pd.DataFrame:
        users, vectors = [], []
        for user, items, weights in zip(chunk[USER_ID], chunk["_items"], chunk["_weights"]):
            known = [(row_of[item], weight) for item, weight in zip(items, weights) if item in row_of]
            if not known:
                continue
            rows, weight = np.array([k for k, _ in known]), np.array([w for _, w in known], dtype=np.float64)
            y, c1, positive = matrix[rows], alpha * np.abs(weight), weight > 0
            system = gram + (y * c1[:, None]).T @ y + reg_param * positive.sum() * eye
            users.append(user)
            vectors.append(np.linalg.solve(system, ((1.0 + c1) * positive) @ y).astype(np.float32))
        return pd.DataFrame({USER_ID: users, "vector": vectors})

    return solve
