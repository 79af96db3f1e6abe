"""The independent-marginals baseline: each column's marginal is kept (shape, type, null share),
every relation between columns is lost, and a (seed, partitions) pair reproduces the rows."""
import numpy as np
import pytest
from pyspark.sql import functions as F

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.baselines import alias_table, independent_marginals
from recsynth.synth.quality import ks_complement, tv_complement

pytestmark = pytest.mark.spark

ROWS = 3000


@pytest.fixture(scope="module")
def real(spark):
    """Behaviour rows with an integral count, a boolean flag, and nulls in one column of each kind."""
    table = make_behaviour(spark, ROWS, seed=7)
    return table.select(
        F.col("n_events").cast("bigint").alias("n_events"), "duration_s",
        F.when(F.col("purchased") == "True", F.col("spend")).alias("spend"),  # null without a purchase
        F.when(F.col("duration_s") < 40, F.lit(None)).otherwise(F.col("segment")).alias("segment"),
        (F.col("purchased") == "True").alias("purchased")).cache()


@pytest.fixture(scope="module")
def synthetic(spark, real):
    return independent_marginals(spark, real, CONTINUOUS, CATEGORICAL, ROWS, partitions=3, seed=11).cache()


@pytest.fixture(scope="module")
def frames(real, synthetic):
    return real.toPandas(), synthetic.toPandas()


def test_rows_and_schema(real, synthetic):
    assert synthetic.count() == ROWS and synthetic.rdd.getNumPartitions() == 3
    assert synthetic.columns == ["synthetic_id", *CONTINUOUS, *CATEGORICAL]
    types = dict(real.dtypes)
    assert dict(synthetic.dtypes) == {"synthetic_id": "string", **{c: types[c] for c in CONTINUOUS + CATEGORICAL}}
    assert synthetic.filter(F.col("synthetic_id").rlike("^ind-11-[0-9]+$")).select("synthetic_id").distinct().count() == ROWS


def test_marginals_and_null_shares_are_kept(frames):
    real, synthetic = frames
    for c in CONTINUOUS:
        assert ks_complement(real[c].to_numpy(float), synthetic[c].to_numpy(float)) > 0.9, c
        assert synthetic[c].isna().mean() == pytest.approx(real[c].isna().mean(), abs=0.03), c
    for c in CATEGORICAL:
        assert tv_complement(real[c].to_numpy(object), synthetic[c].to_numpy(object)) > 0.9, c
        assert synthetic[c].isna().mean() == pytest.approx(real[c].isna().mean(), abs=0.03), c
    assert 0.1 < real["spend"].isna().mean() < 0.95 and 0.05 < real["segment"].isna().mean() < 0.95  # the nulls are real
    assert (synthetic["n_events"] == synthetic["n_events"].round()).all()


def test_relations_between_columns_are_lost(real, synthetic):
    assert real.stat.corr("n_events", "duration_s") > 0.5
    assert abs(synthetic.stat.corr("n_events", "duration_s")) < 0.1
    # in the real rows a purchase always has a spend; drawn apart, most purchases have none
    bought = synthetic.filter("purchased")
    assert bought.filter(F.col("spend").isNull()).count() > 0.5 * bought.count()


def test_same_seed_same_rows_other_seed_other_rows(spark, real, synthetic):
    again = independent_marginals(spark, real, CONTINUOUS, CATEGORICAL, ROWS, partitions=3, seed=11)
    other = independent_marginals(spark, real, CONTINUOUS, CATEGORICAL, ROWS, partitions=3, seed=12)
    values = [*CONTINUOUS, *CATEGORICAL]
    assert again.exceptAll(synthetic).count() == 0 and synthetic.exceptAll(again).count() == 0
    assert other.select(values).exceptAll(synthetic.select(values)).count() > 0.9 * ROWS


def test_only_the_most_frequent_values_are_kept(spark, real):
    kept = independent_marginals(spark, real, [], ["segment"], ROWS, partitions=2, seed=3, max_values=2)
    counts = {r["segment"]: r["count"] for r in kept.groupBy("segment").count().collect()}
    real_counts = {r["segment"]: r["count"] for r in real.groupBy("segment").count().orderBy(F.desc("count")).limit(2).collect()}
    assert set(counts) == set(real_counts)  # the rest's mass is spread over the kept values in proportion
    first, second = sorted(real_counts, key=real_counts.get, reverse=True)
    assert counts[first] / counts[second] == pytest.approx(real_counts[first] / real_counts[second], rel=0.15)


def test_alias_table_reproduces_the_weights():
    weights = [5, 1, 0, 3, 1]
    prob, alias = alias_table(weights)
    share = np.zeros(len(weights))
    for k, (p, a) in enumerate(zip(prob, alias)):
        share[k] += p / len(weights)
        share[a] += (1 - p) / len(weights)
    assert share == pytest.approx(np.asarray(weights) / sum(weights))
