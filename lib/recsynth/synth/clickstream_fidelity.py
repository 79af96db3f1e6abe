"""How a synthetic clickstream's shape compares with the real one, on the figures a
recommender team looks at first: session lengths (events per session: mean and the KS
distance of the two distributions), how concentrated item popularity is (the Gini coefficient
of events per item, at the same number of people on both sides: `people_sample`) and the
funnel (carts per view, purchases per cart, per source; each real rate's interval over people);
how often a written session has the context it was planned with (`context_agreement`); and of
its moves from one item to the next, how many are moves real people took and how many stay on
the item (`move_shares`)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.rec.intervals import CONFIDENCE, REPLICATE, REPLICATES, percentiles, replicate_means
from recsynth.synth.clickstream import session_moves
from recsynth.synth.privacy import split_by_person


@dataclass(frozen=True)
class ClickstreamShape:
    mean_session_events: float
    item_gini: float
    funnel: dict[str, float]          # "<source>.view_to_cart" / "<source>.cart_to_purchase"


def session_length_counts(events: DataFrame) -> dict[int, int]:
    """Events per session -> how many sessions have that many (one row per distinct length)."""
    lengths = events.groupBy("source", "session_id").agg(F.count(F.lit(1)).alias("length"))
    return {r["length"]: r["n"] for r in lengths.groupBy("length").agg(F.count(F.lit(1)).alias("n")).collect()}


def ks_distance(real: dict[int, int], synthetic: dict[int, int]) -> float:
    """The largest gap between the two length distributions' CDFs (0: the same; 1: disjoint)."""
    if not real or not synthetic:
        return 1.0
    support = sorted(set(real) | set(synthetic))
    cdf = [np.cumsum([counts.get(x, 0) for x in support]) / sum(counts.values()) for counts in (real, synthetic)]
    return float(np.max(np.abs(cdf[0] - cdf[1])))


def item_gini(events: DataFrame) -> float:
    """Gini of events per item over the items with events (0: every item as popular; near 1: a few
    items take everything)."""
    per_item = events.groupBy("source", "item_id").agg(F.count(F.lit(1)).alias("x"))
    # items with the same count share a rank range: the sum over ranks i of i * x_i needs only how
    # many items have each count (a few hundred rows on the driver, whatever the catalogue's size)
    histogram = sorted((r["x"], r["items"]) for r in per_item.groupBy("x").agg(F.count(F.lit(1)).alias("items")).collect())
    n = total = weighted = 0
    for x, items in histogram:   # ranks n + 1 .. n + items hold x each
        weighted += x * (items * n + items * (items + 1) // 2)
        n += items
        total += x * items
    if not n or not total:
        return 0.0
    return float(2.0 * weighted / (n * total) - (n + 1.0) / n)


def people_sample(events: DataFrame, fraction: float, seed: int) -> DataFrame:
    """The events of a seeded share `fraction` of the people (`privacy.split_by_person`'s draw,
    salted by the seed: each person whole, and a larger share keeps everyone a smaller one kept). Events per item grow with the
    people, and with them the Gini (fewer items seen once): a clickstream of 3x the training
    people, compared whole, read 0.54 where a third of it reads 0.48 (the sample, slice 10)."""
    return events if fraction >= 1.0 else split_by_person(events, fraction, salt=f"gini-{seed}")[1]


FUNNEL_STEPS = ("view", "cart", "purchase")
FUNNEL_RATES = {"view_to_cart": ("cart", "view"), "cart_to_purchase": ("purchase", "cart")}


def funnel(events: DataFrame) -> dict[str, float]:
    """Per source, carts per view and purchases per cart (a source without views or carts has no
    such rate)."""
    counts = events.groupBy("source").pivot("event_type", list(FUNNEL_STEPS)).agg(F.count(F.lit(1)))
    return {f"{row['source']}.{rate}": (row[top] or 0) / row[bottom]
            for row in counts.collect() for rate, (top, bottom) in FUNNEL_RATES.items() if row[bottom]}   # a row per source


def funnel_intervals(events: DataFrame, seed: int, replicates: int = REPLICATES,
                     confidence: float = CONFIDENCE) -> dict[str, tuple[float, float]]:
    """Per `funnel` rate, its percentile interval over people (`rec.intervals.replicate_means`: each
    person weighed by a seeded Poisson(1) draw per replicate, a rate being the ratio of two weighted
    means). A source with few carts cannot be judged within 20%: the sample's rees46, some 35
    carts, spans 0.59-1.76x of its own carts per view. One row per source and replicate reaches
    the driver."""
    per_person = events.groupBy("source", "user_id").agg(
        *[F.count(F.when(F.col("event_type") == t, 1)).cast("double").alias(t) for t in FUNNEL_STEPS])
    replicated = replicate_means(per_person, list(FUNNEL_STEPS), ["source"], replicates=replicates, seed=seed)
    draws: dict[str, list[float]] = {}
    for row in replicated.where(F.col(REPLICATE) >= 0).collect():
        for rate, (top, bottom) in FUNNEL_RATES.items():
            if row[bottom]:
                draws.setdefault(f"{row['source']}.{rate}", []).append(row[top] / row[bottom])
    return {key: percentiles(np.array(values), confidence) for key, values in draws.items()}


def shape(events: DataFrame, lengths: dict[int, int], people_fraction: float = 1.0, seed: int = 0) -> ClickstreamShape:
    """The figures of `events` (`lengths`: their `session_length_counts`); the Gini over a share
    `people_fraction` of their people (`people_sample`), so that two sides of unequal size
    are compared at the size of the smaller."""
    sessions = sum(lengths.values())
    mean = sum(length * n for length, n in lengths.items()) / sessions if sessions else 0.0
    return ClickstreamShape(mean_session_events=mean, item_gini=item_gini(people_sample(events, people_fraction, seed)),
                            funnel=funnel(events))


def context_agreement(planned: DataFrame, written: DataFrame) -> dict[str, float]:
    """Shares of written sessions whose top category, whether they have a purchase and a cart,
    and their numbers of purchases and of carts, are those planned: `planned` and `written` are
    (source, session_id, top_category, n_purchases, n_carts), one row per session
    (`clickstream.plan_sessions`' rows; `clickstream.session_contexts` of the written steps)."""
    compared = {"category": F.col("top_category"), "purchase": F.col("n_purchases") > 0, "cart": F.col("n_carts") > 0,
                "purchase_count": F.col("n_purchases"), "cart_count": F.col("n_carts")}
    both = planned.select("source", "session_id", *[value.alias(f"_{figure}") for figure, value in compared.items()]) \
        .join(written, ["source", "session_id"])
    row = both.agg(*[F.avg((value == F.col(f"_{figure}")).cast("double")).alias(figure)
                     for figure, value in compared.items()]).head()
    return {figure: row[figure] or 0.0 for figure in compared}


def move_shares(training: DataFrame, others: dict[str, DataFrame], min_people: int) -> dict[str, dict[str, float]]:
    """Per name in `others`, of its moves within sessions (one item to the next, steps as
    `clickstream.session_steps`): the share that at least `min_people` of the `training` people
    took (`common`), and the share that stay on the same item (`repeat`). A holdout of real people
    shows how often a person the generator never saw takes such a move: a synthetic clickstream
    far above it replays the crowd's moves (`clickstream.sequence.replay`), far below it writes
    moves no one took; one that repeats far more often than real people lists the same item over
    and over (the sequence generator did, before its own items were candidates in training)."""
    common = session_moves(training).groupBy("source", "item_id", "next_item").agg(
        F.countDistinct("user_id").alias("_people")).where(F.col("_people") >= min_people).drop("_people")
    sides = reduce(DataFrame.unionByName, [session_moves(steps).select("source", "item_id", "next_item", F.lit(name).alias("_side"))
                                          for name, steps in others.items()])
    shares = sides.join(common.withColumn("_common", F.lit(1.0)), ["source", "item_id", "next_item"], "left") \
        .groupBy("_side").agg(F.avg(F.coalesce("_common", F.lit(0.0))).alias("common"),
                              F.avg((F.col("item_id") == F.col("next_item")).cast("double")).alias("repeat")).collect()
    found = {r["_side"]: {"common": r["common"], "repeat": r["repeat"]} for r in shares}
    return {name: found.get(name, {"common": 0.0, "repeat": 0.0}) for name in others}
