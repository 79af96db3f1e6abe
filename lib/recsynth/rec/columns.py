"""The column names of the recommender's frames and tables, spelled once, and the checks every
`recsynth.rec` function runs on its inputs at entry (so a bad frame fails with its name and the
missing column, not deep inside a Spark plan)."""
from __future__ import annotations

from numbers import Integral

from pyspark.sql import DataFrame

from recsynth.errors import RecommenderError

USER_ID = "user_id"
ITEM_ID = "item_id"
SIMILAR_ITEM_ID = "similar_item_id"
EVENT_TIME = "event_time"
EVENT_TYPE = "event_type"
WEIGHT = "weight"
RANK = "rank"                       # 1-based position in a user's list
SCORE = "score"
VECTOR = "vector"                   # array<float> of a user or item
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"
RECOMMENDATION_COLUMNS = (USER_ID, RANK, ITEM_ID, SCORE)   # the shape every recommender and recs.top_n use


def require_columns(frame: DataFrame, label: str, columns) -> None:
    """Fail with the frame's name and the missing column(s)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecommenderError(f"{label} lacks column(s) {missing} (it has {sorted(frame.columns)})")


def require_positive(name: str, value) -> int:
    """An integer >= 1 (bools are rejected: True is not a list length)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise RecommenderError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
