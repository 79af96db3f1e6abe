"""The sequence model: its inputs on tiny hand-made frames (exact), its network's repeat scores,
source masks and both losses, and two real Horovod ranks learning a planted order that the user's
own items and item-kNN cannot see (a walk round a cycle: which way it goes is only in the order),
stopping early on validation users."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pyspark.sql import functions as F

from conftest import at_hour as at
from recsynth.errors import RecommenderError
from recsynth.etl.gold import interactions
from recsynth.rec import sequence as seq
from recsynth.rec import sequence_features as sf
from recsynth.rec.metrics import ranking_metrics
from recsynth.rec.recommenders import History, ItemKnn, Recent
from recsynth.tasks.recommend_sequence import sequence_lists
from recsynth.train.launcher import run_on_ranks
from recsynth.train.shards import current_files

pytestmark = [pytest.mark.spark]

EVENTS = "source string, user_id string, item_id string, event_type string, event_time timestamp"
# --- inputs on tiny frames -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(spark):
    events = spark.createDataFrame([
        ("shop", "u1", "a", "view", at(0)), ("shop", "u1", "a", "view", at(1)),   # a reload: kept once
        ("shop", "u1", "b", "view", at(2)), ("shop", "u1", "b", "cart", at(3)),   # same item, new type: kept
        ("shop", "u1", "c", "view", at(4)), ("shop", "u1", "zz", "view", at(5)),  # zz: not in the vocabulary
        ("shop", "u1", "a", "purchase", at(6)),
        ("store", "u2", "d", "purchase", at(0)),
    ], EVENTS)
    vocabulary = spark.createDataFrame([("a", 2), ("b", 3), ("c", 4), ("d", 5)], "item_id string, item_idx int")
    return sf.user_sequences(events, vocabulary, sf.source_indices(["store", "shop"]))


def test_sequences_keep_every_event_but_identical_neighbours(tiny):
    rows = {r["user_id"]: (r["source_idx"], [(t["item"], t["type"]) for t in r["_sequence"]]) for r in tiny.collect()}
    assert rows == {"u1": (0, [(2, 1), (3, 1), (3, 2), (4, 1), (1, 1), (2, 3)]), "u2": (1, [(5, 3)])}


def test_training_windows_overlap_by_one_and_pad_on_the_left(tiny):
    windows = sorted((r["items"], r["types"], r["source_idx"]) for r in sf.training_windows(tiny, 2).collect())
    # u1's 6 tokens -> ceil(5 / 2) = 3 windows of 3, cut from the end; u2 has one token: no target
    assert windows == [([0, 2, 3], [0, 1, 1], 0), ([3, 3, 4], [1, 2, 1], 0), ([4, 1, 2], [1, 1, 3], 0)]
    counts = {r["item_idx"]: r["n"] for r in sf.target_counts(sf.training_windows(tiny, 2)).collect()}
    assert counts == {2: 1, 3: 2, 4: 1}   # OOV (1) is never a target


def test_serving_histories_are_the_last_events(tiny):
    rows = {r["user_id"]: (r["items"], r["types"]) for r in sf.serving_histories(tiny, 4).collect()}
    assert rows == {"u1": ([3, 4, 1, 2], [2, 1, 1, 3]), "u2": ([0, 0, 0, 5], [0, 0, 0, 3])}


# --- the network --------------------------------------------------------------------------------
SMALL = seq.SequenceParams(max_length=6, embedding_dim=8, heads=2, blocks=1, dropout=0.0, negatives=4,
                           full_softmax_max_items=100)


def test_repeat_scores_sit_on_the_first_slot_of_each_seen_item():
    network = seq.SequenceNetwork(SMALL, 8)
    repeat = network.repeat_scores(np.array([[0, 0, 2, 3, 2, 1]], dtype=np.int32)).numpy()[0]   # (t, j)
    nonzero = {(int(t), int(j)) for t, j in zip(*np.nonzero(repeat))}
    # slot 2 (item 2) from t = 2 on, slot 3 (item 3) from t = 3 on; slot 4 repeats item 2, slot 5 is OOV
    assert nonzero == {(t, 2) for t in range(2, 6)} | {(t, 3) for t in range(3, 6)}
    assert repeat[4, 2] != repeat[3, 2]   # item 2 used again at t = 4: its features changed


@pytest.mark.parametrize("generator", [False, True])
def test_a_network_built_from_anothers_weights_computes_the_same_states(generator):
    """Scoring builds the network again on each executor from the trained weights: every part of
    the encoder - the position table included - must be in those weights."""
    params = dataclasses.replace(SMALL, generator=generator)
    trained, rebuilt = seq.SequenceNetwork(params, 8), seq.SequenceNetwork(params, 8)
    rebuilt.set_weights([np.random.default_rng(n).normal(size=w.shape).astype(np.float32)
                         for n, w in enumerate(trained.get_weights())])
    trained.set_weights(rebuilt.get_weights())
    items = np.array([[0, 0, 2, 3, 2, 1], [0, 0, 0, 0, 0, 7]], dtype=np.int32)
    types = np.minimum(items, 1) * (4 if generator else 1)
    assert any(v.name.startswith("position_embedding") for v in trained.variables)
    assert np.array_equal(trained.encoder({seq.ITEMS: items, seq.TYPES: types}, training=False).numpy(),
                          rebuilt.encoder({seq.ITEMS: items, seq.TYPES: types}, training=False).numpy())


def test_other_sources_padding_and_oov_are_never_scored():
    network = seq.SequenceNetwork(SMALL, 6)
    item_sources = np.array([-1, -1, 0, 0, 1, 1], dtype=np.int32)
    items = np.array([[0, 0, 0, 0, 2, 3], [0, 0, 0, 0, 0, 4]], dtype=np.int32)
    scores = seq.full_scores(network, items, np.minimum(items, 1), np.array([0, 1]), item_sources)
    assert np.isneginf(scores[0, [0, 1, 4, 5]]).all() and np.isfinite(scores[0, [2, 3]]).all()
    assert np.isneginf(scores[1, [0, 1, 2, 3]]).all() and np.isfinite(scores[1, [4, 5]]).all()


@pytest.mark.parametrize("full_softmax_max_items,own_items_exact", [(100, False), (3, False), (3, True)])
@pytest.mark.parametrize("horizon", [1, 3])
def test_both_losses_are_finite_and_ignore_padding(full_softmax_max_items, own_items_exact, horizon):
    import tensorflow as tf

    params = seq.SequenceParams(**{**seq.params_dict(SMALL), "full_softmax_max_items": full_softmax_max_items,
                                   "horizon": horizon, "own_items_exact": own_items_exact})
    network = seq.SequenceNetwork(params, 6)
    windows = np.array([[0, 0, 0, 0, 0, 2, 3], [0, 0, 2, 3, 4, 5, 2]], dtype=np.int32)
    item_sources = tf.constant([-1, -1, 0, 0, 0, 0])
    log_q = tf.math.log(tf.constant([1e-9, 1e-9, 0.25, 0.25, 0.25, 0.25]))
    rng = tf.random.Generator.from_seed(0)
    loss = seq.sequence_loss(network, windows, np.minimum(windows, 1), np.array([0, 0]), item_sources, log_q, rng)
    assert np.isfinite(loss.numpy()) and loss.numpy() > 0
    # another event type on the padded slots: padding never counts
    types = np.where(windows == 0, 3, np.minimum(windows, 1))
    again = seq.sequence_loss(network, windows, types, np.array([0, 0]), item_sources, log_q, tf.random.Generator.from_seed(0))
    assert np.isclose(again.numpy(), loss.numpy())


def test_with_own_items_exact_the_sampled_loss_weighs_the_repeat_score_against_the_users_own_items():
    """A user who never repeats (2, 3, 4, 5, 6), negatives drawn only among items 6 and 7: no own
    item is ever sampled, so the plain sampled loss cannot see the repeat score (raising it by 100
    leaves the loss exactly as it was) and a trained repeat score grows unchecked. With
    `own_items_exact` the own items are candidates at every position, and the loss rises with it."""
    import tensorflow as tf

    windows = np.array([[0, 0, 2, 3, 4, 5, 6]], dtype=np.int32)
    item_sources = tf.constant([-1, -1, 0, 0, 0, 0, 0, 0])
    log_q = tf.math.log(tf.constant([1e-30, 1e-30, 1e-9, 1e-9, 1e-9, 1e-9, 0.5, 0.5]))
    rises = {}
    for exact in (False, True):
        params = seq.SequenceParams(**{**seq.params_dict(SMALL), "full_softmax_max_items": 3, "own_items_exact": exact})
        network = seq.SequenceNetwork(params, 8)
        loss = lambda: seq.sequence_loss(network, windows, np.minimum(windows, 1), np.array([0]), item_sources,  # noqa: E731
                                         log_q, tf.random.Generator.from_seed(0), training=False).numpy()
        before = loss()
        network.repeat_out.bias.assign(network.repeat_out.bias + 100.0)
        rises[exact] = loss() - before
    assert rises[False] == 0.0 and rises[True] > 50.0


def test_under_a_full_softmax_the_sampled_candidates_settings_neither_change_the_loss_nor_the_checkpoint_key():
    """Over 6 items with a full softmax, other negatives, thresholds, own items or logQ give the
    very same loss from the same weights, and so the same checkpoint key; past the threshold
    they are part of the key."""
    import tensorflow as tf

    windows = np.array([[0, 0, 0, 0, 0, 2, 3], [0, 0, 2, 3, 4, 5, 2]], dtype=np.int32)
    item_sources = tf.constant([-1, -1, 0, 0, 0, 0])
    log_q = tf.math.log(tf.constant([1e-9, 1e-9, 0.1, 0.2, 0.3, 0.4]))
    weights = seq.SequenceNetwork(SMALL, 6).get_weights()
    variants = [dataclasses.replace(SMALL, full_softmax_max_items=100),
                dataclasses.replace(SMALL, full_softmax_max_items=6, negatives=2, own_items_exact=True,
                                    logq_correction=False)]
    losses, keys = [], []
    for params in variants:
        network = seq.SequenceNetwork(params, 6)
        network.set_weights(weights)
        losses.append(seq.sequence_loss(network, windows, np.minimum(windows, 1), np.array([0, 0]), item_sources, log_q,
                                        tf.random.Generator.from_seed(0), training=False).numpy())
        keys.append(seq.checkpoint_params(params, 6))
    assert losses[0] == losses[1] and keys[0] == keys[1]
    assert seq.checkpoint_params(variants[0], 200) != seq.checkpoint_params(variants[1], 200)
    assert seq.checkpoint_params(variants[1], 200) == seq.params_dict(variants[1])


def test_a_longer_horizon_adds_the_following_items_as_targets():
    """Full softmax, horizon 2: the loss is the mean, over real positions t and h = 1, 2, of the
    cross-entropy of the item at t + h (computed here by hand from the network's logits)."""
    import tensorflow as tf

    windows = np.array([[0, 0, 2, 3, 4, 5, 2], [0, 3, 5, 1, 2, 3, 5]], dtype=np.int32)   # 1: OOV, never a target
    item_sources, log_q = tf.constant([-1, -1, 0, 0, 0, 0]), tf.zeros(6)
    params = seq.SequenceParams(**{**seq.params_dict(SMALL), "horizon": 2})
    network = seq.SequenceNetwork(params, 6)
    got = seq.sequence_loss(network, windows, np.minimum(windows, 1), np.array([0, 0]), item_sources, log_q,
                            tf.random.Generator.from_seed(0), training=False).numpy()
    items = windows[:, :-1]
    states = network.encoder({seq.ITEMS: items, seq.TYPES: np.minimum(items, 1)}, training=False)
    logits = network.candidate_logits(states, items, network.repeat_scores(items), tf.range(6)).numpy()[:, :, 2:]
    terms = [np.log(np.exp(logits[b, t]).sum()) - logits[b, t, windows[b, t + h] - 2]
             for b in range(2) for t in range(6) for h in (1, 2)
             if items[b, t] != 0 and t + h < 7 and windows[b, t + h] >= 2]
    assert len(terms) == 7 + 7   # row 0 from t = 2, row 1 from t = 1; no OOV target, nothing past the window
    assert np.isclose(got, np.mean(terms), rtol=1e-5)


def test_ndcg_counts_relevant_items_outside_the_vocabulary():
    scores = np.array([[0.0, 0.0, 3.0, 2.0, 1.0]])
    assert seq.ndcg_at_k(scores, np.array([[2, 0]]), np.array([1]), 2) == 1.0
    # two relevant items, one not in the vocabulary: the ideal counts both
    assert np.isclose(seq.ndcg_at_k(scores, np.array([[2, 0]]), np.array([2]), 2), 1.0 / (1.0 + 1.0 / np.log2(3)))


def test_bad_parameters():
    with pytest.raises(RecommenderError, match="multiple of heads"):
        seq.SequenceParams(embedding_dim=10, heads=3)
    with pytest.raises(RecommenderError, match="unknown sequence parameter"):
        seq.params_from_dict({"layers": 2})


# --- two Horovod ranks on a planted order -------------------------------------------------------
CYCLE, WALK, USERS, K = 24, 6, 480, 5
PLANTED = seq.SequenceParams(max_length=8, embedding_dim=16, heads=2, blocks=1, dropout=0.0, batch_size=32,
                             learning_rate=0.01, max_epochs=40, patience=3, negatives=16, full_softmax_max_items=10,
                             k=K, seed=3)


def walks(spark, users: int, seed: int, prefix: str):
    """Each user walks WALK steps forward round a cycle of CYCLE items from a random start: the
    first WALK - 1 items are the history, the last the held-out truth."""
    rng = np.random.default_rng(seed)
    history, truth = [], []
    for n in range(users):
        start = int(rng.integers(CYCLE))
        items = [f"i{(start + step) % CYCLE:02d}" for step in range(WALK)]
        user = f"{prefix}{n}"
        history += [("shop", user, item, "view", at(step)) for step, item in enumerate(items[:-1])]
        truth.append((user, items[-1]))
    return spark.createDataFrame(history, EVENTS), spark.createDataFrame(truth, "user_id string, item_id string")


@pytest.mark.horovod
@pytest.mark.slow
def test_the_sequence_model_learns_an_order_that_recent_and_itemknn_cannot_see(spark, tmp_path):
    train_history, train_truth = walks(spark, USERS, 1, "u")
    train = train_history.unionByName(train_truth.select(F.lit("shop").alias("source"), "user_id", "item_id",
                                                         F.lit("view").alias("event_type"), F.lit(at(WALK)).alias("event_time")))
    test_history, test_truth = walks(spark, 150, 2, "t")
    vocabulary = spark.createDataFrame([(f"i{n:02d}", n + 2) for n in range(CYCLE)], "item_id string, item_idx int")
    sources = sf.source_indices(["shop"])
    sf.training_windows(sf.user_sequences(train, vocabulary, sources), PLANTED.max_length).repartition(4) \
        .write.parquet(str(tmp_path / "windows"))
    files = current_files(spark.read.parquet(str(tmp_path / "windows")))
    item_sources = np.array([-1, -1] + [0] * CYCLE, dtype=np.int32)
    log_q = np.log(np.array([1e-12, 1e-12] + [1.0 / CYCLE] * CYCLE, dtype=np.float32))
    test_histories = sf.serving_histories(sf.user_sequences(test_history, vocabulary, sources), PLANTED.max_length)
    sample = test_histories.join(test_truth, "user_id").orderBy("user_id").limit(60).collect()
    validation = {seq.ITEMS: np.array([r["items"] for r in sample], dtype=np.int32),
                  seq.TYPES: np.array([r["types"] for r in sample], dtype=np.int32),
                  "sources": np.zeros(len(sample), dtype=np.int32),
                  "truth": np.array([[int(r["item_id"][1:]) + 2] for r in sample], dtype=np.int32),
                  "truth_sizes": np.ones(len(sample), dtype=np.int32)}
    results = run_on_ranks(spark, seq.train_rank, num_proc=2, kwargs={
        "files": files, "params": seq.params_dict(PLANTED), "vocab_size": CYCLE + 2, "item_sources": item_sources,
        "log_q": log_q, "validation": validation})
    chief = next(r for r in results if r["rank"] == 0)
    scores = [entry["validation_ndcg"] for entry in chief["history"]]
    # early stopping: the best epoch is the first best score, and training ran `patience` epochs past it
    assert chief["best_epoch"] == int(np.argmax(scores)) + 1
    assert len(scores) == min(PLANTED.max_epochs, chief["best_epoch"] + PLANTED.patience)
    assert sum(r["rows"] for r in results) == USERS

    seen = test_history.select("user_id", "item_id").distinct()
    ours = sequence_lists(test_histories, seen, vocabulary, chief["weights"], PLANTED, CYCLE + 2, item_sources, K)
    fit = History(events=train, pairs=interactions(train, {"view": 1.0}))
    test = History(events=test_history, pairs=interactions(test_history, {"view": 1.0}))
    users = test_truth.select("user_id")
    theirs = {model.name: model.fit(fit, vocabulary.select("item_id")).recommend(users, test, K, seen)
              for model in (Recent(), ItemKnn(history_items=10, max_neighbours=10))}
    ndcg = {name: ranking_metrics(lists, test_truth, K, catalogue_size=CYCLE)["ndcg_at_k"]
            for name, lists in {"sequence": ours, **theirs}.items()}
    print(f"planted cycle, NDCG@{K}: {ndcg}; validation NDCG by epoch {np.round(scores, 3).tolist()}")
    # item-kNN cannot tell the walk's next item from the one before its start (both neighbour the
    # history): it halves its hits; the user's own items are never the truth
    assert ndcg["recent"] == 0.0
    assert ndcg["itemknn"] < 0.85
    assert ndcg["sequence"] > 0.95
