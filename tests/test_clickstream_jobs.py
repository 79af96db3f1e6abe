"""synthesize-events and evaluate-synthetic on a real lake (the retailrocket slice's gold tables):
synthetic.events is published with the registered schema, catalogue items and synthetic people
only; a failing person-level gate publishes nothing; gold and recommend run on it with one conf
switch, beside the real tables; and TSTR is computed end to end, exactly:
a "generator" that hands back the real fit-period events under other user ids teaches every
item-side model exactly what the real events do (ratio 1 on every row; ALS folds the real users
into the item factors it learnt from the copy)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conftest import SMALL_RECS, assert_registered_schemas, gold_lake_copy, model_job_overrides
from recsynth import tables as T
from recsynth.pipeline import JOBS, pipeline_jobs
from recsynth.errors import JobFailed, LakeError
from recsynth.lake import Lake
from recsynth.runtime.runs import last_success, run_job
from recsynth.synth.clickstream import session_steps
from recsynth.synth.clickstream_fidelity import item_gini, move_shares, people_sample
from recsynth.synth.privacy import split_by_person

pytestmark = [pytest.mark.spark, pytest.mark.slow]

MAX_EVENTS = 6


@pytest.fixture(scope="module")
def gold_lake(spark, tmp_path_factory, etl_reference):
    return gold_lake_copy(spark, etl_reference, model_job_overrides(
        tmp_path_factory.mktemp("clickstream"), *SMALL_RECS, f"clickstream.max_session_events={MAX_EVENTS}",
        "clickstream.generator=markov",   # the chain: the network's own test below trains it
        "clickstream.sessions=real",   # plans from real sessions: the GAN's rows are planted by the test that plans them
        "clickstream.users_multiplier=2",   # the Gini is compared on half the synthetic people
        "clickstream.privacy.query_people=300", "clickstream.tstr_models=[itemknn, als]",   # similarities, fold-in
        # the mechanics of publishing; what the gates measure on real data is in BENCHMARKS.md
        "clickstream.privacy.max_membership_auc=1.0", "clickstream.privacy.max_excess_ngram_share=1.0"))


@pytest.fixture(scope="module")
def published(spark, gold_lake):
    conf, lake = gold_lake
    return run_job(JOBS["synthesize_events"], spark, conf, lake)


def test_synthetic_events_are_catalogue_items_of_synthetic_people(gold_lake, published):
    conf, lake = gold_lake
    assert published.status == "succeeded", published.message
    assert_registered_schemas(lake, JOBS["synthesize_events"].outputs)
    events = lake.read(T.SYNTHETIC_EVENTS)
    real_users = lake.read(T.GOLD_SPLITS).select("source", "user_id").distinct()
    assert events.join(real_users, ["source", "user_id"], "left_semi").count() == 0
    catalogue = lake.read(T.GOLD_ITEM_FEATURES).select("source", "item_id")
    assert events.join(catalogue, ["source", "item_id"], "left_anti").count() == 0
    longest = events.groupBy("session_id").count().agg(F.max("count")).head()[0]
    assert 1 <= longest <= MAX_EVENTS
    assert {r["model_version"] for r in events.select("model_version").distinct().collect()} == {published.run_id}
    quality = lake.read(T.SYNTHETIC_EVENTS_QUALITY).where(F.col("run_id") == published.run_id).collect()
    assert len(quality) == 1 and quality[0]["gates_passed"] and quality[0]["synthetic_events"] == events.count()
    assert set(quality[0]["train_ngram_share"]) == {"3", "4", "5"}
    fit = lake.read(T.GOLD_SPLITS).where(F.col("split").isin(*conf.recs.fit_splits))
    train, holdout = (session_steps(side) for side in split_by_person(fit, conf.clickstream.holdout_fraction))
    assert move_shares(train, {"synthetic": session_steps(events), "holdout": holdout}, conf.clickstream.min_people) == {
        side: {kind: quality[0][f"{side}_{kind}_move_share"] for kind in ("common", "repeat")}
        for side in ("synthetic", "holdout")}
    people = quality[0]["synthetic_people"] / quality[0]["training_people"]
    assert people == 2.0   # every training person dealt twice
    assert quality[0]["synthetic_item_gini"] == pytest.approx(item_gini(people_sample(events, 1 / people, conf.clickstream.seed)))
    assert quality[0]["real_item_gini"] == pytest.approx(item_gini(train))


def test_an_unchanged_rerun_is_skipped(spark, gold_lake, published):
    conf, lake = gold_lake
    again = run_job(JOBS["synthesize_events"], spark, conf, lake)
    assert again.status == "skipped"


def test_a_failing_person_gate_publishes_nothing(spark, gold_lake, published):
    conf, lake = gold_lake
    before = lake.versions(JOBS["synthesize_events"].outputs)
    strict = conf.model_copy(update={"clickstream": conf.clickstream.model_copy(update={
        "privacy": conf.clickstream.privacy.model_copy(update={"max_membership_auc": 0.0})})})
    with pytest.raises(JobFailed, match="membership inference AUC"):
        run_job(JOBS["synthesize_events"], spark, strict, lake, force=True)
    assert lake.versions(JOBS["synthesize_events"].outputs) == before


def test_gold_and_recommend_run_on_the_synthetic_clickstream_beside_the_real_tables(spark, gold_lake, published):
    """One conf switch (lake.clickstream=synthetic) runs the gold and recommend jobs unchanged on
    synthetic.events: their tables land in synthetic_gold.* and synthetic_recs.*, queryable by SQL,
    the real ones untouched; their runs are told apart in ops.job_runs; other jobs refuse."""
    conf, lake = gold_lake
    synthetic_conf = conf.model_copy(update={
        "lake": conf.lake.model_copy(update={"clickstream": "synthetic"}),
        # the mechanics on synthetic data: two baselines beside the sequence model, nothing tuned
        "recs": conf.recs.model_copy(update={"validation_split": None, "serve": "recent", "baselines": ["recent", "ease"]})})
    on_synthetic = Lake(spark, synthetic_conf)
    real_tables = [*JOBS["gold"].outputs, *JOBS["recommend"].outputs]
    before = lake.versions(real_tables)

    records = [run_job(JOBS[name], spark, synthetic_conf, on_synthetic) for name in ("gold", "recommend")]
    assert [(r.job, r.status) for r in records] == [("gold@synthetic", "succeeded"), ("recommend@synthetic", "succeeded")]
    assert lake.versions(real_tables) == before
    assert on_synthetic.path(T.GOLD_SPLITS) == f"{lake.root}/synthetic_gold/splits"
    events = lake.read(T.SYNTHETIC_EVENTS)
    splits = spark.table("synthetic_gold.splits")  # registered under its own schema
    assert splits.count() == events.count()  # every synthetic event, none real: no returns to net
    assert splits.select("user_id").distinct().count() == events.select("user_id").distinct().count()
    assert splits.join(lake.read(T.GOLD_SPLITS).select("user_id").distinct(), "user_id", "left_semi").count() == 0
    top = spark.table("synthetic_recs.top_n")
    assert top.select("user_id").distinct().count() == splits.select("user_id").distinct().count()
    assert top.join(lake.read(T.GOLD_ITEM_FEATURES), "item_id", "left_anti").count() == 0  # real catalogue items
    metrics = on_synthetic.read(T.RECS_METRICS).where(F.col("run_id") == records[1].run_id)
    assert {r["model"] for r in metrics.select("model").distinct().collect()} == {"recent", "ease", "sequence"}
    # `recsynth sql` under the real clickstream registers the synthetic schemas' tables too
    spark.sql("DROP TABLE synthetic_recs.metrics")   # external: its files stay
    lake.register_both_clickstreams(T.ALL)
    assert spark.table("synthetic_recs.metrics").count() == on_synthetic.read(T.RECS_METRICS).count()

    # each clickstream's runs are skipped on their own last success
    assert run_job(JOBS["gold"], spark, synthetic_conf, on_synthetic).status == "skipped"
    assert run_job(JOBS["gold"], spark, conf, lake).status == "skipped"
    with pytest.raises(JobFailed, match="runs on the real clickstream only"):
        run_job(JOBS["clean"], spark, synthetic_conf, on_synthetic)
    with pytest.raises(LakeError, match="is not written there"):
        on_synthetic.overwrite(T.SILVER_EVENTS, events)
    assert [job.name for job in pipeline_jobs(synthetic_conf)] == ["gold", "recommend"]


def test_the_sequence_generator_writes_the_same_planned_sessions_through_the_same_gates(spark, gold_lake, published):
    """clickstream.generator=sequence: trained on 2 Horovod ranks, it fills in the very sessions
    the chain walked (the same people, session ids and lengths: one plan, one seed), with
    catalogue items, and publishes through the same gates; its checkpoints are kept."""
    conf, lake = gold_lake
    chain_version = lake.version(T.SYNTHETIC_EVENTS)
    sequence_conf = conf.model_copy(update={"clickstream": conf.clickstream.model_copy(update={
        "generator": "sequence", "sequence": conf.clickstream.sequence.model_copy(update={
            "max_length": 8, "embedding_dim": 16, "blocks": 1, "epochs": 2, "negatives": 64})})})
    record = run_job(JOBS["synthesize_events"], spark, sequence_conf, lake)
    assert record.status == "succeeded", record.message
    events = lake.read(T.SYNTHETIC_EVENTS)
    assert {r["model_version"] for r in events.select("model_version").distinct().collect()} == {record.run_id}

    def sessions(frame):
        return {tuple(r) for r in frame.groupBy("user_id", "session_id").count().collect()}

    assert sessions(events) == sessions(lake.read(T.SYNTHETIC_EVENTS, version=chain_version))
    catalogue = lake.read(T.GOLD_ITEM_FEATURES).select("source", "item_id")
    assert events.join(catalogue, ["source", "item_id"], "left_anti").count() == 0
    assert {r["event_type"] for r in events.select("event_type").distinct().collect()} <= {"view", "cart", "purchase"}
    quality = lake.read(T.SYNTHETIC_EVENTS_QUALITY).where(F.col("run_id") == record.run_id).collect()
    assert len(quality) == 1 and quality[0]["generator"] == "sequence" and quality[0]["gates_passed"]
    assert list(Path(lake.root, "checkpoints", "clickstream_sequence").glob("*/*"))


def test_sessions_planned_from_the_gans_rows_take_their_lengths_and_contexts(spark, gold_lake, published):
    """clickstream.sessions=gan: refused with a clear error until synthetic.behavior exists; then
    every planned session is one of its rows - here every row has 4 events and one top category -
    dated by a real session of its weekday and hour. A new version of the GAN's rows re-runs the
    job under sessions=gan only."""
    conf, lake = gold_lake
    gan_conf = conf.model_copy(update={"clickstream": conf.clickstream.model_copy(update={"sessions": "gan"})})
    assert lake.version(T.SYNTHETIC_BEHAVIOR) is None
    with pytest.raises(JobFailed, match="run `recsynth synthesize` first"):
        run_job(JOBS["synthesize_events"], spark, gan_conf, lake, force=True)
    real = lake.read(T.GOLD_BEHAVIOR)
    lake.overwrite(T.SYNTHETIC_BEHAVIOR, real.select(
        F.concat(F.lit("g-"), "session_id").alias("synthetic_id"), "source", F.lit(4).cast("bigint").alias("n_events"),
        F.lit(3.0).alias("duration_s"), F.lit("planted").alias("top_category"), F.lit(False).alias("purchased"),
        "start_hour", "day_of_week"))
    record = run_job(JOBS["synthesize_events"], spark, gan_conf, lake)
    assert record.status == "succeeded", record.message
    events = lake.read(T.SYNTHETIC_EVENTS)
    lengths = events.groupBy("session_id").agg(F.count(F.lit(1)).alias("n"),
                                               (F.max("event_time").cast("double") - F.min("event_time").cast("double"))
                                               .alias("span"))
    assert {(r["n"], r["span"]) for r in lengths.select("n", "span").distinct().collect()} == {(4, 3.0)}
    quality = lake.read(T.SYNTHETIC_EVENTS_QUALITY).where(F.col("run_id") == record.run_id).head()
    # no catalogue item is in the "planted" category: no session written can have it
    assert quality["planned_category_share"] == 0.0
    # the GAN's rows are an input of the runs that plan from them only: under sessions=real a
    # new synthetic.behavior changes nothing, and the run is skipped
    assert T.SYNTHETIC_BEHAVIOR in last_success(lake, "synthesize_events")["input_versions"]
    assert run_job(JOBS["synthesize_events"], spark, conf, lake).status == "succeeded"
    assert T.SYNTHETIC_BEHAVIOR not in last_success(lake, "synthesize_events")["input_versions"]
    lake.overwrite(T.SYNTHETIC_BEHAVIOR, lake.read(T.SYNTHETIC_BEHAVIOR).limit(5))
    assert run_job(JOBS["synthesize_events"], spark, conf, lake).status == "skipped"


def test_a_new_draw_seed_writes_another_clickstream_of_the_same_people(spark, gold_lake, published):
    """clickstream.draw_seed re-draws the plan and the writing only: the same training and holdout
    people and real figures, as many synthetic people, other sessions; set to the seed itself it
    writes the very events of the seed's run."""
    conf, lake = gold_lake
    def drawn(draw_seed):
        record = run_job(JOBS["synthesize_events"], spark, conf.model_copy(update={
            "clickstream": conf.clickstream.model_copy(update={"draw_seed": draw_seed})}), lake)
        assert record.status == "succeeded", record.message
        quality = lake.read(T.SYNTHETIC_EVENTS_QUALITY).where(F.col("run_id") == record.run_id).head()
        return lake.read(T.SYNTHETIC_EVENTS).drop("model_version"), quality

    def paths(events):
        return sorted(tuple(r["items"]) for r in events.groupBy("session_id").agg(
            F.sort_array(F.collect_list(F.struct("event_time", "item_id"))).alias("items")).collect())

    before = lake.read(T.SYNTHETIC_EVENTS, version=lake.version(T.SYNTHETIC_EVENTS)).drop("model_version")
    first = lake.read(T.SYNTHETIC_EVENTS_QUALITY).orderBy(F.desc("measured_at")).head()   # the seed's run
    other, quality = drawn(7)
    assert [quality[k] for k in ("training_people", "holdout_people", "synthetic_people", "real_item_gini")] == [
        first[k] for k in ("training_people", "holdout_people", "synthetic_people", "real_item_gini")]
    assert other.where(~F.col("user_id").startswith("syn7-")).count() == 0
    assert paths(other) != paths(before)
    again, _ = drawn(conf.clickstream.seed)
    assert paths(again) == paths(before) and again.select("user_id").distinct().count() == \
        before.select("user_id").distinct().count()


def _planted_splits(lake):
    """gold.splits replaced by planted views of catalogue items: 30 people view A_k and B_k
    (k = n mod 10) in `train`; 10 more view A_k in `train` and B_k in `test`, so every item-side
    model learns A_k -> B_k and finds each test item: NDCG well above 0 to compare."""
    items = [r["item_id"] for r in lake.read(T.GOLD_ITEM_FEATURES).where("source = 'retailrocket'")
             .orderBy("item_id").limit(20).collect()]
    first, second = items[:10], items[10:]
    start = dt.datetime(2015, 6, 1)
    rows = []
    for n in range(30):
        for step, item in enumerate((first[n % 10], second[n % 10])):
            rows.append((f"pair-{n}", item, "train", start + dt.timedelta(hours=n, minutes=step)))
    for k in range(10):
        rows.append((f"asker-{k}", first[k], "train", start + dt.timedelta(days=2, hours=k)))
        rows.append((f"asker-{k}", second[k], "test", start + dt.timedelta(days=9, hours=k)))
    return lake.spark.createDataFrame(
        [("retailrocket", f"e{n}", user, f"s-{user}-{split}", item, "view", at, None, None, split)
         for n, (user, item, split, at) in enumerate(rows)], T.schema(T.GOLD_SPLITS))


def test_tstr_of_a_copy_of_the_real_events_is_exactly_real(spark, gold_lake, published):
    conf, lake = gold_lake
    lake.overwrite(T.GOLD_SPLITS, _planted_splits(lake))
    splits = lake.read(T.GOLD_SPLITS).where(F.col("split").isin(*conf.recs.fit_splits))
    copied = splits.select(
        F.concat(F.lit("copy-"), "event_id").alias("event_id"), "source", "event_time",
        F.concat(F.lit("copy-"), "user_id").alias("user_id"), F.concat(F.lit("copy-"), "session_id").alias("session_id"),
        "item_id", "event_type", F.lit(None).cast("double").alias("price"), F.lit(None).cast("string").alias("transaction_id"),
        "quantity", F.to_date("event_time").alias("event_date"), F.lit("copy").alias("model_version"),
        F.lit(0).cast("bigint").alias("training_data_version"))
    lake.overwrite(T.SYNTHETIC_EVENTS, copied)
    record = run_job(JOBS["evaluate_synthetic"], spark, conf, lake)
    assert record.status == "succeeded", record.message
    assert_registered_schemas(lake, JOBS["evaluate_synthetic"].outputs)
    rows = lake.read(T.SYNTHETIC_UTILITY).where(F.col("run_id") == record.run_id).collect()
    models = set(conf.clickstream.tstr_models)
    pooled = {(r["model"], r["trained_on"], r["task"]): r for r in rows if r["source"] == "all"}
    assert set(pooled) == {(m, t, task) for m in models for t in ("real", "synthetic", "real+synthetic")
                           for task in ("next", "discovery")}
    for model in models:
        for task in ("next", "discovery"):
            real, synthetic = pooled[(model, "real", task)], pooled[(model, "synthetic", task)]
            assert real["users"] == synthetic["users"] == 10, (model, task)
            assert synthetic["ndcg_at_k"] == pytest.approx(real["ndcg_at_k"]) and synthetic["ratio_to_real"] == pytest.approx(1.0)
            # the same users score alike in every replicate: the paired interval of the ratio is exactly 1
            assert (synthetic["ratio_to_real_low"], synthetic["ratio_to_real_high"]) == (pytest.approx(1.0),
                                                                                         pytest.approx(1.0))
    # the planted next items are each user's item's only neighbour: item-kNN finds every one
    assert all(pooled[("itemknn", "real", task)]["ndcg_at_k"] == pytest.approx(1.0) for task in ("next", "discovery"))
    # twice the same people: the cosines stay, so the lists are the real ones
    assert pooled[("itemknn", "real+synthetic", "discovery")]["ratio_to_real"] == pytest.approx(1.0)
    assert all(r["synthetic_model_version"] == "copy" for r in rows)
