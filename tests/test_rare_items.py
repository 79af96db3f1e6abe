"""Rare items in the sequence generator (`recsynth.synth.rare_items`), on planted frames: a rare
step is learnt on its category's stand-in, and a written stand-in becomes a catalogue item of
that category outside the vocabulary, one item per run, with the source's catalogue as the
fallback."""
from __future__ import annotations

import pytest

from recsynth.synth.rare_items import filled_stand_ins, same_item_shares, stand_in_pools, with_stand_ins

pytestmark = pytest.mark.spark

STEPS = "source string, user_id string, session_id string, position int, item_id string, event_type string"
CATALOGUE = "source string, item_id string, category string"
SAME = "source string, _type_before string, event_type string, _same double"


def test_steps_on_rare_items_move_to_their_categorys_stand_in(spark):
    steps = spark.createDataFrame([
        ("s", "u1", "s1", 1, "a", "view"), ("s", "u1", "s1", 2, "toy", "cart"),
        ("s", "u2", "s2", 1, "nameless", "view"), ("s", "u2", "s2", 2, "uncatalogued", "purchase"),
        ("t", "u3", "s3", 1, "a", "view"),   # the same id in another source is another item: rare there
    ], STEPS)
    shared = spark.createDataFrame([("s", "a", 2)], "source string, item_id string, _people long")
    categories = spark.createDataFrame([("s", "a", "toys"), ("s", "toy", "toys"), ("s", "nameless", None),
                                        ("t", "a", "food")], CATALOGUE)
    moved = with_stand_ins(steps, shared, categories)
    assert moved.columns == steps.columns
    assert sorted(tuple(r) for r in moved.collect()) == [
        ("s", "u1", "s1", 1, "a", "view"), ("s", "u1", "s1", 2, "~rare~s~toys", "cart"),
        ("s", "u2", "s2", 1, "~rare~s~unknown", "view"), ("s", "u2", "s2", 2, "~rare~s~unknown", "purchase"),
        ("t", "u3", "s3", 1, "~rare~t~food", "view")]


def test_written_stand_ins_become_catalogue_items_outside_the_vocabulary_one_per_run(spark):
    catalogue = spark.createDataFrame([("s", "a", "toys"), ("s", "b", "toys"), ("s", "c", "toys"), ("s", "d", "food"),
                                       ("t", "e", None)], CATALOGUE)
    known = spark.createDataFrame([("a",), ("d",)], "item_id string")
    table, sizes = stand_in_pools(catalogue, known)
    assert sorted(tuple(r) for r in sizes.collect()) == [
        ("s", "~rare~s", 4), ("s", "~rare~s~toys", 2), ("t", "~rare~t", 1), ("t", "~rare~t~unknown", 1)]

    toys, food = "~rare~s~toys", "~rare~s~food"
    rows = []
    for n in range(40):   # a run of two toy stand-ins, a known item, then the stand-in again
        rows += [("s", f"p{n}", f"x{n}", 1, toys, "view"), ("s", f"p{n}", f"x{n}", 2, toys, "cart"),
                 ("s", f"p{n}", f"x{n}", 3, "a", "view"), ("s", f"p{n}", f"x{n}", 4, toys, "view")]
    rows += [("s", "q", "y", 1, food, "view"), ("t", "r", "z", 1, "~rare~t~unknown", "purchase")]
    written = spark.createDataFrame(rows, STEPS)
    filled = filled_stand_ins(written, (table, sizes), spark.createDataFrame([], SAME), seed=7)
    assert filled.columns == written.columns
    got = {(r["session_id"], r["position"]): (r["item_id"], r["event_type"]) for r in filled.collect()}
    assert len(got) == len(rows)   # every step kept, at its position, with its type
    assert {key: kind for key, (_, kind) in got.items()} == {(r[2], r[3]): r[5] for r in rows}
    runs = [(got[(f"x{n}", 1)][0], got[(f"x{n}", 2)][0], got[(f"x{n}", 3)][0], got[(f"x{n}", 4)][0])
            for n in range(40)]
    assert all(first == second and known_item == "a" for first, second, known_item, _ in runs)   # one item per run
    assert {first for first, *_ in runs} | {last for *_, last in runs} == {"b", "c"}   # outside the vocabulary
    assert any(first != last for first, *_, last in runs) and any(first == last for first, *_, last in runs)
    assert got[("y", 1)][0] in {"a", "b", "c", "d"}   # food has nothing outside: the source's catalogue
    assert got[("z", 1)][0] == "e"
    # seeded: the same stand-ins are filled the same way, however the rows arrive
    again = filled_stand_ins(written.repartition(3), (table, sizes), spark.createDataFrame([], SAME), seed=7)
    assert filled.exceptAll(again).count() == 0 and again.exceptAll(filled).count() == 0


def test_a_stand_in_after_itself_stays_on_the_item_as_often_as_real_people_stayed(spark):
    """Real: a cart after a view of the same rare toy (the same item), a view after a view of a
    rare toy once the same toy and once another, a toy after a shared item (not a run): shares 1
    and 0.5. Written: with (view, cart) at 1 every cart keeps the viewed item; with (view, view)
    at 0 every second view draws again (from two toys: another item about half the time)."""
    steps = spark.createDataFrame([
        ("s", "u1", "s1", 1, "toy1", "view"), ("s", "u1", "s1", 2, "toy1", "cart"),
        ("s", "u2", "s2", 1, "toy1", "view"), ("s", "u2", "s2", 2, "toy2", "view"),
        ("s", "u3", "s3", 1, "toy1", "view"), ("s", "u3", "s3", 2, "toy1", "view"),
        ("s", "u4", "s4", 1, "a", "view"), ("s", "u4", "s4", 2, "toy1", "view")], STEPS)
    shared = spark.createDataFrame([("s", "a", 2)], "source string, item_id string, _people long")
    catalogue = spark.createDataFrame([("s", "a", "toys"), ("s", "toy1", "toys"), ("s", "toy2", "toys")], CATALOGUE)
    assert sorted(tuple(r) for r in same_item_shares(steps, shared, catalogue).collect()) == [
        ("s", "view", "cart", 1.0), ("s", "view", "view", 0.5)]

    pools = stand_in_pools(catalogue, spark.createDataFrame([("a",)], "item_id string"))
    toys = "~rare~s~toys"
    written = spark.createDataFrame([row for n in range(40) for row in (
        ("s", f"p{n}", f"x{n}", 1, toys, "view"), ("s", f"p{n}", f"x{n}", 2, toys, "cart"),
        ("s", f"p{n}", f"y{n}", 1, toys, "view"), ("s", f"p{n}", f"y{n}", 2, toys, "view"))], STEPS)
    same = spark.createDataFrame([("s", "view", "cart", 1.0), ("s", "view", "view", 0.0)], SAME)
    got = {(r["session_id"], r["position"]): r["item_id"] for r in filled_stand_ins(written, pools, same, seed=7).collect()}
    assert all(got[(f"x{n}", 1)] == got[(f"x{n}", 2)] for n in range(40))
    assert 5 < sum(got[(f"y{n}", 1)] != got[(f"y{n}", 2)] for n in range(40)) < 35
