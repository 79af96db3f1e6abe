"""Privacy measures with Spark: a generator that copies training rows fails every gate; fresh
draws from the same distribution pass."""
import pytest

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.privacy import assess, drop_rare_copies, split_by_person
from recsynth.synth.transformer import fit

pytestmark = pytest.mark.spark

GATES = dict(max_excess_copy_share=0.01, min_dcr_ratio=0.7, max_membership_auc=0.65)


@pytest.fixture(scope="module")
def split(spark):
    train, holdout = make_behaviour(spark, 600, seed=1), make_behaviour(spark, 600, seed=2)
    fitted = fit(train, CONTINUOUS, CATEGORICAL, max_categories=10, max_modes=4, em_iterations=5, mode_weight_threshold=0.005)
    return train, holdout, fitted


def test_copying_generator_is_rejected(split):
    train, holdout, fitted = split
    copied = train.limit(300)
    report = assess(train, holdout, copied, copied, fitted, min_copy_support=5)
    assert (report.exact_copy_share, report.holdout_copy_share) == (1.0, 0.0)
    assert report.median_dcr_synthetic == 0.0  # exact twins, not rounding noise
    assert report.membership_auc > 0.7
    assert len(report.failures(**GATES)) == 3


def test_fresh_rows_pass(spark, split):
    train, holdout, fitted = split
    fresh = make_behaviour(spark, 600, seed=3)
    report = assess(train, holdout, fresh, fresh, fitted, min_copy_support=5)
    assert report.exact_copy_share < 0.01
    assert report.failures(**GATES) == [], report


def test_rows_equal_to_rare_real_rows_are_never_released(spark):
    real = spark.createDataFrame(
        [("a", 1, None)] * 6 + [("canary", 37, 4.5), ("b", 2, None), ("b", 2, None)], "source string, n int, price double")
    synthetic = spark.createDataFrame(
        [("s1", "a", 1, None), ("s2", "canary", 37, 4.5), ("s3", "b", 2, None), ("s4", "canary", 37, 4.0),
         ("s5", "b", 2, 1.0)], "synthetic_id string, source string, n int, price double")
    kept = drop_rare_copies(synthetic, real, ["source", "n", "price"], min_support=5)
    # a row six real sessions share stays; copies of the canary and of the pair (support < 5) go;
    # rows that differ in any column, null included, stay
    assert sorted(r["synthetic_id"] for r in kept.collect()) == ["s1", "s4", "s5"]
    assert drop_rare_copies(synthetic, real, ["source", "n", "price"], min_support=1).count() == 5  # off


def test_only_rare_rows_judge_copies_and_distances(spark, split):
    """Rows that many training sessions share (one view, nothing else) recur in any sample: copies
    of them say nothing, and with them the holdout's median distance was 0 and the ratio undefined.
    Judged on the rare rows only, the ratio is defined, a fresh generator passes and a memorising
    one fails, however many common rows both emit."""
    train, holdout, fitted = split
    common = train.limit(1)
    train_with_common = train.unionByName(common.crossJoin(spark.range(10)).drop("id"))
    holdout_with_common = holdout.unionByName(common.crossJoin(spark.range(900)).drop("id"))  # 60% of the holdout
    fresh = make_behaviour(spark, 300, seed=3).unionByName(common.crossJoin(spark.range(300)).drop("id"))
    report = assess(train_with_common, holdout_with_common, fresh, fresh, fitted, min_copy_support=5)
    assert report.exact_copy_share == 0.0 and report.holdout_copy_share == 0.0  # the 300 common copies are not counted
    assert report.median_dcr_holdout > 0 and report.failures(**GATES) == [], report
    memorised = train.limit(300).unionByName(common.crossJoin(spark.range(300)).drop("id"))
    copied = assess(train_with_common, holdout_with_common, memorised, memorised, fitted, min_copy_support=5)
    assert (copied.exact_copy_share, copied.median_dcr_synthetic, copied.dcr_ratio) == (1.0, 0.0, 0.0)
    assert any("DCR ratio" in f for f in copied.failures(**GATES))


def test_the_holdout_is_split_by_person(spark):
    rows = [("rr", f"u{k % 40}", f"s{k}") for k in range(400)] + [("rr", None, f"anonymous{k}") for k in range(60)]
    table = spark.createDataFrame(rows, "source string, user_id string, session_id string")
    train, holdout = split_by_person(table, 0.25)
    train_users = {r["user_id"] for r in train.select("user_id").distinct().collect()} - {None}
    holdout_users = {r["user_id"] for r in holdout.select("user_id").distinct().collect()} - {None}
    assert train_users and holdout_users and not train_users & holdout_users
    assert train.count() + holdout.count() == 460
    # sessions without a user are split one by one, not all on one side
    assert 0 < holdout.where("user_id IS NULL").count() < 60
