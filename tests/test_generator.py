"""The clickstream generator (benchmarks/generate_clickstream.py) plants exactly what its
manifest says, in the Retailrocket events.csv layout. No Spark needed."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generate_clickstream.py"
RETAILROCKET_HEADER = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
ARGS = ["--events", "5000", "--files", "2", "--seed", "7", "--bot-rate", "0.05",
        "--dirt-rate", "0.01", "--duplicate-rate", "0.01", "--quiet"]


def _load():
    spec = importlib.util.spec_from_file_location("generate_clickstream", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load()


def _run(out: Path, *extra: str) -> dict:
    assert gen.main([*ARGS, "--out", str(out), *extra]) == 0
    return json.loads((out / "GENERATED.json").read_text())


def _read(out: Path) -> tuple[list[list[str]], list[list[str]]]:
    """(headers, data rows) of all events-*.csv files, parsed with the csv module."""
    headers, rows = [], []
    for path in sorted(out.glob("events-*.csv")):
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            headers.append(next(reader))
            rows.extend(reader)
    return headers, rows


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("clicks")
    manifest = _run(out)
    headers, rows = _read(out)
    return out, manifest, headers, rows


def test_header_is_retailrocket(generated):
    out, manifest, headers, _ = generated
    assert len(headers) == 2 == len(list(out.glob("events-*.csv")))
    assert all(h == RETAILROCKET_HEADER for h in headers)
    assert (out / "events-00000.csv").read_bytes().startswith(b"timestamp,visitorid,event,itemid,transactionid\n")
    assert manifest["header"] == RETAILROCKET_HEADER


def test_counts_add_up_to_the_lines_written(generated):
    out, manifest, _, rows = generated
    counts = manifest["counts"]
    planted = ("clean_events", "bot_events", "duplicate_rows", "malformed_lines", "bad_timestamp_lines")
    assert sum(counts[k] for k in planted) == counts["data_lines"] == len(rows) == 5000
    assert sum(f["data_lines"] for f in manifest["files"]) == 5000
    lines = sum(len(p.read_text().splitlines()) - 1 for p in out.glob("events-*.csv"))
    assert lines == 5000
    assert sum(counts["clean_by_event"].values()) == counts["clean_events"]
    assert sum(counts["duplicate_by_event"].values()) == counts["duplicate_rows"]
    assert counts["bad_timestamp_empty"] + counts["bad_timestamp_non_numeric"] == counts["bad_timestamp_lines"]


def test_rows_are_classified_exactly_as_the_manifest_says(generated):
    _, manifest, _, rows = generated
    counts = manifest["counts"]
    malformed = [r for r in rows if len(r) != 5]
    five = [r for r in rows if len(r) == 5]
    bad_ts = [r for r in five if not r[0].isdigit()]
    good = [tuple(r) for r in five if r[0].isdigit()]
    bots = set(str(v) for v in manifest["bot_visitor_ids"])
    assert len(malformed) == counts["malformed_lines"]
    assert len(bad_ts) == counts["bad_timestamp_lines"]
    assert sum(1 for r in bad_ts if r[0] == "") == counts["bad_timestamp_empty"]
    assert len(good) - len(set(good)) == counts["duplicate_rows"]
    assert max(Counter(good).values()) == 2
    assert sum(1 for r in set(good) if r[1] in bots) == counts["bot_events"]
    clean = [r for r in set(good) if r[1] not in bots]
    assert len(clean) == counts["clean_events"]
    assert len({r[1] for r in clean}) == counts["clean_users"]
    assert len(bots) == counts["bot_users"] >= 1
    assert Counter(r[2] for r in clean) == Counter({k: v for k, v in counts["clean_by_event"].items() if v})
    # transactionid: a float on transaction rows, empty elsewhere; shared within a transaction.
    for r in good:
        if r[2] == "transaction":
            assert r[4].endswith(".0") and r[4][:-2].isdigit()
        else:
            assert r[4] == ""
    assert len({r[4] for r in clean if r[2] == "transaction"}) == counts["transactions"]
    window = manifest["checks"]
    assert all(window["window_start_ms"] <= int(r[0]) < window["window_end_ms"] for r in good)


def test_rows_are_not_in_time_order(generated):
    _, _, _, rows = generated
    times = [int(r[0]) for r in rows if len(r) == 5 and r[0].isdigit()]
    assert times != sorted(times)


def test_bots_exceed_60_events_a_minute_and_clean_users_do_not(generated):
    _, manifest, _, rows = generated
    bots = set(str(v) for v in manifest["bot_visitor_ids"])
    per_minute = Counter((r[1], int(r[0]) // 60_000) for r in set(map(tuple, rows)) if len(r) == 5 and r[0].isdigit())
    peak: dict[str, int] = {}
    for (user, _), n in per_minute.items():
        peak[user] = max(peak.get(user, 0), n)
    assert all(peak[b] > 60 for b in bots)
    assert max(n for user, n in peak.items() if user not in bots) <= 60


def test_item_popularity_is_heavy_tailed(generated):
    _, manifest, _, rows = generated
    bots = set(str(v) for v in manifest["bot_visitor_ids"])
    views = Counter(r[3] for r in set(map(tuple, rows))
                    if len(r) == 5 and r[0].isdigit() and r[2] == "view" and r[1] not in bots)
    top = max(1, manifest["parameters"]["items"] // 100)
    share = sum(n for _, n in views.most_common(top)) / sum(views.values())
    assert share > 0.20


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(generated, tmp_path):
    out, _, _, _ = generated
    again = tmp_path / "again"
    _run(again)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    _run(other, "--seed", "8")
    assert (other / "events-00000.csv").read_bytes() != (out / "events-00000.csv").read_bytes()


def test_refuses_to_mix_with_an_earlier_run(generated):
    out, _, _, _ = generated
    with pytest.raises(SystemExit):
        gen.main([*ARGS, "--out", str(out)])
