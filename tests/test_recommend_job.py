"""The recommend job end to end on the gold tables of the sample slice: every model and baseline
scored on both tasks into recs.metrics (validation rows that chose EASE's l2 and, with
recs.search, the settings of item-kNN and co-occurrence; test rows with intervals), the two-tower trained on 2 Horovod ranks, the served model's top-N for every user
with the serving rules, similar items, versioned writes, MLflow, and a failed run that leaves
every table as it was. The fixture pins the served model to `recent`, whose lists the planted
rules make exact; the default (chosen on validation) runs in the pipeline tests."""
import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from conftest import SMALL_RECS, TRACKED, assert_registered_schemas, gold_lake_copy, model_job_overrides
from recsynth import tables as T
from recsynth.errors import JobFailed
from recsynth.runtime.runs import run_job
from recsynth.pipeline import JOBS
from recsynth.rec import topn
from recsynth.rec.two_tower import model_uri
from recsynth.tasks.recommend_sequence import load_model

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]

MODELS = ("als", "cooccurrence", "ease", "itemknn", "popularity", "recent", "recent_ease", "sequence")
BASELINES = [m for m in MODELS if m != "sequence"]
L2 = [10.0, 1000.0]   # conftest.SMALL_RECS' recs.ease.l2
SEARCH = {"ease": ("l2", L2), "recent_ease": ("l2", L2), "itemknn": ("max_neighbours", [1, 20]),
          "cooccurrence": ("min_count", [1, 2])}


@pytest.fixture(scope="module")
def gold_lake(spark, tmp_path_factory, etl_reference):
    return gold_lake_copy(spark, etl_reference, model_job_overrides(
        tmp_path_factory.mktemp("recommend"), *SMALL_RECS, TRACKED, "recs.serve=recent",
        "recs.search={enabled: true, grids: {sequence: null, als: null, ease: null, "
        "itemknn: {max_neighbours: [1, 20]}, cooccurrence: {min_count: [1, 2]}}}"))


@pytest.fixture(scope="module")
def published(spark, gold_lake):
    conf, lake = gold_lake
    return run_job(JOBS["recommend"], spark, conf, lake)


def current_rows(lake, name, record):
    return lake.read(name).where(topn.version_predicate(record.run_id))


def test_every_model_is_scored_on_both_tasks_per_source_with_intervals(gold_lake, published):
    conf, lake = gold_lake
    assert published.status == "succeeded"
    splits = lake.read(T.GOLD_SPLITS)
    fit = splits.where(F.col("split").isin("train", "validation"))
    test = splits.where("split = 'test'").join(fit.select("user_id").distinct(), "user_id", "left_semi")
    next_users = test.select("user_id").distinct().count()
    discovery_users = (test.select("user_id", "item_id").join(fit.select("user_id", "item_id"), ["user_id", "item_id"],
                                                            "left_anti").select("user_id").distinct().count())
    assert 0 < discovery_users < next_users
    metrics = lake.read(T.RECS_METRICS).collect()
    reported = [r for r in metrics if r["evaluation_split"] == "test"]
    assert sorted((r["model"], r["task"], r["source"]) for r in reported) == sorted(
        (m, t, s) for m in MODELS for t in ("next", "discovery") for s in ("retailrocket", "all"))
    for row in reported:
        assert row["run_id"] == row["model_version"] == published.run_id
        assert row["training_data_version"] == lake.version(T.GOLD_SPLITS) and row["k"] == conf.recs.k
        assert row["users"] == {"next": next_users, "discovery": discovery_users}[row["task"]], row
        assert row["ndcg_at_k_low"] <= row["ndcg_at_k"] <= row["ndcg_at_k_high"], row
        assert row["catalogue_items"] == lake.read(T.GOLD_ITEM_FEATURES).count()
        assert row["served"] == (row["model"] == "recent")
    pooled = {(r["model"], r["task"]): r for r in reported if r["source"] == "all"}
    # discovery lists hold no seen item, so the user's own items score 0 there
    assert pooled[("recent", "discovery")]["ndcg_at_k"] == 0.0 < pooled[("recent", "next")]["ndcg_at_k"]
    # validation: every model fitted on train alone; one with a single setting scored on next (the served model's
    # task), every setting of a searched one on both tasks; the sequence model refitted for the epochs that
    # stopped early there
    validation = [r for r in metrics if r["evaluation_split"] == "validation" and r["source"] == "all"]
    assert sorted((r["model"], r["task"]) for r in validation) == sorted(
        [(m, "next") for m in MODELS if m not in SEARCH] + [(m, t) for m in SEARCH for t in ("next", "discovery")
                                                           for _ in range(2)])
    [tuned] = [json.loads(r["params"]) for r in validation if r["model"] == "sequence"]
    assert 1 <= tuned["epochs"] <= conf.recs.sequence.max_epochs
    assert json.loads(pooled[("sequence", "next")]["params"])["epochs"] == tuned["epochs"]
    for model, (key, values) in SEARCH.items():   # the reported model carries the setting that scored best there
        tried = {(r["task"], json.loads(r["params"])[key]): r["ndcg_at_k"] for r in validation if r["model"] == model}
        assert sorted(tried) == sorted((t, v) for t in ("next", "discovery") for v in values)
        for task in ("next", "discovery"):
            best = max(values, key=lambda v: (tried[(task, v)], -values.index(v)))
            assert json.loads(pooled[(model, task)]["params"])[key] == best, (model, task, tried)


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


def test_the_served_recent_lists_are_own_items_newest_first_then_the_sources_popular_items(gold_lake, published):
    conf, lake = gold_lake
    k = conf.recs.k
    events = lake.read(T.GOLD_SPLITS)
    bought = events.where("event_type = 'purchase'").select("user_id", "item_id").distinct()
    own = (events.groupBy("user_id", "item_id").agg(F.max("event_time").cast("double").alias("last"))
           .join(bought, ["user_id", "item_id"], "left_anti"))
    top = current_rows(lake, T.RECS_TOP_N, published).cache()
    listed_own = top.join(own, ["user_id", "item_id"])
    # an own item is listed with its last time as its score, and before any item the user never had
    assert listed_own.where("score != last").count() == 0
    firsts = top.join(own, ["user_id", "item_id"], "left_anti").groupBy("user_id").agg(F.min("rank").alias("first"))
    lasts = listed_own.groupBy("user_id").agg(F.max("rank").alias("last_own"), F.count(F.lit(1)).alias("n"))
    assert lasts.where(f"last_own != n").count() == 0
    assert lasts.join(firsts, "user_id").where("first < last_own").count() == 0
    n_own = own.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_own"))
    assert lasts.join(n_own, "user_id").where(f"n != least(n_own, {k})").count() == 0
    # users with nothing of their own left (every item bought) get the source's most popular items but theirs
    popular = (events.groupBy("item_id").agg(F.countDistinct("user_id").alias("score"))
               .orderBy(F.desc("score"), "item_id").limit(k + 20).collect())
    cold = events.select("user_id").distinct().join(own, "user_id", "left_anti")
    purchases = {}
    for row in bought.join(cold, "user_id", "left_semi").collect():
        purchases.setdefault(row["user_id"], set()).add(row["item_id"])
    assert purchases   # the slice has buyers of nothing else
    lists = {}
    for row in top.join(cold, "user_id", "left_semi").collect():
        lists.setdefault(row["user_id"], []).append((row["rank"], row["item_id"], row["score"]))
    for user, items in purchases.items():
        expected = [(r["item_id"], float(r["score"])) for r in popular if r["item_id"] not in items][:k]
        assert [(item, score) for _, item, score in sorted(lists[user])] == expected, user
    top.unpersist()


def test_similar_items_never_list_the_item_itself(gold_lake, published):
    conf, lake = gold_lake
    similar = current_rows(lake, T.RECS_SIMILAR_ITEMS, published)
    assert similar.count() > 0
    assert similar.where("item_id = similar_item_id").count() == 0
    # the neighbours of a model with item-to-item scores (counts, cosines or EASE weights): positive, best first
    assert similar.where(f"rank < 1 OR rank > {conf.recs.similar_items.k} OR score <= 0").count() == 0
    by_rank = Window.partitionBy("item_id").orderBy("rank")
    assert similar.withColumn("_before", F.lag("score").over(by_rank)).where("score > _before").count() == 0
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
    weights, params, meta = load_model(model_uri(lake.root, published.run_id))
    reported = lake.read(T.RECS_METRICS).where("evaluation_split = 'test' AND model = 'sequence'").head()
    assert meta["training_data_version"] == lake.version(T.GOLD_SPLITS)
    assert len(meta["history"]) == meta["best_epoch"] == json.loads(reported["params"])["epochs"]
    assert params.max_length == conf.recs.sequence.max_length and weights[0].shape == (meta["vocab_size"], 8)
    assert meta["training_rows"] == lake.read(T.RECS_TRAINING_EXAMPLES).count()
    assert Path(model_uri(lake.root, published.run_id)) == Path(lake.root) / "models" / "recommender" / published.run_id
    assert not list((Path(lake.root) / "checkpoints").glob("*/*"))

    client = MlflowClient(tracking_uri=tracking_uri(conf))
    experiment = client.get_experiment_by_name(conf.tracking.experiment)
    [run] = client.search_runs([experiment.experiment_id], f"tags.`recsynth.run_id` = '{published.run_id}'")
    assert run.info.status == "FINISHED"
    assert run.data.tags["training_data_version"] == str(lake.version(T.GOLD_SPLITS))
    assert {f"{model}.{task}.all.ndcg_at_k" for model in MODELS for task in ("next", "discovery")} <= set(run.data.metrics)
    item_to_item = {"cooccurrence", "itemknn", "ease", "als", "recent_ease", "sequence"}   # recent, popularity: none
    assert run.data.tags["served_model"] == "recent" and run.data.tags["similar_items_model"] in item_to_item
    champion = client.get_model_version_by_alias(conf.tracking.recommender_model, "champion")
    assert champion.run_id == run.info.run_id and champion.tags["served_model"] == "recent"
    assert Path(champion.source) == Path(model_uri(lake.root, published.run_id))
    tuning = client.get_metric_history(run.info.run_id, "sequence.tuning.validation_ndcg")
    refit = client.get_metric_history(run.info.run_id, "sequence.loss")
    assert sorted(m.step for m in refit) == list(range(1, meta["best_epoch"] + 1))   # the refit: the chosen epochs
    assert sorted(m.step for m in tuning) == list(range(1, len(tuning) + 1)) and len(tuning) >= meta["best_epoch"]


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
    with pytest.raises(JobFailed, match="offers 2 task slot"):
        run_job(JOBS["recommend"], spark, recs_with(conf, num_proc=3), lake, force=True)
    after = lake.versions(JOBS["recommend"].outputs)
    assert {t: v for t, v in after.items() if t != T.RECS_TRAINING_EXAMPLES} == {
        t: v for t, v in before.items() if t != T.RECS_TRAINING_EXAMPLES}
    restored = lake.history(T.RECS_TRAINING_EXAMPLES).orderBy(F.desc("version")).head()  # a RESTORE is a new version
    assert restored["operation"] == "RESTORE" and restored["version"] == after[T.RECS_TRAINING_EXAMPLES]
    assert restored["operationParameters"]["version"] == str(before[T.RECS_TRAINING_EXAMPLES])
    failed = lake.read(T.OPS_JOB_RUNS).where("job = 'recommend' AND status = 'failed'").count()
    assert failed == 2
