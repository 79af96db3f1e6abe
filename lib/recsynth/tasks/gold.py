"""Gold: silver.events + silver.items -> interactions, user and item features, behaviour, splits,
with user and session ids pseudonymised (etl/pseudonyms.py) before anything is written, and
purchases net of silver.returns."""
from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.etl import gold as G
from recsynth.etl.pseudonyms import load_key, pseudonymise
from recsynth.runtime.runs import Job, Outcome, RunContext

log = logging.getLogger(__name__)

# Personal ids in silver.events: from here on only their pseudonyms exist.
PERSONAL_IDS = ["user_id", "session_id"]


def _net_of_returns(lake, events, cutoffs, key) -> tuple:
    """(events net of returns, a sentence on the returns) when silver.returns has rows."""
    if not lake.exists(T.SILVER_RETURNS) or not lake.read(T.SILVER_RETURNS).head(1):
        return events, ""
    returns = pseudonymise(lake.read(T.SILVER_RETURNS), PERSONAL_IDS, key)
    netted, counts = G.net_of_returns(events, returns, cutoffs)
    totals = counts.agg(*[F.sum(c).alias(c) for c in counts.columns if c != T.SOURCE]).head()
    log.debug("returns: %d line(s), %d of them unmatched (nothing bought before them in their period); "
             "%d of %d returned unit(s) netted against purchases", totals["return_lines"], totals["unmatched_lines"],
             totals["netted_units"], totals["returned_units"])
    return netted, (f"; returns: {totals['return_lines']} lines, {totals['unmatched_lines']} unmatched, "
                    f"{totals['netted_units']} of {totals['returned_units']} units netted")


def gold(ctx: RunContext) -> Outcome:
    conf, lake = ctx.conf.gold, ctx.lake
    key = load_key(ctx.conf.privacy.pseudonym)
    silver = pseudonymise(lake.read(T.SILVER_EVENTS), PERSONAL_IDS, key).persist(StorageLevel.MEMORY_AND_DISK)
    cutoffs = G.split_cutoffs(silver, conf).cache()  # from every accepted event, returns not yet netted
    events, returns_note = _net_of_returns(lake, silver, cutoffs, key)
    events = events.persist(StorageLevel.MEMORY_AND_DISK)
    items = lake.read(T.SILVER_ITEMS)
    # interactions and sessions are written first: the feature tables are built from them
    lake.overwrite(T.GOLD_INTERACTIONS, G.interactions(events, dict(conf.event_weights), conf.purchase_quantity))
    lake.overwrite(T.GOLD_BEHAVIOR, G.behavior(events, items))
    interactions, behavior = lake.read(T.GOLD_INTERACTIONS), lake.read(T.GOLD_BEHAVIOR)
    lake.overwrite(T.GOLD_USER_FEATURES, G.user_features(events, interactions, behavior))
    lake.overwrite(T.GOLD_ITEM_FEATURES, G.item_features(interactions, items, list(conf.price_bands)))
    lake.overwrite(T.GOLD_SPLITS, G.splits(events, cutoffs))
    rows_in = silver.count()
    for frame in (events, silver, cutoffs):
        frame.unpersist()
    rows_out = lake.read(T.GOLD_INTERACTIONS).count()
    return Outcome(rows_in=rows_in, rows_out=rows_out, message=f"{rows_out} interactions from {rows_in} events{returns_note}")


GOLD = Job(
    name="gold",
    inputs=(T.SILVER_EVENTS, T.SILVER_ITEMS),
    optional_inputs=(T.SILVER_RETURNS,),
    outputs=(T.GOLD_INTERACTIONS, T.GOLD_USER_FEATURES, T.GOLD_ITEM_FEATURES, T.GOLD_BEHAVIOR, T.GOLD_SPLITS),
    conf_keys=("gold", "privacy.pseudonym"),
    body=gold,
    runs_on_synthetic=True,
    description="silver -> gold.interactions, user_features, item_features, behavior, splits",
)
