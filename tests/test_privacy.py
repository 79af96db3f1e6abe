"""Privacy measures with Spark: a generator that copies training rows fails every gate; fresh
draws from the same distribution pass."""
import pytest

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.privacy import assess, drop_rare_copies
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
    report = assess(train, holdout, copied, fitted)
    assert (report.exact_copy_share, report.holdout_copy_share) == (1.0, 0.0)
    assert report.median_dcr_synthetic == 0.0  # exact twins, not rounding noise
    assert report.membership_auc > 0.7
    assert len(report.failures(**GATES)) == 3


def test_fresh_rows_pass(spark, split):
    train, holdout, fitted = split
    report = assess(train, holdout, make_behaviour(spark, 600, seed=3), fitted)
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
