"""Our Spark quality scores against SDMetrics 0.32 itself, on a fixed table with the hard cases
(a zero-inflated column, a column constant in the synthetic table, nulls, values outside the
real range, a rare category the synthetic table lacks). SDMetrics cannot be installed beside the
pinned numpy and pyarrow, so its scores were computed in a separate environment by
benchmarks/sdmetrics_reference.py and are committed with the rows they score."""
import json
import math

import pandas as pd
import pytest

from conftest import ROOT
from recsynth.synth.fidelity import category_coverage, range_coverage
from recsynth.synth.metrics import score

pytestmark = pytest.mark.spark

REFERENCE = ROOT / "tests" / "data" / "sdmetrics_reference"


@pytest.fixture(scope="module")
def reference(spark):
    expected = json.loads((REFERENCE / "scores.json").read_text())
    numerical, categorical = expected["columns"]["numerical"], expected["columns"]["categorical"]
    order = expected["columns"]["order"]

    def frame(name):
        data = pd.read_csv(REFERENCE / name, dtype={c: str for c in categorical}, keep_default_na=False, na_values={
            **{c: [""] for c in categorical}, **{c: ["", "nan", "NaN"] for c in numerical}})
        data[numerical] = data[numerical].astype(float)
        data[categorical] = data[categorical].astype(object).where(data[categorical].notna(), None)
        return spark.createDataFrame(data[order], ", ".join(
            f"{c} {'double' if c in numerical else 'string'}" for c in order))

    real, synthetic = frame("real.csv"), frame("synthetic.csv")
    scores = score(real, synthetic, [c for c in order if c in numerical], [c for c in order if c in categorical])
    return expected, real, synthetic, scores, order


def key(pair, order):
    return "|".join(sorted(pair, key=order.index))


def test_column_shapes_agree_with_sdmetrics(reference):
    expected, _, _, scores, _ = reference
    assert scores.columns == pytest.approx(expected["default_thresholds"]["columns"], abs=1e-6)
    assert scores.column_shapes == pytest.approx(expected["default_thresholds"]["column_shapes"], abs=1e-6)


def test_pair_trends_as_the_sdmetrics_report_scores_them(reference):
    expected, _, _, scores, order = reference
    wanted = expected["default_thresholds"]["pairs"]
    got = {key(pair, order): value for pair, value in scores.sdmetrics_pairs.items()}
    assert {k for k, v in got.items() if v is not None} == {k for k, v in wanted.items() if v is not None}  # the 4 it counts
    assert {k: v for k, v in got.items() if v is not None} == pytest.approx({k: v for k, v in wanted.items() if v is not None}, abs=1e-9)
    assert scores.pair_trends_sdmetrics == pytest.approx(expected["default_thresholds"]["column_pair_trends"], abs=1e-9)


def test_every_pair_is_scored_and_a_constant_synthetic_column_scores_zero(reference):
    """Our own average counts every pair: mixed pairs binned on the real range with open outer bins
    (SDMetrics' ContingencySimilarity design), and a column the synthetic table holds constant
    breaks every correlation it had, where SDMetrics leaves such pairs out."""
    expected, _, _, scores, order = reference
    ours = {key(pair, order): value for pair, value in scores.pairs.items()}
    for pair, value in expected["mixed_pairs_real_edges"].items():
        assert ours[pair] == pytest.approx(value, abs=1e-9), pair
    constant = [p for p in ours if "const_syn" in p.split("|") and not any(c in p for c in ("source", "purchased", "top_category"))]
    assert len(constant) == 5 and all(ours[p] == 0.0 for p in constant)
    correlated = expected["every_pair"]["pairs"]["price|basket_value"]
    assert ours["price|basket_value"] == pytest.approx(correlated, abs=1e-9)


def test_coverage_agrees_with_sdmetrics(reference):
    expected, real, synthetic, _, order = reference
    numerical = [c for c in order if c in expected["range_coverage"]]
    ranges = range_coverage(real, synthetic, numerical)
    assert {c: v for c, v in ranges.items()} == pytest.approx(expected["range_coverage"], abs=1e-9, nan_ok=True)
    categories = category_coverage(real, synthetic, [c for c in order if c in expected["category_coverage"]])
    assert categories == pytest.approx(expected["category_coverage"], abs=1e-9)
    assert not math.isnan(ranges["spend"])
