"""Calibration (`recsynth.synth.calibration`) on planted frames: each stratum's keep rate gives
the real strata's shares, a stratum no real row is in is never published, an under-generated
one is reported, and the kept rows do not depend on partitioning."""
from __future__ import annotations

import pytest

from recsynth.synth.calibration import calibrated, keep_rates, stratum_counts

pytestmark = pytest.mark.spark

CONDITIONS = ["purchased", "n_carts > 0"]
SCHEMA = "synthetic_id string, purchased boolean, n_carts bigint"


def rows(prefix: str, purchased: bool | None, carts: int | None, count: int) -> list[tuple]:
    return [(f"{prefix}{k}", purchased, carts) for k in range(count)]


def test_strata_are_counted_per_combination_of_conditions(spark):
    real = spark.createDataFrame(rows("a", False, 0, 8) + rows("b", False, 2, 1) + rows("c", True, 1, 1)
                                 + rows("d", None, None, 2), SCHEMA)  # unknown counts as not met
    assert stratum_counts(real, CONDITIONS) == {"00": 10, "01": 1, "11": 1}
    assert stratum_counts(real, []) == {"": 12}


def test_keep_rates_give_the_real_shares_and_name_what_falls_short():
    real = {"00": 800, "01": 100, "11": 100}
    generated = {"00": 1000, "01": 200, "11": 700, "10": 100}  # a purchase without a cart: no real row is one
    calibration = keep_rates(real, generated, rows=1000)
    assert calibration.keep == {"00": 0.8, "01": 0.5, "11": pytest.approx(1 / 7), "10": 0.0}
    assert calibration.short == {}
    wider = keep_rates(real, {"00": 1000, "11": 700}, rows=2000)  # 1,600 of 00 wanted; 01 never generated
    assert wider.keep == {"00": 1.0, "11": pytest.approx(200 / 700)}
    assert wider.short == {"00": 0.625, "01": 0.0}
    assert wider.describe(CONDITIONS) == ("NOT (purchased) AND NOT (n_carts > 0): 62% of its real share; "
                                          "NOT (purchased) AND n_carts > 0: 0% of its real share")


def test_calibrated_rows_keep_each_stratum_at_its_rate_whatever_the_partitioning(spark):
    generated = spark.createDataFrame(rows("n", False, 0, 2000) + rows("c", False, 1, 300) + rows("p", True, 1, 700)
                                      + rows("x", True, 0, 100), SCHEMA)
    calibration = keep_rates({"00": 800, "01": 300, "11": 100}, stratum_counts(generated, CONDITIONS), rows=1200)
    assert calibration.keep == {"00": 0.4, "01": 1.0, "11": pytest.approx(1 / 7), "10": 0.0}
    kept = calibrated(generated, CONDITIONS, calibration, seed=3)
    assert kept.columns == generated.columns
    counts = stratum_counts(kept, CONDITIONS)
    assert counts["01"] == 300 and "10" not in counts  # kept whole; never published
    assert abs(counts["00"] - 800) < 4 * (2000 * 0.4 * 0.6) ** 0.5  # binomial: 800 +- 4 sd (88)
    assert abs(counts["11"] - 100) < 4 * (700 * 1 / 7 * 6 / 7) ** 0.5  # 100 +- 4 sd (37)
    again = calibrated(generated.repartition(7), CONDITIONS, calibration, seed=3)
    assert sorted(r[0] for r in again.select("synthetic_id").collect()) == sorted(
        r[0] for r in kept.select("synthetic_id").collect())
    other = calibrated(generated, CONDITIONS, calibration, seed=4)
    assert {r[0] for r in other.select("synthetic_id").collect()} != {r[0] for r in kept.select("synthetic_id").collect()}
