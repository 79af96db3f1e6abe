"""Privacy measures with Spark: a generator that copies training rows fails every gate; fresh
draws from the same distribution pass."""
import pytest

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.privacy import assess
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
