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
def test_petastorm_reads_spark_parquet(spark, tmp_path):
    from petastorm import make_batch_reader

    spark.range(100).selectExpr("id", "id * 2.0 AS twice").coalesce(2).write.parquet(str(tmp_path / "p"))
    total, rows = 0.0, 0
    with make_batch_reader(f"file://{tmp_path / 'p'}", num_epochs=1, workers_count=1) as reader:
        for batch in reader:
            total += float(batch.twice.sum())
            rows += len(batch.id)
    assert (rows, total) == (100, 9900.0)
