"""The Markov clickstream generator (recsynth.synth.clickstream) and its shape figures
(clickstream_fidelity) on planted sessions: common steps are replayed exactly, a canary's
one-person path is not (unless the support rule is turned off, when the person-level gate
catches it), and the figures are exact on tiny tables."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from recsynth.synth import clickstream_fidelity as shape
from recsynth.synth.clickstream import (Blocks, as_events, fit_markov, fit_sessions, generated_sessions,
                                        plan_sessions, sample_clickstream, session_contexts, session_steps)
from recsynth.synth.person_privacy import assess_people

pytestmark = pytest.mark.spark

START = dt.datetime(2026, 1, 1, 12)
SCHEMA = "source string, user_id string, session_id string, item_id string, event_type string, event_time timestamp"
COMMON = ["a", "b", "c", "d", "e"]
CANARY = ["x1", "x2", "x3", "x4", "x5"]


def _events(spark, sessions: dict[tuple[str, str], list[tuple[str, str]]]):
    """(user, session) -> [(item, event type)], one event a minute from START."""
    rows = [("s", user, session, item, kind, START + dt.timedelta(minutes=k))
            for (user, session), steps in sessions.items() for k, (item, kind) in enumerate(steps)]
    return spark.createDataFrame(rows, SCHEMA)


def _planted(spark):
    """Six people walk a, b, c, d, e (viewed); the canary walks its own five items once."""
    sessions = {(f"u{k}", f"s{k}"): [(item, "view") for item in COMMON] for k in range(6)}
    sessions[("canary", "sc")] = [(item, "view") for item in CANARY]
    return _events(spark, sessions)


def _walks(steps) -> list[list[str]]:
    rows = steps.orderBy("session_id", "position").collect()
    walks: dict[str, list[str]] = {}
    for r in rows:
        walks.setdefault(r["session_id"], []).append(r["item_id"])
    return list(walks.values())


def test_session_steps_order_ties_by_the_funnel_and_keep_repeats(spark):
    at = START
    rows = [("s", "u", "s1", "a", "purchase", at), ("s", "u", "s1", "a", "view", at), ("s", "u", "s1", "a", "cart", at),
            ("s", "u", "s1", "a", "purchase", at + dt.timedelta(seconds=1)), ("s", "u", "s1", "b", "view", at)]
    got = [(r["position"], r["item_id"], r["event_type"])
           for r in session_steps(spark.createDataFrame(rows, SCHEMA)).orderBy("position").collect()]
    assert got == [(1, "a", "view"), (2, "b", "view"), (3, "a", "cart"), (4, "a", "purchase"), (5, "a", "purchase")]


def _no_categories(spark):
    """No item has a category: every session's top category is "unknown"."""
    return spark.createDataFrame([], "source string, item_id string, category string")


def test_blocks_draw_each_rows_choice_from_its_own_block_by_count():
    # block 0 offers 10 (count 1) and 11 (count 3), block 1 nothing, block 2 offers 20 (count 2)
    blocks = Blocks.of(3, [(2, 20, 2), (0, 11, 3), (0, 10, 1)])
    assert blocks.offers(np.array([0, 1, 2])).tolist() == [True, False, True]
    drawn = blocks.draw(np.array([0, 0, 0, 0, 2, 2]), np.array([0.0, 0.2499, 0.25, 1 - 2.0 ** -53, 0.0, 1 - 2.0 ** -53]))
    assert drawn.tolist() == [10, 10, 11, 11, 20, 20]


def test_weighed_draws_follow_count_times_factor_and_a_row_with_no_weight_draws_nothing():
    blocks = Blocks.of(3, [(0, 10, 1), (0, 11, 1), (2, 20, 2), (2, 21, 2)])
    factor = lambda rows, choices: np.where(choices == 11, 3.0, np.where(choices == 21, 0.0, 1.0))  # noqa: E731
    assert blocks.draw_weighed(np.array([0, 0, 2, 2]), np.array([0.2, 0.3, 0.0, 0.999999]), factor).tolist() == \
        [10, 11, 20, 20]
    assert blocks.draw_weighed(np.array([2]), np.array([0.5]), lambda rows, choices: np.zeros(len(rows))).tolist() == [-1]


def test_common_steps_are_replayed_and_a_one_person_path_is_not(spark, keep):
    chain = fit_markov(_planted(spark), _no_categories(spark), min_people=2, max_session_events=50, keep=keep)
    steps = sample_clickstream(chain, users_multiplier=3.0, seed=7, prefix="syn")
    # 7 people x 3, one session each, of a real session's length (5); the canary's items are one
    # person's, so no walk starts or goes there: every walk is the six people's path
    assert _walks(steps) == [COMMON] * 21
    users = {r["user_id"] for r in steps.select("user_id").distinct().collect()}
    assert len(users) == 21 and all(u.startswith("syn-") for u in users)
    # every move the chain took is common; of the real ones, all but the canary's 4
    real = session_steps(_planted(spark))
    assert shape.move_shares(real, {"chain": steps, "real": real}, 2) == {
        "chain": {"common": 1.0, "repeat": 0.0}, "real": {"common": 24 / 28, "repeat": 0.0}}


def test_the_independent_baseline_draws_each_step_alone_from_the_shared_items(spark, keep):
    """The same people and session lengths as the chain, but no order: walks open anywhere and
    leave the six people's path; the canary's one-person items are still never drawn."""
    chain = fit_markov(_planted(spark), _no_categories(spark), min_people=2, max_session_events=50, keep=keep, independent=True)
    walks = _walks(sample_clickstream(chain, users_multiplier=3.0, seed=7, prefix="syn"))
    assert len(walks) == 21 and all(len(walk) == 5 and set(walk) <= set(COMMON) for walk in walks)
    assert {walk[0] for walk in walks} == set(COMMON)  # the chain opens every walk on "a"
    assert COMMON not in walks


def test_a_memorising_chain_replays_the_canary_and_the_person_gate_fails_it(spark, keep):
    """min_people 1 replays the canary's path whenever a walk starts on its first item."""
    real = _planted(spark)
    canary_only = real.where("user_id = 'canary'")
    chain = fit_markov(real, _no_categories(spark), min_people=1, max_session_events=50, keep=keep)
    synthetic = sample_clickstream(chain, users_multiplier=5.0, seed=3, prefix="syn")
    assert CANARY in _walks(synthetic)
    holdout = _events(spark, {("h", "sh"): [(item, "view") for item in ("q1", "q2", "q3", "q4", "q5")]})
    report = assess_people(canary_only, holdout, synthetic, sizes=(5,), min_support=2, query_people=10, keep=keep)
    assert report.paths.train_gram_share == {5: 1.0} and report.paths.holdout_gram_share == {5: 0.0}
    assert report.failures(max_excess_gram_share=0.02, max_membership_auc=1.0)


def test_events_take_the_catalogue_price_and_a_purchase_is_its_own_transaction(spark, keep):
    real = _events(spark, {("u1", "s1"): [("a", "view"), ("a", "purchase")], ("u2", "s2"): [("a", "view"), ("a", "purchase")]})
    chain = fit_markov(real, _no_categories(spark), min_people=2, max_session_events=50, keep=keep)
    prices = spark.createDataFrame([("s", "a", 9.5)], "source string, item_id string, price double")
    events = as_events(sample_clickstream(chain, users_multiplier=1.0, seed=1, prefix="syn"), prices).collect()
    assert sorted((e["event_type"], e["price"], e["quantity"], e["transaction_id"] == e["session_id"]) for e in events) == [
        ("purchase", 9.5, 1, True), ("purchase", 9.5, 1, True), ("view", 9.5, None, False), ("view", 9.5, None, False)]
    for e in events:   # a one-minute real session: the synthetic one spans a minute too, from a real start
        assert e["event_time"] == START + dt.timedelta(minutes=1 if e["event_type"] == "purchase" else 0)


def test_shape_figures_on_planted_tables(spark):
    events = _events(spark, {("u1", "s1"): [("a", "view"), ("a", "cart"), ("b", "view"), ("b", "view")],
                             ("u2", "s2"): [("a", "view"), ("a", "purchase")]})
    lengths = shape.session_length_counts(events)
    assert lengths == {4: 1, 2: 1}
    figures = shape.shape(events, lengths)
    assert figures.mean_session_events == 3.0
    # events per item: a 4, b 2 -> ranks 1 (b) and 2 (a): 2 (2 + 8) / (2 * 6) - 3 / 2
    assert figures.item_gini == pytest.approx(2 * 10 / 12 - 1.5)
    assert figures.funnel == {"s.view_to_cart": 0.25, "s.cart_to_purchase": 1.0}
    assert shape.ks_distance({1: 2, 3: 2}, {1: 1, 3: 3}) == pytest.approx(0.25)


def test_a_funnel_rates_interval_is_over_people(spark):
    """Twenty people alike (4 views, a cart): every replicate reads 0.25, an interval of width 0.
    Ten who cart once per view and thirty who view ten times and never cart read 10 / 310, but a
    draw of people moves it; no purchase after the carts: a cart-to-purchase rate of 0 in every draw."""
    alike = _events(spark, {(f"u{k}", f"s{k}"): [("a", "view")] * 4 + [("a", "cart")] for k in range(20)})
    assert shape.funnel_intervals(alike, seed=1, replicates=50) == {"s.view_to_cart": (0.25, 0.25),
                                                                    "s.cart_to_purchase": (0.0, 0.0)}
    unlike = _events(spark, {**{(f"c{k}", f"c{k}"): [("a", "view"), ("a", "cart")] for k in range(10)},
                             **{(f"v{k}", f"v{k}"): [("a", "view")] * 10 for k in range(30)}})
    assert shape.funnel(unlike) == {"s.view_to_cart": 10 / 310, "s.cart_to_purchase": 0.0}
    intervals = shape.funnel_intervals(unlike, seed=1, replicates=200)
    low, high = intervals["s.view_to_cart"]
    assert 0.01 < low < 10 / 310 < high < 0.07 and intervals["s.cart_to_purchase"] == (0.0, 0.0)
    assert shape.funnel_intervals(unlike, seed=1, replicates=200) == intervals   # seeded


def test_the_gini_compares_a_share_of_the_people_each_whole_and_a_larger_share_keeps_the_smaller(spark):
    events = _events(spark, {(f"u{k}", f"s{k}"): [("a", "view"), (f"i{k}", "view")] for k in range(40)})
    assert shape.people_sample(events, 1.0, seed=3).count() == 80

    def kept(fraction):
        rows = shape.people_sample(events, fraction, seed=3).groupBy("user_id").count().collect()
        assert {r["count"] for r in rows} <= {2}   # a person is kept whole or not at all
        return {r["user_id"] for r in rows}

    quarter, half = kept(0.25), kept(0.5)
    assert quarter < half < {f"u{k}" for k in range(40)} and kept(0.0) == set()
    assert kept(0.5) == half   # seeded: the same draw again
    # the Gini over the half: a has one event per kept person, each i_k one
    n = len(half)
    assert shape.shape(events, shape.session_length_counts(events), 0.5, seed=3).item_gini == pytest.approx(
        shape.item_gini(events.where(F.col("user_id").isin(*half))))
    assert shape.item_gini(events.where(F.col("user_id").isin(*half))) == pytest.approx(
        2 * (n * (n + 1) / 2 + n * (n + 1)) / ((n + 1) * 2 * n) - (n + 2) / (n + 1))


def test_move_shares_count_the_moves_at_least_min_people_training_people_took_and_the_repeats(spark):
    """Training: two people walk a, b, c and one a, d; only a -> b and b -> c are common (2
    people). Of a, b, d and d, d, a, d's five moves a -> b is common (a -> d too with one person
    enough) and d -> d a repeat; a, b, c's are both common, but not in another source."""
    training = session_steps(_events(spark, {("u1", "s1"): [("a", "view"), ("b", "view"), ("c", "view")],
                                             ("u2", "s2"): [("a", "view"), ("b", "view"), ("c", "view")],
                                             ("u3", "s3"): [("a", "view"), ("d", "view")]}))
    half = session_steps(_events(spark, {("h", "t1"): [("a", "view"), ("b", "view"), ("d", "view")],
                                         ("h", "t2"): [("d", "view"), ("d", "view"), ("a", "view"), ("d", "view")]}))
    elsewhere = session_steps(_events(spark, {("o", "t3"): [("a", "view"), ("b", "view"), ("c", "view")]})
                              .withColumn("source", F.lit("other")))
    assert shape.move_shares(training, {"half": half, "elsewhere": elsewhere}, 2) == {
        "half": {"common": 0.2, "repeat": 0.2}, "elsewhere": {"common": 0.0, "repeat": 0.0}}
    assert shape.move_shares(training, {"half": half}, 1) == {"half": {"common": 0.4, "repeat": 0.2}}


def test_a_sessions_context_is_its_most_frequent_category_and_its_numbers_of_purchases_and_carts(spark):
    events = _events(spark, {("u1", "s1"): [("a", "view"), ("b", "view"), ("c", "cart"), ("c", "purchase")],
                             ("u2", "s2"): [("a", "view"), ("b", "view")],        # a tie: the first name wins
                             ("u3", "s3"): [("z", "view"), ("z", "view"), ("a", "cart")]})   # z has no category
    categories = spark.createDataFrame([("s", "a", "shoes"), ("s", "b", "bags"), ("s", "c", "shoes")],
                                       "source string, item_id string, category string")
    contexts = session_contexts(session_steps(events), categories)
    assert sorted(tuple(r) for r in contexts.collect()) == [
        ("s", "s1", "shoes", 1, 1), ("s", "s2", "bags", 0, 0), ("s", "s3", "unknown", 0, 1)]
    planned = spark.createDataFrame([("s", "s1", "shoes", 0, 2), ("s", "s2", "bags", 1, 0),
                                     ("s", "s3", "shoes", 0, 1), ("s", "gone", "bags", 1, 1)],
                                    "source string, session_id string, top_category string, n_purchases long, "
                                    "n_carts long")
    # of the 3 sessions written: s1 and s2 have their planned category; only s3 a purchase as
    # planned (none), and so its number of purchases; all three a cart as planned (s1 one of the
    # two planned); s2 and s3 their number of carts
    assert shape.context_agreement(planned, contexts) == {"category": 2 / 3, "purchase": 1 / 3, "cart": 1.0,
                                                          "purchase_count": 1 / 3, "cart_count": 2 / 3}


def test_gan_rows_replace_the_templates_dated_by_a_real_session_of_their_weekday_and_hour(spark, keep):
    """START is a Thursday, 12:00. Real sessions start then and a day later (Friday 12:00). A row
    whose weekday and hour no real session has is dated by one of its hour, else of its source."""
    real = _events(spark, {("u1", "s1"): [("a", "view"), ("b", "view")], ("u2", "s2"): [("a", "view")]})
    later = real.where("session_id = 's2'").selectExpr("source", "user_id", "session_id", "item_id", "event_type",
                                                        "event_time + interval 1 day as event_time")
    steps = session_steps(real.where("session_id = 's1'").unionByName(later))
    fitted = fit_sessions(steps, session_contexts(steps, _no_categories(spark)), max_session_events=3, keep=keep)
    behavior = spark.createDataFrame([
        ("g1", "s", 2, 30.0, "shoes", True, 2, 1, 12, "Thu"),
        ("g2", "s", 9, 80.0, "bags", False, 0, 0, 12, "Fri"),    # longer than max_session_events: cut to 3
        ("g3", "s", 4, 10.0, "bags", False, 0, 0, 3, "Fri"),     # no real session starts at 3: any of its source
        ("g4", "s", 0, 0.0, "bags", False, 0, 0, 12, "Thu"),     # no event: left out
        ("g5", "s", 1, 0.0, "bags", False, 0, 0, 12, "Wed"),     # none on a Wednesday: one at 12 on another day
        ("g6", "t", 1, 0.0, "bags", False, 0, 0, 12, "Thu")],    # no real session of its source: left out
        "synthetic_id string, source string, n_events bigint, duration_s double, top_category string, "
        "purchased boolean, n_purchases bigint, n_carts bigint, start_hour int, day_of_week string")
    sessions, left_out = generated_sessions(behavior, fitted, max_session_events=3, seed=1, keep=keep)
    table, sizes = sessions.templates
    rows = {r["session_id"]: r for r in table.collect()}
    assert sorted((r["session_id"], r["length"], r["start"], r["duration_s"], r["top_category"], r["n_purchases"],
                   r["n_carts"], r["dated_by"]) for r in rows.values() if r["session_id"] in ("g1", "g2")) == [
        ("g1", 2, START, 30.0, "shoes", 2, 1, "weekday and hour"),
        ("g2", 3, START + dt.timedelta(days=1), 80.0, "bags", 0, 0, "weekday and hour")]
    assert (rows["g3"]["length"], rows["g3"]["dated_by"], rows["g5"]["dated_by"]) == (3, "source", "hour")
    assert {rows["g3"]["start"], rows["g5"]["start"]} <= {START, START + dt.timedelta(days=1)}
    # a model that writes no counts plans one purchase where its row says purchased, and the
    # carts of the real session dating it (none)
    uncounted, _ = generated_sessions(behavior.drop("n_carts", "n_purchases"), fitted, max_session_events=3, seed=1,
                                      keep=keep)
    assert sorted((r["session_id"], r["n_purchases"], r["n_carts"]) for r in uncounted.templates[0].collect()) == [
        ("g1", 1, 0), ("g2", 0, 0), ("g3", 0, 0), ("g5", 0, 0)]
    assert [tuple(r) for r in sizes.collect()] == [("s", 4)] and sessions.people is fitted.people
    assert sorted(r["synthetic_id"] for r in left_out.collect()) == ["g4", "g6"]
    # the plan draws its sessions from the GAN's rows: their lengths, durations and contexts
    plan = plan_sessions(sessions, users_multiplier=4.0, seed=3, prefix="syn").collect()
    assert len(plan) == 8 and {(r["length"], r["duration_s"], r["top_category"]) for r in plan} <= {
        (2, 30.0, "shoes"), (3, 80.0, "bags"), (3, 10.0, "bags"), (1, 0.0, "bags")}


def test_what_an_order_exports_gan_does_not_learn_comes_from_the_real_session_dating_its_row(spark, keep):
    """An invoice table learns lines only (no source, duration, category, carts or purchases): each
    GAN row takes the source, duration and top category of the real session that dates it, and
    that session's purchases and carts per event times its own length. Thursday 12:00's real invoice has 4 lines
    over 3 minutes, all bought; Friday's, 2 lines: a cart and a purchase."""
    thursday = _events(spark, {("u1", "s1"): [(item, "purchase") for item in "abcd"]})
    friday = _events(spark, {("u2", "s2"): [("a", "cart"), ("a", "purchase")]}).selectExpr(
        "source", "user_id", "session_id", "item_id", "event_type", "event_time + interval 1 day as event_time")
    steps = session_steps(thursday.unionByName(friday))
    fitted = fit_sessions(steps, session_contexts(steps, _no_categories(spark)), max_session_events=50, keep=keep)
    lines = spark.createDataFrame([("g1", 2, 12, "Thu"), ("g2", 7, 12, "Thu"), ("g3", 6, 12, "Fri")],
                                  "synthetic_id string, n_events bigint, start_hour int, day_of_week string")
    sessions, left_out = generated_sessions(lines, fitted, max_session_events=50, seed=1, keep=keep)
    assert sorted((r["source"], r["session_id"], r["length"], r["duration_s"], r["top_category"], r["n_purchases"],
                   r["n_carts"]) for r in sessions.templates[0].collect()) == [
        ("s", "g1", 2, 180.0, "unknown", 2, 0), ("s", "g2", 7, 180.0, "unknown", 7, 0),
        ("s", "g3", 6, 60.0, "unknown", 3, 3)]
    assert left_out.count() == 0


def test_gan_rows_without_a_source_are_refused_where_the_fit_periods_hold_several_sources(spark, conf_for, keep):
    """A GAN that learnt one source's rows without the column (an order export's invoices) plans a
    one-source lake's sessions; beside a second source it cannot say whose sessions its rows are."""
    from recsynth.errors import ConfigError
    from recsynth.lake import Lake
    from recsynth.tasks.synthesize_events import _gan_sessions

    conf = conf_for()
    lake = Lake(spark, conf)
    lines = spark.createDataFrame([("g1", 2, 12, "Thu")], "synthetic_id string, n_events bigint, start_hour int, "
                                                           "day_of_week string")
    lake.overwrite("synthetic.behavior", lines)
    one = _events(spark, {("u1", "s1"): [("a", "purchase")]})
    two = one.unionByName(one.withColumn("source", F.lit("t")))
    planned = [fit_sessions(steps, session_contexts(steps, _no_categories(spark)), max_session_events=5, keep=keep)
               for steps in (session_steps(one), session_steps(two))]
    assert [r["session_id"] for r in _gan_sessions(lake, planned[0], conf.clickstream, keep).templates[0].collect()] == ["g1"]
    with pytest.raises(ConfigError, match="learnt no source column .* the fit periods hold 2 sources"):
        _gan_sessions(lake, planned[1], conf.clickstream, keep)


def test_the_plan_deals_each_real_session_count_and_template_once_per_copy(spark, keep):
    """Three people of 1, 2 and 3 sessions, each session of its own length (1..6 steps) with a
    cart in its last step only for the 6-step one. With 3 synthetic people per real one, each
    real person's session count comes 3 times and each template 3 times: 18 sessions, 63 steps
    and 3 carts, whatever the seed (independent draws gave counts like 1 and 5)."""
    sessions, lengths = {}, iter(range(1, 7))
    for user, count in (("u1", 1), ("u2", 2), ("u3", 3)):
        for k in range(count):
            n = next(lengths)
            sessions[(user, f"{user}-{k}")] = [(f"i{j}", "cart" if n == 6 and j == 5 else "view") for j in range(n)]
    steps = session_steps(_events(spark, sessions))
    fitted = fit_sessions(steps, session_contexts(steps, _no_categories(spark)), max_session_events=50, keep=keep)
    for seed in (1, 2):
        plan = plan_sessions(fitted, users_multiplier=3.0, seed=seed, prefix="syn").collect()
        people = {}
        for r in plan:
            people[r["user_id"]] = people.get(r["user_id"], 0) + 1
        assert sorted(people.values()) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
        assert sorted(r["length"] for r in plan) == sorted(list(range(1, 7)) * 3)
        assert sum(r["n_carts"] for r in plan) == 3
