"""Petastorm readers over a Delta table's current Parquet files, one shard per rank."""
from __future__ import annotations

import numpy as np

from recsynth.errors import RecsynthError
from recsynth.paths import python_io_uri


def current_files(frame) -> list[str]:
    """The Parquet files behind a Delta table's current version (not the files it replaced), as
    URIs Petastorm opens (`dbfs:` ones through the /dbfs mount)."""
    return sorted(python_io_uri(uri) for uri in frame.inputFiles())


def check_shardable(files: list[str], shard_count: int, name: str) -> None:
    """Petastorm shards by row group: every rank needs at least one file's worth of rows."""
    if len(files) < shard_count:
        raise RecsynthError(f"{name} has {len(files)} Parquet file(s) for {shard_count} rank(s); "
                            "write it with at least one file per rank (repartition before writing)")


def open_shard(files: list[str], rank: int, size: int, num_epochs: int | None = 1, seed: int = 0, **options):
    """A Petastorm batch reader over this rank's shard of `files` (row groups split across ranks).

    The reader runs in this thread ("dummy" pool): Petastorm 0.13.1's thread pool can end a
    finite read before its first row group (it checks "all workers idle" before "ventilation
    finished", and the ventilator thread can finish in between), silently giving a rank no data.
    """
    from petastorm import make_batch_reader

    return make_batch_reader(files, cur_shard=rank, shard_count=size, num_epochs=num_epochs, seed=seed,
                             shuffle_row_groups=num_epochs != 1, reader_pool_type="dummy", **options)


def read_shard(files: list[str], rank: int, size: int, columns: list[str]) -> dict[str, np.ndarray]:
    """This rank's whole shard as one array per column; an empty shard is an error, never silent."""
    from petastorm.errors import NoDataAvailableError

    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    try:
        with open_shard(files, rank, size, schema_fields=columns) as reader:
            for batch in reader:
                for column in columns:
                    parts[column].append(np.asarray(getattr(batch, column)))
    except NoDataAvailableError as error:  # fewer row groups than ranks
        raise RecsynthError(f"rank {rank} of {size} read no rows: {error}") from error
    if not parts[columns[0]]:
        raise RecsynthError(f"rank {rank} of {size} read no rows from its shard of {len(files)} file(s)")
    return {column: np.concatenate(chunks) for column, chunks in parts.items()}
