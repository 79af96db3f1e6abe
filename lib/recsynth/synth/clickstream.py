"""A synthetic clickstream from a first-order Markov chain over session steps: the simple
generator a neural one must beat, and a working synthetic.events until then.

A *step* is (item_id, event_type). From the training people's sessions the chain keeps:
- the steps that open sessions (`starts`), every step taken (`steps`: the source's popular
  steps), and each step's successors (`transitions`). Only items that at least `min_people`
  real people touched are kept, and a successor only if at least `min_people` people took that
  very move: a one-person item or path is never replayed (such an item alone tells a
  membership attacker who was trained on). A step with no kept successor is followed by a
  popular step of its source;
- whole sessions as templates (`templates`: length, start time, duration), and people (`people`:
  how many sessions each had).

Every draw is "a random real occurrence": the k-th row of an indexed table, k from a seeded
hash, so sampling is equi-joins only (no range joins, nothing collected), and a re-run with the
same seed draws the same clickstream. A synthetic person draws a real person's session count;
each session draws a real template (its length, start and duration: times are spread evenly
over the duration); then walks the chain for that many steps, at most `max_session_events`.
Sessions of one person are not conditioned on each other: a neural generator's job.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

FUNNEL = {"view": 0, "cart": 1, "purchase": 2}   # ties in time: the funnel's order
_STATE = ["source", "item_id", "event_type"]
_PRIME = 2_147_483_647


def _uniform(seed: int, salt: str, *columns) -> Column:
    """A seeded uniform draw in [0, 1) per row, from a hash of the row's `columns`."""
    return (F.abs(F.xxhash64(F.lit(seed), F.lit(salt), *columns)) % _PRIME) / float(_PRIME)


def _indexed(frame: DataFrame, by: list[str], order: list[str]) -> tuple[DataFrame, DataFrame]:
    """`frame` with `_k` = 0..n-1 within each `by` group (in `order`), and (by..., _n) the sizes."""
    window = Window.partitionBy(*by).orderBy(*order)
    return (frame.withColumn("_k", F.row_number().over(window) - 1),
            frame.groupBy(*by).agg(F.count(F.lit(1)).alias("_n")))


def _pick(draws: DataFrame, sizes: DataFrame, table: DataFrame, by: list[str], u: Column) -> DataFrame:
    """Each row of `draws` joined with the k-th row of `table` in its `by` group, k = floor(u * n)."""
    chosen = draws.join(sizes, by).withColumn("_k", F.floor(u * F.col("_n")).cast("long")).drop("_n")
    return chosen.join(table, [*by, "_k"]).drop("_k")


def session_steps(events: DataFrame) -> DataFrame:
    """(source, user_id, session_id, position, item_id, event_type, event_time): each session's
    steps in time order (ties: view, cart, purchase, then item), a step repeated at once kept once."""
    funnel = F.coalesce(*[F.when(F.col("event_type") == t, F.lit(r)) for t, r in FUNNEL.items()], F.lit(len(FUNNEL)))
    order = Window.partitionBy("source", "session_id").orderBy("event_time", "_funnel", "item_id")
    steps = (events.where(F.col("session_id").isNotNull() & F.col("item_id").isNotNull())
             .select("source", "user_id", "session_id", "item_id", "event_type", "event_time")
             .withColumn("_funnel", funnel)
             .withColumn("_same", (F.lag("item_id").over(order) == F.col("item_id"))
                         & (F.lag("event_type").over(order) == F.col("event_type")))
             .where(~F.coalesce("_same", F.lit(False))))
    return steps.withColumn("position", F.row_number().over(order)).drop("_funnel", "_same")


@dataclass(frozen=True)
class MarkovChain:
    """Indexed tables (see the module doc), each with its group sizes."""
    starts: tuple[DataFrame, DataFrame]
    steps: tuple[DataFrame, DataFrame]
    transitions: tuple[DataFrame, DataFrame]
    templates: tuple[DataFrame, DataFrame]
    people: tuple[DataFrame, DataFrame]


def fit_markov(events: DataFrame, *, min_people: int, max_session_events: int, keep) -> MarkovChain:
    """The chain of `events` (source, user_id, session_id, item_id, event_type, event_time);
    `keep` persists what sampling reads at every step."""
    every_step = keep(session_steps(events))   # read four times: items, steps, moves, sessions
    shared_items = every_step.groupBy("source", "item_id").agg(F.countDistinct("user_id").alias("_people")).where(
        F.col("_people") >= min_people)
    steps = keep(every_step.join(shared_items, ["source", "item_id"], "left_semi"))
    following = Window.partitionBy("source", "session_id").orderBy("position")
    pairs = every_step.withColumn("next_item", F.lead("item_id").over(following)).withColumn(
        "next_type", F.lead("event_type").over(following)).where(F.col("next_item").isNotNull())
    support = pairs.groupBy(*_STATE, "next_item", "next_type").agg(F.countDistinct("user_id").alias("_users"))
    kept = pairs.join(support.where(F.col("_users") >= min_people), [*_STATE, "next_item", "next_type"],
                      "left_semi").select(*_STATE, "next_item", "next_type", "session_id", "position")
    sessions = every_step.groupBy("source", "user_id", "session_id").agg(
        F.least(F.count(F.lit(1)), F.lit(max_session_events)).alias("length"),
        F.min("event_time").alias("start"),
        (F.max("event_time").cast("double") - F.min("event_time").cast("double")).alias("duration_s"))
    people = sessions.groupBy("source", "user_id").agg(F.count(F.lit(1)).alias("sessions"))
    return MarkovChain(
        starts=_keep(_indexed(steps.where(F.col("position") == 1).select(*_STATE, "session_id"), ["source"],
                              ["session_id"]), keep),
        steps=_keep(_indexed(steps.select(*_STATE, "session_id", "position"), ["source"], ["session_id", "position"]),
                    keep),
        transitions=_keep(_indexed(kept, _STATE, ["session_id", "position"]), keep),
        templates=_keep(_indexed(sessions.select("source", "session_id", "length", "start", "duration_s"), ["source"],
                                 ["session_id"]), keep),
        people=_keep(_indexed(people.select("source", "user_id", "sessions"), ["source"], ["user_id"]), keep))


def _keep(pair: tuple[DataFrame, DataFrame], keep) -> tuple[DataFrame, DataFrame]:
    table, sizes = pair
    return keep(table), keep(sizes)


def _only(pair: tuple[DataFrame, DataFrame], *columns: str) -> tuple[DataFrame, DataFrame]:
    """An indexed table narrowed to its group and index columns and `columns`."""
    table, sizes = pair
    by = [c for c in sizes.columns if c != "_n"]
    return table.select(*by, "_k", *columns), sizes


def sample_clickstream(chain: MarkovChain, *, users_multiplier: float, seed: int, prefix: str, keep) -> DataFrame:
    """(source, user_id, session_id, position, item_id, event_type, event_time): synthetic people
    (`users_multiplier` per real one, ids `prefix`-...), their sessions and steps. `keep` must
    materialise each step's frontier and cut its plan (a checkpoint): every step reads the one
    before twice, so without it the plan doubles with each step."""
    people, people_sizes = chain.people
    whole, fraction = int(users_multiplier), users_multiplier - int(users_multiplier)
    copies = F.lit(whole) + (_uniform(seed, "copies", "source", "user_id") < fraction).cast("int")
    slots = (people.select("source", "user_id").withColumn("_copy", F.explode(F.sequence(F.lit(1), copies)))
             .where(copies > 0))
    synthetic_people = slots.select("source", F.concat_ws("-", F.lit(prefix), F.xxhash64(
        F.lit(seed), "source", "user_id", "_copy").cast("string")).alias("user_id"))
    counted = _pick(synthetic_people, people_sizes, _only(chain.people, "sessions")[0], ["source"],
                    _uniform(seed, "person", "user_id"))
    sessions = counted.withColumn("_session", F.explode(F.sequence(F.lit(1), F.col("sessions")))).select(
        "source", "user_id", F.concat_ws("-", "user_id", F.col("_session").cast("string")).alias("session_id"))
    templated = keep(_pick(sessions, chain.templates[1], _only(chain.templates, "length", "start", "duration_s")[0],
                           ["source"], _uniform(seed, "template", "session_id")))
    start_table, start_sizes = _only(chain.starts, "item_id", "event_type")
    frontier = keep(_pick(templated, start_sizes, start_table, ["source"], _uniform(seed, "step", "session_id", F.lit(1)))
                    .withColumn("position", F.lit(1)))
    walked = [frontier]
    transitions, out_sizes = _only(chain.transitions, "next_item", "next_type")
    popular, popular_sizes = _only(chain.steps, "item_id", "event_type")
    longest = templated.agg(F.max("length")).head()[0] or 0
    for position in range(2, longest + 1):
        alive = frontier.where(F.col("length") >= position)
        u = _uniform(seed, "step", "session_id", F.lit(position))
        followed = _pick(alive, out_sizes, transitions, _STATE, u).drop("item_id", "event_type").withColumnRenamed(
            "next_item", "item_id").withColumnRenamed("next_type", "event_type")
        stranded = alive.join(out_sizes, _STATE, "left_anti").drop("item_id", "event_type")
        jumped = _pick(stranded, popular_sizes, popular, ["source"], u)
        frontier = keep(followed.unionByName(jumped).withColumn("position", F.lit(position)))
        walked.append(frontier)
    steps = walked[0]
    for frame in walked[1:]:
        steps = steps.unionByName(frame)
    gap = F.when(F.col("length") > 1, F.col("duration_s") / (F.col("length") - 1)).otherwise(F.lit(0.0))
    return steps.select("source", "user_id", "session_id", "position", "item_id", "event_type", (
        F.col("start").cast("double") + (F.col("position") - 1) * gap).cast("timestamp").alias("event_time"))


def as_events(steps: DataFrame, prices: DataFrame) -> DataFrame:
    """silver.events' columns for synthetic steps: ids from the session and position, the item's
    catalogue price, a purchase its own transaction of one unit."""
    purchase = F.col("event_type") == "purchase"
    return steps.join(prices, ["source", "item_id"], "left").select(
        F.concat_ws("-", "session_id", F.col("position").cast("string")).alias("event_id"), "source", "event_time",
        "user_id", "session_id", "item_id", "event_type", F.col("price").cast("double").alias("price"),
        F.when(purchase, F.col("session_id")).alias("transaction_id"),
        F.when(purchase, F.lit(1)).cast("int").alias("quantity"), F.to_date("event_time").alias("event_date"))
