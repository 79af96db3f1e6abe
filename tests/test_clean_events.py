"""Event cleaning transforms on tiny hand-made frames: each reason, time zones, sessions, bots."""
import datetime as dt
from collections import Counter

import pytest

from recsynth.config import SourceCleanRules, SourceConf, load_conf
from recsynth.etl import clean_events as E
from recsynth.etl import reasons as R

pytestmark = pytest.mark.spark

NOW = dt.datetime(2026, 1, 1)
BRONZE = (
    "source string, event_time string, user_id string, session_id string, item_id string, event_type string, "
    "price string, transaction_id string, quantity string, _raw string, _malformed boolean, _file string, "
    "_ingest_run_id string, _ingested_at timestamp"
)


def bronze(spark, rows, source="rr"):
    full = []
    for i, r in enumerate(rows):
        full.append((source, r.get("t"), r.get("u", "1"), r.get("s"), r.get("i", "10"), r.get("e", "view"), r.get("p"),
                     r.get("tx"), r.get("q"), r.get("raw", f"line{i}"), r.get("bad", False), "f.csv", "run", NOW))
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


def with_rules(source, **rules):
    """`source` with its own cleaning rules (sources.<name>.clean)."""
    return source.model_copy(update={"clean": SourceCleanRules(**rules)})


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
    assert conf.clean.near_duplicate_seconds == 1
    flagged = E.flag_duplicates(parsed_frame(spark, conf, rows))
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

    def reasons_under(bots):
        source = with_rules(rr_source(conf), bots=bots)
        events = E.sessionize(E.parse_events(bronze(spark, fast + human), source, conf.clean, NOW), 30)
        return reasons_by_raw(E.flag_bots(events))

    reasons = reasons_under({"max_events_per_minute": 3, "max_events_per_session": 100})
    assert {reasons[f"bot{k}"] for k in range(5)} == {R.BOT}
    assert {reasons[f"human{k}"] for k in range(5)} == {None}
    reasons = reasons_under({"max_events_per_minute": 100, "max_events_per_session": 4})
    assert reasons["human0"] == R.BOT and reasons["bot0"] == R.BOT
    assert set(reasons_under(False).values()) == {None}   # a source without the bot rule


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


@pytest.fixture(scope="module")
def orders(conf):
    """The bundled orders export's source conf (sources.online_retail): every row a purchase line,
    quantities, returns on C invoices, non-product codes, no bot rule, duplicates by source row."""
    return conf.sources["online_retail"]


def order_line(invoice, item="85123A", qty="6", price="2.55", customer="17850", t="2011-06-01 10:00:00", raw=None):
    return {"t": t, "u": customer, "s": invoice, "tx": invoice, "i": item, "p": price, "q": qty, "e": None,
            "raw": raw or f"{invoice},{item},{qty},{t},{price},{customer}"}


def test_an_orders_export_by_its_own_rules_in_reason_order(spark, conf, orders):
    rows = {
        "ok": order_line("536365"),
        "guest_adjustment": order_line("536999", qty="-5", price="0", customer=""),
        "postage_cancelled": order_line("C536379", item="POST", qty="-1"),
        "voucher": order_line("536370", item="gift_0001_20"),
        "bank_charges": order_line("536371", item="BANK CHARGES", price="15"),
        "return": order_line("C536383", qty="-2"),
        "return_at_price_0": order_line("C536384", price="0", qty="-1"),
        "free": order_line("536372", price="0"),
        "negative_not_a_return": order_line("536373", qty="-3"),
        "text_quantity": order_line("536374", qty="many"),
    }
    parsed = E.parse_events(bronze(spark, [dict(r, raw=name) for name, r in rows.items()], "online_retail"),
                            orders, conf.clean, NOW)
    assert reasons_by_raw(parsed) == {
        "ok": None, "guest_adjustment": R.MISSING_FIELD, "postage_cancelled": R.NOT_A_PRODUCT,
        "voucher": R.NOT_A_PRODUCT, "bank_charges": R.NOT_A_PRODUCT, "return": R.RETURN,
        "return_at_price_0": R.RETURN, "free": R.BAD_PRICE, "negative_not_a_return": R.BAD_QUANTITY,
        "text_quantity": R.BAD_QUANTITY,
    }
    ok = parsed.where("_raw = 'ok'").head()
    assert (ok["event_type"], ok["quantity"], ok["user_id"], ok["session_id"]) == (
        "purchase", 6, "online_retail:17850", "online_retail:536365")
    assert ok["event_time"] == dt.datetime(2011, 6, 1, 9, 0)      # 10:00 in London in June is 09:00 UTC
    assert parsed.where("_raw = 'return'").head()["quantity"] == 2  # what went back, positive


def test_london_time_across_the_2011_daylight_saving_changes(spark, conf, orders):
    local_to_utc = {
        "2011-03-27 00:30:00": dt.datetime(2011, 3, 27, 0, 30),    # GMT before the change at 01:00
        "2011-03-27 02:30:00": dt.datetime(2011, 3, 27, 1, 30),    # BST after it
        "2011-10-30 00:30:00": dt.datetime(2011, 10, 29, 23, 30),  # BST before the change at 02:00
        "2011-10-30 02:30:00": dt.datetime(2011, 10, 30, 2, 30),   # GMT after it
    }
    rows = [order_line(f"5{k}", t=t, raw=t) for k, t in enumerate(local_to_utc)]
    parsed = E.parse_events(bronze(spark, rows, "online_retail"), orders, conf.clean, NOW)
    assert {r["_raw"]: r["event_time"] for r in parsed.collect()} == local_to_utc


def test_an_orders_export_keeps_every_line_but_exact_copies_and_has_no_bots(spark, conf, orders):
    line = order_line("536365")
    rows = [
        dict(line, raw="first"),
        dict(line, raw="first"),                                           # the same source row again
        dict(line, raw="other description"),                               # equal but for a source column
        dict(order_line("536365", qty="12"), raw="other quantity"),
        *[dict(order_line("536400", item=str(20000 + k)), raw=f"wholesale{k}") for k in range(70)],  # 70 lines, one minute
    ]
    parsed = E.parse_events(bronze(spark, rows, "online_retail"), orders, conf.clean, NOW)
    classified = E.classify_events(parsed, None, [], conf.clean)
    assert Counter(r["_reason"] for r in classified.collect()) == {R.EXACT_DUPLICATE: 1, None: 73}
    accepted = E.accepted_events(classified)
    assert accepted.select("event_id").distinct().count() == 73   # distinct ids, also for equal canonical fields
    assert accepted.where("session_id = 'online_retail:536400'").count() == 70


def test_returns_leave_the_events_for_silver_returns(spark, conf, orders):
    rows = [order_line("536365", raw="bought"), order_line("C536383", qty="-2", raw="returned")]
    classified = E.classify_events(E.parse_events(bronze(spark, rows, "online_retail"), orders, conf.clean, NOW),
                                   None, [], conf.clean)
    returned = E.returned_events(classified).collect()
    assert [(r["transaction_id"], r["quantity"], r["event_type"]) for r in returned] == [("C536383", 2, "purchase")]
    assert [r["transaction_id"] for r in E.accepted_events(classified).collect()] == ["536365"]
