"""Checkpoints (what a resumed training run starts from) and the driver's progress watcher."""
import logging
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from recsynth.train import checkpoints, progress


def test_checkpoint_round_trip_keeps_only_the_latest(tmp_path):
    uri = str(tmp_path / "ckpt")
    assert checkpoints.load_latest(uri) is None
    weights = [np.arange(6.0).reshape(2, 3), np.array([1, 2], dtype=np.int64)]
    checkpoints.save(uri, checkpoints.Checkpoint(1, {"model": weights, "optimizer": [np.zeros(3)]}, [(0.5, 0.25)]))
    later = [w + 1 for w in weights]
    checkpoints.save(uri, checkpoints.Checkpoint(2, {"model": later, "optimizer": [np.ones(3)]}, [(0.5, 0.25), (0.4, 0.2)]))

    loaded = checkpoints.load_latest(uri)
    assert loaded.epoch == 2 and loaded.history == [[0.5, 0.25], [0.4, 0.2]]
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(loaded.arrays["model"], later, strict=True))
    assert np.array_equal(loaded.arrays["optimizer"][0], np.ones(3))
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*.npz")) == ["epoch-000002.npz"]


def test_a_checkpoint_counts_only_once_latest_names_it(tmp_path):
    uri = str(tmp_path / "ckpt")
    checkpoints.save(uri, checkpoints.Checkpoint(3, {"model": [np.ones(2)]}, []))
    (tmp_path / "ckpt" / "epoch-000004.npz").write_bytes(b"half-written")  # a crash mid-save
    assert checkpoints.load_latest(uri).epoch == 3



def test_a_checkpoint_fits_only_the_shapes_it_was_saved_from():
    saved = checkpoints.Checkpoint(2, {"model": [np.zeros((4, 64)), np.zeros(3)], "optimizer": [np.zeros(())]}, [])
    assert checkpoints.fits(saved, {"model": [(4, 64), (3,)], "optimizer": [()]})
    assert not checkpoints.fits(saved, {"model": [(16, 64), (3,)], "optimizer": [()]})   # an embedding grew
    assert not checkpoints.fits(saved, {"model": [(4, 64)], "optimizer": [()]})           # a variable fewer
    assert not checkpoints.fits(saved, {"model": [(4, 64), (3,)]})                        # a group fewer


# One Horovod process (size 1) runs the epoch loop over a variable of shape `shape`, from the
# checkpoint under `uri`; prints the epochs done before it and the variable's first value.
RESUMING = """
import sys
import numpy as np
import tensorflow as tf
import horovod.tensorflow as hvd
from recsynth.train.loop import run_epochs
hvd.init()
uri, shape = sys.argv[1], int(sys.argv[2])
weights = tf.Variable(np.zeros(shape))
def epoch(n):
    weights.assign_add(np.ones(shape))
    return n, {}
first, history = run_epochs({"model": [weights]}, epoch, 3, 0, uri)
print(first, float(weights.numpy()[0]), history)
"""


def test_the_epoch_loop_starts_afresh_over_another_networks_checkpoint(tmp_path):
    uri = str(tmp_path / "ckpt")
    checkpoints.save(uri, checkpoints.Checkpoint(2, {"model": [np.full(4, 7.0)]}, [1, 2]))   # a layout of 4

    def resumed(shape: int) -> str:
        done = subprocess.run([sys.executable, "-c", RESUMING, uri, str(shape)], capture_output=True, text=True,
                              check=True)
        return done.stdout.strip().splitlines()[-1]

    assert resumed(4) == "2 8.0 [1, 2, 3]"         # the same layout continues: one epoch left, from 7
    assert resumed(16) == "0 3.0 [1, 2, 3]"        # another layout: the old checkpoint is dropped, 3 epochs
    assert checkpoints.load_latest(uri).arrays["model"][0].shape == (16,)

# A training process that checkpoints every epoch from `first` on, until it is killed; its history is
# long so that writing "latest" takes a while (the old pointer was truncated before being rewritten).
SAVING = """
import sys
import numpy as np
import pytest
from recsynth.train import checkpoints
uri, first = sys.argv[1], int(sys.argv[2])
for epoch in range(first, first + 100_000):
    checkpoints.save(uri, checkpoints.Checkpoint(epoch, {"model": [np.full(100_000, epoch)]}, [epoch] * 200_000))
    print(epoch, flush=True)
"""


def test_a_process_killed_mid_save_leaves_a_whole_latest_checkpoint(tmp_path):
    uri, done, moments = str(tmp_path / "ckpt"), 0, random.Random(13)
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", SAVING, uri, str(done + 1)], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == f"{done + 1}\n"  # one epoch saved
        time.sleep(moments.uniform(0.0, 0.3))  # then a few more, killed at no moment in particular
        child.kill()  # SIGKILL: nothing is cleaned up
        child.wait()
        latest = checkpoints.load_latest(uri)
        assert latest is not None and latest.epoch > done  # each run saved, from where the last one stopped
        assert np.array_equal(latest.arrays["model"][0], np.full(100_000, latest.epoch))
        assert latest.history == [latest.epoch] * 200_000
        done = latest.epoch


def test_watcher_reports_each_new_epoch_once(tmp_path):
    uri = str(tmp_path / "run")
    entries = [{"epoch": e, "epochs": 6} for e in range(1, 7)]
    progress.write(uri, entries[:2])  # left by an earlier run (resumed now): not reported again
    seen, reported_3 = [], threading.Event()

    def on_epoch(entry):
        seen.append(entry["epoch"])
        if entry["epoch"] == 3:
            reported_3.set()

    with progress.ProgressWatcher(uri, on_epoch, interval_s=0.05):
        progress.write(uri, entries[:3])
        assert reported_3.wait(5)
        progress.write(uri, entries[:5])  # two epochs between polls: both are reported
        threading.Event().wait(0.3)
        progress.write(uri, entries)      # the last epoch is caught on exit at the latest
    assert seen == [3, 4, 5, 6]


@pytest.mark.parametrize("epochs, on_console", [(30, [1, 10, 20, 30]), (20, [1, 7, 14, 20]), (7, [1, 3, 6, 7]),
                                                (2, [1, 2])])
def test_a_handful_of_epoch_lines_reach_the_console(epochs, on_console):
    levels = {epoch: progress.console_level(epoch, epochs) for epoch in range(1, epochs + 1)}
    assert [epoch for epoch, level in levels.items() if level == logging.INFO] == on_console
    assert set(levels.values()) <= {logging.INFO, logging.DEBUG}
