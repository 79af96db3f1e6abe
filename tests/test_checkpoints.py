"""Checkpoints (what a resumed training run starts from) and the driver's progress watcher."""
import threading

import numpy as np

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
