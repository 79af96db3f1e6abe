"""Bronze events -> typed events with a reason for every row that is not accepted.

Order of checks (a row keeps the first reason; the README lists them): row-level faults
(malformed, missing field, bad id, unknown event type, bad timestamp, time out of range, not a
product, return, bad price, bad quantity), unknown items, exact then near duplicates, then bots
(user-level rules over sessions and minutes). A return is not a fault: it goes to silver.returns.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import CleanConf, SourceConf
from recsynth.etl import reasons as R
from recsynth.etl.columns import INTEGER_ID, any_of, bad_id, blank, canonical_id, not_a_product, parse_event_time, parse_price

EVENT_FIELDS = ("event_time", "user_id", "session_id", "item_id", "event_type", "price", "transaction_id", "quantity")
LINEAGE = (T.RAW, T.FILE, T.INGEST_RUN_ID, T.INGESTED_AT)
# Each source's cleaning rules (SourceCleanRules) travel with its rows as these columns, so that
# classify_events treats every source in one pass.
IDENTITY = "_identity"                # what makes two rows the same event (exact duplicates share it)
NEAR_DUPLICATE_S = "_near_dup_s"      # null: no near-duplicate rule
MAX_PER_MINUTE, MAX_PER_SESSION = "_max_per_minute", "_max_per_session"   # null: no bot rule
RULES = (IDENTITY, NEAR_DUPLICATE_S, MAX_PER_MINUTE, MAX_PER_SESSION)


def parse_events(bronze: DataFrame, source: SourceConf, clean: CleanConf, now) -> DataFrame:
    """One source's bronze rows -> typed canonical columns, `_reason` for row-level faults and the
    source's cleaning rules as columns (RULES)."""
    events = source.events
    if events.event_type is not None:
        event_type = F.lit(events.event_type)
    else:
        vocabulary = F.create_map(*[F.lit(x) for pair in events.event_types.items() for x in (pair[0].lower(), pair[1])])
        event_type = vocabulary[F.lower(F.trim(F.col("event_type")))]
    event_time = parse_event_time(F.col("event_time"), events.time)
    price = parse_price(F.col("price"))
    raw_quantity = F.trim(F.col("quantity")) if "quantity" in bronze.columns else F.lit(None).cast("string")
    quantity = F.when(raw_quantity.rlike(INTEGER_ID), raw_quantity.cast("int"))
    earliest = F.to_timestamp(F.lit(clean.min_event_time))
    latest = F.lit(now).cast("timestamp") + F.expr(f"INTERVAL {clean.max_future_minutes} MINUTES")
    src = F.col(T.SOURCE)
    typed = bronze.select(
        src,
        event_time.alias("t_event_time"),
        canonical_id(src, F.col("user_id")).alias("t_user_id"),
        canonical_id(src, F.col("session_id")).alias("t_session_id"),
        canonical_id(src, F.col("item_id")).alias("t_item_id"),
        event_type.alias("t_event_type"),
        price.alias("t_price"),
        F.regexp_replace(F.trim(F.col("transaction_id")), r"\.0+$", "").alias("t_transaction_id"),
        quantity.alias("t_quantity"),
        raw_quantity.alias("raw_quantity"),
        *[F.col(c) for c in bronze.columns if c not in (T.SOURCE, "quantity")],
        F.lit(None).cast("string").alias(T.REASON),
    )
    required = ["event_time", "user_id", "item_id", *(["event_type"] if events.event_type is None else [])]
    is_return = F.lit(False) if events.returns is None else F.trim(F.col(events.returns.column)).rlike(events.returns.pattern)
    checks = [
        (F.col(T.MALFORMED), R.MALFORMED_ROW),
        (any_of([blank(F.col(c)) for c in required]), R.MISSING_FIELD),
        (bad_id(F.col("user_id"), source.id_format) | bad_id(F.col("item_id"), source.id_format), R.BAD_ID),
        (F.col("t_event_type").isNull(), R.UNKNOWN_EVENT_TYPE),
        (F.col("t_event_time").isNull(), R.BAD_TIMESTAMP),
        ((F.col("t_event_time") < earliest) | (F.col("t_event_time") > latest), R.TIME_OUT_OF_RANGE),
        (not_a_product(F.col("item_id"), source.not_a_product), R.NOT_A_PRODUCT),
        (is_return, R.RETURN),
        (~blank(F.col("price")) & (F.col("t_price").isNull() | (F.col("t_price") <= 0) | (F.col("t_price") > clean.max_price)), R.BAD_PRICE),
        (~blank(F.col("raw_quantity")) & (F.col("t_quantity").isNull() | (F.col("t_quantity") <= 0)), R.BAD_QUANTITY),
    ]
    flagged = R.flag_first(typed, checks)
    # a return's quantity is what went back (positive), whatever sign the export gives it
    returned = F.col(T.REASON) == R.RETURN
    units = F.coalesce(F.when(returned, F.abs("t_quantity")).otherwise(F.col("t_quantity")), F.lit(1))
    rules = source.clean
    bots = clean.bots if rules.bots is True else (rules.bots or None)
    identity = (F.col(T.RAW) if rules.duplicates == "source_row" else
                F.concat_ws("|", *[F.col(f"t_{c}").cast("string") for c in EVENT_FIELDS if c != "quantity"],
                            F.when(units != 1, units)))  # a quantity of 1 leaves the ids of sources without one as they were
    return flagged.select(
        T.SOURCE,
        *[F.col(f"t_{c}").alias(c) for c in EVENT_FIELDS if c != "quantity"],
        units.alias("quantity"),
        *LINEAGE,
        T.REASON,
        identity.alias(IDENTITY),
        F.lit(clean.near_duplicate_seconds if rules.duplicates == "event" else None).cast("double").alias(NEAR_DUPLICATE_S),
        F.lit(bots.max_events_per_minute if bots else None).cast("int").alias(MAX_PER_MINUTE),
        F.lit(bots.max_events_per_session if bots else None).cast("int").alias(MAX_PER_SESSION),
    )


def flag_unknown_items(events: DataFrame, known_items: DataFrame, checked_sources: list[str]) -> DataFrame:
    """Events of sources that ship a catalogue must name an item in it (silver.items)."""
    if not checked_sources:
        return events
    known = known_items.select(T.SOURCE, "item_id").distinct().withColumn("_known", F.lit(True))
    joined = events.join(known, [T.SOURCE, "item_id"], "left")
    unknown = F.col(T.SOURCE).isin(*checked_sources) & F.col("_known").isNull()
    return R.flag(joined, unknown, R.UNKNOWN_ITEM).drop("_known")


def flag_duplicates(events: DataFrame) -> DataFrame:
    """Exact duplicates (the same `_identity` as an earlier row: every canonical field equal, or for
    an orders export every source column), then near duplicates where the source has the rule: the
    same user, item and type again within its seconds (a double click, a resent beacon)."""
    copies = Window.partitionBy(R.pending(), T.SOURCE, "user_id", IDENTITY).orderBy(T.FILE, T.RAW)
    repeat = Window.partitionBy(R.pending(), T.SOURCE, "user_id", "item_id", "event_type").orderBy(
        "event_time", "session_id", "price", "transaction_id", T.FILE, T.RAW)
    gap = F.col("event_time").cast("double") - F.lag(F.col("event_time").cast("double")).over(repeat)
    exact = R.flag(events, F.row_number().over(copies) > 1, R.EXACT_DUPLICATE)
    return R.flag(exact, gap <= F.col(NEAR_DUPLICATE_S), R.NEAR_DUPLICATE)


def sessionize(events: DataFrame, gap_minutes: float) -> DataFrame:
    """Keep the source's session id where it has one; otherwise start a new session after
    `gap_minutes` of inactivity. Gap sessions are named by user and start time, so ids stay
    stable when later data arrives."""
    eligible = R.pending()
    by_user = Window.partitionBy(eligible, T.SOURCE, "user_id").orderBy("event_time", T.FILE, T.RAW)
    seconds = F.col("event_time").cast("long")
    previous = F.lag(seconds).over(by_user)
    starts = (previous.isNull() | (seconds - previous > gap_minutes * 60)).cast("int")
    numbered = events.withColumn("_session_no", F.sum(starts).over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
    session = Window.partitionBy(R.pending(), T.SOURCE, "user_id", "_session_no")
    gap_session = F.concat(F.col("user_id"), F.lit("#"), F.min(seconds).over(session).cast("string"))
    return numbered.withColumn("session_id", F.coalesce(F.col("session_id"), gap_session)).drop("_session_no")


def flag_bots(events: DataFrame) -> DataFrame:
    """All events of a user who ever exceeds their source's events-per-minute or events-per-session
    limit (sources without a bot rule have null limits, which flag no one)."""
    eligible = R.pending()
    minute = Window.partitionBy(eligible, T.SOURCE, "user_id", F.date_trunc("minute", "event_time"))
    session = Window.partitionBy(eligible, T.SOURCE, "user_id", "session_id")
    user = Window.partitionBy(eligible, T.SOURCE, "user_id")
    with_rates = events.withColumn("_per_minute", F.count(F.lit(1)).over(minute)).withColumn(
        "_per_session", F.count(F.lit(1)).over(session)
    )
    too_fast = F.max("_per_minute").over(user) > F.col(MAX_PER_MINUTE)
    too_long = F.max("_per_session").over(user) > F.col(MAX_PER_SESSION)
    return R.flag(with_rates, too_fast | too_long, R.BOT).drop("_per_minute", "_per_session")


def classify_events(parsed: DataFrame, known_items: DataFrame, checked_sources: list[str], clean: CleanConf) -> DataFrame:
    """Parsed events of all sources -> every row with its final reason (null: accepted).

    After the item join, rows are hash-partitioned once by (source, user): every later window
    is keyed by a superset of those columns, so Spark sorts within partitions and shuffles no more."""
    events = flag_unknown_items(parsed, known_items, checked_sources).repartition(T.SOURCE, "user_id")
    events = flag_duplicates(events)
    events = sessionize(events, clean.session_gap_minutes)
    return flag_bots(events)


def accepted_events(classified: DataFrame) -> DataFrame:
    """silver.events rows: accepted events with a stable event id and lineage."""
    return _event_rows(classified.filter(R.pending()))


def returned_events(classified: DataFrame) -> DataFrame:
    """silver.returns rows: the returns (positive quantities), in silver.events' columns; gold nets
    them against the same user's purchases."""
    return _event_rows(classified.filter(F.col(T.REASON) == R.RETURN))


def _event_rows(frame: DataFrame) -> DataFrame:
    return frame.select(
        F.sha2(F.concat_ws("|", T.SOURCE, IDENTITY), 256).substr(1, 24).alias("event_id"),  # stable across runs
        T.SOURCE,
        *EVENT_FIELDS,
        F.to_date("event_time").alias("event_date"),
        T.FILE,
        T.INGEST_RUN_ID,
    )
