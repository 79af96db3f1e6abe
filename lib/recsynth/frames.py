"""The one check that a DataFrame has the columns a function needs, run at the function's entry
so that a bad frame fails with its name and the missing column, not deep inside a Spark plan;
and runtime SQL settings for the length of a block. It imports nothing from recsynth, so every
layer (etl, synth, rec, explore) can use it."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import contextmanager

from pyspark.sql import DataFrame


def require_columns(frame: DataFrame, label: str, columns: Iterable[str] | Mapping[str, tuple[type, ...] | None],
                    error: type[Exception]) -> None:
    """Raise the caller's `error`, naming `label`, the missing column(s) and the columns the frame
    has. `columns` is a list of names, or a mapping from a name to the Spark types it may have
    (e.g. (IntegerType, LongType); None: any type), to check the types too."""
    fields = {f.name: f.dataType for f in frame.schema.fields}
    missing = [c for c in columns if c not in fields]
    if missing:
        raise error(f"{label} lacks column(s) {missing} (it has {sorted(fields)})")
    if not isinstance(columns, Mapping):
        return
    for name, accepted in columns.items():
        if accepted is not None and not isinstance(fields[name], accepted):
            raise error(f"{label}: column {name!r} is {fields[name].simpleString()}, expected "
                        + " or ".join(t.__name__.removesuffix("Type").lower() for t in accepted))


@contextmanager
def spark_settings(spark, settings: dict[str, str]):
    """Runtime SQL settings for the length of a block, restored after it, normally or not."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
