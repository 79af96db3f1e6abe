"""Frames that several steps of a job read, persisted once and released however the job ends."""
from __future__ import annotations

from contextlib import contextmanager

from pyspark import StorageLevel


@contextmanager
def cached_frames():
    """`keep(frame)` persists `frame` (memory, spilling to disk) and returns it; every kept
    frame is unpersisted when the block exits, normally or not."""
    frames = []

    def keep(frame):
        frames.append(frame.persist(StorageLevel.MEMORY_AND_DISK))
        return frames[-1]

    try:
        yield keep
    finally:
        for frame in frames:
            frame.unpersist()
