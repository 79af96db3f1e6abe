"""Column-level parsing shared by the cleaning transforms: Column in, Column out."""
from functools import reduce
from operator import or_

from pyspark.sql import Column
from pyspark.sql import functions as F

from recsynth.config import TimeConf

INTEGER_ID = r"^-?[0-9]+$"
# Epoch values beyond these (about year 33000) are garbage; Spark's conversion of them to
# microseconds would overflow a long and fail the whole job instead of one row.
EPOCH_LIMITS = {"epoch_ms": 10**15, "epoch_s": 10**12}


def blank(column: Column) -> Column:
    """True for null or whitespace-only strings."""
    return column.isNull() | (F.trim(column) == "")


def parse_event_time(raw: Column, time: TimeConf) -> Column:
    """Raw time as the source writes it -> UTC timestamp; null when it cannot be parsed.

    Relies on the session time zone being UTC (session.py sets it)."""
    text = F.trim(raw)
    if time.unit in EPOCH_LIMITS:
        number = text.cast("long")
        limit = EPOCH_LIMITS[time.unit]
        sane = F.when(text.rlike(INTEGER_ID) & number.between(-limit, limit), number)
        parsed = F.timestamp_millis(sane) if time.unit == "epoch_ms" else F.timestamp_seconds(sane)
    else:
        parsed = F.to_timestamp(text, time.format)
    if time.timezone != "UTC":
        parsed = F.to_utc_timestamp(parsed, time.timezone)
    return parsed


def parse_price(raw: Column) -> Column:
    """Price text -> double; null for blanks, NaN text or anything unparseable."""
    value = F.trim(raw).cast("double")
    return F.when(~F.isnan(value), value)


def canonical_id(source: Column, raw: Column) -> Column:
    """Ids are namespaced by source (`rees46:541312140`) so keys are unique across sources.

    Integer ids are written without float residue (`4000.0` -> `4000`)."""
    text = F.regexp_replace(F.trim(raw), r"^(-?[0-9]+)\.0+$", "$1")
    return F.when(~blank(raw), F.concat(source, F.lit(":"), text))


def bad_id(raw: Column, id_format: str) -> Column:
    """True when a present id does not have the source's declared format."""
    if id_format == "string":
        return F.lit(False)
    text = F.regexp_replace(F.trim(raw), r"\.0+$", "")
    return ~blank(raw) & ~text.rlike(INTEGER_ID)


def any_of(conditions: list[Column]) -> Column:
    """True where any condition holds (false for none)."""
    return reduce(or_, conditions, F.lit(False))


def not_a_product(raw_item_id: Column, patterns: list[str]) -> Column:
    """True where the item id matches one of the source's non-product patterns (postage, fees)."""
    return any_of([F.trim(raw_item_id).rlike(pattern) for pattern in patterns])
