"""The GAN trained by two real Horovod ranks, each on its Petastorm shard of the encoded table,
beats the untrained generator on column-shape quality; sampling is reproducible for a seed."""
from dataclasses import replace

import numpy as np
import pytest

from behaviour_data import CATEGORICAL, CONTINUOUS, make_behaviour
from recsynth.synth.gan import GanParams, params_dict, sample_rows, train_rank
from recsynth.synth.layout import conditions_like_data
from recsynth.synth.quality import column_shapes
from recsynth.synth.transformer import encode, fit
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import run_on_ranks
from recsynth.train.shards import check_shardable, current_files

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]

PARAMS = GanParams(embedding_dim=16, generator_dims=(64, 64), discriminator_dims=(64, 64), pac=4, batch_size=100, epochs=80)


@pytest.fixture(scope="module")
def behaviour(spark):
    return make_behaviour(spark, 800, seed=3)


def encoded(lake, behaviour):
    """The transformer fitted on `behaviour` and the Parquet files of the encoded table."""
    fitted = fit(behaviour, CONTINUOUS, CATEGORICAL, max_categories=10, max_modes=4, em_iterations=10, mode_weight_threshold=0.005)
    lake.overwrite("synthetic.encoded_behavior", encode(behaviour, fitted).repartition(4))
    files = current_files(lake.read("synthetic.encoded_behavior"))
    check_shardable(files, 2, "synthetic.encoded_behavior")
    return fitted, files


def train(spark, fitted, files, params, **options):
    """Train on two ranks; rank 0's result (it holds the generator) and every rank's rows."""
    results = run_on_ranks(spark, train_rank, num_proc=2, kwargs={
        "files": files, "transformer_json": fitted.to_json(), "params": params_dict(params), **options})
    return next(r for r in results if r["rank"] == 0), results


def test_two_rank_training_stops_early_and_beats_the_untrained_generator(spark, lake, behaviour):
    fitted, files = encoded(lake, behaviour)
    held_out = make_behaviour(spark, 400, seed=4).toPandas()  # other people: early stopping's yardstick
    validation = {c: held_out[c].to_numpy(dtype=float if c in CONTINUOUS else object) for c in CONTINUOUS + CATEGORICAL}
    # 20 steps an epoch: a plateau spans a few epochs. Which rows each rank holds changes from run to run (Petastorm
    # shards the files in name order, and Delta names them at random), and one run in many scored its first epoch
    # best by chance (0.695, then 0.58-0.66 up to epoch 9): 15 epochs of patience outlast such a start
    params = replace(PARAMS, batch_size=20, epochs=30, patience=15)
    chief, results = train(spark, fitted, files, params, validation=validation)
    assert sorted(r["rows"] for r in results) and sum(r["rows"] for r in results) == 800
    scores = [entry["validation_quality"] for entry in chief["history"]]
    assert all(0 < score <= 1 for score in scores) and chief["generator"] is not None
    assert [r["history"] for r in results if r["rank"] == 1] == [chief["history"]]  # every rank saw rank 0's scores
    best = scores.index(max(scores)) + 1  # the first best epoch is kept; `patience` epochs without a better one end it
    assert chief["best_epoch"] == best and len(scores) == min(params.epochs, best + params.patience)

    real = behaviour.toPandas()
    conditions = conditions_like_data(fitted, 800, np.random.default_rng(9))
    trained = sample_rows(chief["generator"], fitted, PARAMS, conditions, seed=5)
    untrained = sample_rows(None, fitted, PARAMS, conditions, seed=5)
    real_columns = {c: real[c].to_numpy() for c in real.columns}
    trained_score = column_shapes(real_columns, trained, CONTINUOUS, CATEGORICAL)
    untrained_score = column_shapes(real_columns, untrained, CONTINUOUS, CATEGORICAL)
    print(f"column shapes: trained {trained_score:.3f}, untrained {untrained_score:.3f}; best epoch {best} of {len(scores)}: {[round(x, 3) for x in scores]}")
    assert trained_score > untrained_score + 0.05, (trained_score, untrained_score)

    again = sample_rows(chief["generator"], fitted, PARAMS, conditions, seed=5)
    for column in CONTINUOUS + CATEGORICAL:
        assert np.array_equal(again[column], trained[column])


def test_training_resumes_from_the_last_checkpoint(spark, lake, behaviour, tmp_path):
    fitted, files = encoded(lake, behaviour)
    uri = str(tmp_path / "checkpoints")
    short = replace(PARAMS, epochs=2)
    first, _ = train(spark, fitted, files, short, checkpoint_uri=uri)
    saved = checkpoints.load_latest(uri)
    assert first["resumed_from_epoch"] == 0 and len(first["history"]) == 2 and saved.epoch == 2
    assert all(np.array_equal(a, b) for a, b in zip(saved.arrays["generator"], first["generator"], strict=True))

    # the same data and model, more epochs (as after a crash at epoch 2): training continues
    second, _ = train(spark, fitted, files, replace(short, epochs=4), checkpoint_uri=uri)
    assert second["resumed_from_epoch"] == 2
    assert second["history"][:2] == first["history"] and len(second["history"]) == 4
    assert [e["epoch"] for e in progress.read(uri)] == [1, 2, 3, 4] and checkpoints.load_latest(uri).epoch == 4


def test_distributed_sampling_is_reproducible_and_conditional(spark, behaviour):
    from recsynth.synth.sampling import synthesize

    fitted = fit(behaviour, CONTINUOUS, CATEGORICAL, max_categories=10, max_modes=4, em_iterations=5, mode_weight_threshold=0.005)
    # an untrained generator is enough to check the mechanics: partitions, seeds, ids, conditions
    first = synthesize(spark, None, fitted, PARAMS, rows=250, partitions=3, seed=11).toPandas()
    again = synthesize(spark, None, fitted, PARAMS, rows=250, partitions=3, seed=11).toPandas()
    other = synthesize(spark, None, fitted, PARAMS, rows=250, partitions=3, seed=12).toPandas()
    assert len(first) == 250 and first["synthetic_id"].is_unique
    assert first.sort_values("synthetic_id").reset_index(drop=True).equals(again.sort_values("synthetic_id").reset_index(drop=True))
    assert not np.allclose(first.sort_values("synthetic_id")["n_events"].to_numpy(), other.sort_values("synthetic_id")["n_events"].to_numpy())
    assert list(first.columns) == ["synthetic_id", "sample_seed", *CONTINUOUS, *CATEGORICAL]
    only_c = synthesize(spark, None, fitted, PARAMS, rows=60, partitions=2, seed=11, condition={"segment": "c"}).toPandas()
    assert set(only_c["segment"]) <= {"c"}


def test_a_rare_condition_is_met_for_every_row_of_a_small_top_up(spark):
    """Two 8-valued columns pinned at once: an untrained generator meets both in about 1 row of 64,
    so 3 rows in 3 partitions need batches larger than the rows asked for (the calibration's top-ups)."""
    from recsynth.synth.sampling import synthesize

    rng = np.random.default_rng(2)
    rows = [(float(x), f"a{i}", f"b{j}") for x, i, j in zip(rng.normal(size=640), rng.integers(8, size=640), rng.integers(8, size=640))]
    table = spark.createDataFrame(rows, "x double, colour string, size string")
    fitted = fit(table, ["x"], ["colour", "size"], max_categories=10, max_modes=2, em_iterations=5, mode_weight_threshold=0.005)
    condition = {"colour": "a3", "size": "b5"}
    made = synthesize(spark, None, fitted, PARAMS, rows=3, partitions=3, seed=7, condition=condition).toPandas()
    assert len(made) == 3 and set(made["colour"]) == {"a3"} and set(made["size"]) == {"b5"}
