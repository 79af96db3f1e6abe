"""Live training progress: rank 0 rewrites a small record after every epoch next to its
checkpoints (one entry per epoch so far); a thread on the driver polls it and reports each new
epoch once (log line, MLflow metrics), even when several epochs end between two polls. Rank
output goes to executor logs on a cluster, so the driver is where users look."""
from __future__ import annotations

import json
import logging
import threading
from typing import Callable

from recsynth.paths import filesystem
from recsynth.train.atomic import replace_file

log = logging.getLogger(__name__)

PROGRESS = "progress.json"


def console_level(epoch: int, epochs: int, lines: int = 3) -> int:
    """The level of an epoch's log record: INFO (console and log file) for the first, every
    epochs/lines-th and the last epoch, DEBUG (log file only) for the rest, so a long training
    shows its progress in a handful of console lines."""
    every = max(1, -(-epochs // lines))
    return logging.INFO if epoch in (1, epochs) or epoch % every == 0 else logging.DEBUG


def write(uri: str, epochs: list[dict]) -> None:
    """On rank 0: replace the record with `epochs`, one dict per finished epoch (its "epoch"
    number, losses, seconds, ...), in one step: the driver never reads half a record."""
    fs, root = filesystem(uri)
    fs.makedirs(root, exist_ok=True)
    replace_file(fs, f"{root}/{PROGRESS}", json.dumps({"epochs": epochs}).encode())


def read(uri: str) -> list[dict]:
    fs, root = filesystem(uri)
    try:
        return json.loads(fs.cat_file(f"{root}/{PROGRESS}"))["epochs"]
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or left half-written by an older version
        return []


class ProgressWatcher:
    """Calls `on_epoch(entry)` once per new epoch entry seen in `uri`, from a background thread,
    while the `with` block runs; a last poll on exit catches the final epochs."""

    def __init__(self, uri: str, on_epoch: Callable[[dict], None], interval_s: float = 2.0):
        self._uri, self._on_epoch, self._interval_s = uri, on_epoch, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="training-progress", daemon=True)
        self._seen = max((e["epoch"] for e in read(uri)), default=0)  # an earlier run's epochs are not news

    def _poll(self) -> None:
        for entry in read(self._uri):
            if entry["epoch"] > self._seen:
                self._seen = entry["epoch"]
                try:
                    self._on_epoch(entry)
                except Exception:  # progress reporting must never stop training
                    log.exception("progress callback failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._poll()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll()
        return False
