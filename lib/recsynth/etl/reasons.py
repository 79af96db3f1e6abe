"""Reason codes for rows that are not accepted, and the helper that assigns the first one.

A row keeps the first reason it is given, so every bronze row is counted exactly once:
accepted (no reason), a return (RETURN: silver.returns), removed as a duplicate
(DUPLICATE_REASONS) or quarantined (the rest).
"""
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsynth import tables as T

MALFORMED_ROW = "malformed_row"
MISSING_FIELD = "missing_field"
BAD_ID = "bad_id"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
BAD_TIMESTAMP = "bad_timestamp"
TIME_OUT_OF_RANGE = "time_out_of_range"
NOT_A_PRODUCT = "not_a_product"
RETURN = "return"
BAD_PRICE = "bad_price"
BAD_QUANTITY = "bad_quantity"
UNKNOWN_ITEM = "unknown_item"
UNKNOWN_CATEGORY = "unknown_category"
MISSING_PARENT = "missing_parent"
CATEGORY_CYCLE = "category_cycle"
CATEGORY_TOO_DEEP = "category_too_deep"
BOT = "bot"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
SUPERSEDED = "superseded"

DUPLICATE_REASONS = (EXACT_DUPLICATE, NEAR_DUPLICATE, SUPERSEDED)


def pending() -> Column:
    """True for rows that no check has rejected yet."""
    return F.col(T.REASON).isNull()


def flag(frame: DataFrame, condition: Column, reason: str) -> DataFrame:
    """Give `reason` to pending rows where `condition` holds (a null condition does not flag)."""
    hit = pending() & F.coalesce(condition, F.lit(False))
    return frame.withColumn(T.REASON, F.when(hit, F.lit(reason)).otherwise(F.col(T.REASON)))


def flag_first(frame: DataFrame, checks: list[tuple[Column, str]]) -> DataFrame:
    """Apply row checks in priority order in one projection: the first failing check wins."""
    reason = F.col(T.REASON)
    for condition, code in reversed(checks):
        reason = F.when(pending() & F.coalesce(condition, F.lit(False)), F.lit(code)).otherwise(reason)
    return frame.withColumn(T.REASON, reason)


def outcome(reason: Column) -> Column:
    """accepted | return | duplicate | quarantined, from the reason column."""
    return (
        F.when(reason.isNull(), F.lit("accepted"))
        .when(reason == RETURN, F.lit("return"))
        .when(reason.isin(*DUPLICATE_REASONS), F.lit("duplicate"))
        .otherwise(F.lit("quarantined"))
    )
