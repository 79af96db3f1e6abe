"""Top-N for every user, popularity fallback, similar items and their versioned writes, on tiny frames."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth import tables as T
from recsynth.errors import RecommenderError
from recsynth.rec import topn
from recsynth.rec.baselines import then_fill

USERS = "user_id string, vector array<float>"
ITEMS = "item_id string, vector array<float>"
PAIRS = "user_id string, item_id string"
TOP = "user_id string, rank int, item_id string, score double"
SIMILAR = "item_id string, rank int, similar_item_id string, score double"
WHEN = dt.datetime(2024, 5, 1, 12, 0, 0)


def _frame(spark, rows, schema):
    return spark.createDataFrame(rows, schema)


def _vectors(ids, matrix):
    return [(i, [float(x) for x in row]) for i, row in zip(ids, matrix)]


def test_top_n_equals_brute_force_and_skips_exclusions(spark):
    rng = np.random.default_rng(7)
    users, items = [f"u{i}" for i in range(7)], [f"i{j:02d}" for j in range(12)]
    u = rng.normal(size=(7, 4)).astype(np.float32)
    v = rng.normal(size=(12, 4)).astype(np.float32)
    excluded = {"u0": {"i00", "i05", "i11"}, "u3": {"i07"}, "u6": set(items[:10])}  # u6: 2 items left for k=3
    exclusions = [(user, item) for user, its in excluded.items() for item in sorted(its)]
    exclusions += [("u3", "not-in-catalogue"), ("nobody", "i01")]
    k = 3
    scores = u.astype(np.float64) @ v.astype(np.float64).T
    expected = []
    for row, user in enumerate(users):
        order = [j for j in np.argsort(-scores[row]) if items[j] not in excluded.get(user, set())][:k]
        expected += [(user, rank + 1, items[j], float(scores[row, j])) for rank, j in enumerate(order)]

    actual = topn.top_n(_frame(spark, _vectors(users, u), USERS), _frame(spark, _vectors(items, v), ITEMS),
                        _frame(spark, exclusions, PAIRS), k, block_rows=2)

    assertDataFrameEqual(actual, _frame(spark, expected, TOP), rtol=1e-5)


def test_top_n_k_beyond_eligible_items_returns_fewer_rows_without_excluded_ones(spark):
    user_vectors = _frame(spark, [("u1", [1.0, 0.0]), ("u2", [0.0, 1.0]), ("u3", None)], USERS)
    item_vectors = _frame(spark, [("a", [3.0, 0.0]), ("b", [2.0, 1.0]), ("c", [0.0, 5.0])], ITEMS)
    exclusions = _frame(spark, [("u1", "a"), ("u2", "c"), ("u2", "b")], PAIRS)

    actual = topn.top_n(user_vectors, item_vectors, exclusions, 10)

    expected = [("u1", 1, "b", 2.0), ("u1", 2, "c", 0.0), ("u2", 1, "a", 0.0)]
    assertDataFrameEqual(actual, _frame(spark, expected, TOP))


def test_eligible_items_keeps_the_current_catalogue_and_category_filter(spark):
    item_vectors = _frame(spark, [("a", [1.0, 0.0]), ("b", [0.9, 0.1]), ("c", [0.8, 0.0]), ("gone", [5.0, 0.0])], ITEMS)
    features = _frame(spark, [("a", "10", "home/kitchen"), ("b", "20", "home"), ("c", "30", "homeware"),
                              ("d", "40", None)], "item_id string, category_id string, category_path string")
    silver_items = _frame(spark, [("a", ["home", "kitchen"]), ("c", ["homeware"])], "item_id string, category_path array<string>")

    active = topn.eligible_items(item_vectors, features)
    in_home = topn.eligible_items(item_vectors, features, categories=["home"])
    array_path = topn.eligible_items(item_vectors, silver_items, categories=["homeware", "nope"])
    by_id = topn.eligible_items(item_vectors, features, categories=["20", "40"])
    recs = topn.top_n(_frame(spark, [("u1", [1.0, 0.0])], USERS), in_home, None, 5)

    assertDataFrameEqual(active.select("item_id"), _frame(spark, [("a",), ("b",), ("c",)], "item_id string"))
    assertDataFrameEqual(in_home.select("item_id"), _frame(spark, [("a",), ("b",)], "item_id string"))
    assertDataFrameEqual(array_path.select("item_id"), _frame(spark, [("c",)], "item_id string"))
    assertDataFrameEqual(by_id.select("item_id"), _frame(spark, [("b",)], "item_id string"))
    assertDataFrameEqual(recs, _frame(spark, [("u1", 1, "a", 1.0), ("u1", 2, "b", 0.9)], TOP), rtol=1e-6)


def test_popularity_fallback_for_cold_users_still_skips_their_exclusions(spark):
    everyone = _frame(spark, [("warm",), ("cold1",), ("cold2",), ("cold2",)], "user_id string")
    user_vectors = _frame(spark, [("warm", [1.0]), ("cold2", None)], USERS)
    popular = _frame(spark, [("p1", 9.0), ("p2", 7.0), ("p3", 7.0), ("p4", 1.0)], "item_id string, score double")
    exclusions = _frame(spark, [("cold1", "p1"), ("cold1", "p3"), ("warm", "p2")], PAIRS)

    cold = topn.cold_users(everyone, user_vectors)
    actual = topn.popularity_fallback(cold, popular, 2, exclusions)

    assertDataFrameEqual(cold, _frame(spark, [("cold1",), ("cold2",)], "user_id string"))
    expected = [("cold1", 1, "p2", 7.0), ("cold1", 2, "p4", 1.0), ("cold2", 1, "p1", 9.0), ("cold2", 2, "p2", 7.0)]
    assertDataFrameEqual(actual, _frame(spark, expected, TOP))


def test_with_fallback_fills_short_lists_and_cold_users_from_popularity(spark):
    own = _frame(spark, [("u1", 1, "x", 0.9), ("u1", 2, "p2", 0.5), ("u2", 1, "x", 0.8), ("u2", 2, "y", 0.7),
                         ("u2", 3, "z", 0.6), ("stranger", 1, "x", 1.0)], TOP)
    users = _frame(spark, [("u1",), ("u2",), ("cold",)], "user_id string")
    popular = _frame(spark, [("p1", 9.0), ("p2", 7.0), ("p3", 5.0), ("p4", 1.0)], "item_id string, score double")
    exclusions = _frame(spark, [("u1", "p1"), ("cold", "p2")], PAIRS)

    actual = topn.with_fallback(own, users, popular, 3, exclusions)

    # u1: its 2 items, then the most popular item neither listed (p2) nor excluded (p1); u2 is full;
    # cold gets popularity alone minus its exclusion; the stranger is not among the users
    expected = [("u1", 1, "x", 0.9), ("u1", 2, "p2", 0.5), ("u1", 3, "p3", 5.0),
                ("u2", 1, "x", 0.8), ("u2", 2, "y", 0.7), ("u2", 3, "z", 0.6),
                ("cold", 1, "p1", 9.0), ("cold", 2, "p3", 5.0), ("cold", 3, "p4", 1.0)]
    assertDataFrameEqual(actual, _frame(spark, expected, TOP))


def test_similar_items_are_cosine_neighbours_without_self(spark):
    item_vectors = _frame(spark, [("a", [1.0, 0.0]), ("b", [2.0, 2.0]), ("c", [0.0, 3.0]), ("z", [0.0, 0.0])], ITEMS)

    actual = topn.similar_items(item_vectors, 2, block_rows=1)

    h = float(np.float32(1 / np.sqrt(2)))
    expected = [("a", 1, "b", h), ("a", 2, "c", 0.0), ("b", 1, "a", h), ("b", 2, "c", h), ("c", 1, "b", h),
                ("c", 2, "a", 0.0)]
    assertDataFrameEqual(actual, _frame(spark, expected, SIMILAR), rtol=1e-6)


def test_writes_replace_only_their_model_version(spark, lake):
    first = _frame(spark, [("u1", 1, "a", 0.5), ("u1", 2, "b", 0.25)], TOP)
    rerun = _frame(spark, [("u1", 1, "b", 0.75)], TOP)
    other = _frame(spark, [("u2", 1, "c", 1.0)], TOP)
    similar = _frame(spark, [("a", 1, "b", 0.5)], SIMILAR)
    later = WHEN + dt.timedelta(hours=1)

    topn.write_top_n(lake, first, "m-1", WHEN)  # creates the table
    topn.write_top_n(lake, other, "m-2", WHEN)
    topn.write_top_n(lake, rerun, "m-1", later)
    topn.write_similar_items(lake, similar, "m-1", WHEN)
    topn.write_similar_items(lake, similar, "m-1", WHEN)

    stored = "user_id string, rank int, item_id string, score double, model_version string, generated_at timestamp"
    assertDataFrameEqual(lake.read(T.RECS_TOP_N), _frame(spark, [("u1", 1, "b", 0.75, "m-1", later),
                                                                ("u2", 1, "c", 1.0, "m-2", WHEN)], stored))
    assertDataFrameEqual(lake.read(T.RECS_SIMILAR_ITEMS).drop("generated_at"),
                         _frame(spark, [("a", 1, "b", 0.5, "m-1")], SIMILAR + ", model_version string"))


def test_only_the_newest_versions_are_kept(spark, lake):
    rows = _frame(spark, [("u1", 1, "a", 0.5)], TOP)
    for hours, version in enumerate(["m-3", "m-1", "m-4", "m-2"]):  # generated in this order
        topn.write_top_n(lake, rows, version, WHEN + dt.timedelta(hours=hours))
    before = lake.version(T.RECS_TOP_N)

    assert topn.drop_old_versions(lake, T.RECS_TOP_N, keep=2) == ["m-1", "m-3"]
    assert sorted(r["model_version"] for r in lake.read(T.RECS_TOP_N).collect()) == ["m-2", "m-4"]
    assert lake.read(T.RECS_TOP_N, version=before).count() == 4  # still there for time travel
    assert topn.drop_old_versions(lake, T.RECS_TOP_N, keep=2) == []  # idempotent
    with pytest.raises(RecommenderError, match="keep"):
        topn.drop_old_versions(lake, T.RECS_TOP_N, keep=0)


@pytest.mark.parametrize("model_version", ["", "m'1", "a b", "x" * 129, None])
def test_bad_model_version_is_refused_before_writing(spark, lake, model_version):
    frame = _frame(spark, [("u1", 1, "a", 0.5)], TOP)
    with pytest.raises(RecommenderError, match="model_version"):
        topn.write_top_n(lake, frame, model_version, WHEN)
    assert not lake.exists(T.RECS_TOP_N)


def test_bad_inputs_name_the_problem(spark):
    users = _frame(spark, [("u1", [1.0, 0.0])], USERS)
    items = _frame(spark, [("a", [1.0, 0.0])], ITEMS)
    cases = [
        (lambda: topn.top_n(users, items, None, 0), "k must be"),
        (lambda: topn.top_n(users, items, None, 2.0), "k must be"),
        (lambda: topn.top_n(users.withColumnRenamed("vector", "v"), items, None, 1),
         r"user_vectors lacks column\(s\) \['vector'\]"),
        (lambda: topn.top_n(users, items, users.select("user_id"), 1), r"exclusions lacks column\(s\) \['item_id'\]"),
        (lambda: topn.top_n(_frame(spark, [(1, [1.0, 0.0])], "user_id int, vector array<float>"), items, None, 1),
         "user_vectors: column 'user_id' is int, expected string"),
        (lambda: topn.top_n(users, _frame(spark, [("a", ["x"])], "item_id string, vector array<string>"), None, 1),
         "array<string>"),
        (lambda: topn.top_n(users, _frame(spark, [("a", [1.0, 0.0, 0.0])], ITEMS), None, 1), "lengths 2..2 do not match .* 3"),
        (lambda: topn.top_n(users, _frame(spark, [("a", [1.0]), ("b", [1.0, 2.0])], ITEMS), None, 1), "different lengths"),
        (lambda: topn.top_n(users, _frame(spark, [("a", [1.0, 0.0]), ("a", [0.0, 1.0])], ITEMS), None, 1),
         "duplicate item_id 'a'"),
        (lambda: topn.top_n(users, items.limit(0), None, 1), "no items"),
        (lambda: topn.top_n(users, items, None, 1, block_rows=0), "block_rows"),
        (lambda: topn.top_n(_frame(spark, [("u1", [float("nan"), 0.0])], USERS), items, None, 1), "NaN"),
        (lambda: topn.similar_items(items, -1), "k must be"),
        (lambda: topn.eligible_items(items, items, categories="home"), "categories"),
        (lambda: topn.eligible_items(items, items, categories=["home"]), "category_path"),
        (lambda: topn.popularity_fallback(users, items, 1), r"popular_items lacks column\(s\) \['score'\]"),
        (lambda: topn.write_top_n(None, users, "m-1", WHEN), r"recs.top_n lacks column\(s\) \['rank', 'item_id', 'score'\]"),
    ]
    for call, message in cases:
        with pytest.raises(RecommenderError, match=message):
            call()


def test_each_source_fills_up_from_its_own_popular_items(spark):
    own = _frame(spark, [("r1", 1, "r:x", 0.9), ("e1", 1, "e:x", 0.8), ("z1", 1, "z:x", 0.7)], TOP)
    users = _frame(spark, [("r1", "rr"), ("r2", "rr"), ("e1", "ee"), ("z1", "zz")], "user_id string, source string")
    popular = _frame(spark, [("rr", "r:p1", 5.0), ("rr", "r:p2", 4.0), ("ee", "e:p1", 9.0), ("ee", "e:p2", 1.0)],
                     "source string, item_id string, score double")
    exclusions = _frame(spark, [("r2", "r:p1")], PAIRS)

    actual = topn.with_fallback(own, users, popular, 2, exclusions)

    # rees-like users never get the other shop's items, whatever their popularity; a source without
    # popular items (zz) keeps its own lists unfilled
    expected = [("r1", 1, "r:x", 0.9), ("r1", 2, "r:p1", 5.0), ("r2", 1, "r:p2", 4.0),
                ("e1", 1, "e:x", 0.8), ("e1", 2, "e:p1", 9.0), ("z1", 1, "z:x", 0.7)]
    assertDataFrameEqual(actual, _frame(spark, expected, TOP))
    # the evaluation's shortcut: one fill-up of 2k per user, then each list followed by it
    assertDataFrameEqual(then_fill(own, topn.popularity_fallback(users, popular, 4, exclusions), 2), actual)


def test_a_list_followed_by_a_2k_popularity_list_is_the_filled_up_list(spark):
    # the recommend job fills every model's list from one popularity list of 2k per user and task
    own = _frame(spark, [("u1", 1, "x", 0.9), ("u1", 2, "p2", 0.5), ("u2", 1, "p3", 0.8), ("u2", 2, "p1", 0.7),
                         ("u2", 3, "p4", 0.6), ("u3", 1, "p4", 0.1)], TOP)
    users = _frame(spark, [("u1",), ("u2",), ("u3",), ("cold",)], "user_id string")
    popular = _frame(spark, [("p1", 9.0), ("p2", 7.0), ("p3", 5.0), ("p4", 1.0), ("p5", 0.5), ("p6", 0.2)],
                     "item_id string, score double")
    exclusions = _frame(spark, [("u1", "p1"), ("u3", "p1"), ("u3", "p2"), ("cold", "p2")], PAIRS)

    filled = then_fill(own, topn.popularity_fallback(users, popular, 6, exclusions), 3)

    expected = [("u1", 1, "x", 0.9), ("u1", 2, "p2", 0.5), ("u1", 3, "p3", 5.0),
                ("u2", 1, "p3", 0.8), ("u2", 2, "p1", 0.7), ("u2", 3, "p4", 0.6),
                ("u3", 1, "p4", 0.1), ("u3", 2, "p3", 5.0), ("u3", 3, "p5", 0.5),
                ("cold", 1, "p1", 9.0), ("cold", 2, "p3", 5.0), ("cold", 3, "p4", 1.0)]
    assertDataFrameEqual(filled, _frame(spark, expected, TOP))
    assertDataFrameEqual(topn.with_fallback(own, users, popular, 3, exclusions), filled)
