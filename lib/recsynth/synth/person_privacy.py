"""Privacy of a synthetic clickstream judged per person: a person's risk is their path through
the catalogue, so a generator that replays one user's distinctive 5-item path leaks them even
when no single row is a copy. Two checks, both against a holdout of real people the generator
never saw (split by person: `privacy.split_by_person`):

- **path n-grams.** Each person's items in time order, consecutive repeats of one item
  collapsed (A A B -> A B), cut into contiguous n-grams (n in `sizes`, 3 to 5 by default). A
  gram is *distinctive* when fewer than `min_support` real people (training and holdout
  together) have it: a path that many people share says nothing about any one of them. For
  each side, the share of its distinctive grams that occur anywhere in the synthetic
  clickstream, and the share of its people with at least one such gram. A generator that
  generalises finds about as many of the holdout's grams as of training's; a memorising one
  finds training's and not the holdout's.
- **user-level membership inference.** The attacker holds a person's real events and the
  synthetic data, and scores the person by their closeness to the nearest synthetic user
  (Jaccard similarity of the item sets). The AUC of that score, training people (members)
  against holdout people (non-members), on a bounded sample of each: 0.5 is no signal.

Everything is built-in Spark: windows for the paths, joins on items for the similarities (each
query person against only the synthetic users who share an item with them, so the cost grows
with the items' popularity among synthetic users, not with their number squared).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

PERSON = "user_id"
GRAM = "gram"
SIZE = "n"
_SEPARATOR = "\u001f"   # between the items of a gram: never part of an item id


@dataclass(frozen=True)
class PathExposure:
    """Per gram size: the share of a side's distinctive grams found in the synthetic data, and the
    share of its people with one of them found; `distinctive`: how many grams each side had."""
    train_gram_share: dict[int, float]
    holdout_gram_share: dict[int, float]
    train_person_share: dict[int, float]
    holdout_person_share: dict[int, float]
    distinctive: dict[str, dict[int, int]] = field(default_factory=dict)

    def excess(self) -> dict[int, float]:
        """Per size, how much more of training's distinctive grams the synthetic data holds than of
        the holdout's (> 0: it knows the people it was trained on)."""
        return {n: self.train_gram_share[n] - self.holdout_gram_share[n] for n in self.train_gram_share}


@dataclass(frozen=True)
class PersonPrivacy:
    paths: PathExposure
    membership_auc: float

    def failures(self, max_excess_gram_share: float, max_membership_auc: float) -> list[str]:
        """The gates this report fails, in words (empty: it passes)."""
        problems = [f"distinctive {n}-item paths of training people appear in the synthetic clickstream "
                    f"{self.paths.train_gram_share[n]:.4f} of the time against the holdout's "
                    f"{self.paths.holdout_gram_share[n]:.4f}: more than {max_excess_gram_share} above it"
                    for n, excess in sorted(self.paths.excess().items()) if excess > max_excess_gram_share]
        if self.membership_auc > max_membership_auc:
            problems.append(f"user-level membership inference AUC {self.membership_auc:.3f} > {max_membership_auc}")
        return problems


def paths(events: DataFrame) -> DataFrame:
    """(source, user_id, position, item_id): each person's items in time order (ties by item id),
    consecutive repeats of one item collapsed; people without a user id have no path."""
    order = Window.partitionBy("source", PERSON).orderBy("event_time", "item_id")
    steps = (events.where(F.col(PERSON).isNotNull() & F.col("item_id").isNotNull())
             .select("source", PERSON, "item_id", "event_time")
             .withColumn("_previous", F.lag("item_id").over(order))
             .where(F.col("_previous").isNull() | (F.col("_previous") != F.col("item_id"))))
    return steps.withColumn("position", F.row_number().over(order)).select("source", PERSON, "position", "item_id")


def ngrams(events: DataFrame, sizes: tuple[int, ...] = (3, 4, 5)) -> DataFrame:
    """(source, user_id, n, gram): the distinct contiguous item n-grams of each person's path."""
    order = Window.partitionBy("source", PERSON).orderBy("position")
    path = paths(events)
    longest = max(sizes)
    for step in range(1, longest):
        path = path.withColumn(f"_next{step}", F.lead("item_id", step).over(order))
    grams = [F.struct(F.lit(n).alias(SIZE), F.concat_ws(_SEPARATOR, "item_id", *(f"_next{s}" for s in range(1, n))
                                                        ).alias(GRAM), F.col(f"_next{n - 1}").isNotNull().alias("_whole"))
             for n in sizes]
    return (path.select("source", PERSON, F.explode(F.array(*grams)).alias("_g")).select("source", PERSON, "_g.*")
            .where("_whole").drop("_whole").distinct())


def _shares(side: DataFrame, found: DataFrame) -> tuple[dict[int, float], dict[int, float], dict[int, int]]:
    """Per size: found grams / distinctive grams, people with a found gram / people with a
    distinctive gram (people whose whole path is common are not at risk, and not counted), and
    the number of distinctive grams."""
    marked = side.join(found, ["source", SIZE, GRAM], "left").fillna(False, ["_found"]).withColumn(
        "_found", F.col("_found").cast("int"))
    grams = marked.select("source", SIZE, GRAM, "_found").distinct().groupBy(SIZE).agg(
        F.count(F.lit(1)).alias("grams"), F.sum("_found").alias("found"))
    people = marked.groupBy(SIZE, "source", PERSON).agg(F.max("_found").alias("_any")).groupBy(SIZE).agg(
        F.count(F.lit(1)).alias("people"), F.sum("_any").alias("exposed"))
    gram_share, person_share, counts = {}, {}, {}
    for row in grams.join(people, SIZE).collect():   # one row per gram size
        counts[row[SIZE]] = row["grams"]
        gram_share[row[SIZE]] = row["found"] / row["grams"]
        person_share[row[SIZE]] = row["exposed"] / row["people"]
    return gram_share, person_share, counts


def path_exposure(train: DataFrame, holdout: DataFrame, synthetic: DataFrame, *, sizes: tuple[int, ...] = (3, 4, 5),
                  min_support: int = 2, keep) -> PathExposure:
    """Distinctive path n-grams of training and holdout people found in `synthetic` (events with
    source, user_id, item_id, event_time). A size with no distinctive gram on a side scores 0.
    `keep` persists each side's grams, read twice (their support, then their shares)."""
    sides = {"train": keep(ngrams(train, sizes)), "holdout": keep(ngrams(holdout, sizes))}
    support = sides["train"].unionByName(sides["holdout"]).groupBy("source", SIZE, GRAM).agg(
        F.count(F.lit(1)).alias("_support"))
    found = ngrams(synthetic, sizes).select("source", SIZE, GRAM).distinct().withColumn("_found", F.lit(True))
    figures = {}
    for name, grams in sides.items():
        distinctive = grams.join(support.where(F.col("_support") < min_support), ["source", SIZE, GRAM], "left_semi")
        figures[name] = _shares(distinctive, found)
    zero = dict.fromkeys(sizes, 0.0)
    return PathExposure(train_gram_share={**zero, **figures["train"][0]},
                        holdout_gram_share={**zero, **figures["holdout"][0]},
                        train_person_share={**zero, **figures["train"][1]},
                        holdout_person_share={**zero, **figures["holdout"][1]},
                        distinctive={name: {**dict.fromkeys(sizes, 0), **f[2]} for name, f in figures.items()})


def _item_sets(events: DataFrame) -> DataFrame:
    return events.where(F.col(PERSON).isNotNull() & F.col("item_id").isNotNull()).select(
        "source", PERSON, "item_id").distinct()


def nearest_synthetic_similarity(people: DataFrame, synthetic: DataFrame) -> DataFrame:
    """(source, user_id, similarity): each person of `people` (events) against their nearest
    synthetic user of the same source, by Jaccard similarity of the item sets (0 when they
    share no item with anyone)."""
    real = _item_sets(people)
    fake = _item_sets(synthetic).withColumnRenamed(PERSON, "_synthetic_user")
    real_sizes = real.groupBy("source", PERSON).agg(F.count(F.lit(1)).alias("_real_items"))
    fake_sizes = fake.groupBy("source", "_synthetic_user").agg(F.count(F.lit(1)).alias("_synthetic_items"))
    shared = real.join(fake, ["source", "item_id"]).groupBy("source", PERSON, "_synthetic_user").agg(
        F.count(F.lit(1)).alias("_shared"))
    jaccard = (shared.join(real_sizes, ["source", PERSON]).join(fake_sizes, ["source", "_synthetic_user"])
               .select("source", PERSON, (F.col("_shared") / (F.col("_real_items") + F.col("_synthetic_items")
                                                                - F.col("_shared"))).alias("similarity")))
    nearest = jaccard.groupBy("source", PERSON).agg(F.max("similarity").alias("similarity"))
    return real_sizes.select("source", PERSON).join(nearest, ["source", PERSON], "left").fillna(0.0, ["similarity"])


def _sample_people(events: DataFrame, rows: int, seed: int) -> DataFrame:
    """The events of at most `rows` people drawn at random (by a seeded hash, so a re-run draws
    the same people)."""
    people = events.where(F.col(PERSON).isNotNull()).select("source", PERSON).distinct()
    drawn = people.orderBy(F.xxhash64(F.lit(seed), "source", PERSON)).limit(rows)
    return events.join(drawn, ["source", PERSON], "left_semi")


def membership_auc(train: DataFrame, holdout: DataFrame, synthetic: DataFrame, *, query_people: int = 2000,
                   seed: int = 0, keep) -> float:
    """User-level membership inference: training people (members) against holdout people, scored
    by their similarity to the nearest synthetic user, on up to `query_people` of each side.
    nan when a side has nobody. `keep` persists the scores, read twice (labels, then the AUC)."""
    scored = keep(nearest_synthetic_similarity(_sample_people(train, query_people, seed), synthetic)
              .withColumn("label", F.lit(1.0))
              .unionByName(nearest_synthetic_similarity(_sample_people(holdout, query_people, seed), synthetic)
                           .withColumn("label", F.lit(0.0))))
    labels = {r["label"] for r in scored.select("label").distinct().collect()}
    if labels != {0.0, 1.0}:
        return math.nan
    return float(BinaryClassificationEvaluator(rawPredictionCol="similarity", labelCol="label",
                                               metricName="areaUnderROC").evaluate(scored))


def assess_people(train: DataFrame, holdout: DataFrame, synthetic: DataFrame, *, sizes: tuple[int, ...] = (3, 4, 5),
                  min_support: int = 2, query_people: int = 2000, seed: int = 0, keep) -> PersonPrivacy:
    """Both person-level checks of the synthetic clickstream against training and holdout people."""
    return PersonPrivacy(paths=path_exposure(train, holdout, synthetic, sizes=sizes, min_support=min_support, keep=keep),
                         membership_auc=membership_auc(train, holdout, synthetic, query_people=query_people, seed=seed,
                                                       keep=keep))
