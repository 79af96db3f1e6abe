"""Which items a user must not be recommended, which held-out items count as relevant, and the
two evaluation tasks, as pure DataFrame transforms over events (source, user_id, item_id,
event_type), e.g. gold.splits.

Tasks: `next` scores everything the user interacts with in the held-out period, repeats
included (what a shop's "recently viewed" list is good at); `discovery` scores only items new to
the user: their earlier items leave both the truth and the lists, and a user counts only if they
have a new item."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import EVENT_TYPE, ITEM_ID, SOURCE, USER_ID

PURCHASE = "purchase"
BROWSING = ("view", "cart")   # what `viewed` excludes: an item put in the cart was seen too
NEXT, DISCOVERY = "next", "discovery"
TASKS = (NEXT, DISCOVERY)


@dataclass(frozen=True)
class Exclusion:
    """One source's rule: never recommend what the user bought (`purchased`) and/or viewed or put
    in the cart (`viewed`)."""
    purchased: bool
    viewed: bool


def source_exclusions(events: DataFrame, *, purchased: bool | None, viewed: bool,
                      overrides: dict[str, Exclusion] | None = None) -> dict[str, Exclusion]:
    """The rule of every source in `events`. `purchased` None means: false for a source whose
    events are all purchases (an order export, where excluding purchases would leave a user's
    own items, and the `next` task, empty), true otherwise. `overrides` win. One row per source
    reaches the driver."""
    require_columns(events, "events", (SOURCE, EVENT_TYPE), RecommenderError)
    kinds = events.groupBy(SOURCE).agg(F.max((F.col(EVENT_TYPE) != F.lit(PURCHASE)).cast("int")).alias("_browsing"))
    rules = {row[SOURCE]: Exclusion(bool(row["_browsing"]) if purchased is None else purchased, viewed)
             for row in kinds.collect()}
    return {**rules, **(overrides or {})}


def exclusions(events: DataFrame, rules: dict[str, Exclusion]) -> DataFrame | None:
    """(user_id, item_id), distinct: the items each user must not be recommended under their
    source's rule, from `events`; None when no source excludes anything."""
    require_columns(events, "events", (SOURCE, USER_ID, ITEM_ID, EVENT_TYPE), RecommenderError)
    excluded = F.lit(False)
    for source, rule in rules.items():
        types = ([PURCHASE] if rule.purchased else []) + (list(BROWSING) if rule.viewed else [])
        if types:
            excluded = excluded | ((F.col(SOURCE) == F.lit(source)) & F.col(EVENT_TYPE).isin(*types))
    if not any(rule.purchased or rule.viewed for rule in rules.values()):
        return None
    return (events.where(excluded & F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull())
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


def seen_items(events: DataFrame) -> DataFrame:
    """(user_id, item_id), distinct: every item a user had any event with (the discovery task's
    history)."""
    require_columns(events, "events", (USER_ID, ITEM_ID), RecommenderError)
    return events.where(F.col(USER_ID).isNotNull() & F.col(ITEM_ID).isNotNull()).select(USER_ID, ITEM_ID).distinct()


def task_truth(truth: DataFrame, seen: DataFrame, task: str) -> DataFrame:
    """The truth of `task`: all of `truth` for next; for discovery only the pairs not in `seen`
    (so users with nothing new drop out)."""
    if task == NEXT:
        return truth
    if task == DISCOVERY:
        return truth.join(seen, [USER_ID, ITEM_ID], "left_anti")
    raise RecommenderError(f"task must be one of {TASKS}, got {task!r}")


def task_exclusions(excluded: DataFrame | None, seen: DataFrame, task: str) -> DataFrame | None:
    """What a list for `task` must leave out: the rules' exclusions, plus every seen item for
    discovery."""
    if task == NEXT:
        return excluded
    if task == DISCOVERY:
        return seen if excluded is None else seen.unionByName(excluded).distinct()
    raise RecommenderError(f"task must be one of {TASKS}, got {task!r}")
