"""The column names of the recommender's frames and tables, spelled once, and the parameter check
every `recsynth.rec` function runs at entry (its frames are checked by `recsynth.frames`)."""
from __future__ import annotations

from numbers import Integral

from recsynth.errors import RecommenderError

SOURCE = "source"
USER_ID = "user_id"
ITEM_ID = "item_id"
SIMILAR_ITEM_ID = "similar_item_id"
EVENT_TIME = "event_time"
LAST_TIME = "last_time"          # gold.interactions: the pair's latest event
EVENT_TYPE = "event_type"
WEIGHT = "weight"
RANK = "rank"                       # 1-based position in a user's list
SCORE = "score"
VECTOR = "vector"                   # array<float> of a user or item
MODEL_VERSION = "model_version"
GENERATED_AT = "generated_at"
RECOMMENDATION_COLUMNS = (USER_ID, RANK, ITEM_ID, SCORE)   # the shape every recommender and recs.top_n use


def require_positive(name: str, value) -> int:
    """An integer >= 1 (bools are rejected: True is not a list length)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise RecommenderError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
