"""A two-tower neural retrieval model in Keras 2, trained on Horovod ranks over Petastorm shards.

User tower: the masked mean of the embeddings of the user's history items (the item-id embedding
table is shared with the item tower; padding 0 is left out, an empty history gives zeros) ->
dense layers -> L2-normalised vector. Item tower: the item-id embedding and one embedding per
item feature (category levels, brand, price band), concatenated -> dense layers -> L2-normalised
vector. The score of a (user, item) pair is the dot product of their vectors (a cosine).

Loss: softmax over the positives of the batch (in-batch negatives), logits = cosine /
temperature - log q(candidate) (the logQ correction: popular items turn up as negatives more
often than uniform sampling would, so their logits are discounted by their sampling log-prob);
a candidate that is the same item as the row's positive (same item_key) is masked out.

`train_rank` is the body each Horovod rank runs (launched by `recsynth.train.launcher.run_on_ranks`
like the GAN): it reads its Petastorm shard of the training examples (`features.training_examples`),
averages gradients over ranks (DistributedGradientTape; weights and optimizer state broadcast from
rank 0) and returns the weights from rank 0. `item_vectors` / `user_vectors` run the towers on
executors (mapInPandas, broadcast weights) and give the frames `recsynth.rec.topn.top_n` scores.
TensorFlow is imported inside the functions that run on ranks or executors."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import NamedTuple

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from recsynth.errors import RecommenderError
from recsynth.frames import require_columns
from recsynth.rec.columns import ITEM_ID, USER_ID, VECTOR
from recsynth.rec.features import (
    FEATURES, HISTORY, ITEM_INDEX, ITEM_KEY, ITEM_VOCABULARY, LOG_Q, MODEL_INPUTS, Vocabularies, feature_index,
)
from recsynth.train.artifacts import file_reader, json_file, weights_file, weights_from, write_files
from recsynth.train.scoring import score_on_executors

_VECTOR_FIELD = StructField(VECTOR, ArrayType(FloatType(), False), False)
ITEM_VECTORS_SCHEMA = StructType([StructField(ITEM_ID, StringType(), False), _VECTOR_FIELD])
USER_VECTORS_SCHEMA = StructType([StructField(USER_ID, StringType(), False), _VECTOR_FIELD])
INFERENCE_BATCH = 4096


@dataclass(frozen=True)
class TwoTowerParams:
    embedding_dim: int = 32               # item-id embedding (shared by both towers)
    feature_dim: int = 8                  # each item feature's embedding
    tower_dims: tuple[int, ...] = (64,)   # hidden dense layers of each tower (relu)
    output_dim: int = 32                  # the vectors' length
    history_length: int = 20              # items of the user's history the user tower sees
    batch_size: int = 256                 # per rank; also the number of in-batch negatives + 1
    epochs: int = 10
    learning_rate: float = 1e-3
    temperature: float = 0.1
    logq_correction: bool = True
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "tower_dims", tuple(self.tower_dims))  # a list from JSON or conf
        for name in ("embedding_dim", "feature_dim", "output_dim", "history_length", "batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecommenderError(f"two-tower {name} must be an integer >= 1, got {value!r}")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.tower_dims):
            raise RecommenderError(f"two-tower tower_dims must be integers >= 1, got {self.tower_dims!r}")
        if self.batch_size < 2:
            raise RecommenderError(f"two-tower batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        for name in ("learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise RecommenderError(f"two-tower {name} must be > 0, got {getattr(self, name)!r}")


def params_dict(params: TwoTowerParams) -> dict:
    return asdict(params)


def params_from_dict(values: dict) -> TwoTowerParams:
    unknown = sorted(set(values) - {f.name for f in fields(TwoTowerParams)})
    if unknown:
        raise RecommenderError(f"unknown two-tower parameter(s) {unknown}")
    return TwoTowerParams(**values)


class Towers(NamedTuple):
    model: object        # tf.keras.Model with both towers: its weights are the model's weights
    user_tower: object   # history -> vector
    item_tower: object   # {item_idx, <feature>_idx...} -> vector


def _check_sizes(vocab_sizes: dict) -> dict[str, int]:
    needed = (ITEM_VOCABULARY, *FEATURES)
    missing = [n for n in needed if n not in vocab_sizes]
    if missing:
        raise RecommenderError(f"vocab_sizes lacks {missing} (has {sorted(vocab_sizes)})")
    return {n: int(vocab_sizes[n]) for n in needed}


def build_towers(params: TwoTowerParams, vocab_sizes: dict) -> Towers:
    """Both towers, sharing the item-id embedding; `vocab_sizes` as `Vocabularies.sizes()`.
    Layers are created in a fixed order, so weights lists are interchangeable between builds."""
    import tensorflow as tf

    sizes = _check_sizes(vocab_sizes)
    item_embedding = tf.keras.layers.Embedding(sizes[ITEM_VOCABULARY], params.embedding_dim, name="item_embedding")
    feature_embeddings = {n: tf.keras.layers.Embedding(sizes[n], params.feature_dim, name=f"{n}_embedding") for n in FEATURES}

    def tower(name):
        layers = [tf.keras.layers.Dense(d, activation="relu", name=f"{name}_dense_{k}") for k, d in enumerate(params.tower_dims)]
        return [*layers, tf.keras.layers.Dense(params.output_dim, name=f"{name}_output")]

    def apply(layers, x):
        for layer in layers:
            x = layer(x)
        return tf.math.l2_normalize(x, axis=1)

    history = tf.keras.Input(shape=(params.history_length,), dtype="int32", name=HISTORY)
    mask = tf.cast(tf.not_equal(history, 0), tf.float32)[:, :, None]
    pooled = tf.reduce_sum(item_embedding(history) * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    user_vector = apply(tower("user"), pooled)

    item_inputs = {c: tf.keras.Input(shape=(), dtype="int32", name=c) for c in (ITEM_INDEX, *map(feature_index, FEATURES))}
    parts = [item_embedding(item_inputs[ITEM_INDEX])] + [feature_embeddings[n](item_inputs[feature_index(n)]) for n in FEATURES]
    item_vector = apply(tower("item"), tf.concat(parts, axis=1))

    user_tower = tf.keras.Model(history, user_vector, name="user_tower")
    item_tower = tf.keras.Model(item_inputs, item_vector, name="item_tower")
    model = tf.keras.Model({HISTORY: history, **item_inputs}, [user_vector, item_vector], name="two_tower")
    return Towers(model, user_tower, item_tower)


def in_batch_loss(user_vectors, item_vectors, item_keys, log_q, temperature: float, logq_correction: bool = True):
    """Mean softmax cross-entropy of each row's positive against the batch's other positives."""
    import tensorflow as tf

    logits = tf.matmul(user_vectors, item_vectors, transpose_b=True) / temperature
    if logq_correction:
        logits = logits - tf.cast(log_q, logits.dtype)[None, :]
    rows = tf.shape(logits)[0]
    same_item = tf.equal(item_keys[:, None], item_keys[None, :]) & ~tf.eye(rows, dtype=tf.bool)
    logits = tf.where(same_item, tf.cast(-1e9, logits.dtype), logits)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.range(rows), logits))


def _model_inputs(columns: dict, rows) -> dict:
    return {c: columns[c][rows] for c in (HISTORY, ITEM_INDEX, *map(feature_index, FEATURES))}


def train_rank(files: list[str], params: dict, vocab_sizes: dict, checkpoint_uri: str | None = None,
               checkpoint_every: int = 1) -> dict:
    """Horovod rank body: train on this rank's Petastorm shard of the training examples; rank 0
    returns the weights (`Towers.model.get_weights()` order).

    Every rank takes the same number of steps per epoch (the smallest shard's full batches), so
    the gradient allreduces line up. With `checkpoint_uri`, rank 0 writes progress after every
    epoch and a checkpoint (weights and optimizer state) every `checkpoint_every` epochs, and a
    run that finds a checkpoint there continues from it instead of starting again."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from recsynth.train.launcher import init_rank
    from recsynth.train.loop import run_epochs
    from recsynth.train.shards import read_shard

    rank, size = init_rank()
    p = params_from_dict(params)
    tf.keras.utils.set_random_seed(p.seed)
    columns = read_shard(files, rank, size, list(MODEL_INPUTS))
    rows = len(columns[ITEM_INDEX])
    history = columns[HISTORY]
    if history.ndim != 2 or history.shape[1] != p.history_length:
        raise RecommenderError(f"rank {rank}: history column has shape {history.shape}, expected (rows, {p.history_length})")
    columns = {c: np.asarray(v, dtype=np.float32 if c == LOG_Q else np.int64 if c == ITEM_KEY else np.int32)
               for c, v in columns.items()}
    steps = min(hvd.allgather_object(rows // p.batch_size))
    if steps < 1:
        raise RecommenderError(f"a rank has fewer than batch_size={p.batch_size} training examples "
                               f"(rank {rank} has {rows}); lower batch_size or use fewer ranks")

    towers = build_towers(p, vocab_sizes)
    model = towers.model
    optimizer = tf.keras.optimizers.Adam(p.learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(inputs, item_keys, log_q):
        with tf.GradientTape() as tape:
            user_vectors, item_vectors = model(inputs, training=True)
            loss = in_batch_loss(user_vectors, item_vectors, item_keys, log_q, p.temperature, p.logq_correction)
        tape = hvd.DistributedGradientTape(tape)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def train_epoch(epoch: int):
        order = np.random.default_rng([p.seed, rank, epoch]).permutation(rows)
        total = 0.0
        for k in range(steps):
            picked = order[k * p.batch_size:(k + 1) * p.batch_size]
            total += float(step(_model_inputs(columns, picked), columns[ITEM_KEY][picked], columns[LOG_Q][picked]))
        loss = float(hvd.allreduce(tf.constant(total / steps), op=hvd.Average))
        return loss, {"loss": loss}

    state = {"model": model.variables, "optimizer": optimizer.variables()}
    first_epoch, losses = run_epochs(state, train_epoch, p.epochs, rank, checkpoint_uri, checkpoint_every)
    return {"rank": rank, "size": size, "rows": rows, "steps_per_epoch": steps, "history": losses,
            "resumed_from_epoch": first_epoch, "weights": model.get_weights() if rank == 0 else None}


# --- inference on executors --------------------------------------------------------------------
def _vectors_on_executors(frame: DataFrame, key: str, schema: StructType, weights, params: TwoTowerParams,
                          vocab_sizes: dict, tower: str, batch_rows: int) -> DataFrame:
    payload = (weights, params_dict(params), _check_sizes(vocab_sizes))
    return score_on_executors(frame, schema, payload, partial(_tower_on_executor, tower, key), batch_rows)


def _tower_on_executor(tower: str, key: str, payload):
    """The `tower` ("user" or "item") built once from the broadcast (weights, params, sizes): a
    function from a chunk of rows to their (key, vector) frame."""
    import pandas as pd
    import tensorflow as tf

    model_weights, model_params, sizes = payload
    p = params_from_dict(model_params)
    towers = build_towers(p, sizes)
    towers.model.set_weights(model_weights)
    network = towers.user_tower if tower == "user" else towers.item_tower
    predict = tf.function(lambda inputs: network(inputs, training=False))

    def vectors(part):
        if tower == "user":
            inputs = tf.constant(_pad_histories(part[HISTORY], p.history_length))
        else:
            inputs = {c: tf.constant(part[c].to_numpy(dtype=np.int32)) for c in (ITEM_INDEX, *map(feature_index, FEATURES))}
        return pd.DataFrame({key: part[key].to_numpy(dtype=str), VECTOR: list(predict(inputs).numpy().astype(np.float32))})

    return vectors


def _pad_histories(values, length: int) -> np.ndarray:
    """Histories (array-likes, possibly of other lengths) as an int32 (rows, length) matrix:
    cut to the first `length` (most recent) items, padded with 0."""
    matrix = np.zeros((len(values), length), dtype=np.int32)
    for row, history in enumerate(values):
        if history is not None:
            items = np.asarray(history, dtype=np.int32)[:length]
            matrix[row, :len(items)] = items
    return matrix


def _weights_and_sizes(weights, vocab_sizes: dict | None) -> tuple[list[np.ndarray], dict]:
    if weights is None:
        raise RecommenderError("no weights (train_rank returns them from rank 0 only)")
    weights = [np.asarray(w) for w in weights]
    if vocab_sizes is None:  # build order: the item embedding, then one embedding per feature
        vocab_sizes = {name: int(w.shape[0]) for name, w in zip((ITEM_VOCABULARY, *FEATURES), weights)}
    return weights, vocab_sizes


def item_vectors(spark, weights, params: TwoTowerParams, item_feature_frame: DataFrame, *,
                 vocab_sizes: dict | None = None, batch_rows: int = INFERENCE_BATCH) -> DataFrame:
    """(item_id, vector array<float>) for every row of `item_feature_frame`
    (`features.item_feature_indices`), computed on executors with the broadcast weights.
    `vocab_sizes` defaults to the embedding tables' sizes read off the weights."""
    del spark  # the frame's session runs it; kept for a uniform signature with the job code
    columns = (ITEM_ID, ITEM_INDEX, *map(feature_index, FEATURES))
    require_columns(item_feature_frame, "item_feature_frame", columns, RecommenderError)
    weights, vocab_sizes = _weights_and_sizes(weights, vocab_sizes)
    frame = item_feature_frame.select(*columns).where(F.col(ITEM_ID).isNotNull())
    return _vectors_on_executors(frame, ITEM_ID, ITEM_VECTORS_SCHEMA, weights, params, vocab_sizes, "item", batch_rows)


def user_vectors(spark, weights, params: TwoTowerParams, history_frame: DataFrame, *,
                 vocab_sizes: dict | None = None, batch_rows: int = INFERENCE_BATCH) -> DataFrame:
    """(user_id, vector array<float>) for every row of `history_frame` (user_id, history
    array<int>, as `features.user_histories`), computed on executors with the broadcast weights."""
    del spark
    columns = (USER_ID, HISTORY)
    require_columns(history_frame, "history_frame", columns, RecommenderError)
    weights, vocab_sizes = _weights_and_sizes(weights, vocab_sizes)
    frame = history_frame.select(*columns).where(F.col(USER_ID).isNotNull())
    return _vectors_on_executors(frame, USER_ID, USER_VECTORS_SCHEMA, weights, params, vocab_sizes, "user", batch_rows)


# --- versioned models --------------------------------------------------------------------------
def model_uri(lake_root: str, version: str) -> str:
    return f"{lake_root}/models/recommender/{version}"


def save_model(uri: str, weights, params: TwoTowerParams, vocabularies: Vocabularies, vocab_sizes: dict,
               meta: dict) -> None:
    """Store weights (npz), params, vocabulary sizes and meta (JSON) under `uri`, and the
    vocabularies as Parquet (`vocabulary/<name>`), written by Spark: a model is only usable with
    the vocabularies it was trained with."""
    write_files(uri, {"weights.npz": weights_file(weights), "params.json": json_file(params_dict(params)),
                      "vocab_sizes.json": json_file(_check_sizes(vocab_sizes)), "meta.json": json_file(meta)})
    vocabularies.items.write.mode("overwrite").parquet(f"{uri}/vocabulary/{ITEM_VOCABULARY}")
    for name, frame in vocabularies.features.items():
        frame.write.mode("overwrite").parquet(f"{uri}/vocabulary/{name}")


def load_model(spark, uri: str) -> tuple[list[np.ndarray], TwoTowerParams, dict, Vocabularies, dict]:
    """(weights, params, vocab_sizes, vocabularies, meta) as stored by `save_model`."""
    read = file_reader(uri)
    weights = weights_from(read("weights.npz"))
    sizes = json.loads(read("vocab_sizes.json"))
    vocabularies = Vocabularies(items=spark.read.parquet(f"{uri}/vocabulary/{ITEM_VOCABULARY}"),
                                features={n: spark.read.parquet(f"{uri}/vocabulary/{n}") for n in FEATURES})
    return weights, params_from_dict(json.loads(read("params.json"))), sizes, vocabularies, json.loads(read("meta.json"))
