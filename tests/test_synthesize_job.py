"""The synthesize job end to end on gold.behavior from the sample slice: GAN on 2 Horovod
ranks, synthetic rows published with model and data versions, and a failing privacy gate that
publishes nothing."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from conftest import DATA, ROOT, SMALL_GAN, TRACKED, gold_lake_copy, gold_lake_under, model_job_overrides, settled_epoch
from recsynth import tables as T
from recsynth.config import RareShare
from recsynth.errors import JobFailed
from recsynth.etl.pseudonyms import load_key, pseudonym
from recsynth.runtime.runs import run_job
from recsynth.pipeline import JOBS
from recsynth.synth import models
from recsynth.synth.calibration import marginal_name, stratum_counts
from recsynth.synth.constraints import with_helpers
from recsynth.synth import sampling
from recsynth.synth.privacy import split_by_person
from recsynth.train import checkpoints
from recsynth.tasks.sample import sample_job
from recsynth.tasks.synthesize import learned_rows

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]


@pytest.fixture(scope="module")
def gold_overrides(tmp_path_factory):
    return model_job_overrides(tmp_path_factory.mktemp("synth"), *SMALL_GAN, TRACKED)


@pytest.fixture(scope="module")
def gold_lake(spark, gold_overrides, etl_reference):
    return gold_lake_copy(spark, etl_reference, gold_overrides)


@pytest.fixture(scope="module")
def published(spark, gold_lake):
    conf, lake = gold_lake
    return run_job(JOBS["synthesize"], spark, conf, lake)


def mlflow_run(conf, run_id):
    from mlflow.tracking import MlflowClient

    from recsynth.runtime.tracking import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(conf))
    experiment = client.get_experiment_by_name(conf.tracking.experiment)
    [run] = client.search_runs([experiment.experiment_id], f"tags.`recsynth.run_id` = '{run_id}'")
    return client, run


def test_synthetic_behavior_is_published_with_versions(spark, gold_lake, published):
    conf, lake = gold_lake
    record = published
    assert record.status == "succeeded"
    synthetic = lake.read(T.SYNTHETIC_BEHAVIOR)
    quality = lake.read(T.SYNTHETIC_QUALITY).head()
    assert synthetic.count() == record.rows_out == quality["synthetic_rows"]
    # calibrated: a stratum keeps at most the training people's share of it, and one no training row is in is never
    # published (rows_multiplier 1.0: the real shares of as many rows as trained on)
    everyone = lake.read(T.GOLD_BEHAVIOR)
    behavior = learned_rows(everyone, conf.synth, lake.read(T.GOLD_SPLITS), conf.synth_periods,
                            lake.read(T.SILVER_ITEMS))  # no test period
    assert 0 < behavior.count() < everyone.count()
    train, _ = split_by_person(split_by_person(behavior, conf.synth.holdout_fraction)[0], conf.synth.validation_fraction,
                               salt="validation")
    by = conf.synth.calibration.by
    real, published = stratum_counts(train, by), stratum_counts(synthetic, by)
    assert train.count() == record.rows_in and set(published) <= set(real), (real, published)
    # twice the rows are generated: none of the strata is published above its real share (a 2-epoch GAN writes some
    # far below it, the log names them)
    assert all(rows < real[s] + 4 * real[s] ** 0.5 + 1 for s, rows in published.items()), (real, published)
    first = synthetic.head()
    assert first["model_version"] == record.run_id and first["training_data_version"] == lake.version(T.GOLD_BEHAVIOR)
    assert "user_id" not in synthetic.columns and "session_id" not in synthetic.columns
    assert dict(synthetic.dtypes)["n_events"] == "bigint" and dict(synthetic.dtypes)["purchased"] == "boolean"
    assert synthetic.filter(F.col("synthetic_id").startswith("syn-")).count() == synthetic.count()
    assert quality["model_version"] == record.run_id and quality["gates_passed"]
    assert quality["quality_overall"] == pytest.approx((quality["column_shapes"] + quality["pair_trends"]) / 2)
    assert quality["efficacy_auc_ratio"] == pytest.approx(quality["efficacy_synthetic_auc"] / quality["efficacy_real_auc"])
    # every identity holds in every published row: derived after sampling, not learned
    assert quality["constraint_validity"] == 1.0
    for condition in conf.synth.constraints:
        assert synthetic.where(f"NOT coalesce({condition}, false)").count() == 0, condition
    report = Path(quality["report_uri"]).read_text()
    assert "<img" in report and "pair trends" in report.lower() and record.run_id in report and "Rare shares" in report
    fitted, weights, params, meta = models.load(models.model_uri(lake.root, record.run_id))
    assert meta["training_data_version"] == lake.version(T.GOLD_BEHAVIOR) and len(meta["history"]) == params.epochs
    # n_events is derived, not learned; n_items, duration_s and max_price are learned as their helpers, which are
    # never published; a count with few values is a category
    assert "n_events" not in fitted.numeric_columns()
    assert meta["derived"] == [list(rule) for rule in conf.synth.derived.items()]  # in order: a rule reads earlier ones
    helpers = {"items_share", "seconds_per_step", "price_spread"}
    assert meta["learned_as"] == conf.synth.learned_as and set(conf.synth.learned_as) == helpers
    assert set(meta["kinds"]) == set(conf.synth.continuous) - {"n_events", "n_items", "duration_s", "max_price"} | helpers
    assert meta["kinds"]["n_purchases"] == "discrete" and not helpers & set(synthetic.columns)
    assert meta["calibration"]["drawn"] == 3 * record.rows_in == 3 * meta["calibration"]["wanted"]  # oversample 3
    assert set(meta["calibration"]["gaps"]) == {"_stratum", *map(marginal_name, conf.synth.calibration.marginal_columns())}
    topped_up = {tuple(sorted(c.split("=")[0] for c in label.split(","))) for label in meta["calibration"]["filled"]}
    assert topped_up <= {tuple(sorted(entry)) for entry in conf.synth.calibration.fill_columns()}  # those topped up, if any
    scores = [entry["validation_quality"] for entry in meta["history"]]  # the validation people's column shapes
    assert weights and len(scores) == params.epochs and meta["best_epoch"] == scores.index(max(scores)) + 1
    assert [c.name for c in fitted.categorical if not c.numeric] == list(conf.synth.categorical)


def test_training_is_tracked_in_mlflow_and_checkpoints_are_cleared(gold_lake, published):
    conf, lake = gold_lake
    client, run = mlflow_run(conf, published.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["training_data_version"] == str(lake.version(T.GOLD_BEHAVIOR))
    assert run.data.tags["model_version"] == published.run_id and run.data.tags["gates"] == "passed"
    assert run.data.params["epochs"] == str(conf.synth.gan.epochs)
    assert {"column_shapes", "membership_auc", "dcr_ratio", "exact_copy_share"} <= set(run.data.metrics)
    losses = client.get_metric_history(run.info.run_id, "generator_loss")
    assert sorted(m.step for m in losses) == list(range(1, conf.synth.gan.epochs + 1))  # one point per epoch, live
    assert not list((Path(lake.root) / "checkpoints" / "gan").glob("*"))  # published: the model is the durable copy


def test_conditional_sampling_from_the_published_model(spark, gold_lake, published):
    conf, lake = gold_lake
    job = sample_job(120, {"purchased": "true"}, None, seed=5)
    first = run_job(job, spark, conf, lake)
    again = run_job(job, spark, conf, lake)  # same model, condition, seed: replaces its own rows
    other = run_job(sample_job(30, {"source": "retailrocket"}, published.run_id, seed=5), spark, conf, lake)
    assert (first.status, again.status, other.status) == ("succeeded",) * 3
    samples = lake.read(T.SYNTHETIC_SAMPLES)
    purchases = samples.filter("condition = 'purchased=true'")
    assert purchases.count() == first.rows_out == again.rows_out <= 120  # less any equal to a rare real session
    assert purchases.filter("purchased").count() == purchases.count() > 0
    for condition in conf.synth.constraints:  # derived in the model's order, as in synthetic.behavior
        assert samples.where(f"NOT coalesce({condition}, false)").count() == 0, condition
    assert samples.filter("condition = 'source=retailrocket'").count() == other.rows_out <= 30
    assert {r["model_version"] for r in samples.select("model_version").distinct().collect()} == {published.run_id}
    one = run_job(sample_job(1, {"source": "retailrocket"}, None, seed=6), spark, conf, lake)  # fewer rows than partitions
    assert one.rows_out == lake.read(T.SYNTHETIC_SAMPLES).filter("condition = 'source=retailrocket' AND sample_seed = 6").count() == 1

    with pytest.raises(JobFailed, match="did not learn that value"):
        run_job(sample_job(10, {"purchased": "maybe"}, None, seed=5), spark, conf, lake)
    with pytest.raises(JobFailed, match="basket=...: not a categorical column of the model, nor one with a null or zero"):
        run_job(sample_job(10, {"basket": "1"}, None, seed=5), spark, conf, lake)
    with pytest.raises(JobFailed, match="passed the privacy gates"):
        run_job(sample_job(10, {}, "synthesize-nope", seed=5), spark, conf, lake)


def test_a_run_failing_every_gate_publishes_nothing_and_names_each_failure(spark, gold_lake, published):
    """One run fails all the gates at once (a GAN run each would cost minutes): quality below an
    impossible bar; a membership AUC above 0; without the rule that derives n_events the GAN has to
    learn the sum, and breaks it; a rule that zeroes carts loses every cart session. The run is
    refused with every failure named, nothing is published, and the failed run says why in
    ops.job_runs and in MLflow."""
    conf, lake = gold_lake
    real = lake.read(T.GOLD_BEHAVIOR)
    assert real.where("n_carts > 0").count() > 0
    before = lake.versions([T.SYNTHETIC_BEHAVIOR, T.SYNTHETIC_QUALITY])
    derived = {c: e for c, e in conf.synth.derived.items() if c != "n_events"} | {"n_carts": "n_carts * 0"}
    quality = conf.synth.quality.model_copy(update={
        "min_overall": 1.0, "rare_shares": {"cart": RareShare(where="n_carts > 0", within=(0.5, 2.0))}})
    privacy = conf.synth.privacy.model_copy(update={"max_membership_auc": 0.0})
    broken = conf.model_copy(update={"synth": conf.synth.model_copy(update={
        "derived": derived, "quality": quality, "privacy": privacy})})
    with pytest.raises(JobFailed, match="gate failed") as failed:
        run_job(JOBS["synthesize"], spark, broken, lake, force=True)
    message = str(failed.value)
    assert re.search(r"quality 0\.\d+ .* < 1\.0", message), message
    assert "membership inference AUC" in message
    assert "constraint 'n_events = n_views + n_carts + n_purchases' fails in" in message
    assert "rare share cart (n_carts > 0): 0.0000% of synthetic rows" in message
    assert "purchased = (n_purchases > 0)" not in message  # that rule still holds: derived
    assert lake.versions([T.SYNTHETIC_BEHAVIOR, T.SYNTHETIC_QUALITY]) == before
    failed_run = lake.read(T.OPS_JOB_RUNS).filter("job = 'synthesize' AND status = 'failed'").orderBy(
        F.desc("started_at")).head()
    assert "membership inference AUC" in failed_run["message"]
    _, run = mlflow_run(conf, failed_run["run_id"])
    assert run.info.status == "FAILED" and "membership" in run.data.tags["gates"]


@pytest.mark.extended
def test_a_killed_run_resumes_from_its_last_checkpoint(gold_lake, gold_overrides, tmp_path):
    """The whole job process (driver, Spark, Horovod ranks) is killed mid-training; the next
    run continues from rank 0's last checkpoint instead of starting again."""
    conf, lake = gold_lake
    gan = ("synth.gan={embedding_dim: 16, generator_dims: [32, 32], discriminator_dims: [32, 32], pac: 4,"
           " batch_size: 100, epochs: %d, patience: 0, learning_rate: 0.0002, gradient_penalty: 10.0}")

    def command(epochs):
        overrides = [*gold_overrides, f"lake.metastore_dir={tmp_path}/metastore", gan % epochs]  # own Derby: own JVM
        return [sys.executable, "-m", "recsynth.cli", "--conf-dir", str(ROOT / "conf"),
                *[f"--set={o}" for o in overrides], "synthesize", "--force"]

    environment = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    checkpoints_root = Path(lake.root) / "checkpoints" / "gan"
    shutil.rmtree(checkpoints_root, ignore_errors=True)  # left by the failed-gate runs above
    with open(tmp_path / "killed.log", "w") as log:
        killed = subprocess.Popen(command(5000), stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    deadline = time.monotonic() + 600
    while not any((checkpoints.load_latest(str(d)) or checkpoints.Checkpoint(0, {}, [])).epoch >= 3
                  for d in checkpoints_root.glob("*")):
        assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    [folder] = checkpoints_root.glob("*")
    reached = settled_epoch(str(folder))

    resumed = subprocess.run(command(reached + 2), capture_output=True, text=True, env=environment, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    latest = lake.read(T.SYNTHETIC_QUALITY).orderBy(F.desc("measured_at")).head()
    client, run = mlflow_run(conf, latest["run_id"])
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "generator_loss"))
    assert steps == [reached + 1, reached + 2]  # only the epochs after the checkpoint were trained
    _, _, _, meta = models.load(models.model_uri(lake.root, latest["model_version"]))
    assert len(meta["history"]) == reached + 2


CANARY_USER = "990000001"


def plant_canary(raw: Path) -> None:
    """The sample slice plus one distinctive real customer, at the slice's first hour (a training
    period): 11 views, 2 carts and a purchase."""
    shutil.copytree(DATA / "retailrocket", raw)
    events = (raw / "events.csv").read_text().splitlines()
    start = min(int(line.split(",")[0]) for line in events[1:])
    items = [line.split(",")[3] for line in events[1:12]]
    lines = [f"{start + 60_000 * k},{CANARY_USER},view,{item}," for k, item in enumerate(items)]
    lines += [f"{start + 60_000 * (11 + k)},{CANARY_USER},addtocart,{items[k]}," for k in range(2)]
    lines.append(f"{start + 60_000 * 13},{CANARY_USER},transaction,{items[0]},990001")
    (raw / "events_canary.csv").write_text("\n".join([events[0], *lines]) + "\n")


@pytest.fixture(scope="module")
def canary_lake(spark, tmp_path_factory):
    """(conf, lake): the ETL jobs run on the slice with the canary planted in its raw events; the
    synthesize gates open (what they measure is tested elsewhere), the person-level clickstream
    gates too."""
    base = tmp_path_factory.mktemp("canary")
    raw = base / "raw"
    plant_canary(raw)
    no_gates = "synth.privacy={max_excess_copy_share: 1.0, min_dcr_ratio: 0.0, max_membership_auc: 1.0, query_rows: 500}"
    return gold_lake_under(spark, model_job_overrides(
        base, *SMALL_GAN, f"sources.retailrocket.events.path={raw}/events*.csv",
        f"sources.retailrocket.category_tree.path={raw}/category_tree.csv", no_gates,
        "clickstream.privacy.max_membership_auc=1.0", "clickstream.privacy.max_excess_ngram_share=1.0",
        # the chain: it replays only moves min_people took; in a lake this small the network's
        # stand-ins may draw any catalogue item of a category, a canary's among them
        "clickstream.generator=markov", "clickstream.sessions=real"))


def test_planted_canaries_never_reach_synthetic_tables(spark, canary_lake, monkeypatch):
    """Even a generator that memorised its training data word for word (the worst case, put in
    place of the GAN's sampler) releases no rare real session and no real id."""
    conf, lake = canary_lake
    columns = [*conf.synth.continuous, *conf.synth.categorical]
    behavior = lake.read(T.GOLD_BEHAVIOR)
    canary = behavior.filter(F.col("user_id") == pseudonym(f"retailrocket:{CANARY_USER}", load_key(conf.privacy.pseudonym)))
    assert canary.count() == 1 and canary.first()["n_purchases"] == 1

    def memorised(spark, generator_weights, fitted, params, rows, partitions, seed, condition=None):
        learned = [c.name for c in fitted.continuous] + [c.name for c in fitted.categorical]  # helpers too
        return with_helpers(behavior, conf.synth.learned_as).select(
            F.concat(F.lit("syn-"), F.monotonically_increasing_id().cast("string")).alias("synthetic_id"), *learned,
            F.lit(seed).alias("sample_seed"))

    monkeypatch.setattr(sampling, "synthesize", memorised)  # what the job and `sample` draw from
    # calibration off: every memorised row reaches the privacy check, none is drawn away
    uncalibrated = conf.model_copy(update={"synth": conf.synth.model_copy(update={
        "calibration": conf.synth.calibration.model_copy(update={"by": [], "marginals": []})})})
    record = run_job(JOBS["synthesize"], spark, uncalibrated, lake)
    published = lake.read(T.SYNTHETIC_BEHAVIOR)
    def released(real):  # published rows equal to a row of `real` on every column, nulls included
        same_row = [F.col(f"p.{c}").eqNullSafe(F.col(f"r.{c}")) for c in columns]
        return published.alias("p").join(real.alias("r"), same_row, "left_semi").count()

    assert released(canary) == 0
    support = behavior.groupBy(*columns).count()
    assert released(support.where("count < 5")) == 0
    assert published.count() == support.where("count >= 5").agg(F.sum("count")).first()[0] > 0  # common ones stay
    quality = lake.read(T.SYNTHETIC_QUALITY).first()
    assert quality["rare_copies_dropped"] == behavior.count() - published.count() > 0  # every generated row is real here
    assert record.rows_out == published.count()

    silver = lake.read(T.SILVER_EVENTS)
    real_ids = {r[0] for r in silver.select("user_id").union(silver.select("session_id")).union(
        behavior.select("user_id")).union(behavior.select("session_id")).distinct().collect()}  # and their pseudonyms
    catalogue = lake.read(T.SILVER_ITEMS).select("item_id").union(lake.read(T.SILVER_ITEMS).select("category_id"))
    real_ids -= {r[0] for r in catalogue.distinct().collect()}  # a visitor id can equal an item id
    for name in (T.SYNTHETIC_BEHAVIOR, T.SYNTHETIC_QUALITY):
        table = lake.read(name)
        for column in (f.name for f in table.schema.fields if f.dataType.simpleString() == "string"):
            values = {r[0] for r in table.select(column).distinct().collect()}
            assert not values & real_ids, (name, column)


def test_a_planted_canarys_moves_never_reach_synthetic_events(spark, canary_lake):
    """The canary planted in the raw events reaches gold.splits' fit periods, among the people the
    clickstream generator learns from, and of the moves from one item to the next that only the
    canary took, none is in synthetic.events: the chain replays no move fewer than
    clickstream.min_people people took."""
    conf, lake = canary_lake
    user = pseudonym(f"retailrocket:{CANARY_USER}", load_key(conf.privacy.pseudonym))
    fit = lake.read(T.GOLD_SPLITS).where(F.col("split").isin(*conf.recs.fit_splits))
    assert fit.where(F.col("user_id") == user).count() == 14   # 11 views, 2 carts, a purchase
    learnt_from, _ = split_by_person(fit, conf.clickstream.holdout_fraction)   # the job's own draw
    assert learnt_from.where(F.col("user_id") == user).count() == 14   # a training person, not the holdout

    def moves(events):   # (user_id, item, next item) of consecutive events of a session, items differing
        after = F.lead("item_id").over(Window.partitionBy("session_id").orderBy("event_time", "item_id"))
        return events.select("user_id", "item_id", after.alias("next_id")).where(
            F.col("next_id").isNotNull() & (F.col("item_id") != F.col("next_id"))).select("user_id", "item_id", "next_id")

    real = moves(fit)
    canary_moves = real.where(F.col("user_id") == user).select("item_id", "next_id").distinct().join(
        real.where(F.col("user_id") != user).select("item_id", "next_id"), ["item_id", "next_id"], "left_anti")
    # its 11 items viewed in turn (10 moves), then the first two carted and the first bought (two
    # more: 10572 -> 355908 and 248676 -> 355908), taken by nobody else
    assert canary_moves.count() == 12
    record = run_job(JOBS["synthesize_events"], spark, conf, lake)
    assert record.status == "succeeded", record.message
    synthetic = moves(lake.read(T.SYNTHETIC_EVENTS))
    assert synthetic.count() > 0
    assert synthetic.join(canary_moves, ["item_id", "next_id"], "left_semi").count() == 0
