"""Gold: silver.events + silver.items -> interactions, user and item features, behaviour, splits,
with user and session ids pseudonymised (etl/pseudonyms.py) before anything is written."""
from __future__ import annotations

from pyspark import StorageLevel

from recsynth import tables as T
from recsynth.etl import gold as G
from recsynth.etl.pseudonyms import load_key, pseudonymise
from recsynth.runtime.runs import Job, Outcome, RunContext

# Personal ids in silver.events: from here on only their pseudonyms exist.
PERSONAL_IDS = ["user_id", "session_id"]


def gold(ctx: RunContext) -> Outcome:
    conf, lake = ctx.conf.gold, ctx.lake
    key = load_key(ctx.conf.privacy.pseudonym)
    events = pseudonymise(lake.read(T.SILVER_EVENTS), PERSONAL_IDS, key).persist(StorageLevel.MEMORY_AND_DISK)
    items = lake.read(T.SILVER_ITEMS)
    # interactions and sessions are written first: the feature tables are built from them
    lake.overwrite(T.GOLD_INTERACTIONS, G.interactions(events, dict(conf.event_weights)))
    lake.overwrite(T.GOLD_BEHAVIOR, G.behavior(events, items))
    interactions, behavior = lake.read(T.GOLD_INTERACTIONS), lake.read(T.GOLD_BEHAVIOR)
    lake.overwrite(T.GOLD_USER_FEATURES, G.user_features(events, interactions, behavior))
    lake.overwrite(T.GOLD_ITEM_FEATURES, G.item_features(interactions, items, list(conf.price_bands)))
    lake.overwrite(T.GOLD_SPLITS, G.splits(events, G.split_cutoffs(events, conf)))
    rows_in = events.count()
    events.unpersist()
    rows_out = lake.read(T.GOLD_INTERACTIONS).count()
    return Outcome(rows_in=rows_in, rows_out=rows_out, message=f"{rows_out} interactions from {rows_in} events")


GOLD = Job(
    name="gold",
    inputs=(T.SILVER_EVENTS, T.SILVER_ITEMS),
    outputs=(T.GOLD_INTERACTIONS, T.GOLD_USER_FEATURES, T.GOLD_ITEM_FEATURES, T.GOLD_BEHAVIOR, T.GOLD_SPLITS),
    conf_keys=("gold", "privacy.pseudonym"),
    body=gold,
    description="silver -> gold.interactions, user_features, item_features, behavior, splits",
)
