"""Bronze events -> typed events with a reason for every row that is not accepted.

Order of checks (a row keeps the first reason): row-level faults, unknown items,
exact then near duplicates, then bots (user-level rules over sessions and minutes).
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsynth import tables as T
from recsynth.config import BotRules, CleanConf, SourceConf
from recsynth.etl import reasons as R
from recsynth.etl.columns import bad_id, blank, canonical_id, parse_event_time, parse_price

EVENT_FIELDS = ("event_time", "user_id", "session_id", "item_id", "event_type", "price", "transaction_id")
LINEAGE = (T.RAW, T.FILE, T.INGEST_RUN_ID, T.INGESTED_AT)


def parse_events(bronze: DataFrame, source: SourceConf, clean: CleanConf, now) -> DataFrame:
    """One source's bronze rows -> typed canonical columns plus `_reason` for row-level faults."""
    events = source.events
    vocabulary = F.create_map(*[F.lit(x) for pair in events.event_types.items() for x in (pair[0].lower(), pair[1])])
    event_time = parse_event_time(F.col("event_time"), events.time)
    price = parse_price(F.col("price"))
    earliest = F.to_timestamp(F.lit(clean.min_event_time))
    latest = F.lit(now).cast("timestamp") + F.expr(f"INTERVAL {clean.max_future_minutes} MINUTES")
    src = F.col(T.SOURCE)
    typed = bronze.select(
        src,
        event_time.alias("t_event_time"),
        canonical_id(src, F.col("user_id")).alias("t_user_id"),
        canonical_id(src, F.col("session_id")).alias("t_session_id"),
        canonical_id(src, F.col("item_id")).alias("t_item_id"),
        vocabulary[F.lower(F.trim(F.col("event_type")))].alias("t_event_type"),
        price.alias("t_price"),
        F.regexp_replace(F.trim(F.col("transaction_id")), r"\.0+$", "").alias("t_transaction_id"),
        *[F.col(c) for c in bronze.columns if c not in (T.SOURCE,)],
        F.lit(None).cast("string").alias(T.REASON),
    )
    required_blank = [blank(F.col(c)) for c in ("event_time", "user_id", "item_id", "event_type")]
    checks = [
        (F.col(T.MALFORMED), R.MALFORMED_ROW),
        (_any(required_blank), R.MISSING_FIELD),
        (bad_id(F.col("user_id"), source.id_format) | bad_id(F.col("item_id"), source.id_format), R.BAD_ID),
        (F.col("t_event_type").isNull(), R.UNKNOWN_EVENT_TYPE),
        (F.col("t_event_time").isNull(), R.BAD_TIMESTAMP),
        ((F.col("t_event_time") < earliest) | (F.col("t_event_time") > latest), R.TIME_OUT_OF_RANGE),
        (~blank(F.col("price")) & (F.col("t_price").isNull() | (F.col("t_price") <= 0) | (F.col("t_price") > clean.max_price)), R.BAD_PRICE),
    ]
    flagged = R.flag_first(typed, checks)
    return flagged.select(
        T.SOURCE,
        *[F.col(f"t_{c}").alias(c) for c in EVENT_FIELDS],
        *LINEAGE,
        T.REASON,
    )


def _any(conditions):
    result = conditions[0]
    for condition in conditions[1:]:
        result = result | condition
    return result


def flag_unknown_items(events: DataFrame, known_items: DataFrame, checked_sources: list[str]) -> DataFrame:
    """Events of sources that ship a catalogue must name an item in it (silver.items)."""
    if not checked_sources:
        return events
    known = known_items.select(T.SOURCE, "item_id").distinct().withColumn("_known", F.lit(True))
    joined = events.join(known, [T.SOURCE, "item_id"], "left")
    unknown = F.col(T.SOURCE).isin(*checked_sources) & F.col("_known").isNull()
    return R.flag(joined, unknown, R.UNKNOWN_ITEM).drop("_known")


def flag_duplicates(events: DataFrame, near_duplicate_seconds: float) -> DataFrame:
    """Exact duplicates (every field equal to the previous row), then near duplicates: the same
    user, item and type again within `near_duplicate_seconds` (a double click, a resent beacon).

    One window over (user, item, type) in time order finds both: identical rows sort next to
    each other, and an exact copy has the time of the row it copies."""
    repeat = Window.partitionBy(R.pending(), T.SOURCE, "user_id", "item_id", "event_type").orderBy(
        "event_time", "session_id", "price", "transaction_id", T.FILE, T.RAW)
    same_as_previous = F.lit(True)
    for field in ("event_time", "session_id", "price", "transaction_id"):
        same_as_previous = same_as_previous & F.col(field).eqNullSafe(F.lag(field).over(repeat))
    gap = F.col("event_time").cast("double") - F.lag(F.col("event_time").cast("double")).over(repeat)
    return R.flag_first(events, [(same_as_previous, R.EXACT_DUPLICATE), (gap <= near_duplicate_seconds, R.NEAR_DUPLICATE)])


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


def flag_bots(events: DataFrame, rules: BotRules) -> DataFrame:
    """All events of a user who ever exceeds the events-per-minute or events-per-session limit."""
    eligible = R.pending()
    minute = Window.partitionBy(eligible, T.SOURCE, "user_id", F.date_trunc("minute", "event_time"))
    session = Window.partitionBy(eligible, T.SOURCE, "user_id", "session_id")
    user = Window.partitionBy(eligible, T.SOURCE, "user_id")
    with_rates = events.withColumn("_per_minute", F.count(F.lit(1)).over(minute)).withColumn(
        "_per_session", F.count(F.lit(1)).over(session)
    )
    too_fast = F.max("_per_minute").over(user) > rules.max_events_per_minute
    too_long = F.max("_per_session").over(user) > rules.max_events_per_session
    return R.flag(with_rates, too_fast | too_long, R.BOT).drop("_per_minute", "_per_session")


def classify_events(parsed: DataFrame, known_items: DataFrame, checked_sources: list[str], clean: CleanConf) -> DataFrame:
    """Parsed events of all sources -> every row with its final reason (null: accepted).

    After the item join, rows are hash-partitioned once by (source, user): every later window
    is keyed by a superset of those columns, so Spark sorts within partitions and shuffles no more."""
    events = flag_unknown_items(parsed, known_items, checked_sources).repartition(T.SOURCE, "user_id")
    events = flag_duplicates(events, clean.near_duplicate_seconds)
    events = sessionize(events, clean.session_gap_minutes)
    return flag_bots(events, clean.bots)


def accepted_events(classified: DataFrame) -> DataFrame:
    """silver.events rows: accepted events with a stable event id and lineage."""
    key = F.concat_ws("|", *[F.col(c).cast("string") for c in (T.SOURCE, *EVENT_FIELDS)])
    return classified.filter(R.pending()).select(
        F.sha2(key, 256).substr(1, 24).alias("event_id"),
        T.SOURCE,
        *EVENT_FIELDS,
        F.to_date("event_time").alias("event_date"),
        T.FILE,
        T.INGEST_RUN_ID,
    )
