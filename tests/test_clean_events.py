"""Event cleaning transforms on tiny hand-made frames: each reason, time zones, sessions, bots."""
import datetime as dt

import pytest

from recsynth.config import load_conf
from recsynth.etl import clean_events as E
from recsynth.etl import reasons as R

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 1, 1)
BRONZE = (
    "source string, event_time string, user_id string, session_id string, item_id string, event_type string, "
    "price string, transaction_id string, _raw string, _malformed boolean, _file string, _ingest_run_id string, _ingested_at timestamp"
)


def bronze(spark, rows, source="rr"):
    full = []
    for i, r in enumerate(rows):
        full.append((source, r.get("t"), r.get("u", "1"), r.get("s"), r.get("i", "10"), r.get("e", "view"), r.get("p"),
                     r.get("tx"), r.get("raw", f"line{i}"), r.get("bad", False), "f.csv", "run", NOW))
    return spark.createDataFrame(full, BRONZE)


@pytest.fixture(scope="module")
def conf():
    return load_conf("local", [])


def rr_source(conf):
    return conf.sources["retailrocket"]


def reasons_by_raw(frame):
    return {row["_raw"]: row["_reason"] for row in frame.select("_raw", "_reason").collect()}


def test_row_level_reasons_in_priority_order(spark, conf):
    rows = [
        {"t": "1433221332117", "e": "view", "raw": "ok"},
        {"t": "1433221332117", "bad": True, "raw": "malformed"},
        {"t": "1433221332117", "u": "", "raw": "no_user"},
        {"t": "1433221332117", "i": "12a", "raw": "bad_item_id"},
        {"t": "1433221332117", "e": "hover", "raw": "unknown_type"},
        {"t": "yesterday", "raw": "bad_time"},
        {"t": "100", "raw": "too_old"},
        {"t": "99999999999999", "raw": "in_future"},
        {"t": "1433221332117", "p": "-1", "raw": "negative_price"},
        {"t": "1433221332117", "p": "abc", "raw": "text_price"},
        {"t": "1433221332117", "e": "hover", "u": "", "raw": "two_faults"},
    ]
    parsed = E.parse_events(bronze(spark, rows), rr_source(conf), conf.clean, NOW)
    assert reasons_by_raw(parsed) == {
        "ok": None, "malformed": R.MALFORMED_ROW, "no_user": R.MISSING_FIELD, "bad_item_id": R.BAD_ID,
        "unknown_type": R.UNKNOWN_EVENT_TYPE, "bad_time": R.BAD_TIMESTAMP, "too_old": R.TIME_OUT_OF_RANGE,
        "in_future": R.TIME_OUT_OF_RANGE, "negative_price": R.BAD_PRICE, "text_price": R.BAD_PRICE,
        "two_faults": R.MISSING_FIELD,
    }


def test_types_ids_and_vocabulary(spark, conf):
    rows = [{"t": "1433221332117", "u": "257597", "i": "355908", "e": "transaction", "tx": "4000.0", "p": "12.5"}]
    row = E.parse_events(bronze(spark, rows, source="retailrocket"), rr_source(conf), conf.clean, NOW).head()
    assert row["event_time"] == dt.datetime(2015, 6, 2, 5, 2, 12, 117000)
    assert (row["user_id"], row["item_id"], row["event_type"]) == ("retailrocket:257597", "retailrocket:355908", "purchase")
    assert (row["transaction_id"], row["price"]) == ("4000", 12.5)


def test_absurd_epoch_values_are_bad_timestamps_not_a_failed_job(spark, conf):
    rows = [{"t": t, "raw": t} for t in ("99999999999999999", "-9223372036854775808", "9223372036854775807",
                                          "99999999999999999999999", "1433221332117")]
    parsed = E.parse_events(bronze(spark, rows, source="retailrocket"), rr_source(conf), conf.clean, NOW)
    assert reasons_by_raw(parsed) == {"99999999999999999": R.BAD_TIMESTAMP, "-9223372036854775808": R.BAD_TIMESTAMP,
                                      "9223372036854775807": R.BAD_TIMESTAMP, "99999999999999999999999": R.BAD_TIMESTAMP,
                                      "1433221332117": None}


def test_formatted_time_with_zone_is_converted_to_utc(spark, conf):
    rees = conf.sources["rees46"]
    utc = E.parse_events(bronze(spark, [{"t": "2019-10-01 00:00:00 UTC"}], "rees46"), rees, conf.clean, NOW).head()
    assert utc["event_time"] == dt.datetime(2019, 10, 1, 0, 0, 0)
    berlin = rees.model_copy(update={"events": rees.events.model_copy(update={
        "time": rees.events.time.model_copy(update={"format": "yyyy-MM-dd HH:mm:ss", "timezone": "Europe/Berlin"})})})
    local = E.parse_events(bronze(spark, [{"t": "2019-10-01 02:00:00"}], "rees46"), berlin, conf.clean, NOW).head()
    assert local["event_time"] == dt.datetime(2019, 10, 1, 0, 0, 0)  # CEST is UTC+2


def parsed_frame(spark, conf, rows):
    return E.parse_events(bronze(spark, rows), rr_source(conf), conf.clean, NOW)


def test_exact_and_near_duplicates(spark, conf):
    rows = [
        {"t": "1433221332000", "raw": "a_first"},
        {"t": "1433221332000", "raw": "b_exact_copy"},
        {"t": "1433221332500", "raw": "half_second_later"},
        {"t": "1433221340000", "raw": "eight_seconds_later"},
        {"t": "1433221340000", "e": "addtocart", "raw": "other_type"},
    ]
    flagged = E.flag_duplicates(parsed_frame(spark, conf, rows), near_duplicate_seconds=1)
    assert reasons_by_raw(flagged) == {
        "a_first": None, "b_exact_copy": R.EXACT_DUPLICATE, "half_second_later": R.NEAR_DUPLICATE,
        "eight_seconds_later": None, "other_type": None,
    }


def test_gap_sessions_and_source_sessions(spark, conf):
    base = 1433221332000
    rows = [
        {"t": str(base), "i": "1", "raw": "a"},
        {"t": str(base + 10 * 60_000), "i": "2", "raw": "b"},          # 10 min later: same session
        {"t": str(base + 50 * 60_000), "i": "3", "raw": "c"},          # 40 min gap: new session
        {"t": str(base + 51 * 60_000), "i": "4", "s": "abc", "raw": "d"},  # source session wins
    ]
    sessions = {r["_raw"]: r["session_id"] for r in E.sessionize(parsed_frame(spark, conf, rows), 30).collect()}
    assert sessions["a"] == sessions["b"] == f"rr:1#{base // 1000}"
    assert sessions["c"] == f"rr:1#{base // 1000 + 50 * 60}"
    assert sessions["d"] == "rr:abc"


def test_bots_by_rate_and_session_length(spark, conf):
    base = 1433221332000
    fast = [{"t": str(base + k * 100), "u": "7", "i": str(k), "raw": f"bot{k}"} for k in range(5)]
    human = [{"t": str(base + k * 30_000), "u": "8", "i": str(k), "raw": f"human{k}"} for k in range(5)]
    rules = conf.clean.bots.model_copy(update={"max_events_per_minute": 3, "max_events_per_session": 100})
    events = E.sessionize(parsed_frame(spark, conf, fast + human), 30)
    reasons = reasons_by_raw(E.flag_bots(events, rules))
    assert {reasons[f"bot{k}"] for k in range(5)} == {R.BOT}
    assert {reasons[f"human{k}"] for k in range(5)} == {None}
    long_sessions = rules.model_copy(update={"max_events_per_minute": 100, "max_events_per_session": 4})
    reasons = reasons_by_raw(E.flag_bots(events, long_sessions))
    assert reasons["human0"] == R.BOT and reasons["bot0"] == R.BOT


def test_unknown_items_only_for_sources_with_catalogue(spark, conf):
    rows = [{"t": "1433221332000", "i": "1", "raw": "known"}, {"t": "1433221332000", "i": "2", "raw": "unknown"}]
    known = spark.createDataFrame([("rr", "rr:1")], "source string, item_id string")
    events = parsed_frame(spark, conf, rows)
    assert reasons_by_raw(E.flag_unknown_items(events, known, ["rr"])) == {"known": None, "unknown": R.UNKNOWN_ITEM}
    assert reasons_by_raw(E.flag_unknown_items(events, known, ["other"])) == {"known": None, "unknown": None}


def test_accepted_events_have_stable_ids(spark, conf):
    rows = [{"t": "1433221332000", "raw": "a"}, {"t": "1433221333000", "i": "11", "raw": "b"}, {"t": "x", "raw": "c"}]
    classified = E.classify_events(parsed_frame(spark, conf, rows), None, [], conf.clean)
    first = E.accepted_events(classified).orderBy("event_time").select("event_id", "event_date").collect()
    again = E.accepted_events(classified).orderBy("event_time").select("event_id").collect()
    assert len(first) == 2 and [r["event_id"] for r in first] == [r["event_id"] for r in again]
    assert len({r["event_id"] for r in first}) == 2
    assert first[0]["event_date"] == dt.date(2015, 6, 2)
