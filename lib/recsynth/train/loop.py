"""The epoch loop every model runs on its Horovod ranks: resume from the latest checkpoint, run
the epochs left, and on rank 0 checkpoint every N epochs and write the progress the driver
reports. A model brings its variables and one epoch's work; the rest is the same for all."""
from __future__ import annotations

import time
from typing import Any, Callable

EpochResult = tuple[Any, dict[str, float]]   # (the epoch's history entry, its named losses for the progress record)


def run_epochs(state: dict[str, list], run_epoch: Callable[[int], EpochResult], epochs: int, rank: int,
               checkpoint_uri: str | None = None, checkpoint_every: int = 1,
               stop: Callable[[list], bool] | None = None) -> tuple[int, list]:
    """On every rank: restore `state` ({group: variables}, what a checkpoint holds) from the latest
    checkpoint under `checkpoint_uri`, then call `run_epoch(epoch)` for each epoch up to `epochs`.

    With `checkpoint_uri`, rank 0 saves a checkpoint every `checkpoint_every` epochs and after the
    last one, and after every epoch rewrites the progress record with an entry {"epoch",
    "epochs", <named losses>, "seconds"}. Returns (epochs done before this run, the history of
    every epoch so far: restored entries as JSON gave them back, then this run's).

    `stop(history)`, called on every rank after each epoch (and once after a restore), ends the
    training early when it says so (early stopping: it must give every rank the same answer);
    the last epoch is then checkpointed like the final one."""
    from recsynth.train import checkpoints, progress

    first_epoch, history = _restore(state, checkpoint_uri, rank)
    history = list(history)
    reporting = bool(checkpoint_uri) and rank == 0
    timeline = progress.read(checkpoint_uri)[:first_epoch] if reporting else []
    stopped = bool(history) and stop is not None and stop(history)
    for epoch in range(first_epoch + 1, epochs + 1):
        if stopped:
            break
        started = time.time()
        entry, losses = run_epoch(epoch)
        history.append(entry)
        stopped = stop is not None and stop(history)
        if reporting:
            if epoch % checkpoint_every == 0 or epoch == epochs or stopped:
                checkpoints.save(checkpoint_uri, checkpoints.Checkpoint(
                    epoch, {group: [v.numpy() for v in variables] for group, variables in state.items()}, history))
            timeline.append({"epoch": epoch, "epochs": epochs, **losses, "seconds": time.time() - started})
            progress.write(checkpoint_uri, timeline)
    return first_epoch, history


def _restore(state: dict[str, list], checkpoint_uri: str | None, rank: int) -> tuple[int, list]:
    """Before the first epoch: rank 0 loads the latest checkpoint (if any) into `state`, then
    every rank takes rank 0's variables. Returns (epochs already done, their history). A
    checkpoint whose arrays do not fit `state` is another network's: it is removed, with a
    warning in the rank's log, and training starts afresh."""
    import sys

    import horovod.tensorflow as hvd

    from recsynth.train.checkpoints import clear, fits, load_latest

    restored = load_latest(checkpoint_uri) if checkpoint_uri and rank == 0 else None
    if restored and not fits(restored, {group: [tuple(v.shape) for v in variables] for group, variables in state.items()}):
        print(f"recsynth: the checkpoint under {checkpoint_uri} (epoch {restored.epoch}) does not fit this network's "
              "variables; it is removed and training starts afresh", file=sys.stderr)
        clear(checkpoint_uri)
        restored = None
    if restored:
        for group, variables in state.items():
            for variable, value in zip(variables, restored.arrays[group], strict=True):
                variable.assign(value)
    for variables in state.values():
        hvd.broadcast_variables(variables, root_rank=0)
    return hvd.broadcast_object((restored.epoch, restored.history) if restored else (0, []), root_rank=0)


class EarlyStopping:
    """Early stopping on a validation score that each epoch's history entry holds under `key`
    (higher is better; None: not validated that epoch): rank 0 keeps a copy of `variables` from
    the best epoch and stops after `patience` validated epochs without a better one; every rank
    follows its answer. `best` is the copy, for the checkpoint, so a resumed run keeps it."""

    def __init__(self, variables: list, key: str, patience: int, rank: int):
        import tensorflow as tf

        self.variables, self.key, self.patience, self.rank = list(variables), key, patience, rank
        self.best = [tf.Variable(v, trainable=False) for v in self.variables]

    def scores(self, history: list) -> list[tuple[int, float]]:
        """(epoch, score) of the validated epochs."""
        return [(epoch, entry[self.key]) for epoch, entry in enumerate(history, 1) if entry.get(self.key) is not None]

    def best_epoch(self, history: list) -> int:
        """The first epoch with the best score (the last epoch if none was validated)."""
        scored = self.scores(history)
        return max(scored, key=lambda pair: (pair[1], -pair[0]))[0] if scored else len(history)

    def stop(self, history: list) -> bool:
        import horovod.tensorflow as hvd

        decision = False
        scored = self.scores(history)
        if self.rank == 0 and scored and scored[-1][0] == len(history):
            if self.best_epoch(history) == len(history):
                for kept, variable in zip(self.best, self.variables):
                    kept.assign(variable)
            decision = sum(1 for epoch, _ in scored if epoch > self.best_epoch(history)) >= self.patience
        return bool(hvd.broadcast_object(decision, root_rank=0))

    def weights(self) -> list:
        return [v.numpy() for v in self.best]


def kept_weights(early: EarlyStopping | None, history: list, variables: list) -> tuple[int, list]:
    """(the epoch whose weights a training returns, those weights): the best validated epoch's
    with early stopping, else the last epoch's."""
    if early is None:
        return len(history), [v.numpy() for v in variables]
    return early.best_epoch(history), early.weights()
