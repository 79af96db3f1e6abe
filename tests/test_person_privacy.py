"""Person-level privacy of a synthetic clickstream (recsynth.synth.person_privacy) on planted
people: paths with repeats and ties, distinctive and common grams, a canary, a memorising
generator (fails), a generalising one and an unrelated one (pass)."""
from __future__ import annotations

import datetime as dt

import pytest

from recsynth.synth.person_privacy import assess_people, membership_auc, ngrams, path_exposure, paths

pytestmark = pytest.mark.spark

START = dt.datetime(2026, 1, 1)
SCHEMA = "source string, user_id string, item_id string, event_time timestamp"


def _events(spark, people: dict[str, list[str]], source: str = "s"):
    """One event per item, a minute apart, in the listed order."""
    rows = [(source, person, item, START + dt.timedelta(minutes=k))
            for person, items in people.items() for k, item in enumerate(items)]
    return spark.createDataFrame(rows, SCHEMA)


# t1..t3 and h1, h2 have distinctive 5-item paths; t4 and h3 share a common one (support 2)
TRAIN = {"t1": ["a1", "a2", "a3", "a4", "a5"], "t2": ["b1", "b2", "b3", "b4", "b5"],
         "canary": ["c1", "c2", "c3", "c4", "c5"], "t4": ["x1", "x2", "x3"]}
HOLDOUT = {"h1": ["d1", "d2", "d3", "d4", "d5"], "h2": ["e1", "e2", "e3", "e4", "e5"], "h3": ["x1", "x2", "x3"]}


def _renamed(people: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    return {f"{prefix}{k}": items for k, items in enumerate(people.values())}


def test_paths_collapse_repeats_and_order_ties_by_item(spark):
    at = START
    rows = [("s", "u", "b", at), ("s", "u", "a", at), ("s", "u", "b", at + dt.timedelta(minutes=1)),
            ("s", "u", "c", at + dt.timedelta(minutes=2)), ("s", "u", "a", at + dt.timedelta(minutes=3)),
            ("s", None, "z", at)]
    got = [(r["position"], r["item_id"]) for r in paths(spark.createDataFrame(rows, SCHEMA)).orderBy("position").collect()]
    assert got == [(1, "a"), (2, "b"), (3, "c"), (4, "a")]   # a, b (a tie, by item), b repeated, c, a again


def test_ngrams_are_the_contiguous_grams_of_each_size(spark):
    grams = ngrams(_events(spark, {"u": ["a", "b", "c", "d"]}), sizes=(3, 4))
    got = sorted((r["n"], r["gram"].split("\u001f")) for r in grams.collect())
    assert got == [(3, ["a", "b", "c"]), (3, ["b", "c", "d"]), (4, ["a", "b", "c", "d"])]


def test_a_memorising_generator_exposes_training_paths_and_fails_both_gates(spark, keep):
    train, holdout = _events(spark, TRAIN), _events(spark, HOLDOUT)
    copied = _events(spark, _renamed(TRAIN, "syn"))
    report = assess_people(train, holdout, copied, sizes=(3, 4, 5), min_support=2, query_people=100, keep=keep)
    # training: 3 distinctive people x 3 three-grams; t4's path is common (h3 has it) and not counted
    assert report.paths.distinctive == {"train": {3: 9, 4: 6, 5: 3}, "holdout": {3: 6, 4: 4, 5: 2}}
    assert report.paths.train_gram_share == {3: 1.0, 4: 1.0, 5: 1.0}
    assert report.paths.holdout_gram_share == {3: 0.0, 4: 0.0, 5: 0.0}
    assert report.paths.train_person_share == {3: 1.0, 4: 1.0, 5: 1.0}
    # members score 1 (their copy); h1, h2 score 0 and h3 1 (t4's copy shares its common path):
    # 8 wins and 4 ties of 12 pairs
    assert report.membership_auc == pytest.approx(10 / 12)
    failures = report.failures(max_excess_gram_share=0.05, max_membership_auc=0.6)
    assert len(failures) == 4 and "distinctive 5-item paths" in failures[2] and "0.833 > 0.6" in failures[3]


def test_the_canary_path_is_caught_alone(spark, keep):
    """A generator that copies only the canary's path leaks one person out of three."""
    train, holdout = _events(spark, TRAIN), _events(spark, HOLDOUT)
    leaked = _events(spark, {"s1": TRAIN["canary"], "s2": ["q1", "q2", "q3", "q4"]})
    exposure = path_exposure(train, holdout, leaked, sizes=(5,), min_support=2, keep=keep)
    assert exposure.train_gram_share == {5: pytest.approx(1 / 3)} and exposure.train_person_share == {5: pytest.approx(1 / 3)}
    assert exposure.excess() == {5: pytest.approx(1 / 3)}


def test_a_generalising_generator_finds_both_sides_alike_and_passes(spark, keep):
    """Synthetic paths that start like t1 and like h1 (3 items each): one 3-gram found per side."""
    train, holdout = _events(spark, TRAIN), _events(spark, HOLDOUT)
    synthetic = _events(spark, {"s1": ["a1", "a2", "a3", "q9"], "s2": ["d1", "d2", "d3", "q8"]})
    report = assess_people(train, holdout, synthetic, sizes=(3, 4), min_support=2, query_people=100, keep=keep)
    assert report.paths.train_gram_share == {3: pytest.approx(1 / 9), 4: 0.0}
    assert report.paths.holdout_gram_share == {3: pytest.approx(1 / 6), 4: 0.0}
    assert report.failures(max_excess_gram_share=0.05, max_membership_auc=0.9) == []


def test_membership_without_any_shared_item_is_no_signal(spark, keep):
    unrelated = _events(spark, {"s1": ["q1", "q2", "q3"]})
    assert membership_auc(_events(spark, TRAIN), _events(spark, HOLDOUT), unrelated, keep=keep) == pytest.approx(0.5)


def test_other_sources_items_are_not_a_match(spark, keep):
    """The same item ids in another source are other items: no gram is found."""
    copied_elsewhere = _events(spark, _renamed(TRAIN, "syn"), source="other")
    exposure = path_exposure(_events(spark, TRAIN), _events(spark, HOLDOUT), copied_elsewhere, sizes=(3,), keep=keep)
    assert exposure.train_gram_share == {3: 0.0}
