"""The GAN's data transformer: mixtures found by Spark EM, bounded categorical encoding, and
a round trip rows -> codes -> rows that keeps categories exactly and values within tolerance."""
import numpy as np
import pytest

from recsynth.synth.layout import blocks, condition_frequencies, conditions_like_data, flagged_columns, rows_meeting
from recsynth.synth.transformer import NULL, OTHER, FittedTransformer, TransformerError, decode, encode, fit

pytestmark = pytest.mark.spark

SETTINGS = dict(max_categories=10, max_modes=5, em_iterations=15, mode_weight_threshold=0.005)


@pytest.fixture(scope="module")
def table(spark):
    rng = np.random.default_rng(7)
    n = 2000
    bimodal = np.where(rng.random(n) < 0.3, rng.normal(0, 1, n), rng.normal(100, 5, n))
    price = np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(3, 0.5, n))
    item = [f"item{int(k)}" for k in rng.zipf(1.5, n) % 1000]  # ~hundreds of distinct values
    day = rng.choice(["Mon", "Tue", "Wed"], n)
    rows = [(float(b), None if np.isnan(p) else float(p), 3.0, i, str(d) if k % 50 else None)
            for k, (b, p, i, d) in enumerate(zip(bimodal, price, item, day))]
    return spark.createDataFrame(rows, "bimodal double, price double, constant double, item string, day string")


@pytest.fixture(scope="module")
def fitted(table):
    return fit(table, ["bimodal", "price", "constant"], ["item", "day"], **SETTINGS)


def test_mixture_finds_the_modes(fitted):
    bimodal = fitted.continuous[0]
    low = [(w, m) for w, m in zip(bimodal.weights, bimodal.means) if m < 50]
    high = [(w, m) for w, m in zip(bimodal.weights, bimodal.means) if m >= 50]
    # 30% of the rows sit near 0, 70% near 100: the mixture puts its weight there
    assert sum(w for w, _ in low) == pytest.approx(0.3, abs=0.05)
    assert sum(w for w, _ in high) == pytest.approx(0.7, abs=0.05)
    assert all(abs(m) < 2 for _, m in low) and all(85 < m < 115 for _, m in high)
    assert sum(bimodal.weights) == pytest.approx(1.0)
    assert fitted.continuous[1].has_nulls and not fitted.continuous[0].has_nulls
    assert len(fitted.continuous[2].means) >= 1  # a constant column still gets a mode


def test_high_cardinality_is_bounded(fitted):
    item, day = fitted.categorical
    assert len(item.values) == 11 and item.values[-1] == OTHER
    assert day.values[:3] == sorted(day.values[:3]) or set(day.values[:3]) == {"Mon", "Tue", "Wed"}
    assert day.values[-1] == NULL
    assert fitted.width == sum(c.width for c in fitted.continuous) + 11 + 4


def test_round_trip(table, fitted):
    encoded = encode(table, fitted, keep=("bimodal", "price", "constant", "item", "day")).toPandas()
    codes = {c: encoded[c].to_numpy() for c in encoded.columns}
    decoded = decode(codes, FittedTransformer.from_json(fitted.to_json()))
    # values beyond 4 sigma of their mode are clipped (as in CTGAN): rare, and only those differ
    exact = np.isclose(decoded["bimodal"], encoded["bimodal"].to_numpy(), rtol=1e-6, atol=1e-6)
    assert exact.mean() > 0.99
    assert np.allclose(decoded["constant"], 3.0)
    original_price = encoded["price"].to_numpy(dtype=float)
    assert np.array_equal(np.isnan(decoded["price"]), np.isnan(original_price))
    present = ~np.isnan(original_price)
    assert np.allclose(decoded["price"][present], original_price[present], rtol=1e-6)
    kept = set(fitted.categorical[0].values) - {OTHER}
    expected_items = [v if v in kept else OTHER for v in encoded["item"]]
    assert list(decoded["item"]) == expected_items
    assert list(decoded["day"]) == [None if v is None else v for v in encoded["day"]]


def test_bad_columns_are_named(table):
    with pytest.raises(TransformerError, match="nope"):
        fit(table, ["nope"], ["item"], **SETTINGS)
    with pytest.raises(TransformerError, match="not numeric"):
        fit(table, ["item"], ["day"], **SETTINGS)


def test_a_column_without_values_is_always_null(table):
    empty = table.withColumn("never", table["price"] * None)
    fitted = fit(empty, ["never", "bimodal"], ["day"], **SETTINGS)
    assert (fitted.continuous[0].name, fitted.continuous[0].has_nulls, len(fitted.continuous[0].means)) == ("never", True, 1)
    codes = {c: v.to_numpy() for c, v in encode(empty, fitted).toPandas().items()}
    assert np.isnan(decode(codes, fitted)["never"]).all()
    codes["never__null"] = np.zeros_like(codes["never__null"])  # a generator that says "present" anyway
    assert np.isnan(decode(codes, fitted)["never"]).all()


def test_stratified_sample_is_used(table):
    small = fit(table, ["bimodal"], ["day"], sample_rows=500, stratum="day", seed=1, **SETTINGS)
    assert len(small.continuous[0].means) >= 2


def test_a_spike_keeps_its_exact_value_and_its_rare_tail(spark):
    rng = np.random.default_rng(5)
    n = 4000
    spend = np.where(rng.random(n) < 0.98, 0.0, rng.lognormal(4, 0.3, n))  # 98% of sessions buy nothing
    carts = rng.poisson(0.4, n)
    frame = spark.createDataFrame([(float(s), float(c)) for s, c in zip(spend, carts)], "spend double, carts double")
    fitted = fit(frame, ["spend", "carts"], [], **SETTINGS)
    column, counts = fitted.continuous
    spike = column.means.index(0.0)  # exactly the real value, not a mean that drifted to 0.0018
    assert column.point_mass[spike] and max(column.means) > 20  # the 2% tail got its own mode
    assert (column.minimum, column.maximum, column.integral) == (0.0, float(spend.max()), False)
    assert counts.integral and not column.integral

    # whatever alpha a generator emits: the spike decodes to 0 exactly, other modes stay in the real range
    alphas = np.linspace(-1, 1, 9)
    for mode in range(len(column.means)):
        decoded = decode({"spend__alpha": alphas, "spend__mode": np.full(9, mode), "carts__alpha": alphas,
                          "carts__mode": np.zeros(9, int)}, fitted)
        assert ((decoded["spend"] >= 0.0) & (decoded["spend"] <= spend.max())).all()
        if column.point_mass[mode]:
            assert (decoded["spend"] == column.means[mode]).all()
        assert np.array_equal(decoded["carts"], np.round(decoded["carts"])) and (decoded["carts"] >= 0).all()


def test_null_rows_carry_a_seeded_draw_from_the_mixture(table, fitted):
    price = fitted.continuous[1]
    assert price.null_share == pytest.approx(0.1, abs=0.03)
    first = encode(table, fitted, keep=("price",), seed=3).toPandas()
    again = encode(table, fitted, keep=("price",), seed=3).toPandas()
    other = encode(table, fitted, keep=("price",), seed=4).toPandas()
    nulls = first["price"].isna()
    assert nulls.sum() > 100 and (first["price__null"] == nulls.astype(int)).all()
    drawn = first.loc[nulls, ["price__mode", "price__alpha"]]
    assert first.equals(again) and not first.loc[nulls, "price__alpha"].equals(other.loc[nulls, "price__alpha"])
    assert drawn["price__alpha"].abs().max() < 1 and drawn["price__alpha"].std() > 0.1  # not one shared placeholder
    assert len(price.means) > 1 and drawn["price__mode"].nunique() > 1
    decoded = decode({c: first[c].to_numpy() for c in first.columns}, fitted)
    assert np.isnan(decoded["price"][nulls.to_numpy()]).all()


def test_null_flags_are_conditional_blocks_and_fixed_conditions_land_on_their_column(fitted):
    layout = blocks(fitted)
    conditional = [b.code for b in layout if b.conditional]
    assert conditional == ["price__null", "item__code", "day__code"]  # training-by-sampling learns rare nulls too
    assert flagged_columns(fitted) == {"price": "null"}  # what calibration's fill reads price by: present or null
    shares = condition_frequencies(fitted)
    assert shares[0] == pytest.approx([1 - fitted.continuous[1].null_share, fitted.continuous[1].null_share])
    day = fitted.categorical[1]
    vectors = conditions_like_data(fitted, 5, np.random.default_rng(0), {"day": "Tue"})
    day_offset = 2 + fitted.categorical[0].width  # after the null flag and the item block
    assert (vectors.sum(axis=1) == 1).all() and (vectors[:, day_offset + day.values.index("Tue")] == 1).all()
    drawn = conditions_like_data(fitted, 4000, np.random.default_rng(0))
    assert drawn[:, 1].mean() == pytest.approx(fitted.continuous[1].null_share / 3, abs=0.02)  # null chosen a third of the time


@pytest.fixture(scope="module")
def kinds_table(spark):
    """Planted kinds: purchases 0/1/2/7 (7 in 5 rows of 5000), spend 0 in 98% of rows, a smooth
    duration, and `hold` with a rare spike: 10 rows (0.2%) at exactly 1800."""
    rng = np.random.default_rng(11)
    n = 5000
    purchases = np.concatenate([np.zeros(4850), np.ones(120), np.full(25, 2), np.full(5, 7)])
    spend = np.where(rng.random(n) < 0.98, 0.0, rng.lognormal(4, 0.3, n))
    duration = rng.normal(300, 40, n)
    hold = np.concatenate([rng.normal(100, 10, n - 10), np.full(10, 1800.0)])
    rows = [(int(p), float(s), float(d), float(h), "x") for p, s, d, h in zip(purchases, spend, duration, hold)]
    return spark.createDataFrame(rows, "purchases bigint, spend double, duration double, hold double, day string")


def test_kinds_are_inferred_and_every_rare_value_survives_the_round_trip(kinds_table):
    columns = ["purchases", "spend", "duration", "hold"]
    fitted = fit(kinds_table, columns, ["day"], discrete_max_values=20, zero_inflated_min_share=0.5, **SETTINGS)
    assert fitted.kinds() == {"purchases": "discrete", "spend": "zero_inflated", "duration": "mixture", "hold": "mixture"}
    purchases = next(c for c in fitted.categorical if c.name == "purchases")
    assert (purchases.values, purchases.counts, purchases.numeric) == (["0", "1", "2", "7"], [4850, 120, 25, 5], True)
    spend = fitted.continuous[0]
    assert spend.zero_share == pytest.approx(float((np.asarray(kinds_table.select("spend").toPandas()["spend"]) == 0).mean()))
    assert min(spend.means) > 20  # the mixture is over the non-zero values only
    hold = fitted.continuous[2]
    spike = hold.means.index(1800.0)  # 0.2% of the rows, under mode_weight_threshold, kept: a point mass
    assert hold.point_mass[spike] and hold.weights[spike] < SETTINGS["mode_weight_threshold"]

    encoded = encode(kinds_table, fitted, keep=tuple(columns)).toPandas()
    decoded = decode({c: encoded[c].to_numpy() for c in encoded.columns}, FittedTransformer.from_json(fitted.to_json()))
    assert np.array_equal(decoded["purchases"], encoded["purchases"].to_numpy(dtype=float))  # the five 7s included
    original_spend = encoded["spend"].to_numpy()
    assert np.array_equal(decoded["spend"] == 0, original_spend == 0)
    assert (encoded["spend__zero"] == (original_spend == 0)).all()
    assert (decoded["hold"] == 1800.0).sum() == 10


def test_zero_flags_and_discrete_columns_are_conditional_blocks(kinds_table):
    fitted = fit(kinds_table, ["purchases", "spend"], ["day"], discrete_max_values=20, zero_inflated_min_share=0.5,
                 **SETTINGS)
    assert [b.code for b in blocks(fitted) if b.conditional] == ["spend__zero", "day__code", "purchases__code"]
    zero = fitted.continuous[0].zero_share
    assert condition_frequencies(fitted)[0] == pytest.approx([1 - zero, zero])
    assert flagged_columns(fitted) == {"spend": "0"}  # by its zero flag: 0 or nonzero
    # a value of a discrete column can be a sampling condition, as a category can
    vectors = conditions_like_data(fitted, 4, np.random.default_rng(0), {"purchases": "7"})
    assert (vectors[:, 2 + 1 + 3] == 1).all()  # after the zero flag (2) and day (1): value "7" is the fourth
    # and so can either side of a zero flag: the few rows that spent anything, generated on demand
    spent = conditions_like_data(fitted, 4, np.random.default_rng(0), {"spend": "nonzero"})
    assert (spent[:, 0] == 1).all() and (spent.sum(axis=1) == 1).all()
    assert (conditions_like_data(fitted, 2, np.random.default_rng(0), {"spend": "0"})[:, 1] == 1).all()
    with pytest.raises(ValueError, match="spend='null'"):  # spend has no nulls, so no null flag
        conditions_like_data(fitted, 2, np.random.default_rng(0), {"spend": "null"})
    decoded = {"spend": np.array([0.0, 3.5, np.nan, 0.0]), "day": np.array(["Mon", "Tue", "Mon", "Mon"], dtype=object),
               "purchases": np.array([0.0, 1.0, 0.0, 7.0])}
    assert rows_meeting(fitted, decoded, {"spend": "nonzero"}).tolist() == [False, True, False, False]
    assert rows_meeting(fitted, decoded, {"spend": "0", "day": "Mon"}).tolist() == [True, False, False, True]
    # a discrete count decodes as a number: its condition "7" meets 7.0 (as text it met nothing, and a fill
    # generated under n_carts=0 came back empty)
    assert rows_meeting(fitted, decoded, {"purchases": "7", "day": "Mon"}).tolist() == [False, False, False, True]
    assert rows_meeting(fitted, decoded, {"purchases": "0"}).tolist() == [True, False, True, False]


def test_declared_kinds_win_and_bad_kinds_are_named(kinds_table):
    fitted = fit(kinds_table, ["purchases", "spend"], ["day"], kinds={"purchases": "mixture", "spend": "mixture"},
                 discrete_max_values=20, zero_inflated_min_share=0.5, **SETTINGS)
    assert fitted.kinds() == {"purchases": "mixture", "spend": "mixture"}
    assert fit(kinds_table, ["purchases"], ["day"], **SETTINGS).kinds() == {"purchases": "mixture"}  # no thresholds
    with pytest.raises(TransformerError, match="unknown column kind"):
        fit(kinds_table, ["spend"], ["day"], kinds={"spend": "poisson"}, **SETTINGS)
    with pytest.raises(TransformerError, match="not continuous columns"):
        fit(kinds_table, ["spend"], ["day"], kinds={"day": "discrete"}, **SETTINGS)
    with pytest.raises(TransformerError, match="declared discrete but has more than max_categories=10"):
        fit(kinds_table, ["duration"], ["day"], kinds={"duration": "discrete"}, **SETTINGS)
