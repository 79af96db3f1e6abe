"""Petastorm readers over a Delta table's current Parquet files, one shard per rank."""
from __future__ import annotations

from recsynth.errors import RecsynthError


def current_files(frame) -> list[str]:
    """The Parquet files behind a Delta table's current version (not the files it replaced)."""
    return sorted(frame.inputFiles())


def check_shardable(files: list[str], shard_count: int, name: str) -> None:
    """Petastorm shards by row group: every rank needs at least one file's worth of rows."""
    if len(files) < shard_count:
        raise RecsynthError(f"{name} has {len(files)} Parquet file(s) for {shard_count} rank(s); "
                            "write it with at least one file per rank (repartition before writing)")


def open_shard(files: list[str], rank: int, size: int, num_epochs: int | None = 1, seed: int = 0, **options):
    """A Petastorm batch reader over this rank's shard of `files` (row groups split across ranks)."""
    from petastorm import make_batch_reader

    return make_batch_reader(files, cur_shard=rank, shard_count=size, num_epochs=num_epochs, seed=seed,
                             shuffle_row_groups=num_epochs != 1, workers_count=2, **options)
