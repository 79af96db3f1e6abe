"""Start N Horovod ranks inside Spark tasks (Gloo; GPU executors on a cluster, CPU tasks locally)."""
from __future__ import annotations

import logging
from typing import Any, Callable

from recsynth.errors import RecsynthError

log = logging.getLogger(__name__)


class TrainingError(RecsynthError):
    """Distributed training could not start or a rank failed."""


def run_on_ranks(spark, rank_fn: Callable[..., Any], num_proc: int, start_timeout_s: int = 600, kwargs: dict | None = None,
                 attempts: int = 1) -> list:
    """Run `rank_fn(**kwargs)` on `num_proc` Horovod ranks; return each rank's result, by rank.

    A failed try (a rank's executor lost, a rank crashed) starts all ranks again, up to `attempts`
    tries: a `rank_fn` that restores its last checkpoint then loses only the epochs since. The
    cluster manager replaces a lost executor; the new ranks wait up to `start_timeout_s` for slots.
    `rank_fn` is pickled to the executors: it must import TensorFlow and Horovod itself."""
    import horovod.spark

    slots = spark.sparkContext.defaultParallelism
    if num_proc > slots:
        raise TrainingError(f"train.num_proc={num_proc} but the cluster offers {slots} task slot(s); "
                            "lower num_proc or add executors/cores (each rank needs one task slot)")
    for attempt in range(1, attempts + 1):
        log.info("starting %d Horovod rank(s) in Spark tasks (try %d of %d)", num_proc, attempt, attempts)
        try:
            return horovod.spark.run(rank_fn, kwargs=kwargs or {}, num_proc=num_proc, start_timeout=start_timeout_s,
                                     use_gloo=True, verbose=0)
        except Exception as err:
            failure = f"{type(err).__name__}: {err}"
            if attempt == attempts:
                raise TrainingError(f"Horovod training failed ({attempts} tries, ops.training_attempts): {failure}") from err
            log.warning("Horovod training try %d of %d failed (%s); starting the ranks again, from the last checkpoint",
                        attempt, attempts, failure.splitlines()[0][:300])


def init_rank() -> tuple[int, int]:
    """On a rank: start Horovod and pin this process to the GPU of its local rank, if any.

    Returns (rank, size). On CPU-only executors nothing changes."""
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    hvd.init()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        gpu = gpus[hvd.local_rank() % len(gpus)]
        tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.set_visible_devices(gpu, "GPU")
    return hvd.rank(), hvd.size()


def restore_on_ranks(state: dict[str, list], checkpoint_uri: str | None, rank: int) -> tuple[int, list]:
    """On every rank, before the first epoch: rank 0 loads the latest checkpoint under
    `checkpoint_uri` (if any) into `state` ({group: variables}, the groups a checkpoint holds),
    then every rank takes rank 0's variables. Returns (epochs already done, their history)."""
    import horovod.tensorflow as hvd

    from recsynth.train.checkpoints import load_latest

    restored = load_latest(checkpoint_uri) if checkpoint_uri and rank == 0 else None
    if restored:
        for group, variables in state.items():
            for variable, value in zip(variables, restored.arrays[group], strict=True):
                variable.assign(value)
    for variables in state.values():
        hvd.broadcast_variables(variables, root_rank=0)
    return hvd.broadcast_object((restored.epoch, restored.history) if restored else (0, []), root_rank=0)
