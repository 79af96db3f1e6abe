"""A synthetic clickstream from a first-order Markov chain over session steps: the simple
generator a neural one must beat, and a working synthetic.events until then.

A *step* is (item_id, event_type). From the training people's sessions the chain keeps:
- the steps that open sessions (`starts`), every step taken (`popular`: the source's popular
  steps), and each step's successors (`successors`). Only items that at least `min_people`
  real people touched are kept, and a successor only if at least `min_people` people took that
  very move: a one-person item or path is never replayed (such an item alone tells a
  membership attacker who was trained on). A step with no kept successor is followed by a
  popular step of its source;
- whole sessions as templates (`templates`: length, start time, duration, and the context a
  sequence generator is conditioned on, `CONTEXT`: top category and its numbers of purchases
  and carts), and people
  (`people`: how many sessions each had).

The chain's item side (its states, their counts and their kept successors) is bounded by the
catalogue, like the item vectors that top-N scoring broadcasts: it is gathered as arrays and
broadcast once, and each task walks its sessions step by step in numpy, every session at once
(`Blocks.draw`). The people side (templates, session counts) grows with users and stays in Spark:
"a random real occurrence" there is the k-th row of an indexed table, k from a seeded hash, so it
is equi-joins only. Every draw is seeded by the session (and step), so a re-run with the same seed
draws the same clickstream however the rows are partitioned. A synthetic person draws a real
person's session count; each session draws a real template (its length, start and duration: times
are spread evenly over the duration); then walks the chain for that many steps, at most
`max_session_events`. Sessions of one person are not conditioned on each other: the sequence
generator (`clickstream.generator: sequence`, `recsynth.synth.sequence_walker`) fills in the
same planned sessions (`plan_sessions`) reading each person's earlier ones.

`clickstream.generator: independent` is the floor beside it: the same people, sessions and
lengths, but every step drawn alone from its source's popular steps (what "each column drawn
independently" is for a table), so that what the chain's moves add to utility can be measured.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from recsynth.etl.gold import UNKNOWN_CATEGORY, session_categories
from recsynth.train.scoring import score_on_executors

FUNNEL = {"view": 0, "cart": 1, "purchase": 2}   # ties in time: the funnel's order
CONTEXT = ("top_category", "n_purchases", "n_carts")  # a session's context: what a plan asks of it
_STATE = ["source", "item_id", "event_type"]
_PRIME = 2_147_483_647


def seeded_uniform(seed: int, salt: str, *columns) -> Column:
    """A seeded uniform draw in [0, 1) per row, from a hash of the row's `columns`."""
    return (F.abs(F.xxhash64(F.lit(seed), F.lit(salt), *columns)) % _PRIME) / float(_PRIME)


def indexed(frame: DataFrame, by: list[str], order: list[str]) -> tuple[DataFrame, DataFrame]:
    """`frame` with `_k` = 0..n-1 within each `by` group (in `order`), and (by..., _n) the sizes."""
    window = Window.partitionBy(*by).orderBy(*order)
    return (frame.withColumn("_k", F.row_number().over(window) - 1),
            frame.groupBy(*by).agg(F.count(F.lit(1)).alias("_n")))


def pick_indexed(draws: DataFrame, sizes: DataFrame, table: DataFrame, by: list[str], u: Column) -> DataFrame:
    """Each row of `draws` joined with the k-th row of `table` in its `by` group, k = floor(u * n)."""
    return _kth(draws.join(sizes, by).withColumn("_k", F.floor(u * F.col("_n")).cast("long")), table, by)


def deal_indexed(draws: DataFrame, sizes: DataFrame, table: DataFrame, by: list[str], seed: int, salt: str,
                 key: str) -> DataFrame:
    """Each row of `draws` joined with a row of `table` in its `by` group, dealt in turn: the draws,
    in a seeded order of `key`, take the group's rows one after another from a seeded start, so
    each row goes to N // n or N // n + 1 of the group's N draws. `pick_indexed`'s independent
    draws use a row a Poisson number of times instead: on the sample, rees46's one session with 5
    carts came 6 times where 3 were due, and its carts per view 1.44x real."""
    order = Window.partitionBy(*by).orderBy(seeded_uniform(seed, salt, key), key)
    start = F.floor(seeded_uniform(seed, f"{salt} start", *by) * F.col("_n"))
    dealt = draws.withColumn("_r", F.row_number().over(order) - 1).join(sizes, by) \
        .withColumn("_k", ((F.col("_r") + start) % F.col("_n")).cast("long")).drop("_r")
    return _kth(dealt, table, by)


def _kth(chosen: DataFrame, table: DataFrame, by: list[str]) -> DataFrame:
    """`chosen` (with its group's size `_n` and an index `_k` in it) joined with that row of `table`."""
    return chosen.drop("_n").join(table, [*by, "_k"]).drop("_k")


def session_steps(events: DataFrame) -> DataFrame:
    """(source, user_id, session_id, position, item_id, event_type, event_time): each session's
    events in time order (ties: view, cart, purchase, then item). A step repeated at once stays (a
    view reloaded is a move to the same step): sessions keep their real lengths."""
    funnel = F.coalesce(*[F.when(F.col("event_type") == t, F.lit(r)) for t, r in FUNNEL.items()], F.lit(len(FUNNEL)))
    order = Window.partitionBy("source", "session_id").orderBy("event_time", "_funnel", "item_id")
    steps = (events.where(F.col("session_id").isNotNull() & F.col("item_id").isNotNull())
             .select("source", "user_id", "session_id", "item_id", "event_type", "event_time")
             .withColumn("_funnel", funnel))
    return steps.withColumn("position", F.row_number().over(order)).drop("_funnel")


def session_moves(steps: DataFrame) -> DataFrame:
    """`steps` (`session_steps`) with the step after each in its session (`next_item`,
    `next_type`): its moves. A session's last step has none and is left out."""
    following = Window.partitionBy("source", "session_id").orderBy("position")
    return steps.withColumn("next_item", F.lead("item_id").over(following)).withColumn(
        "next_type", F.lead("event_type").over(following)).where(F.col("next_item").isNotNull())


@dataclass(frozen=True)
class Blocks:
    """Weighted choices in blocks: block g offers `choice[offsets[g]:offsets[g + 1]]`, weighted by
    their counts, held as one running total `cum` over the whole array (so one searchsorted draws
    for rows of many blocks at once)."""
    offsets: np.ndarray
    choice: np.ndarray
    cum: np.ndarray

    @classmethod
    def of(cls, blocks: int, entries: list[tuple[int, int, int]]) -> "Blocks":
        """From (block, choice, count) entries, count > 0."""
        entries = sorted(entries)
        block = np.array([e[0] for e in entries], dtype=np.int64)
        return cls(offsets=np.searchsorted(block, np.arange(blocks + 1), side="left"),
                   choice=np.array([e[1] for e in entries], dtype=np.int64),
                   cum=np.cumsum(np.array([e[2] for e in entries], dtype=np.float64)))

    def offers(self, block: np.ndarray) -> np.ndarray:
        """Whether each block has a choice."""
        return self.offsets[block + 1] > self.offsets[block]

    def draw(self, block: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One choice per row from its (non-empty) block, with probability ~ count, by u in [0, 1)."""
        lo, hi = self.offsets[block], self.offsets[block + 1]
        base = np.where(lo > 0, self.cum[np.maximum(lo - 1, 0)], 0.0)
        picked = np.searchsorted(self.cum, base + u * (self.cum[hi - 1] - base), side="right")
        return self.choice[np.minimum(picked, hi - 1)]   # u * total can round up to the total

    def draw_weighed(self, block: np.ndarray, u: np.ndarray, weigh) -> np.ndarray:
        """One choice per row from its (non-empty) block, with probability ~ count x the factor
        `weigh(rows, choices)` gives each candidate (`rows` index `block`, one entry per
        candidate, in row order), by u in [0, 1); -1 for a row whose factors are all 0."""
        lo, sizes = self.offsets[block], self.offsets[block + 1] - self.offsets[block]
        starts = np.cumsum(sizes) - sizes
        rows = np.repeat(np.arange(len(block)), sizes)
        entry = np.arange(sizes.sum()) - np.repeat(starts, sizes) + np.repeat(lo, sizes)
        choices = self.choice[entry]
        weight = np.diff(self.cum, prepend=0.0)[entry] * weigh(rows, choices)
        cum, ends = np.cumsum(weight), starts + sizes - 1
        base = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
        total = cum[ends] - base
        picked = np.minimum(np.searchsorted(cum, base + u * total, side="right"), ends)
        weighed = np.maximum.accumulate(np.where(weight > 0, np.arange(len(weight)), -1))   # u * total can round up
        return np.where(total > 0, choices[weighed[picked]], -1)


@dataclass(frozen=True)
class ItemSide:
    """The chain's states (source, item, event type) and three weighted choices: the steps that
    open a source's sessions, its steps taken (the popular steps), and each state's successors."""
    sources: tuple[str, ...]
    items: np.ndarray
    event_types: np.ndarray
    starts: Blocks         # by source
    popular: Blocks        # by source
    successors: Blocks     # by state


@dataclass(frozen=True)
class RealSessions:
    """The people side every generator draws from: real sessions as templates (length, start,
    duration and `CONTEXT`) and real people's session counts, as indexed tables (see
    the module doc)."""
    templates: tuple[DataFrame, DataFrame]
    people: tuple[DataFrame, DataFrame]


@dataclass(frozen=True)
class MarkovChain:
    item_side: ItemSide
    sessions: RealSessions


def shared_items(steps: DataFrame, min_people: int) -> DataFrame:
    """(source, item_id, _people): the items of `steps` that at least `min_people` people touched."""
    return steps.groupBy("source", "item_id").agg(F.countDistinct("user_id").alias("_people")).where(
        F.col("_people") >= min_people)


def session_contexts(steps: DataFrame, item_categories: DataFrame) -> DataFrame:
    """(source, session_id, top_category, n_purchases, n_carts): each session's `CONTEXT`, as
    gold.behavior defines it, from `steps` and `item_categories` (source, item_id, category: an
    item missing there, or without one, is in the unknown category)."""
    categorised = steps.join(item_categories.select("source", "item_id", "category"), ["source", "item_id"], "left") \
        .withColumn("category", F.coalesce("category", F.lit(UNKNOWN_CATEGORY)))
    counted = lambda kind: F.sum((F.col("event_type") == kind).cast("long"))   # noqa: E731
    outcomes = steps.groupBy("source", "session_id").agg(counted("purchase").alias("n_purchases"),
                                                         counted("cart").alias("n_carts"))
    return session_categories(categorised, "category").join(outcomes, ["source", "session_id"]).select(
        "source", "session_id", *CONTEXT)


def fit_sessions(steps: DataFrame, contexts: DataFrame, *, max_session_events: int, keep) -> RealSessions:
    """The templates and session counts of `steps` (`session_steps`' rows), the templates with
    their `contexts` (`session_contexts`)."""
    sessions = steps.groupBy("source", "user_id", "session_id").agg(
        F.least(F.count(F.lit(1)), F.lit(max_session_events)).alias("length"),
        F.min("event_time").alias("start"),
        (F.max("event_time").cast("double") - F.min("event_time").cast("double")).alias("duration_s"))
    people = sessions.groupBy("source", "user_id").agg(F.count(F.lit(1)).alias("sessions"))
    templates = sessions.join(contexts, ["source", "session_id"]).select(
        "source", "session_id", "length", "start", "duration_s", *CONTEXT)
    return RealSessions(
        templates=_keep(indexed(templates, ["source"], ["session_id"]), keep),
        people=_keep(indexed(people.select("source", "user_id", "sessions"), ["source"], ["user_id"]), keep))


def fit_markov(events: DataFrame, item_categories: DataFrame, *, min_people: int, max_session_events: int, keep,
               independent: bool = False) -> MarkovChain:
    """The chain of `events` (source, user_id, session_id, item_id, event_type, event_time), its
    templates' contexts from `item_categories` (`session_contexts`); `keep` persists what is read
    more than once. `independent`: the baseline a sequence generator
    must beat, each step drawn alone from the source's popular steps (no start steps, no moves),
    with the same session lengths, times and people."""
    every_step = keep(session_steps(events))   # read four times: items, steps, moves, sessions
    steps = every_step.join(shared_items(every_step, min_people), ["source", "item_id"], "left_semi")
    moves = session_moves(every_step).groupBy(*_STATE, "next_item", "next_type").agg(
        F.countDistinct("user_id").alias("_people"), F.count(F.lit(1)).alias("taken")).where(
        F.col("_people") >= min_people)
    states = steps.groupBy(*_STATE).agg(F.count(F.lit(1)).alias("taken"),
                                        F.sum((F.col("position") == 1).cast("long")).alias("opened"))
    return MarkovChain(
        item_side=_item_side(states.collect(), [] if independent else
                             moves.select(*_STATE, "next_item", "next_type", "taken").collect(), independent),
        sessions=fit_sessions(every_step, session_contexts(every_step, item_categories),
                              max_session_events=max_session_events, keep=keep))


def _item_side(states: list, moves: list, independent: bool) -> ItemSide:
    """Arrays of the counted states and kept moves (rows of fit_markov's aggregates), in a fixed
    order so that a seed draws the same walks; `independent`: sessions open on any popular step."""
    ordered = sorted((r["source"], r["item_id"], r["event_type"], r["taken"], r["opened"]) for r in states)
    index = {state[:3]: k for k, state in enumerate(ordered)}
    sources = tuple(sorted({state[0] for state in ordered}))
    source_of = {name: k for k, name in enumerate(sources)}
    successors = [(index[(m["source"], m["item_id"], m["event_type"])], index[(m["source"], m["next_item"], m["next_type"])],
                   m["taken"]) for m in moves]
    return ItemSide(
        sources=sources,
        items=np.array([s[1] for s in ordered], dtype=object),
        event_types=np.array([s[2] for s in ordered], dtype=object),
        starts=Blocks.of(len(sources), [(source_of[s[0]], k, s[3] if independent else s[4])
                                        for k, s in enumerate(ordered) if independent or s[4]]),
        popular=Blocks.of(len(sources), [(source_of[s[0]], k, s[3]) for k, s in enumerate(ordered)]),
        successors=Blocks.of(len(ordered), successors))


def _keep(pair: tuple[DataFrame, DataFrame], keep) -> tuple[DataFrame, DataFrame]:
    table, sizes = pair
    return keep(table), keep(sizes)


def _only(pair: tuple[DataFrame, DataFrame], *columns: str) -> tuple[DataFrame, DataFrame]:
    """An indexed table narrowed to its group and index columns and `columns`."""
    table, sizes = pair
    by = [c for c in sizes.columns if c != "_n"]
    return table.select(*by, "_k", *columns), sizes


WALKED = StructType([StructField("source", StringType()), StructField("user_id", StringType()),
                      StructField("session_id", StringType()), StructField("position", IntegerType()),
                      StructField("item_id", StringType()), StructField("event_type", StringType()),
                      StructField("start_s", DoubleType()), StructField("duration_s", DoubleType()),
                      StructField("length", IntegerType())])
_WALK_CHUNK = 50_000   # sessions walked at once in a task


DATING = {"weekday and hour": ["day_of_week", "start_hour"], "hour": ["start_hour"], "source": []}  # finest first


def generated_sessions(behavior: DataFrame, real: RealSessions, *, max_session_events: int, seed: int,
                       keep) -> tuple[RealSessions, DataFrame]:
    """`real` with the tabular GAN's sessions as templates: each row of `behavior`
    (synthetic.behavior: synthetic_id, source, n_events, start_hour, day_of_week, and what the GAN
    learnt of duration_s, top_category, n_purchases, n_carts, purchased) gives a template's length
    (at most `max_session_events`) and context. Its start is a real template's of the same source,
    weekday and hour (the GAN writes no dates), drawn by a seeded hash; where no real session has
    them, one of the same source and hour on another weekday, else any of the source (`DATING`,
    the templates' `dated_by`): a GAN learns weekday and hour, not which days a source's data
    covers, and the sample's rees46 (a few days) had 43% of its rows, half its carts, on a weekday
    and hour it never had. What the GAN did not learn comes from that real session too
    (`learnt_or_dated`); so does the source, where the GAN learnt one source's rows without the
    column (`synth.rows_where`): those are dated among every source's sessions. People's session
    counts stay real. Also returns the rows left out: no event, or no real session of their
    source."""
    source = ["source"] if "source" in behavior.columns else []
    starts = real.templates[0].select(
        "source", "start", F.date_format("start", "E").alias("day_of_week"), F.hour("start").alias("start_hour"),
        "session_id", *[F.col(c).alias(f"_dated_{c}") for c in ("length", "duration_s", *CONTEXT)],
        F.lit(0).alias("_pool"))
    learnt = [c for c in ("duration_s", *CONTEXT, "purchased") if c in behavior.columns]
    undated = behavior.where(F.col("n_events") >= 1).select(
        *source, "day_of_week", "start_hour", F.col("synthetic_id").alias("session_id"),
        F.least(F.col("n_events"), F.lit(max_session_events)).cast("long").alias("length"), *learnt,
        F.lit(0).alias("_pool"))
    dated = []
    for name, columns in DATING.items():
        cell = ["_pool", *source, *columns]
        table, sizes = indexed(starts.drop(*[c for c in DATING["weekday and hour"] if c not in columns]), cell,
                               ["start", "session_id"])
        dated.append(pick_indexed(undated, sizes, table.drop("session_id"), cell,
                                  seeded_uniform(seed, "start", "session_id")).withColumn("dated_by", F.lit(name)))
        undated = undated.join(sizes.select(*cell), cell, "left_anti")
    templates = _keep(indexed(reduce(DataFrame.unionByName, dated).select(
        "source", "session_id", "length", "start", *learnt_or_dated(learnt), "dated_by"), ["source"], ["session_id"]),
        keep)
    planned = templates[0].select(F.col("session_id").alias("synthetic_id"))   # kept: the pick is not redone
    return RealSessions(templates=templates, people=real.people), behavior.join(planned, "synthetic_id", "left_anti")


def learnt_or_dated(learnt: list[str]) -> list[Column]:
    """duration_s and the `CONTEXT` of a GAN row dated by a real session (its columns `_dated_*`):
    as the GAN wrote them where it learnt them (`learnt`). Otherwise the real session's duration
    and top category, and its purchases and carts per event times the row's length, at most the
    length (a cut session keeps all its counts). An order export's invoice table learns lines
    only, so its rows plan every line a purchase, as the real invoices have. A table with
    `purchased` but no `n_purchases` plans one purchase where it says purchased."""
    def count(name: str) -> Column:
        if name in learnt:
            return F.greatest(F.coalesce(F.round(F.col(name)), F.lit(0)), F.lit(0))
        if name == "n_purchases" and "purchased" in learnt:
            return F.col("purchased").cast("string").isin("true", "True").cast("long")
        return F.least(F.round(F.col(f"_dated_{name}") * F.col("length") / F.col("_dated_length")), F.col("length"))

    duration = F.greatest(F.col("duration_s"), F.lit(0.0)) if "duration_s" in learnt else F.col("_dated_duration_s")
    category = F.col("top_category") if "top_category" in learnt else F.col("_dated_top_category")
    return [duration.cast("double").alias("duration_s"), category.alias("top_category"),
            *[count(name).cast("long").alias(name) for name in ("n_purchases", "n_carts")]]


def plan_sessions(real: RealSessions, *, users_multiplier: float, seed: int, prefix: str) -> DataFrame:
    """(source, user_id, session_id, length, start_s, duration_s, top_category, n_purchases,
    n_carts, _key): synthetic people (`users_multiplier` per real one, ids `prefix`-...), each
    with a real person's session count, each session a real template's length, start, duration and context,
    and a seeded key for its steps. Counts and templates are dealt (`deal_indexed`): with a whole
    multiplier, each real person's count and each template is used that many times, so the plan
    holds that many times the real sessions, events, purchases and carts of each source."""
    people, people_sizes = real.people
    whole, fraction = int(users_multiplier), users_multiplier - int(users_multiplier)
    copies = F.lit(whole) + (seeded_uniform(seed, "copies", "source", "user_id") < fraction).cast("int")
    slots = (people.select("source", "user_id").withColumn("_copy", F.explode(F.sequence(F.lit(1), copies)))
             .where(copies > 0))
    synthetic_people = slots.select("source", F.concat_ws("-", F.lit(prefix), F.xxhash64(
        F.lit(seed), "source", "user_id", "_copy").cast("string")).alias("user_id"))
    counted = deal_indexed(synthetic_people, people_sizes, _only(real.people, "sessions")[0], ["source"], seed,
                           "person", "user_id")
    sessions = counted.withColumn("_session", F.explode(F.sequence(F.lit(1), F.col("sessions")))).select(
        "source", "user_id", F.concat_ws("-", "user_id", F.col("_session").cast("string")).alias("session_id"))
    template_rows = _only(real.templates, "length", "start", "duration_s", *CONTEXT)[0]
    templated = deal_indexed(sessions, real.templates[1], template_rows, ["source"], seed, "template", "session_id")
    return templated.select("source", "user_id", "session_id", F.col("length").cast("int").alias("length"),
                            F.col("start").cast("double").alias("start_s"), "duration_s", *CONTEXT,
                            F.xxhash64(F.lit(seed), F.lit("walk"), "session_id").alias("_key"))


def timed(steps: DataFrame) -> DataFrame:
    """(source, user_id, session_id, position, item_id, event_type, event_time) from walked steps
    (`WALKED`): a session's events spread evenly over its template's duration."""
    gap = F.when(F.col("length") > 1, F.col("duration_s") / (F.col("length") - 1)).otherwise(F.lit(0.0))
    return steps.select("source", "user_id", "session_id", "position", "item_id", "event_type", (
        F.col("start_s") + (F.col("position") - 1) * gap).cast("timestamp").alias("event_time"))


def sample_clickstream(chain: MarkovChain, *, users_multiplier: float, seed: int, prefix: str) -> DataFrame:
    """(source, user_id, session_id, position, item_id, event_type, event_time): synthetic people
    (`plan_sessions`), their sessions and the chain's walks through them."""
    walks = plan_sessions(chain.sessions, users_multiplier=users_multiplier, seed=seed, prefix=prefix)
    return timed(walk_chain(walks, chain.item_side))


def walk_chain(walks: DataFrame, item_side: ItemSide) -> DataFrame:
    """The chain's steps (`WALKED`) through planned sessions (`plan_sessions`), on executors."""
    return score_on_executors(walks, WALKED, item_side, _walker, _WALK_CHUNK)


def step_uniform(keys: np.ndarray, position: int) -> np.ndarray:
    """A uniform in [0, 1) per session key and step (splitmix64 of the key and the position)."""
    with np.errstate(over="ignore"):
        z = keys + np.uint64(position) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _walker(chain: ItemSide):
    """A task's walk over a chunk of sessions (source, user_id, session_id, length, start_s,
    duration_s, _key): their steps in `WALKED`. A session of a source without a start is dropped
    (its source has no item that `min_people` people touched)."""
    source_of = {name: k for k, name in enumerate(chain.sources)}

    def walk(sessions: pd.DataFrame) -> pd.DataFrame:
        codes = sessions["source"].map(source_of)
        known = codes.notna().to_numpy()
        known[known] = chain.starts.offers(codes[known].to_numpy(np.int64))
        sessions = sessions[known].reset_index(drop=True)
        codes = codes[known].to_numpy(np.int64)
        keys, lengths = sessions["_key"].to_numpy(np.int64).view(np.uint64), sessions["length"].to_numpy()
        alive = np.arange(len(sessions))
        state = chain.starts.draw(codes, step_uniform(keys, 1))
        walked, positions, states = [alive], [np.ones(len(alive), dtype=np.int32)], [state]
        for position in range(2, int(lengths.max(initial=0)) + 1):
            going = lengths[alive] >= position
            alive, state = alive[going], state[going]
            u, follows = step_uniform(keys[alive], position), chain.successors.offers(state)
            state[follows] = chain.successors.draw(state[follows], u[follows])
            state[~follows] = chain.popular.draw(codes[alive][~follows], u[~follows])
            walked.append(alive)
            positions.append(np.full(len(alive), position, dtype=np.int32))
            states.append(state)
        rows, state = np.concatenate(walked), np.concatenate(states)
        out = sessions.iloc[rows][["source", "user_id", "session_id", "start_s", "duration_s", "length"]].reset_index(
            drop=True)
        return out.assign(position=np.concatenate(positions), item_id=chain.items[state],
                          event_type=chain.event_types[state])[[f.name for f in WALKED.fields]]

    return walk


def as_events(steps: DataFrame, prices: DataFrame) -> DataFrame:
    """silver.events' columns for synthetic steps: ids from the session and position, the item's
    catalogue price, a purchase its own transaction of one unit."""
    purchase = F.col("event_type") == "purchase"
    return steps.join(prices, ["source", "item_id"], "left").select(
        F.concat_ws("-", "session_id", F.col("position").cast("string")).alias("event_id"), "source", "event_time",
        "user_id", "session_id", "item_id", "event_type", F.col("price").cast("double").alias("price"),
        F.when(purchase, F.col("session_id")).alias("transaction_id"),
        F.when(purchase, F.lit(1)).cast("int").alias("quantity"), F.to_date("event_time").alias("event_date"))
