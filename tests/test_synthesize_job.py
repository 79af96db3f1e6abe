"""The synthesize job end to end on gold.behavior from the sample slice: GAN on 2 Horovod
ranks, synthetic rows published with model and data versions, and a failing privacy gate that
publishes nothing."""
import pytest
from pyspark.sql import functions as F

from conftest import ROOT, lake_overrides
from recsynth import tables as T
from recsynth.config import load_conf
from recsynth.errors import JobFailed
from recsynth.lake import Lake
from recsynth.ops.runs import run_job
from recsynth.pipeline import JOBS, PIPELINE
from recsynth.synth import models

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]

SMALL_GAN = [
    "sources.rees46.enabled=false", "synth.em_iterations=5", "synth.max_modes=4", "synth.sample_partitions=2",
    "synth.gan={embedding_dim: 16, generator_dims: [32, 32], discriminator_dims: [32, 32], pac: 4, batch_size: 100,"
    " epochs: 2, learning_rate: 0.0002, gradient_penalty: 10.0}",
]


@pytest.fixture(scope="module")
def gold_lake(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    conf = load_conf("local", [*lake_overrides(base.parent), f"lake.root={base}/lake", *SMALL_GAN], ROOT / "conf")
    lake = Lake(spark, conf)
    for job in PIPELINE:
        run_job(job, spark, conf, lake)
    return conf, lake


def test_synthetic_behavior_is_published_with_versions(spark, gold_lake):
    conf, lake = gold_lake
    record = run_job(JOBS["synthesize"], spark, conf, lake)
    assert record.status == "succeeded"
    synthetic = lake.read(T.SYNTHETIC_BEHAVIOR)
    assert synthetic.count() == record.rows_out == record.rows_in  # rows_multiplier 1.0
    first = synthetic.head()
    assert first["model_version"] == record.run_id and first["training_data_version"] == lake.version(T.GOLD_BEHAVIOR)
    assert "user_id" not in synthetic.columns and "session_id" not in synthetic.columns
    assert dict(synthetic.dtypes)["n_events"] == "bigint" and dict(synthetic.dtypes)["purchased"] == "boolean"
    assert synthetic.filter(F.col("synthetic_id").startswith("syn-")).count() == synthetic.count()
    quality = lake.read(T.SYNTHETIC_QUALITY).head()
    assert quality["model_version"] == record.run_id and quality["gates_passed"]
    assert 0.0 <= quality["membership_auc"] <= 1.0 and quality["column_shapes"] > 0
    fitted, weights, params, meta = models.load(models.model_uri(lake.root, record.run_id))
    assert meta["training_data_version"] == lake.version(T.GOLD_BEHAVIOR) and len(meta["history"]) == params.epochs
    assert [c.name for c in fitted.categorical] == list(conf.synth.categorical) and weights


def test_failed_privacy_gate_keeps_the_published_table(spark, gold_lake):
    conf, lake = gold_lake
    before = lake.version(T.SYNTHETIC_BEHAVIOR)
    strict = conf.model_copy(update={"synth": conf.synth.model_copy(update={
        "privacy": conf.synth.privacy.model_copy(update={"max_membership_auc": 0.0})})})
    with pytest.raises(JobFailed, match="privacy gate failed"):
        run_job(JOBS["synthesize"], spark, strict, lake, force=True)
    assert lake.version(T.SYNTHETIC_BEHAVIOR) == before
    failed = lake.read(T.OPS_JOB_RUNS).filter("job = 'synthesize' AND status = 'failed'").head()
    assert "membership inference AUC" in failed["message"]
