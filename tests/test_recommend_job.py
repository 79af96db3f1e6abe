"""The recommend job end to end on the gold tables of the sample slice: four models evaluated on
the test period into recs.metrics, the two-tower trained on 2 Horovod ranks, top-N for every
user with the serving rules, similar items, versioned writes, MLflow, and a failed run that
leaves every table as it was."""
import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from conftest import SMALL_RECS, assert_registered_schemas, gold_lake_copy, model_job_overrides
from recsynth import tables as T
from recsynth.errors import JobFailed
from recsynth.runtime.runs import run_job
from recsynth.pipeline import JOBS
from recsynth.rec import topn
from recsynth.rec.two_tower import load_model, model_uri
from recsynth.tasks.recommend import MODELS

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]

RATES = ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "catalogue_coverage")


@pytest.fixture(scope="module")
def gold_lake(spark, tmp_path_factory, etl_reference):
    return gold_lake_copy(spark, etl_reference, model_job_overrides(tmp_path_factory.mktemp("recommend"), *SMALL_RECS))


@pytest.fixture(scope="module")
def published(spark, gold_lake):
    conf, lake = gold_lake
    return run_job(JOBS["recommend"], spark, conf, lake)


def current_rows(lake, name, record):
    return lake.read(name).where(topn.version_predicate(record.run_id))


def test_every_model_is_evaluated_on_the_same_split(gold_lake, published):
    conf, lake = gold_lake
    assert published.status == "succeeded"
    splits = lake.read(T.GOLD_SPLITS)
    fit_users = splits.where(F.col("split").isin("train", "validation")).select("user_id").distinct()
    warm_test_users = splits.where("split = 'test'").select("user_id").distinct().join(fit_users, "user_id", "left_semi")
    metrics = lake.read(T.RECS_METRICS).collect()
    assert sorted(r["model"] for r in metrics) == sorted(MODELS)
    for row in metrics:
        assert row["run_id"] == row["model_version"] == published.run_id
        assert row["training_data_version"] == lake.version(T.GOLD_SPLITS)
        assert row["k"] == conf.recs.k and row["evaluation_split"] == "test"
        assert row["users"] == warm_test_users.count() > 0
        assert all(0.0 <= row[name] <= 1.0 for name in RATES), row
        assert row["novelty"] > 0 and row["catalogue_items"] == lake.read(T.GOLD_ITEM_FEATURES).count()
        assert row["precision_at_k"] <= row["hit_rate_at_k"] and row["catalogue_coverage"] > 0


def test_the_tables_have_the_registered_schemas(gold_lake, published):
    _, lake = gold_lake
    assert_registered_schemas(lake, JOBS["recommend"].outputs)


def test_top_n_lists_every_user_by_the_serving_rules(gold_lake, published):
    conf, lake = gold_lake
    k = conf.recs.k
    top = current_rows(lake, T.RECS_TOP_N, published).cache()
    splits = lake.read(T.GOLD_SPLITS)
    assert top.select("user_id").distinct().count() == splits.select("user_id").distinct().count()  # all users
    per_user = top.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"), F.min("rank").alias("first"),
                                          F.max("rank").alias("last"), F.countDistinct("rank").alias("ranks"),
                                          F.countDistinct("item_id").alias("items"))
    assert per_user.where(f"n > {k} OR first != 1 OR last != n OR ranks != n OR items != n").count() == 0
    assert per_user.where(f"n < {k}").count() == 0  # the catalogue is large enough for full lists
    purchased = splits.where("event_type = 'purchase'").select("user_id", "item_id")
    assert purchased.count() > 0
    assert top.join(purchased, ["user_id", "item_id"]).count() == 0
    assert top.join(lake.read(T.GOLD_ITEM_FEATURES), "item_id", "left_anti").count() == 0
    by_rank = Window.partitionBy("user_id").orderBy("rank")
    assert top.withColumn("_before", F.lag("score").over(by_rank)).where("score > _before").count() == 0
    assert top.select("generated_at").distinct().count() == 1
    top.unpersist()


def test_users_unknown_to_the_model_get_the_popularity_fallback(spark, gold_lake, published):
    conf, lake = gold_lake
    *_, vocabularies, _ = load_model(spark, model_uri(lake.root, published.run_id))
    events = lake.read(T.GOLD_SPLITS)
    known = events.join(vocabularies.items, "item_id", "left_semi").select("user_id").distinct()
    cold = events.select("user_id").distinct().join(known, "user_id", "left_anti")
    buyers = events.where("event_type = 'purchase'").select("user_id").distinct()
    cold = cold.join(buyers, "user_id", "left_anti")  # nothing excluded: the plain popularity list
    popular = (events.groupBy("item_id").agg(F.countDistinct("user_id").alias("score"))
               .orderBy(F.desc("score"), "item_id").limit(conf.recs.k).collect())
    expected = [(rank, row["item_id"], float(row["score"])) for rank, row in enumerate(popular, start=1)]
    lists = current_rows(lake, T.RECS_TOP_N, published).join(cold, "user_id", "left_semi")
    assert cold.count() > 0
    got = lists.groupBy("rank", "item_id", "score").agg(F.countDistinct("user_id").alias("users")).collect()
    assert sorted((r["rank"], r["item_id"], r["score"]) for r in got) == expected
    assert {r["users"] for r in got} == {cold.count()}


def test_similar_items_never_list_the_item_itself(gold_lake, published):
    conf, lake = gold_lake
    similar = current_rows(lake, T.RECS_SIMILAR_ITEMS, published)
    assert similar.count() > 0
    assert similar.where("item_id = similar_item_id").count() == 0
    assert similar.where(f"rank < 1 OR rank > {conf.recs.similar_items.k} OR score > 1.0 OR score < -1.0").count() == 0
    assert similar.join(lake.read(T.GOLD_ITEM_FEATURES), "item_id", "left_anti").count() == 0


def test_rewriting_a_model_version_replaces_its_rows(gold_lake, published):
    _, lake = gold_lake
    pinned = lake.read(T.RECS_TOP_N, version=lake.version(T.RECS_TOP_N)).where(topn.version_predicate(published.run_id))
    before = pinned.count()
    topn.write_top_n(lake, pinned, published.run_id, dt.datetime(2030, 1, 1))
    after = current_rows(lake, T.RECS_TOP_N, published)
    assert after.count() == before
    assert after.groupBy("user_id", "rank").count().where("count > 1").count() == 0
    assert [r["generated_at"] for r in after.select("generated_at").distinct().collect()] == [dt.datetime(2030, 1, 1)]


def test_the_model_is_versioned_tracked_and_its_checkpoints_cleared(spark, gold_lake, published):
    from mlflow.tracking import MlflowClient

    from recsynth.runtime.tracking import tracking_uri

    conf, lake = gold_lake
    weights, params, sizes, vocabularies, meta = load_model(spark, model_uri(lake.root, published.run_id))
    assert meta["training_data_version"] == lake.version(T.GOLD_SPLITS) and len(meta["history"]) == params.epochs
    assert params.history_length == conf.recs.history_length and weights and sizes["item"] > 2
    assert Path(model_uri(lake.root, published.run_id)) == Path(lake.root) / "models" / "recommender" / published.run_id
    assert not list((Path(lake.root) / "checkpoints" / "recommender").glob("*"))

    client = MlflowClient(tracking_uri=tracking_uri(conf))
    experiment = client.get_experiment_by_name(conf.tracking.experiment)
    [run] = client.search_runs([experiment.experiment_id], f"tags.`recsynth.run_id` = '{published.run_id}'")
    assert run.info.status == "FINISHED"
    assert run.data.tags["training_data_version"] == str(lake.version(T.GOLD_SPLITS))
    assert {f"{model}.ndcg_at_k" for model in MODELS} <= set(run.data.metrics)
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in losses) == list(range(1, conf.recs.two_tower.epochs + 1))


def test_an_unchanged_rerun_is_skipped(spark, gold_lake, published):
    conf, lake = gold_lake
    before = lake.versions(JOBS["recommend"].outputs)
    again = run_job(JOBS["recommend"], spark, conf, lake)
    assert again.status == "skipped" and lake.versions(JOBS["recommend"].outputs) == before


def recs_with(conf, **changes):
    return conf.model_copy(update={"recs": conf.recs.model_copy(update=changes)})


def test_a_failed_run_leaves_every_table_as_it_was(spark, gold_lake, published):
    conf, lake = gold_lake
    before = lake.versions(JOBS["recommend"].outputs)
    with pytest.raises(JobFailed, match=r"no eligible item.*no-such-category"):
        run_job(JOBS["recommend"], spark, recs_with(conf, categories=["no-such-category"]), lake, force=True)
    # fails in training, after recs.training_examples was rewritten: that write is undone too
    huge_batches = recs_with(conf, two_tower=conf.recs.two_tower.model_copy(update={"batch_size": 10**6}))
    with pytest.raises(JobFailed, match="Horovod training failed"):
        run_job(JOBS["recommend"], spark, huge_batches, lake, force=True)
    after = lake.versions(JOBS["recommend"].outputs)
    assert {t: v for t, v in after.items() if t != T.RECS_TRAINING_EXAMPLES} == {
        t: v for t, v in before.items() if t != T.RECS_TRAINING_EXAMPLES}
    restored = lake.history(T.RECS_TRAINING_EXAMPLES).orderBy(F.desc("version")).head()  # a RESTORE is a new version
    assert restored["operation"] == "RESTORE" and restored["version"] == after[T.RECS_TRAINING_EXAMPLES]
    assert restored["operationParameters"]["version"] == str(before[T.RECS_TRAINING_EXAMPLES])
    failed = lake.read(T.OPS_JOB_RUNS).where("job = 'recommend' AND status = 'failed'").count()
    assert failed == 2


def test_synthetic_sessions_train_an_augmented_model_evaluated_beside_it(spark, gold_lake, published):
    from recsynth.tasks.recommend import AUGMENTED

    conf, lake = gold_lake
    # stand-in synthetic data: the real sessions themselves, under synthetic ids (what a perfect GAN gives)
    sessions = lake.read(T.GOLD_BEHAVIOR).select(F.concat(F.lit("syn-"), "session_id").alias("synthetic_id"),
                                                 "source", "top_category", "n_items")
    lake.overwrite(T.SYNTHETIC_BEHAVIOR, sessions)
    record = run_job(JOBS["recommend"], spark, conf, lake)  # synthetic.behavior is a new input: not skipped
    assert record.status == "succeeded"
    metrics = {r["model"]: r for r in lake.read(T.RECS_METRICS).where(f"run_id = '{record.run_id}'").collect()}
    assert sorted(metrics) == sorted([*MODELS, AUGMENTED])
    real, augmented = metrics["two_tower"], metrics[AUGMENTED]
    assert augmented["users"] == real["users"] and 0.0 <= augmented["ndcg_at_k"] <= 1.0
    # only the real-only model is served; the pseudo-users never reach recs.top_n
    top = current_rows(lake, T.RECS_TOP_N, record)
    assert top.count() > 0 and top.where(F.col("user_id").startswith("synthetic:")).count() == 0
    assert not list((Path(lake.root) / "checkpoints" / "recommender").glob("*"))
