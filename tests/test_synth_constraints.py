"""Derived columns, constraints and the fidelity checks that averages cannot hide, on hand-made rows."""
import math

import pytest

from conftest import ROOT
from recsynth.config import QualityConf, RareShare, load_conf
from recsynth.synth.constraints import (ConstraintError, apply_derived, check, conditions_of, learned_columns,
                                        names_itself, validity, with_helpers)
from recsynth.tasks.synthesize import learned_rows
from recsynth.synth.fidelity import assess

pytestmark = pytest.mark.spark
CONF = ROOT / "conf"

SCHEMA = "n_views bigint, n_carts bigint, n_purchases bigint, n_events bigint, spend double, mean_price double, " \
         "max_price double, purchased boolean, source string"
DERIVED = {
    "n_purchases": "IF(purchased, GREATEST(n_purchases, 1), 0)",
    "n_events": "n_views + n_carts + n_purchases",
    "spend": "IF(purchased, spend, 0.0)",
    "max_price": "IF(mean_price IS NULL, NULL, GREATEST(max_price, mean_price))",
}
CONSTRAINTS = ["n_events = n_views + n_carts + n_purchases", "purchased = (n_purchases > 0)", "spend = 0 OR purchased",
               "max_price >= mean_price - 1e-9 * ABS(mean_price) OR (max_price IS NULL AND mean_price IS NULL)"]
# what a generator may emit: every identity broken somewhere
RAW = [(3, 0, 0, 9, 0.0, None, None, False, "a"),
       (1, 1, 0, 1, 25.0, 10.0, 8.0, True, "a"),     # purchased without purchases, max below mean
       (2, 0, 2, 0, 40.0, None, 5.0, False, "b"),    # purchases without purchased, spend, a max without a mean
       (5, 2, 1, 8, 12.5, 4.0, 6.0, True, "b")]


def test_a_derived_column_that_names_itself_repairs_one_that_does_not_replaces():
    assert names_itself("spend", "IF(purchased, spend, 0.0)") and names_itself("n", "`n` + 1")
    assert not names_itself("n_events", "n_views + n_carts + n_purchases") and not names_itself("spend", "spend_total * 2")
    columns = ["n_views", "n_carts", "n_purchases", "n_events", "spend", "purchased"]
    assert learned_columns(columns, DERIVED) == ["n_views", "n_carts", "n_purchases", "spend", "purchased"]


def test_every_identity_holds_after_deriving(spark):
    raw = spark.createDataFrame(RAW, SCHEMA)
    assert validity(raw, CONSTRAINTS) == {CONSTRAINTS[0]: 0.25, CONSTRAINTS[1]: 0.5, CONSTRAINTS[2]: 0.75, CONSTRAINTS[3]: 0.5}
    fixed = apply_derived(raw, DERIVED, raw.schema)
    assert validity(fixed, CONSTRAINTS) == dict.fromkeys(CONSTRAINTS, 1.0)
    rows = [r.asDict() for r in fixed.orderBy("n_views").collect()]
    assert [(r["n_purchases"], r["n_events"], r["spend"], r["max_price"]) for r in rows] == [
        (1, 3, 25.0, 10.0), (0, 2, 0.0, None), (0, 3, 0.0, None), (1, 8, 12.5, 6.0)]
    assert dict(fixed.dtypes)["n_events"] == "bigint"


def test_an_expression_that_cannot_be_evaluated_is_named(spark):
    table = spark.createDataFrame(RAW, SCHEMA)
    check(table, DERIVED, {f"c{k}": c for k, c in enumerate(CONSTRAINTS)})
    with pytest.raises(ConstraintError, match=r"synth.derived.spend cannot be evaluated.*nope"):
        check(table, {"spend": "nope * 2"}, {})
    with pytest.raises(ConstraintError, match=r"synth.constraints\[1\] \(n_views >>> 2\)"):
        check(table, {}, {"synth.constraints[0]": "n_views > 0", "synth.constraints[1]": "n_views >>> 2"})


def test_fidelity_sees_lost_rare_values_ranges_and_broken_rows(spark):
    real = spark.createDataFrame([(1, 0.0, "a")] * 96 + [(2, 30.0, "b")] * 3 + [(9, 80.0, "c")],
                                 "n bigint, spend double, kind string")
    # the generator lost the rare spend and kind c, reaches n 1..2 of 1..9, and doubles kind b
    synthetic = spark.createDataFrame([(1, 0.0, "a")] * 94 + [(2, 0.0, "b")] * 6, "n bigint, spend double, kind string")
    quality = QualityConf(min_overall=0, efficacy_target="kind", efficacy_exclude=[], min_range_coverage=0.5,
                          min_category_coverage=0.9, rare_shares={
                              "paid": RareShare(where="spend > 0", within=(0.5, 2.0)),
                              "kind_b": RareShare(where="kind = 'b'", within=(0.5, 2.0)),
                              "everything": RareShare(where="n > 0", within=(0.5, 2.0))})
    found = assess(real, synthetic, ["n", "spend"], ["kind"], ["n < 5"], {k: r.where for k, r in quality.rare_shares.items()})
    assert found.range_coverage == {"n": pytest.approx(1 / 8), "spend": 0.0}
    assert found.category_coverage == {"kind": pytest.approx(2 / 3)}
    assert found.constraint_validity == {"n < 5": (0.99, 1.0)}
    assert found.rare_shares == {"paid": (0.04, 0.0), "kind_b": (0.03, 0.06), "everything": (1.0, 1.0)}
    assert found.rare_share_ratios()["kind_b"] == pytest.approx(2.0)
    failures = found.failures(quality, ["n < 5"])
    assert len(failures) == 4, failures  # n and spend ranges, kind coverage, the lost paid rows
    assert [f for f in failures if f.startswith("rare share")] == [
        "rare share paid (spend > 0): 0.0000% of synthetic rows against 4.0000% of real ones (x0.00, allowed 0.5-2.0)"]
    assert found.summary()["constraint_validity"] == 1.0 and math.isclose(found.summary()["range_coverage"], 1 / 16)


def test_a_broken_constraint_fails_the_gate(spark):
    quality = QualityConf(min_overall=0, efficacy_target="kind", efficacy_exclude=[])
    real = spark.createDataFrame([(1, "a"), (2, "b")], "n bigint, kind string")
    synthetic = spark.createDataFrame([(1, "a"), (-1, "b")], "n bigint, kind string")
    found = assess(real, synthetic, ["n"], ["kind"], ["n > 0"], {})
    assert found.failures(quality, ["n > 0"]) == ["constraint 'n > 0' fails in 50.00% of synthetic rows"]


def test_the_invoice_tables_rules_repair_every_broken_row(spark):
    synth = load_conf("local", [], CONF, ["synth/online_retail_invoices.yaml"]).synth
    # what the GAN emits for this table: its learned columns (max_price as itself), n_items and spend as their helpers
    schema = "n_events bigint, n_units bigint, mean_price double, max_price double, spend_per_unit double, items_share double"
    raw = spark.createDataFrame([(3, 2, 4.0, 3.0, 50.0, 1.7),     # share > 1, max < mean, fewer units, a unit above max
                                 (2, 10, 1.5, 3.0, 1.5, 1.0),     # valid
                                 (2, 4, 5.0, 9.0, 0.0, 0.2)],     # rounds to one item, so one price: max is the mean
                                schema)
    real = spark.createDataFrame([], schema + ", n_items bigint, spend double").schema
    fixed = apply_derived(raw, synth.derived, real)
    assert [tuple(r) for r in fixed.select("n_events", "n_items", "n_units", "mean_price", "max_price", "spend").collect()] == [
        (3, 3, 3, 4.0, 4.0, 8.0), (2, 2, 10, 1.5, 3.0, 15.0), (2, 1, 4, 5.0, 5.0, 0.0)]
    assert set(validity(fixed, synth.constraints).values()) == {1.0}
    # and real invoices come back from their helpers
    invoices = spark.createDataFrame([(1, 1, 12, 2.5, 2.5, 30.0), (4, 3, 40, 1.25, 5.0, 47.5)],
                                     "n_events bigint, n_items bigint, n_units bigint, mean_price double, max_price double, "
                                     "spend double")
    helpers = with_helpers(invoices, synth.learned_as)
    assert set(synth.learned_as) == {"items_share", "spend_per_unit"}
    rebuilt = apply_derived(helpers.drop("n_items", "spend"), synth.derived, invoices.schema)
    assert [tuple(r) for r in rebuilt.select(*invoices.columns).collect()] == [tuple(r) for r in invoices.collect()]


def test_helpers_learned_in_place_of_columns_give_those_columns_back(spark):
    """Real rows -> helpers -> the columns derived from them: the same rows (the round trip the
    GAN's output goes through), and the helpers are what the conf says."""
    synth = load_conf("local", [], CONF).synth
    schema = ("n_views bigint, n_carts bigint, n_purchases bigint, n_events bigint, n_items bigint, duration_s double, "
              "mean_price double, max_price double, spend double, purchased boolean")
    real = spark.createDataFrame([(1, 0, 0, 1, 1, 0.0, None, None, 0.0, False),
                                  (6, 1, 1, 8, 3, 350.0, 4.0, 10.0, 4.0, True),
                                  (4, 0, 0, 4, 4, 90.5, 2.5, 2.5, 0.0, False)], schema)
    helpers = with_helpers(real, synth.learned_as)
    assert [tuple(r) for r in helpers.select(*synth.learned_as).collect()] == [
        (1.0, 0.0, None), (3 / 8, 50.0, 2.5), (1.0, 90.5 / 3, 1.0)]
    learned = helpers.drop(*[c for c in real.columns if c not in learned_columns(real.columns, synth.derived)])
    rebuilt = apply_derived(learned, synth.derived, real.schema).select(*real.columns)
    assert [tuple(r) for r in rebuilt.collect()] == [tuple(r) for r in real.collect()]
    with pytest.raises(ConstraintError, match=r"synth.learned_as.items_share cannot be evaluated.*n_itemz"):
        check(real, {"items_share": "n_itemz / n_events"}, {}, key="synth.learned_as")


def test_learned_rows_keep_what_rows_where_names(spark):
    behavior = spark.createDataFrame(RAW, SCHEMA)
    synth = load_conf("local", ["synth.rows_where=source = 'b'"], CONF).synth
    assert learned_rows(behavior, synth).count() == 2
    assert learned_rows(behavior, load_conf("local", [], CONF).synth) is behavior
    with pytest.raises(ConstraintError, match=r"synth.rows_where \(nope = 1\) cannot be evaluated"):
        learned_rows(behavior, load_conf("local", ["synth.rows_where=nope = 1"], CONF).synth)


def test_the_gan_learns_the_sessions_of_its_periods_clipped_to_their_events_inside(spark):
    """By default the models' fit periods, so that the clickstream planned from the GAN's rows is
    never tested on a period the GAN has seen: a session that reaches into `test` is learned as its
    events before it (a/s2: a view and a cart, not the purchase), and one with none inside not at all."""
    import datetime as dt

    from recsynth.etl.gold import behavior as sessions_of

    at = dt.datetime(2026, 1, 1, 12)
    events = spark.createDataFrame([
        ("a", "u1", "s1", "i1", "view", 0, 10.0, "train"), ("a", "u1", "s1", "i1", "cart", 1, 10.0, "train"),
        ("a", "u2", "s2", "i2", "view", 0, 20.0, "train"), ("a", "u2", "s2", "i2", "cart", 1, 20.0, "train"),
        ("a", "u2", "s2", "i2", "purchase", 2, 20.0, "test"), ("a", "u3", "s3", "i1", "view", 0, 10.0, "validation"),
        ("b", "u4", "s1", "i3", "view", 0, 5.0, "test"), ("b", "u5", "s4", "i3", "view", 0, 5.0, "train")],
        "source string, user_id string, session_id string, item_id string, event_type string, minute int, "
        "price double, split string").selectExpr(
        "source", "concat(session_id, minute) AS event_id", "user_id", "session_id", "item_id", "event_type",
        f"timestamp'{at:%Y-%m-%d %H:%M:%S}' + make_interval(0, 0, 0, 0, 0, minute, 0) AS event_time", "price",
        "1 AS quantity", "split")   # ("b", "s1") is not ("a", "s1")
    items = spark.createDataFrame([("a", "i1", ["bags"]), ("a", "i2", ["shoes"]), ("b", "i3", ["hats"])],
                                  "source string, item_id string, category_path array<string>")
    behavior = sessions_of(events, items)   # gold.behavior: every session whole
    conf = load_conf("local", [], CONF)
    assert conf.synth_periods == ["train", "validation"]

    def kept(periods, synth=conf.synth):
        return sorted(tuple(r)[:2] for r in learned_rows(behavior, synth, events, periods, items).collect())

    assert kept(conf.synth_periods) == [("a", "s1"), ("a", "s2"), ("a", "s3"), ("b", "s4")]
    assert kept(["train"]) == [("a", "s1"), ("a", "s2"), ("b", "s4")]
    clipped = learned_rows(behavior, conf.synth, events, ["train"], items).where("session_id = 's2'").head()
    assert (clipped["n_events"], clipped["n_views"], clipped["n_carts"], clipped["n_purchases"], clipped["purchased"],
            clipped["spend"], clipped["duration_s"], clipped["top_category"], clipped["user_id"]) == (
        2, 1, 1, 0, False, 0.0, 60.0, "shoes", "u2")
    whole = behavior.where("source = 'a' AND session_id = 's2'").head()
    assert (whole["n_events"], whole["purchased"], whole["spend"]) == (3, True, 20.0)
    assert learned_rows(behavior, conf.synth, events, ["test", "train", "validation"], items) is behavior
    assert kept(["train"], load_conf("local", ["synth.rows_where=source = 'a'"], CONF).synth) == [("a", "s1"), ("a", "s2")]
    assert load_conf("local", ["synth.periods=[train]"], CONF).synth_periods == ["train"]


def test_gan_planned_sessions_refuse_a_gan_that_learns_the_test_period():
    """The conf loads (the GAN may learn every period for a release of its rows); the clickstream
    planned from it is refused, and planned from real sessions it is not."""
    learns_all = load_conf("local", ["synth.periods=[train, validation, test]"], CONF)
    assert learns_all.clickstream.sessions == "gan"
    assert learns_all.gan_plans_refusal.startswith(
        "clickstream.sessions 'gan' plans sessions from a GAN that learns the 'test' period")
    assert load_conf("local", ["clickstream.sessions=real", "synth.periods=[train, validation, test]"],
                     CONF).gan_plans_refusal is None
    assert load_conf("local", [], CONF).gan_plans_refusal is None
    assert load_conf("local", [], CONF).synth_periods == ["train", "validation"]
