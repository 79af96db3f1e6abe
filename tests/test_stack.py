"""The installed stack works together: Horovod built with TensorFlow and Gloo, and Petastorm
reading Parquet that Spark wrote, under pyarrow 14 (the pins in requirements.txt)."""
import importlib.metadata

import pytest


def test_horovod_has_tensorflow_and_gloo():
    import horovod.tensorflow as hvd
    import tensorflow as tf

    assert hvd.gloo_built()
    assert tf.__version__ == "2.15.1"
    assert importlib.metadata.version("keras").startswith("2.15")  # Keras 2, which Horovod 0.28 needs


@pytest.mark.spark
def test_petastorm_reads_spark_parquet_every_time(spark, tmp_path):
    """Petastorm's thread pool sometimes ends a one-pass read before the first row group;
    recsynth's reader must return every row on every try."""
    from recsynth.train.shards import read_shard

    out = tmp_path / "p"
    spark.range(100).selectExpr("id", "id * 2.0 AS twice").coalesce(2).write.parquet(str(out))
    files = sorted(f"file://{f}" for f in out.glob("part-*.parquet"))
    for _ in range(300):
        shard = read_shard(files, 0, 1, ["id", "twice"])
        assert (len(shard["id"]), float(shard["twice"].astype(float).sum())) == (100, 9900.0)


@pytest.mark.spark
def test_empty_shard_is_an_error(spark, tmp_path):
    from recsynth.errors import RecsynthError
    from recsynth.train.shards import read_shard

    out = tmp_path / "empty"
    spark.range(0).selectExpr("id").coalesce(1).write.parquet(str(out))
    files = [f"file://{f}" for f in out.glob("part-*.parquet")]
    with pytest.raises(RecsynthError, match="read no rows"):
        read_shard(files, 0, 1, ["id"])
