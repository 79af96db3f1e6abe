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


@contextmanager
def checkpointed_frames(spark, folder: str):
    """`cut(frame)` writes `frame` as a reliable Spark checkpoint under `folder` and returns a
    frame that reads it, with its plan cut to a scan: a job that builds dozens of frames on top
    of each other (the recommender's lists) otherwise spends minutes in Catalyst analysing ever
    deeper plans. Unlike localCheckpoint, a lost executor loses nothing. `folder` is removed
    when the block exits, normally or not."""
    from recsynth.paths import filesystem

    spark.sparkContext.setCheckpointDir(folder)

    def cut(frame):
        # renamed to itself: a checkpoint keeps its columns' ids, and a join of it with a frame of
        # the same lineage (a list with its users) fails analysis; toDF gives the columns new ids
        checkpointed = frame.checkpoint(eager=True)
        return checkpointed.toDF(*checkpointed.columns)

    try:
        yield cut
    finally:
        fs, root = filesystem(folder)
        if fs.exists(root):
            fs.rm(root, recursive=True)
