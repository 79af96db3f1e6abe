"""Training the sequence generator of synthesize-events: the vocabulary of the shared items and
the rare items' stand-ins (`recsynth.synth.rare_items`), the sessions' top categories, the
training people's sequences cut into windows (Parquet under the run's scratch folder, read by
each Horovod rank through Petastorm), and a fixed number of epochs on the shared launcher with
checkpoints and MLflow metrics, as the recommender's sequence model trains."""
from __future__ import annotations

import logging

import numpy as np
from pyspark.sql import DataFrame

from recsynth.rec import sequence as seq
from recsynth.rec import sequence_features as sf
from recsynth.rec.features import ITEM_INDEX, item_vocabulary
from recsynth.runtime.runs import RunContext
from recsynth.runtime.stages import Stages
from recsynth.runtime.tracking import Tracker
from recsynth.synth.clickstream_sequences import OTHER_CATEGORY, category_vocabulary, person_sequences
from recsynth.synth.moves import distinctive_paths, replay_of
from recsynth.synth.rare_items import with_stand_ins
from recsynth.synth.sequence_walker import TrainedGenerator
from recsynth.rec.sequence_items import item_arrays
from recsynth.train import checkpoints, progress
from recsynth.train.launcher import train_on_ranks
from recsynth.train.shards import check_shardable, current_files

log = logging.getLogger(__name__)


WRITING_SETTINGS = ("temperature", "min_p", "replay", "replay_taste", "same_item_shift")
"""clickstream.sequence's settings of how the trained network writes (`TrainedGenerator`), not of
the network: a new value rewrites the clickstream from the same checkpoint."""


def generator_params(ctx: RunContext, categories: int) -> seq.SequenceParams:
    """clickstream.sequence as the network's parameters (a generator, next step only, conditioned
    on session contexts of `categories` known top categories)."""
    conf = ctx.conf.clickstream
    values = conf.sequence.model_dump(exclude={"epochs", "max_items", "max_categories", "conditioned", "rare_items",
                                               *WRITING_SETTINGS, "avoid_distinctive_paths", "num_proc",
                                               "checkpoint_every"})
    return seq.SequenceParams(**values, max_epochs=conf.sequence.epochs, horizon=1, seed=conf.seed, generator=True,
                              context_categories=OTHER_CATEGORY + 1 + categories if conf.sequence.conditioned else 0)


def train_generator(ctx: RunContext, tracker: Tracker, stage: Stages, real_steps: DataFrame, contexts: DataFrame,
                    item_categories: DataFrame, shared: DataFrame, *, training_data: list, scratch: str,
                    keep) -> tuple[TrainedGenerator, dict[str, int], DataFrame]:
    """The generator trained on `real_steps` (`clickstream.session_steps` of the training
    people) and their sessions' `contexts` (`clickstream.session_contexts`), rare items' steps
    (those not on the `shared` items, `clickstream.shared_items`) on their stand-ins by
    `item_categories` (`rare_items.with_stand_ins`) or, with
    `clickstream.sequence.rare_items` off, left out; the source indices and the category
    vocabulary it was trained with."""
    conf, spark = ctx.conf.clickstream, ctx.spark
    ranks = conf.sequence.num_proc
    with stage("generator_examples", "writing the sequence generator's vocabulary and training windows"):
        steps = (keep(with_stand_ins(real_steps, shared, item_categories)) if conf.sequence.rare_items
                 else real_steps.join(shared, ["source", "item_id"], "left_semi"))
        vocabulary = keep(item_vocabulary(steps, conf.sequence.max_items))
        categories = keep(category_vocabulary(contexts, conf.sequence.max_categories))
        params = generator_params(ctx, categories.count())
        sources = sf.source_indices([r["source"] for r in real_steps.select("source").distinct().collect()])
        windows_uri = f"{scratch}/generator_windows"
        sf.training_windows(person_sequences(steps, vocabulary, sources, contexts, categories), params.max_length) \
            .repartition(2 * ranks).write.mode("overwrite").parquet(windows_uri)
        windows = spark.read.parquet(windows_uri)
        files = current_files(windows)
        vocab_size, item_sources, log_q = item_arrays(steps, vocabulary, windows, sources)
        item_ids = [None] * vocab_size
        for row in vocabulary.collect():   # bounded by clickstream.sequence.max_items
            item_ids[row[ITEM_INDEX]] = row["item_id"]
        replays = replay_of(steps, vocabulary, conf.min_people, vocab_size) if conf.sequence.replay > 0 else None
        distinctive = (distinctive_paths(steps, vocabulary, conf.privacy.min_ngram_support, vocab_size)
                       if conf.sequence.avoid_distinctive_paths else None)
    check_shardable(files, ranks, "the sequence generator's windows")
    folder = checkpoints.folder(ctx.lake.root, "clickstream_sequence", training_data,
                                [vocab_size, seq.LAYOUT_VERSION, conf.sequence.rare_items],
                                seq.checkpoint_params(params, vocab_size), ranks)

    def on_epoch(record: dict) -> None:
        log.log(progress.console_level(record["epoch"], record["epochs"]), "sequence generator epoch %d/%d: loss %.4f "
                "(%.1f s)", record["epoch"], record["epochs"], record["loss"], record["seconds"])
        tracker.metrics({"generator.loss": record["loss"], "generator.seconds": record["seconds"]}, step=record["epoch"])

    with stage("generator_train", f"training the sequence generator on {ranks} Horovod rank(s), "
                                  f"{params.max_epochs} epochs over {vocab_size - seq.FIRST_KNOWN} items"):
        chief, rows = train_on_ranks(
            spark, seq.train_rank, {"files": files, "params": seq.params_dict(params), "vocab_size": vocab_size,
                                    "item_sources": item_sources, "log_q": log_q, "epochs": params.max_epochs},
            num_proc=ranks, attempts=ctx.conf.ops.training_attempts, checkpoint_uri=folder,
            checkpoint_every=conf.sequence.checkpoint_every, on_epoch=on_epoch, model="sequence generator")
    tracker.metrics({"generator.training_windows": rows, "generator.items": vocab_size - seq.FIRST_KNOWN})
    return TrainedGenerator(weights=chief["weights"], params=seq.params_dict(params),
                            item_ids=np.array(item_ids, dtype=object), item_sources=item_sources,
                            **{name: getattr(conf.sequence, name) for name in WRITING_SETTINGS},
                            replays=replays, distinctive=distinctive), sources, categories
