"""The sequence model as a `Recommender`: the item vocabulary and training windows from the fit
history (Petastorm shards in recs.training_examples), training on Horovod ranks through the shared
launcher with checkpoints - stopping early on a sample of validation users when it is given one -
then scoring on executors with the broadcast weights (`recsynth.rec.sequence`)."""
from __future__ import annotations

import datetime as dt
import logging

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.errors import RecommenderError
from recsynth.rec import sequence as seq
from recsynth.rec import sequence_features as sf
from recsynth.rec import topn
from recsynth.rec.columns import ITEM_ID, USER_ID, VECTOR
from recsynth.rec.features import ITEM_INDEX, item_vocabulary
from recsynth.rec.recommenders import History, Recommender
from recsynth.rec.sequence_items import item_arrays
from recsynth.runtime.runs import RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker
from recsynth.train import checkpoints, progress
from recsynth.train.artifacts import file_reader, json_file, weights_file, weights_from, write_files
from recsynth.train.launcher import train_on_ranks
from recsynth.train.scoring import score_on_executors
from recsynth.train.shards import check_shardable, current_files

log = logging.getLogger(__name__)

SCORING_CHUNK = 256   # users scored at once on an executor: a (chunk, vocabulary) float32 block


class SequenceRecommender(Recommender):
    """`epochs` None: up to max_epochs, stopping early on `validation` (user_id, item_id: the
    held-out items of the validation period) seen from the fit history; a number: a refit."""
    name, complexity = "sequence", 7
    item_to_item = True

    def __init__(self, ctx: RunContext, tracker: Tracker, stage: Stages, *, sources: list[str], training_data: list,
                 epochs: int | None = None, validation: DataFrame | None = None, setting: dict | None = None,
                 label: str | None = None):
        """`setting`: values over recs.sequence (a search's); `label`: the prefix of its MLflow
        metrics and stages (default: the name, or `sequence.tuning` when validating)."""
        conf = ctx.conf.recs
        self.ctx, self.tracker, self.stage, self.training_data = ctx, tracker, stage, training_data
        self.sources = sf.source_indices(sources)
        self.epochs, self.validation = epochs, validation
        self.label = label or (self.name if validation is None else f"{self.name}.tuning")
        self.model = seq.SequenceParams(**{**conf.sequence.model_dump(exclude={"early_stopping_users"}), **(setting or {})},
                                        k=conf.k, seed=conf.seed)

    def params(self):
        return {**seq.params_dict(self.model), "epochs": getattr(self, "best_epoch", self.epochs)}

    def fit(self, data: History, eligible, keep):
        conf, lake, p = self.ctx.conf.recs, self.ctx.lake, self.model
        with self.stage(f"examples_{self.label}", "writing the sequence model's vocabulary and training windows"):
            self.vocabulary = keep(item_vocabulary(data.events, conf.max_items))
            sequences = keep(sf.user_sequences(data.events, self.vocabulary, self.sources))
            lake.overwrite(T.RECS_TRAINING_EXAMPLES, sf.training_windows(sequences, p.max_length)
                           .repartition(2 * conf.num_proc))
            windows = lake.read(T.RECS_TRAINING_EXAMPLES)
            files = current_files(windows)
            self.vocab_size, self.item_sources, log_q = item_arrays(data.events, self.vocabulary, windows, self.sources)
            validation = self._validation_arrays(sequences) if self.epochs is None else None
        check_shardable(files, conf.num_proc, T.RECS_TRAINING_EXAMPLES)
        self.checkpoint_uri = checkpoints.folder(lake.root, "sequence", self.training_data,
                                                 [self.vocab_size, seq.LAYOUT_VERSION],
                                                 {**seq.checkpoint_params(p, self.vocab_size), "fixed_epochs": self.epochs},
                                                 conf.num_proc)
        how = f"{self.epochs} epochs" if self.epochs else f"at most {p.max_epochs} epochs, stopping early on validation"
        with self.stage(f"train_{self.label}", f"training the sequence model on {conf.num_proc} Horovod rank(s), {how}"):
            chief, self.training_rows = train_on_ranks(
                self.ctx.spark, seq.train_rank,
                {"files": files, "params": seq.params_dict(p), "vocab_size": self.vocab_size,
                 "item_sources": self.item_sources, "log_q": log_q, "epochs": self.epochs, "validation": validation},
                num_proc=conf.num_proc, attempts=self.ctx.conf.ops.training_attempts,
                checkpoint_uri=self.checkpoint_uri, checkpoint_every=conf.checkpoint_every,
                on_epoch=self._on_epoch, model="sequence")
        self.weights, self.history, self.best_epoch = chief["weights"], chief["history"], chief["best_epoch"]
        self.eligible = keep(eligible.join(self.vocabulary, ITEM_ID).select(ITEM_ID, ITEM_INDEX))
        self.tracker.metrics({f"{self.label}.training_rows": self.training_rows, f"{self.label}.best_epoch": self.best_epoch})
        return self

    def _validation_arrays(self, sequences: DataFrame) -> dict[str, np.ndarray]:
        """A sample of validation users (recs.sequence.early_stopping_users, by a hash of the user
        id) with their fit-period histories and held-out items, for rank 0's early stopping."""
        if self.validation is None:
            raise RecommenderError("the sequence model stops early on validation users: none were given")
        p, limit = self.model, self.ctx.conf.recs.sequence.early_stopping_users
        truth = self.validation.join(self.vocabulary, ITEM_ID, "left").groupBy(USER_ID).agg(
            F.collect_list(F.coalesce(F.col(ITEM_INDEX), F.lit(seq.OOV))).alias("truth"))
        sample = (sf.serving_histories(sequences, p.max_length).join(truth, USER_ID)
                  .orderBy(F.xxhash64(USER_ID, F.lit(self.ctx.conf.recs.seed)), USER_ID).limit(limit).collect())
        if not sample:
            raise RecommenderError("no validation user has a fit-period history: the sequence model cannot stop early")
        width = max(len(r["truth"]) for r in sample)
        return {seq.ITEMS: np.array([r[seq.ITEMS] for r in sample], dtype=np.int32),
                seq.TYPES: np.array([r[seq.TYPES] for r in sample], dtype=np.int32),
                "sources": np.array([r[seq.SOURCE_INDEX] for r in sample], dtype=np.int32),
                "truth": np.array([list(r["truth"]) + [0] * (width - len(r["truth"])) for r in sample], dtype=np.int32),
                "truth_sizes": np.array([len(r["truth"]) for r in sample], dtype=np.int32)}

    def _on_epoch(self, record: dict) -> None:
        score = f", validation NDCG@{self.model.k} {record['validation_ndcg']:.4f}" if "validation_ndcg" in record else ""
        log.log(progress.console_level(record["epoch"], record["epochs"]), "%s epoch %d/%d: loss %.4f%s (%.1f s)",
                self.label, record["epoch"], record["epochs"], record["loss"], score, record["seconds"])
        self.tracker.metrics({f"{self.label}.{key}": record[key] for key in ("loss", "validation_ndcg", "seconds")
                              if key in record}, step=record["epoch"])

    def recommend(self, users, history, k, exclusions):
        sequences = sf.user_sequences(history.events.join(users.select(USER_ID), USER_ID, "left_semi"),
                                      self.vocabulary, self.sources)
        return sequence_lists(sf.serving_histories(sequences, self.model.max_length), exclusions, self.eligible,
                              self.weights, self.model, self.vocab_size, self.item_sources, k)

    def item_vectors(self) -> DataFrame:
        """(item_id, vector): the eligible items' embeddings, for similar items (cosine)."""
        embeddings = self.weights[0]   # the encoder's first variable: the item embedding (vocabulary, dim)
        rows = [(r[ITEM_ID], embeddings[r[ITEM_INDEX]].astype(float).tolist()) for r in self.eligible.collect()]
        return self.ctx.spark.createDataFrame(rows, f"{ITEM_ID} string, {VECTOR} array<float>")

    def similar_items(self, k):
        similar = topn.similar_items(self.item_vectors(), k, block_rows=self.ctx.conf.recs.top_n.block_rows)
        return similar.where(F.col("score") > 0)   # a neighbour is an item more alike than not, as for the others

    def save(self, uri: str, meta: dict) -> None:
        """Weights, parameters, the item arrays and meta under `uri`, the vocabulary as Parquet."""
        write_files(uri, {"weights.npz": weights_file(self.weights), "params.json": json_file(seq.params_dict(self.model)),
                          "items.npz": weights_file([self.item_sources]),
                          "meta.json": json_file({**meta, "sources": self.sources, "vocab_size": self.vocab_size,
                                                  "history": self.history, "best_epoch": self.best_epoch,
                                                  "training_rows": self.training_rows,
                                                  "saved_at": dt.datetime.utcnow().isoformat()})})
        self.vocabulary.write.mode("overwrite").parquet(f"{uri}/vocabulary")


def load_model(uri: str) -> tuple[list[np.ndarray], seq.SequenceParams, dict]:
    """(weights, params, meta) as `SequenceRecommender.save` stored them."""
    import json

    read = file_reader(uri)
    return (weights_from(read("weights.npz")), seq.params_from_dict(json.loads(read("params.json"))),
            json.loads(read("meta.json")))


def sequence_lists(histories: DataFrame, exclusions: DataFrame | None, eligible: DataFrame, weights,
                   params: seq.SequenceParams, vocab_size: int, item_sources: np.ndarray, k: int) -> DataFrame:
    """(user_id, rank, item_id, score): the top-k `eligible` items (item_id, item_idx) after each
    serving history (`sequence_features.serving_histories`), none of the user's `exclusions`,
    scored on executors with the broadcast weights."""
    queries = topn.with_exclusion_arrays(histories, exclusions)
    ids_and_indices = eligible.orderBy(ITEM_ID).collect()   # the eligible vocabulary: bounded by recs.max_items
    ids = np.array([r[ITEM_ID] for r in ids_and_indices], dtype=str)
    indices = np.array([r[ITEM_INDEX] for r in ids_and_indices], dtype=np.int64)
    payload = (weights, seq.params_dict(params), vocab_size, np.asarray(item_sources), ids, indices, k)
    return score_on_executors(queries, topn.TOP_N_SCHEMA, payload, _ranker_on_executor, SCORING_CHUNK)


def _ranker_on_executor(payload):
    """From the broadcast model and eligible items: a function from a chunk of serving histories
    (user_id, source_idx, items, types, _excluded) to their top-k rows."""
    import pandas as pd

    weights, params, vocab_size, item_sources, ids, indices, k = payload
    network = seq.SequenceNetwork(seq.params_from_dict(params), vocab_size)
    network.set_weights(weights)

    def top_k(part):
        items = np.stack([np.asarray(v, dtype=np.int32) for v in part[seq.ITEMS]])
        types = np.stack([np.asarray(v, dtype=np.int32) for v in part[seq.TYPES]])
        scores = seq.full_scores(network, items, types, part[seq.SOURCE_INDEX].to_numpy(dtype=np.int32),
                                 item_sources)[:, indices]
        row, rank, position, value = topn.rank_block(scores, part[topn.EXCLUDED].tolist(), ids, k)
        return pd.DataFrame({USER_ID: part[USER_ID].to_numpy(dtype=str)[row], "rank": rank.astype(np.int32),
                             ITEM_ID: ids[position], "score": value.astype(np.float64)})

    return top_k

