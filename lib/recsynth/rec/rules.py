"""Which items a user must not be recommended and which held-out items count as relevant, as
pure DataFrame transforms over events (user_id, item_id, event_type), e.g. gold.splits."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import EVENT_TYPE, ITEM_ID, USER_ID

PURCHASE = "purchase"
BROWSING = ("view", "cart")   # what `viewed` excludes: an item put in the cart was seen too


def exclusions(events: DataFrame, *, purchased: bool, viewed: bool) -> DataFrame | None:
    """(user_id, item_id), distinct: the items each user bought (`purchased`) and/or viewed or put
    in the cart (`viewed`) in `events`; None when neither rule is on (nothing is excluded)."""
    require_columns(events, "events", (USER_ID, ITEM_ID, EVENT_TYPE), RecommenderError)
    types = ([PURCHASE] if purchased else []) + (list(BROWSING) if viewed else [])
    if not types:
        return None
    return (events.where(F.col(EVENT_TYPE).isin(*types) & F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
            .select(USER_ID, ITEM_ID).distinct())


def relevant_items(events: DataFrame, event_types) -> DataFrame:
    """(user_id, item_id), distinct: the evaluation truth, the items each user had an event of
    `event_types` with (e.g. the test period's events)."""
    require_columns(events, "events", (USER_ID, ITEM_ID, EVENT_TYPE), RecommenderError)
    event_types = list(event_types)
    if not event_types:
        raise RecommenderError("event_types must name at least one event type")
    return (events.where(F.col(EVENT_TYPE).isin(*event_types) & F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
            .select(USER_ID, ITEM_ID).distinct())
