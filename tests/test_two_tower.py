"""The two-tower retrieval model: its features on tiny hand-made frames (exact expectations), and
two real Horovod ranks training it on planted data, where it beats popularity; resume from a
checkpoint."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from conftest import at_hour as at
from recsynth.errors import RecommenderError
from recsynth.rec import features as feat
from recsynth.rec.baselines import popularity
from recsynth.rec.metrics import ranking_metrics
from recsynth.rec.topn import top_n
from recsynth.rec.two_tower import (
    TwoTowerParams, build_towers, in_batch_loss, item_vectors, load_model, params_dict, save_model, train_rank,
    user_vectors,
)
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import run_on_ranks
from recsynth.train.shards import check_shardable, current_files, read_shard

pytestmark = [pytest.mark.spark]

EVENTS = "user_id string, item_id string, event_time timestamp"
ITEM_FEATURES = "item_id string, category_l1 string, category_l2 string, brand string, price_band int"
# --- features on tiny frames -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(spark):
    events = spark.createDataFrame([
        ("u1", "a", at(1)), ("u1", "b", at(2)), ("u1", "a", at(3)), ("u1", "c", at(4)),  # a revisited after b
        ("u2", "b", at(1)), ("u2", "d", at(2)), ("u2", "b", at(5)),
    ], EVENTS)
    items = spark.createDataFrame([
        ("a", "x", "x/1", "p", 1), ("b", "x", "x/1", "q", 1), ("c", "y", "y/1", "q", 2),
        ("d", None, None, "q", None), ("e", "z", "z/1", None, 2),
    ], ITEM_FEATURES)
    vocabularies = feat.build_vocabularies(events, items, max_items=2, max_values=1)
    return events, items, vocabularies


def test_vocabularies_are_bounded_with_padding_and_oov(spark, tiny):
    _, _, vocabularies = tiny
    # b has 2 users, a/c/d one each: the tie goes to the smallest id; c and d are out of vocabulary
    assertDataFrameEqual(vocabularies.items, spark.createDataFrame([("b", 2), ("a", 3)], "item_id string, item_idx int"))
    value = "value string, index int"
    assertDataFrameEqual(vocabularies.features["category_l1"], spark.createDataFrame([("x", 2)], value))
    assertDataFrameEqual(vocabularies.features["brand"], spark.createDataFrame([("q", 2)], value))
    assertDataFrameEqual(vocabularies.features["price_band"], spark.createDataFrame([("1", 2)], value))  # tie 1/2: "1"
    assert vocabularies.sizes() == {"item": 4, "category_l1": 3, "category_l2": 3, "brand": 3, "price_band": 3}


def test_item_feature_indices_map_unknown_to_oov_and_null_to_padding(spark, tiny):
    _, items, vocabularies = tiny
    expected = spark.createDataFrame([
        ("a", 3, 2, 2, 1, 2), ("b", 2, 2, 2, 2, 2), ("c", 1, 1, 1, 2, 1),
        ("d", 1, 0, 0, 2, 0), ("e", 1, 1, 1, 0, 1),  # e has no event: OOV item, features still known
    ], "item_id string, item_idx int, category_l1_idx int, category_l2_idx int, brand_idx int, price_band_idx int")
    assertDataFrameEqual(feat.item_feature_indices(items, vocabularies), expected)


def test_training_examples_see_only_earlier_items(spark, tiny):
    events, items, vocabularies = tiny
    examples = feat.training_examples(events, vocabularies, feat.item_feature_indices(items, vocabularies), 2)
    assert list(examples.columns) == ["user_id", "item_id", "history", "item_idx", "category_l1_idx", "category_l2_idx",
                                      "brand_idx", "price_band_idx", "item_key", "log_q"]
    got = examples.drop("item_key", "log_q")
    expected = spark.createDataFrame([
        # u1's sequence is a, b, c (a's revisit at 3 does not move it); most recent first, 0-padded
        ("u1", "a", [0, 0], 3, 2, 2, 1, 2), ("u1", "b", [3, 0], 2, 2, 2, 2, 2), ("u1", "c", [2, 3], 1, 1, 1, 2, 1),
        ("u2", "b", [0, 0], 2, 2, 2, 2, 2), ("u2", "d", [2, 0], 1, 0, 0, 2, 0),
    ], "user_id string, item_id string, history array<int>, item_idx int, category_l1_idx int, category_l2_idx int, "
       "brand_idx int, price_band_idx int")
    assertDataFrameEqual(got, expected)
    log_q = {r["item_id"]: r["log_q"] for r in examples.select("item_id", "log_q").distinct().collect()}
    assert log_q == pytest.approx({"a": math.log(1 / 5), "b": math.log(2 / 5), "c": math.log(1 / 5), "d": math.log(1 / 5)})
    keys = examples.select("item_id", "item_key").distinct()
    assert keys.count() == 4 and keys.select("item_key").distinct().count() == 4


def test_user_histories_are_the_next_examples_history(spark, tiny):
    events, _, vocabularies = tiny
    schema = "user_id string, history array<int>"
    assertDataFrameEqual(feat.user_histories(events, vocabularies, 3),
                         spark.createDataFrame([("u1", [1, 2, 3]), ("u2", [1, 2, 0])], schema))
    assertDataFrameEqual(feat.user_histories(events, vocabularies, 2, before=at(2)),
                         spark.createDataFrame([("u1", [3, 0]), ("u2", [2, 0])], schema))


def test_bad_inputs_name_the_problem(spark, tiny):
    events, items, vocabularies = tiny
    with pytest.raises(RecommenderError, match="max_items"):
        feat.item_vocabulary(events, 0)
    with pytest.raises(RecommenderError, match=r"events lacks column\(s\) \['event_time'\]"):
        feat.training_examples(events.drop("event_time"), vocabularies, feat.item_feature_indices(items, vocabularies), 2)
    with pytest.raises(RecommenderError, match="temperature"):
        TwoTowerParams(temperature=0)


def test_petastorm_reads_the_history_as_a_matrix(spark, tiny, tmp_path):
    events, items, vocabularies = tiny
    examples = feat.training_examples(events, vocabularies, feat.item_feature_indices(items, vocabularies), 2)
    examples.select(*feat.MODEL_INPUTS).repartition(2).write.parquet(str(tmp_path / "examples"))
    files = current_files(spark.read.parquet(str(tmp_path / "examples")))
    shards = [read_shard(files, rank, 2, list(feat.MODEL_INPUTS)) for rank in range(2)]
    histories = np.concatenate([s["history"] for s in shards])
    assert histories.shape == (5, 2) and histories.dtype == np.int32
    assert sorted(map(tuple, histories.tolist())) == [(0, 0), (0, 0), (2, 0), (2, 3), (3, 0)]


def test_in_batch_loss_masks_duplicates_and_applies_logq():
    import tensorflow as tf

    users = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    items = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    keys = tf.constant([7, 8], dtype=tf.int64)
    plain = float(in_batch_loss(users, items, keys, tf.constant([0.0, 0.0]), 1.0))
    assert plain == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)
    corrected = float(in_batch_loss(users, items, keys, tf.constant([0.0, math.log(0.5)]), 1.0))
    # row 0's negative (item 1) gains log 2, row 1's positive does too
    expected = (math.log(1 + 2 * math.exp(-1)) + math.log(1 + math.exp(-1 - math.log(2)))) / 2
    assert corrected == pytest.approx(expected, rel=1e-5)
    duplicate = float(in_batch_loss(users, items, tf.constant([7, 7], dtype=tf.int64), tf.constant([0.0, 0.0]), 1.0))
    assert duplicate == pytest.approx(0.0, abs=1e-6)


# --- two Horovod ranks on planted data ---------------------------------------------------------
GROUPS, USERS_PER_GROUP, BLOCK, POPULAR = 4, 12, 12, 6
POPULAR_SHARE = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
CUTOFF = at(1000)
K = 10
PARAMS = TwoTowerParams(embedding_dim=16, feature_dim=4, tower_dims=(32,), output_dim=16, history_length=8,
                        batch_size=32, epochs=30, learning_rate=0.01, temperature=0.1, seed=1)


def planted(spark, seed: int = 7):
    """Users of 4 groups, each with its own block of 12 items, plus 6 items popular with everyone.
    Train: 6 items of the user's block and each popular item with its share; test (after
    CUTOFF): 3 other items of the block and, now and then, a popular item not seen before."""
    rng = np.random.default_rng(seed)
    items = [(f"g{g}-{j:02d}", f"c{g}", f"c{g}/s{j % 2}", f"b{g}", g % 3) for g in range(GROUPS) for j in range(BLOCK)]
    items += [(f"pop-{j}", "popular", "popular/all", "bp", 1) for j in range(POPULAR)]
    train, test = [], []
    for g in range(GROUPS):
        for u in range(USERS_PER_GROUP):
            user = f"user-{g}-{u:02d}"
            block = [f"g{g}-{j:02d}" for j in rng.permutation(BLOCK)]
            liked = [f"pop-{j}" for j in range(POPULAR) if rng.random() < POPULAR_SHARE[j]]
            history = block[:6] + liked
            for hour, item in zip(rng.permutation(len(history)), history):
                train.append((user, item, at(int(hour))))
            later = block[6:9] + [f"pop-{j}" for j in range(POPULAR) if f"pop-{j}" not in liked and rng.random() < 0.3][:1]
            test += [(user, item, CUTOFF + dt.timedelta(hours=h)) for h, item in enumerate(later)]
    return (spark.createDataFrame(train, EVENTS), spark.createDataFrame(test, EVENTS),
            spark.createDataFrame(items, ITEM_FEATURES))


def _train(spark, files, sizes, params, **options):
    results = run_on_ranks(spark, train_rank, num_proc=2, kwargs={
        "files": files, "params": params_dict(params), "vocab_sizes": sizes, **options})
    return next(r for r in results if r["rank"] == 0), results


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """One epoch with checkpoints, then the same run continued to PARAMS.epochs (two Horovod runs)."""
    base = tmp_path_factory.mktemp("two_tower")
    train, test, items = planted(spark)
    vocabularies = feat.build_vocabularies(train, items, max_items=1000, max_values=100)
    indices = feat.item_feature_indices(items, vocabularies).cache()
    examples = feat.training_examples(train, vocabularies, indices, PARAMS.history_length)
    examples.select(*feat.MODEL_INPUTS).repartition(4).write.parquet(str(base / "examples"))
    files = current_files(spark.read.parquet(str(base / "examples")))
    check_shardable(files, 2, "examples")
    sizes = vocabularies.sizes()
    uri = str(base / "checkpoints")
    first, _ = _train(spark, files, sizes, replace(PARAMS, epochs=1), checkpoint_uri=uri)
    after_first = checkpoints.load_latest(uri)
    chief, results = _train(spark, files, sizes, PARAMS, checkpoint_uri=uri)
    yield {"train": train, "test": test, "items": items, "vocabularies": vocabularies, "indices": indices,
           "examples": examples.count(), "sizes": sizes, "first": first, "after_first": after_first, "chief": chief,
           "results": results, "uri": uri, "base": base}
    indices.unpersist()


@pytest.mark.horovod
@pytest.mark.slow
def test_training_resumes_from_the_last_checkpoint(trained):
    first, chief, uri = trained["first"], trained["chief"], trained["uri"]
    assert first["resumed_from_epoch"] == 0 and len(first["history"]) == 1 and trained["after_first"].epoch == 1
    assert all(np.array_equal(a, b) for a, b in zip(trained["after_first"].arrays["model"], first["weights"], strict=True))
    assert chief["resumed_from_epoch"] == 1 and chief["history"][:1] == first["history"]
    assert len(chief["history"]) == PARAMS.epochs and chief["history"][-1] < chief["history"][0]
    assert [e["epoch"] for e in progress.read(uri)] == list(range(1, PARAMS.epochs + 1))
    saved = checkpoints.load_latest(uri)
    assert saved.epoch == PARAMS.epochs
    assert all(np.array_equal(a, b) for a, b in zip(saved.arrays["model"], chief["weights"], strict=True))
    assert sum(r["rows"] for r in trained["results"]) == trained["examples"]
    assert len({r["steps_per_epoch"] for r in trained["results"]}) == 1


@pytest.mark.horovod
@pytest.mark.slow
def test_two_tower_beats_popularity_on_planted_data(spark, trained):
    train, test, chief = trained["train"], trained["test"], trained["chief"]
    histories = feat.user_histories(train, trained["vocabularies"], PARAMS.history_length)
    users = user_vectors(spark, chief["weights"], PARAMS, histories)
    catalogue = item_vectors(spark, chief["weights"], PARAMS, trained["indices"])
    seen = train.select("user_id", "item_id")
    model = top_n(users, catalogue, seen, K)
    baseline = popularity(train.withColumn("weight", F.lit(1.0)), test.select("user_id"), K)
    truth = test.select("user_id", "item_id")
    n_items = GROUPS * BLOCK + POPULAR
    ours = ranking_metrics(model, truth, K, catalogue_size=n_items)
    theirs = ranking_metrics(baseline, truth, K, catalogue_size=n_items)
    print(f"two-tower: recall@{K} {ours['recall_at_k']:.3f} ndcg@{K} {ours['ndcg_at_k']:.3f}; "
          f"popularity: recall@{K} {theirs['recall_at_k']:.3f} ndcg@{K} {theirs['ndcg_at_k']:.3f}")
    assert ours["users"] == theirs["users"] == GROUPS * USERS_PER_GROUP
    assert ours["recall_at_k"] > theirs["recall_at_k"] + 0.2
    assert ours["ndcg_at_k"] > theirs["ndcg_at_k"] + 0.2

    # the model round-trips through its versioned store, vocabularies included
    uri = str(trained["base"] / "model")
    save_model(uri, chief["weights"], PARAMS, trained["vocabularies"], trained["sizes"], {"epochs": PARAMS.epochs})
    weights, params, sizes, vocabularies, meta = load_model(spark, uri)
    assert params == PARAMS and sizes == trained["sizes"] and meta == {"epochs": PARAMS.epochs}
    assert all(np.array_equal(a, b) for a, b in zip(weights, chief["weights"], strict=True))
    assertDataFrameEqual(vocabularies.items, trained["vocabularies"].items)
    towers = build_towers(params, sizes)
    towers.model.set_weights(weights)
