"""The two-tower as a `Recommender`: vocabularies and training examples from the fit history,
Petastorm shards in the run's scratch folder, training on Horovod ranks through the shared launcher
with checkpoints, then item vectors broadcast for scoring on executors."""
from __future__ import annotations

import logging

from recsynth.rec import features as feat
from recsynth.rec import topn
from recsynth.rec.columns import ITEM_ID, USER_ID
from recsynth.rec.recommenders import History, Recommender
from recsynth.rec.two_tower import TwoTowerParams, item_vectors, params_dict, train_rank, user_vectors
from recsynth.runtime.runs import RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import train_on_ranks
from recsynth.train.shards import check_shardable, current_files

log = logging.getLogger(__name__)


class TwoTower(Recommender):
    """`name` labels the model in metrics and checkpoints; `training_data` keys its checkpoint;
    its training examples are written to `examples_folder` (Parquet, removed with the run's scratch)."""
    complexity = 6
    item_to_item = True

    def __init__(self, ctx: RunContext, tracker: Tracker, stage: Stages, catalogue, *, name: str,
                 training_data: list, examples_folder: str):
        conf = ctx.conf.recs
        self.ctx, self.tracker, self.stage, self.catalogue = ctx, tracker, stage, catalogue
        self.name, self.training_data, self.examples_folder = name, training_data, examples_folder
        self.model = TwoTowerParams(**conf.two_tower.model_dump(exclude={"enabled"}), history_length=conf.history_length, seed=conf.seed)

    def params(self):
        return params_dict(self.model)

    def fit(self, data: History, eligible, keep):
        conf, lake = self.ctx.conf.recs, self.ctx.lake
        with self.stage(f"examples_{self.name}", f"writing the vocabularies and training examples of {self.name}"):
            built = feat.build_vocabularies(data.events, self.catalogue, max_items=conf.max_items,
                                            max_values=conf.max_feature_values)
            self.vocabularies = feat.Vocabularies(items=keep(built.items),
                                                  features={n: keep(f) for n, f in built.features.items()})
            self.vocab_sizes = self.vocabularies.sizes()
            indices = keep(feat.item_feature_indices(self.catalogue, self.vocabularies))
            examples = feat.training_examples(data.events, self.vocabularies, indices, conf.history_length)
            examples.repartition(2 * conf.num_proc).write.mode("overwrite").parquet(self.examples_folder)
            files = current_files(self.ctx.spark.read.parquet(self.examples_folder))
        check_shardable(files, conf.num_proc, f"the {self.name} training examples")
        self.checkpoint_uri = checkpoints.folder(lake.root, "recommender", self.training_data, self.vocab_sizes,
                                                 params_dict(self.model), conf.num_proc)
        with self.stage(f"train_{self.name}", f"training {self.name} on {conf.num_proc} Horovod rank(s)"):
            chief, self.training_rows = train_on_ranks(
                self.ctx.spark, train_rank,
                {"files": files, "params": params_dict(self.model), "vocab_sizes": self.vocab_sizes},
                num_proc=conf.num_proc, attempts=self.ctx.conf.ops.training_attempts,
                checkpoint_uri=self.checkpoint_uri, checkpoint_every=conf.checkpoint_every,
                on_epoch=self._on_epoch, model="two-tower")
        self.weights, self.history = chief["weights"], chief["history"]
        scored = feat.known_items(indices).join(eligible, ITEM_ID, "left_semi")
        self.item_vectors = keep(item_vectors(self.ctx.spark, self.weights, self.model, scored,
                                              vocab_sizes=self.vocab_sizes))
        self.tracker.metrics({f"{self.name}.training_rows": self.training_rows})
        return self

    def _on_epoch(self, record: dict) -> None:
        log.log(progress.console_level(record["epoch"], record["epochs"]), "%s epoch %d/%d: loss %.4f (%.1f s)",
                self.name, record["epoch"], record["epochs"], record["loss"], record["seconds"])
        self.tracker.metrics({f"{self.name}.loss": record["loss"], f"{self.name}.epoch_seconds": record["seconds"]},
                             step=record["epoch"])

    def recommend(self, users, history, k, exclusions):
        conf = self.ctx.conf.recs
        histories = feat.known_histories(feat.user_histories(history.events, self.vocabularies, conf.history_length))
        vectors = user_vectors(self.ctx.spark, self.weights, self.model, histories.join(users, USER_ID, "left_semi"),
                               vocab_sizes=self.vocab_sizes)
        return topn.top_n(vectors, self.item_vectors, exclusions, k, block_rows=conf.top_n.block_rows)

    def similar_items(self, k):
        return topn.similar_items(self.item_vectors, k, block_rows=self.ctx.conf.recs.top_n.block_rows)
