"""Two real Horovod ranks in Spark tasks, each reading its own Petastorm shard of a Delta table,
training one Keras model with hvd.DistributedOptimizer."""
import os
import sys

import cloudpickle
import pytest

from recsynth.errors import RecsynthError
from recsynth.train.launcher import TrainingError, cpu_threads, run_on_ranks
from recsynth.train.shards import check_shardable, current_files

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]
# The rank body below is defined here, not in an installed module: ship it by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fit_line(files):
    """Rank body: read this rank's shard, fit y = a*x + b with averaged gradients."""
    import numpy as np
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    from recsynth.train.launcher import init_rank
    from recsynth.train.shards import read_shard

    rank, size = init_rank()
    shard = read_shard(files, rank, size, ["id", "x", "y"])
    ids, xs, ys = shard["id"].tolist(), shard["x"], shard["y"]
    model = tf.keras.Sequential([tf.keras.Input(shape=(1,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=hvd.DistributedOptimizer(tf.keras.optimizers.SGD(0.05)), loss="mse")
    model.fit(np.array(xs).reshape(-1, 1), np.array(ys), batch_size=16, epochs=40, verbose=0,
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
    weight, bias = (float(v.numpy().ravel()[0]) for v in model.weights)
    threads = (tf.config.threading.get_intra_op_parallelism_threads(), tf.config.threading.get_inter_op_parallelism_threads())
    return {"rank": rank, "size": size, "ids": ids, "weight": weight, "bias": bias, "threads": threads}


def test_two_ranks_train_on_disjoint_shards(spark, lake):
    rows = spark.range(200).selectExpr("id", "CAST(id AS DOUBLE) / 100 AS x").selectExpr("id", "x", "2 * x + 1 AS y")
    lake.overwrite("gold.line", rows.repartition(4))
    lake.overwrite("gold.line", rows.repartition(4))  # a second version: old files must not be read
    files = current_files(lake.read("gold.line"))
    assert len(files) == 4

    results = sorted(run_on_ranks(spark, fit_line, num_proc=2, kwargs={"files": files}), key=lambda r: r["rank"])
    assert [(r["rank"], r["size"]) for r in results] == [(0, 2), (1, 2)]
    seen = results[0]["ids"] + results[1]["ids"]
    assert sorted(seen) == list(range(200)) and results[0]["ids"] and results[1]["ids"]
    # averaged gradients keep both ranks' models identical, and they learn the line
    assert results[0]["weight"] == pytest.approx(results[1]["weight"], abs=1e-6)
    assert results[0]["bias"] == pytest.approx(results[1]["bias"], abs=1e-6)
    assert results[0]["weight"] == pytest.approx(2.0, abs=0.3) and results[0]["bias"] == pytest.approx(1.0, abs=0.2)
    # both ranks run on this host: each takes half its cores as TensorFlow threads, not all of them
    share = cpu_threads(os.cpu_count(), 2)
    assert [r["threads"] for r in results] == [(share, share)] * 2


def test_a_rank_gets_its_share_of_the_host_cores():
    assert [cpu_threads(2, 2), cpu_threads(16, 4), cpu_threads(2, 3), cpu_threads(8, 1)] == [1, 4, 1, 8]


def die_once(marker):
    """Rank body: rank 1's process dies on the first try (as with a lost executor), then both ranks
    average their try numbers."""
    import os

    import horovod.tensorflow as hvd
    import tensorflow as tf

    from recsynth.train.launcher import init_rank

    rank, _ = init_rank()
    if rank == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return {"rank": rank, "sum": float(hvd.allreduce(tf.constant(rank + 1.0), op=hvd.Sum))}


def test_a_rank_dying_is_retried_up_to_the_attempts_allowed(spark, tmp_path):
    with pytest.raises(TrainingError, match=r"Horovod training failed \(1 tries"):
        run_on_ranks(spark, die_once, num_proc=2, kwargs={"marker": str(tmp_path / "died")})
    (tmp_path / "died").unlink()
    results = run_on_ranks(spark, die_once, num_proc=2, kwargs={"marker": str(tmp_path / "died")}, attempts=2)
    assert sorted((r["rank"], r["sum"]) for r in results) == [(0, 3), (1, 3)]  # the second try: both ranks, whole


def test_too_many_ranks_and_too_few_files_are_clear(spark):
    with pytest.raises(TrainingError, match="task slot"):
        run_on_ranks(spark, fit_line, num_proc=64)
    with pytest.raises(RecsynthError, match="at least one file per rank"):
        check_shardable(["a.parquet"], 2, "gold.behavior")
