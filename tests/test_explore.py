"""The notebooks' Spark helpers (recsynth.explore) on hand-made frames, expected values written out."""
import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from recsynth import explore
from recsynth.explore import ExploreError

pytestmark = pytest.mark.spark

EVENTS = "source string, user_id string, session_id string, event_type string"
DQ = "run_id string, job string, source string, entity string, metric string, reason string, rows bigint, measured_at timestamp"
FUNNEL = "source string, stage string, step int, units bigint, share_of_first double"


def test_funnel_counts_sessions_and_users_reaching_each_stage(spark):
    events = spark.createDataFrame([
        ("a", "u1", "s1", "view"), ("a", "u1", "s1", "view"), ("a", "u1", "s1", "cart"), ("a", "u1", "s1", "purchase"),
        ("a", "u1", "s2", "view"),
        ("a", "u2", "s3", "view"), ("a", "u2", "s3", "cart"),
        ("a", "u3", "s4", "view"),
        ("b", "u9", "s9", "purchase"),  # a purchase without a view: 0 viewers, so no share
    ], EVENTS)
    # a: sessions with a view s1 s2 s3 s4 = 4, with a cart s1 s3 = 2, with a purchase s1 = 1
    expected = spark.createDataFrame([
        ("a", "view", 1, 4, 1.0), ("a", "cart", 2, 2, 0.5), ("a", "purchase", 3, 1, 0.25),
        ("b", "view", 1, 0, None), ("b", "cart", 2, 0, None), ("b", "purchase", 3, 1, None),
    ], FUNNEL)
    assertDataFrameEqual(explore.funnel(events), expected)
    # users: a viewed by u1 u2 u3, carted by u1 u2, bought by u1
    by_user = explore.funnel(events, unit="user_id").where("source = 'a'")
    assertDataFrameEqual(by_user.select("stage", "units"), spark.createDataFrame(
        [("view", 3), ("cart", 2), ("purchase", 1)], "stage string, units bigint"))


def test_funnel_names_a_missing_column(spark):
    events = spark.createDataFrame([("a", "u1", "view")], "source string, user_id string, event_type string")
    with pytest.raises(ExploreError, match=r"lacks column\(s\) \['session_id'\]"):
        explore.funnel(events)


def test_latest_data_quality_keeps_the_newest_run_per_source_and_entity(spark):
    old, new = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    rows = [
        ("r1", "clean", "rr", "events", "input", None, 10, old), ("r1", "clean", "rr", "events", "accepted", None, 10, old),
        ("r2", "clean", "rr", "events", "input", None, 15, new), ("r2", "clean", "rr", "events", "accepted", None, 7, new),
        ("r2", "clean", "rr", "events", "duplicate", "exact_duplicate", 2, new),
        ("r2", "clean", "rr", "events", "quarantined", "bad_id", 2, new),
        ("r2", "clean", "rr", "events", "quarantined", "bot", 1, new),
        ("r2", "clean", "rr", "events", "return", "return", 3, new),
        ("r1", "clean", "rr", "catalog", "input", None, 5, old), ("r1", "clean", "rr", "catalog", "accepted", None, 5, old),
    ]
    latest = explore.latest_data_quality(spark.createDataFrame(rows, DQ))
    expected = spark.createDataFrame(
        [("clean", "rr", "catalog", "r1", 5, 5, 0, 0, 0), ("clean", "rr", "events", "r2", 15, 7, 3, 2, 3)],
        "job string, source string, entity string, run_id string, input bigint, accepted bigint, return bigint, "
        "duplicate bigint, quarantined bigint")
    assertDataFrameEqual(latest, expected)


def test_histogram_is_counted_in_spark_with_tails_in_the_outer_bins(spark):
    frame = spark.createDataFrame([(v,) for v in [0.0, 0.5, 1.0, 1.5, 2.0, 3.9, 4.0, None, float("nan")]], "x double")
    whole = explore.histogram(frame, "x", bins=4)
    assert whole.edges == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert whole.counts == [2, 2, 1, 2] and whole.nulls == 2   # 4.0 is the last edge: last bin
    clipped = explore.histogram(frame, "x", bins=2, lo=1.0, hi=3.0)
    assert clipped.edges == [1.0, 2.0, 3.0] and clipped.counts == [4, 3]  # 0.0, 0.5 fall in the first bin
    constant = explore.histogram(spark.createDataFrame([(7,), (7,)], "x int"), "x", bins=1)
    assert constant.edges == [6.5, 7.5] and constant.counts == [2]
    with pytest.raises(ExploreError, match="bins must be >= 1"):
        explore.histogram(frame, "x", bins=0)


def test_latest_model_version_and_coverage(spark):
    metrics = spark.createDataFrame([("v1", dt.datetime(2026, 1, 1)), ("v2", dt.datetime(2026, 1, 3)),
                                     ("v0", dt.datetime(2026, 1, 2))], "model_version string, measured_at timestamp")
    assert explore.latest_model_version(metrics) == "v2"
    with pytest.raises(ExploreError, match="recs.metrics is empty"):
        explore.latest_model_version(metrics.limit(0))
    # 3 users x 2 items: a to everybody, b to u1, c to u2 and u3 -> items a (3), c (2), b (1)
    top_n = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "a"), ("u3", "c")],
                                  "user_id string, item_id string")
    assert explore.recommendation_coverage(top_n, catalogue_items=10, head=2) == {
        "users": 3, "entries": 6, "items": 3, "catalogue_items": 10, "coverage": 0.3, "top_2_share": 5 / 6}


def test_plot_marginals_draws_one_panel_per_column():
    from recsynth.synth.report_html import Marginal

    marginals = {
        "n_events": Marginal("n_events", ["0", "1"], [3, 1], [2, 2], edges=[0.0, 1.0, 2.0]),
        "source": Marginal("source", ["a", "b"], [5, 5], [4, 6]),
    }
    figure = explore.plot_marginals(marginals, ncols=3)
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in visible] == ["n_events", "source"] and len(figure.axes) == 3
    with pytest.raises(ExploreError, match="no columns"):
        explore.plot_marginals({})


def test_marginals_count_nulls_apart_from_the_bins(spark):
    """The side-by-side plots of notebook 02 come from report_html.marginals: a null (or NaN)
    price is not a price in the lowest bin."""
    from recsynth.synth.report_html import marginals

    real = spark.createDataFrame([(1.0,), (2.0,), (None,), (float("nan"),)], "price double")
    synthetic = spark.createDataFrame([(1.0,), (None,)], "price double")
    [price] = marginals(real, synthetic, ["price"], [], bins=2).values()
    assert (price.real, price.real_nulls) == ([1, 1], 2) and (price.synthetic, price.synthetic_nulls) == ([1, 0], 1)
