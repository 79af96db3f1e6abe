"""The Spark quality report: column shapes and pair trends react to the damage they are meant
to see (and only to it), the KS and TVD agree with the numpy reference, ML efficacy tells a
useful synthetic table from one whose target is noise, and the HTML report is self-contained
and escapes what comes from the data."""
import base64
import math
import re

import numpy as np
import pytest

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.efficacy import EfficacyScores, ml_efficacy
from recsynth.synth.metrics import column_shapes, pair_trends, score
from recsynth.synth.quality import ks_complement, tv_complement
from recsynth.synth.report_html import marginals, write_report
from recsynth.synth.transformer import OTHER

pytestmark = pytest.mark.spark

SCHEMA = "n_events double, duration_s double, spend double, segment string, purchased string"
FEATURES = dict(continuous=CONTINUOUS, categorical=CATEGORICAL, target="purchased", exclude=["spend"], positive="true")


@pytest.fixture(scope="module")
def real(spark):
    return make_behaviour(spark, 2000, seed=11).cache()


@pytest.fixture(scope="module")
def rows(real):
    return real.toPandas()  # tiny: the tests build damaged copies from it


@pytest.fixture(scope="module")
def holdout(spark):
    return make_behaviour(spark, 1000, seed=13).cache()


def test_identical_tables_score_one(real):
    scores = score(real, real, CONTINUOUS, CATEGORICAL)
    assert scores.columns == pytest.approx({c: 1.0 for c in CONTINUOUS + CATEGORICAL})
    assert len(scores.pairs) == 10 and all(v == pytest.approx(1.0) for v in scores.pairs.values())
    assert (scores.column_shapes, scores.pair_trends, scores.overall) == pytest.approx((1.0, 1.0, 1.0))


def test_shifted_column_scores_lower_on_that_column_only(real):
    shifted = real.withColumn("duration_s", real["duration_s"] * 1.5 + 30)
    shapes = column_shapes(real, shifted, CONTINUOUS, CATEGORICAL)
    assert shapes["duration_s"] < 0.8
    assert {c: v for c, v in shapes.items() if c != "duration_s"} == pytest.approx({c: 1.0 for c in shapes if c != "duration_s"})
    trends = pair_trends(real, shifted, CONTINUOUS, CATEGORICAL)
    assert trends[("n_events", "duration_s")] == pytest.approx(1.0)  # Pearson ignores an affine shift...
    assert trends[("duration_s", "segment")] < 0.9  # ...the real deciles do not


def test_shuffled_column_breaks_pair_trends_not_shapes(spark, real, rows):
    shuffled = rows.copy()
    shuffled["duration_s"] = np.random.default_rng(0).permutation(shuffled["duration_s"].to_numpy())
    synthetic = spark.createDataFrame(shuffled, SCHEMA)
    scores = score(real, synthetic, CONTINUOUS, CATEGORICAL)
    assert scores.column_shapes == pytest.approx(1.0)  # a permutation keeps every marginal
    corr_real, corr_synthetic = scores.correlations[("n_events", "duration_s")]
    assert corr_real > 0.6 and abs(corr_synthetic) < 0.1
    assert scores.pairs[("n_events", "duration_s")] < 0.7
    assert scores.pairs[("duration_s", "segment")] < 0.9  # a mixed pair: contingency over real deciles
    untouched = {p: v for p, v in scores.pairs.items() if "duration_s" not in p}
    assert untouched == pytest.approx({p: 1.0 for p in untouched})
    assert scores.pair_trends < 0.95


def test_ks_and_tvd_match_the_numpy_reference(spark, real, rows):
    drawn = make_behaviour(spark, 1500, seed=12).collect()
    # nulls and NaN are dropped from the KS on both sides; a null category is a value of its own
    damaged = [(e, None if k % 10 == 0 else d, math.nan if k % 10 == 5 else s, None if k % 50 == 7 else g, p)
               for k, (e, d, s, g, p) in enumerate(drawn)]
    synthetic = spark.createDataFrame(damaged, SCHEMA)
    scores = score(real, synthetic, CONTINUOUS, CATEGORICAL)
    shapes, bounds = scores.columns, scores.ks_bounds
    for k, c in enumerate(CONTINUOUS):
        expected = ks_complement(rows[c].to_numpy(float), np.array([r[k] for r in damaged], float))
        lower, upper = bounds[c]
        assert lower - 1e-9 <= 1 - expected <= upper + 1e-9, (c, expected, bounds[c])
        assert shapes[c] == pytest.approx(expected, abs=0.005), c
        assert shapes[c] < 0.999  # different draws: the comparison is not vacuous
    for k, c in enumerate(CATEGORICAL, len(CONTINUOUS)):
        expected = tv_complement(rows[c].to_numpy(object), np.array([r[k] for r in damaged], object))
        assert shapes[c] == pytest.approx(expected, abs=1e-9), c


def test_efficacy_of_a_copy_is_that_of_real_data(real, holdout):
    scores = ml_efficacy(real, holdout, real, **FEATURES)
    assert scores.features == ["n_events", "duration_s", "segment"]  # spend gives purchases away
    assert scores.real_auc > 0.6 and scores.real_f1 > 0.2
    assert scores.auc_ratio == pytest.approx(1.0, abs=0.01)
    assert scores.synthetic_f1 == pytest.approx(scores.real_f1, abs=0.01)
    assert scores.notes == []


def test_an_efficacy_target_may_be_a_condition(real, holdout):
    by_column = ml_efficacy(real, holdout, real, **FEATURES)
    by_condition = ml_efficacy(real, holdout, real, **{**FEATURES, "target": "lower(purchased) = 'true'",
                                                       "exclude": ["spend", "purchased"]})
    assert by_condition.features == by_column.features
    assert (by_condition.real_auc, by_condition.real_f1) == (by_column.real_auc, by_column.real_f1)


def test_efficacy_of_a_noise_target_is_near_chance(spark, real, rows, holdout):
    noisy = rows.copy()
    noisy["purchased"] = np.random.default_rng(1).permutation(noisy["purchased"].to_numpy())
    scores = ml_efficacy(real, holdout, spark.createDataFrame(noisy, SCHEMA), **FEATURES)
    assert scores.synthetic_auc == pytest.approx(0.5, abs=0.03)  # the lasso finds nothing to learn
    assert scores.real_auc > 0.6 and scores.auc_ratio < 0.85


def test_efficacy_of_a_single_class_table_is_chance_with_a_reason(real, holdout):
    scores = ml_efficacy(real, holdout, real.filter("purchased = 'False'"), **FEATURES)
    assert (scores.synthetic_auc, scores.synthetic_f1) == (0.5, 0.0)
    assert scores.auc_ratio < 1 and any("synthetic training data has negative class only" in n for n in scores.notes)


def test_marginals_fold_rare_categories_and_keep_totals(real):
    result = marginals(real, real.limit(500), ["duration_s"], ["segment"], bins=10, top=2)
    segment = result["segment"]
    assert segment.labels == ["a", "b", OTHER] and sum(segment.real) == 2000 and sum(segment.synthetic) == 500
    duration = result["duration_s"]
    assert len(duration.edges) == 11 and sum(duration.real) + duration.real_nulls == 2000


def test_html_report_is_self_contained_and_escapes_data(spark, rows, tmp_path):
    planted = rows.copy()
    planted.loc[::7, "segment"] = "<script>alert('x')</script>"
    real, synthetic = spark.createDataFrame(rows, SCHEMA), spark.createDataFrame(planted, SCHEMA)
    scores = score(real, synthetic, CONTINUOUS, CATEGORICAL)
    efficacy = EfficacyScores("purchased", ["n_events", "segment"], ["spend"], "logistic", 0.71, 0.4, 0.75, 0.45,
                              0.71 / 0.75, ["a <b>note</b>"])
    uri = tmp_path / "not" / "yet" / "report.html"
    write_report(str(uri), real, synthetic, scores, efficacy, {"membership_auc": 0.52, "dcr_ratio": 1.01},
                 {"run_id": "r1", "model": "<b>m</b>"})
    text = uri.read_text(encoding="utf-8")
    for name in ("Column shapes", "Column pair trends", "Overall quality", "ML efficacy", "membership_auc", "dcr_ratio"):
        assert name in text
    assert "<script" not in text.lower() and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<b>m</b>" not in text and "a <b>note</b>" not in text
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 1 + len(CONTINUOUS + CATEGORICAL)  # heat maps + one plot per column
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not math.isnan(scores.overall) and scores.columns["segment"] < 1.0
