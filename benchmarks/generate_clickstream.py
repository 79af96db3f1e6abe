"""Generate realistic raw e-commerce clickstream, at any size, in the Retailrocket `events.csv` layout.

Why this exists: the real Retailrocket sample in data/sample/ is 100,000 rows, too small to
benchmark or stress the PySpark jobs, and its dirt (malformed rows, bots, duplicates) is unknown.
This script writes as many rows as asked, byte-identical for a given seed, with a known amount
of every kind of dirt, so a run of the pipeline can be checked against exact expected counts.

Output (DIR):
  events-00000.csv ...  K files, each with the header `timestamp,visitorid,event,itemid,transactionid`:
                        timestamp = epoch milliseconds (UTC); event in view|addtocart|transaction;
                        transactionid written as a float (`4000.0`) on transaction rows and empty
                        otherwise (as in the re-saved source). Rows are not in time order.
  GENERATED.json        what was planted, with exact counts (see `counts` and `definitions`).

What the rows are:
  clean      users with sessions (geometric number per user, > 1 h apart); inside a session,
             views a few seconds to minutes apart (exponential gaps); items drawn from a Zipf
             popularity law; ~3% of views lead to an add-to-cart of the same item, ~35% of carts
             to a purchase; the purchases of a session share one transaction id.
  bot        crawler users firing views in bursts of 61-179 events inside one calendar minute
             (sub-second gaps): every bot user has > 60 events in some minute, no clean user has.
  duplicate  an exact copy of a clean row, in the same file at another position.
  malformed  a line that does not split into 5 comma-separated fields (truncated row, extra
             field, wrong delimiter, garbage text).
  bad ts     a 5-field row whose timestamp is empty or not an integer (`not-a-time`, ISO text...).

Memory stays bounded: rows are generated in chunks (default 1M) with vectorised numpy and
streamed to the files; 10M rows took ~9 s and ~0.55 GB of memory on a 2-core machine.

Usage: python benchmarks/generate_clickstream.py --events 10000000 --out /tmp/clicks --files 8
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HEADER = "timestamp,visitorid,event,itemid,transactionid"
EVENT_NAMES = ("view", "addtocart", "transaction")
VIEW, CART, PURCHASE = 0, 1, 2
FILE_PATTERN = "events-{:05d}.csv"
MANIFEST = "GENERATED.json"

# Clean behaviour (times in milliseconds).
MEAN_VIEWS_PER_SESSION = 2.5
MAX_VIEWS_PER_SESSION = 150           # with carts and purchases a session stays < 500 events
MEAN_SESSIONS_PER_USER = 1.5          # used when --users is auto
VIEW_GAP_MIN = 1_500                  # > 1 s: no clean near-duplicates, <= 40 views a minute
VIEW_GAP_MEAN = 60_000
VIEW_GAP_CAP = 20 * 60_000            # sessions stay recoverable with any gap rule in (21 min, 1 h]
MAX_VIEW_OFFSET = 50 * 60_000         # views beyond this offset in a session are dropped
CART_PROB = 0.03
PURCHASE_PROB = 0.35
CART_DELAY_MIN, CART_DELAY_MEAN, CART_DELAY_CAP = 2_000, 30_000, 120_000
CHECKOUT_DELAY_MIN, CHECKOUT_DELAY_MEAN, CHECKOUT_DELAY_CAP = 5_000, 60_000, 120_000
PURCHASE_SPREAD = 1_000               # purchases of one checkout within 1 s of each other
SESSION_GAP_MIN = 3_601_000           # > 1 h between the end of a session and the next
SESSION_GAP_EXTRA_MEAN = 2 * 86_400_000
SESSION_SLOT = 7_200_000              # a session plus its gap never needs more than 2 h
WINDOW_MARGIN = 60_000                # nothing is placed in the last minute of the window

# Bots.
BOT_MIN_BURST = 61                    # a burst lies inside one calendar minute: > 60 events there
BOT_TARGET_BURST = 120
BOT_BURSTS_PER_USER = 8
BOT_GAP_MIN, BOT_GAP_MAX = 50, 400    # ms between bot events (150-1200 a minute)
BOT_BURST_SPAN_MAX = 55_000
BOT_MINUTES_BETWEEN_BURSTS = 2        # plus a geometric number of minutes, mean 10

BAD_TIMESTAMPS = ("", "not-a-time", "null", "NaT", "??", "2015-06-03T10:15:00Z", "1.4e12x")
GARBAGE_ALPHABET = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_:;/|<>!?@$%&*()[]{}=+~^."))

DEFAULT_CHUNK = 1_000_000


# --------------------------------------------------------------------------- small helpers
def _next_prime(n: int) -> int:
    """Smallest prime >= n (trial division; n is at most a few billion)."""
    n = max(n, 2)
    while True:
        if n % 2 or n == 2:
            limit = math.isqrt(n)
            if all(n % d for d in range(3, limit + 1, 2)) or n in (2, 3):
                return n
        n += 1


class IdMap:
    """Bijection index -> id on [0, prime): ids look hashed (like Retailrocket's) and never collide."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.prime = _next_prime(size)
        if self.prime > 3_000_000_000:
            raise ValueError("id space too large for int64 arithmetic")
        self.mul = int(rng.integers(1, self.prime))
        self.add = int(rng.integers(0, self.prime))

    def __call__(self, index: np.ndarray) -> np.ndarray:
        return (np.asarray(index, dtype=np.int64) * self.mul + self.add) % self.prime


def _trunc_exp(rng: np.random.Generator, mean: float, cap: float, size: int) -> np.ndarray:
    """Exponential(mean) truncated to [0, cap], by inverse CDF."""
    u = rng.random(size)
    return -mean * np.log1p(-u * (1.0 - math.exp(-cap / mean)))


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    """Index of the first element of each segment, for segments of the given lengths."""
    ends = np.cumsum(counts)
    return ends - counts


def _allocate(total: int, parts: int) -> np.ndarray:
    """Split `total` into `parts` near-equal non-negative integers (cumulative rounding)."""
    cuts = np.array([(total * i) // parts for i in range(parts + 1)], dtype=np.int64)
    return np.diff(cuts)


def _allocate_bots(total: int, parts: int) -> np.ndarray:
    """Like _allocate, but every non-zero share is >= BOT_MIN_BURST (a share below it cannot
    form a detectable burst), carrying small shares forward."""
    base = _allocate(total, parts)
    out = np.zeros(parts, dtype=np.int64)
    carry = 0
    for i, share in enumerate(base):
        share = int(share) + carry
        if share >= BOT_MIN_BURST:
            out[i], carry = share, 0
        else:
            carry = share
    if carry:
        nonzero = np.flatnonzero(out)
        out[nonzero[-1] if len(nonzero) else parts - 1] += carry
    return out


def _max_run(keys: np.ndarray) -> int:
    """Longest run of equal consecutive values (keys sorted)."""
    if len(keys) == 0:
        return 0
    edges = np.flatnonzero(np.diff(keys)) + 1
    bounds = np.concatenate(([0], edges, [len(keys)]))
    return int(np.diff(bounds).max())


def _min_peak_per_group(groups: np.ndarray, keys: np.ndarray) -> int:
    """For rows sorted by (group, key): the smallest over groups of the group's longest run of
    equal keys (0 if no rows)."""
    if len(keys) == 0:
        return 0
    change = np.flatnonzero((np.diff(keys) != 0) | (np.diff(groups) != 0)) + 1
    starts = np.concatenate(([0], change))
    runs = np.diff(np.concatenate((starts, [len(keys)])))
    run_group = groups[starts]
    peak = np.zeros(int(groups.max()) + 1, dtype=np.int64)
    np.maximum.at(peak, run_group, runs)
    return int(peak[np.unique(groups)].min())


# --------------------------------------------------------------------------- the model
class Model:
    """Parameters shared by all chunks: window, id maps, popularity law, session mix."""

    def __init__(self, args: argparse.Namespace, clean_total: int, rng: np.random.Generator):
        self.start_ms = args.start_ms
        self.window_ms = int(round(args.days * 86_400_000))
        self.end_ms = self.start_ms + self.window_ms
        self.usable_ms = self.window_ms - WINDOW_MARGIN
        self.max_sessions = self.usable_ms // SESSION_SLOT
        if self.max_sessions < 1:
            raise ValueError("--days is too short: the window must hold at least 2 hours")
        self.items = args.items
        cdf = np.cumsum(np.arange(1, args.items + 1, dtype=np.float64) ** -args.zipf)
        self.item_cdf = cdf / cdf[-1]
        self.item_ids = IdMap(rng, max(10 * args.items, 100_000))
        self.visitor_ids = IdMap(rng, max(2 * args.events, 1_000_000))
        funnel = 1 + CART_PROB * (1 + PURCHASE_PROB)          # events per view
        self.views_per_session = MEAN_VIEWS_PER_SESSION
        if args.users is None:
            sessions = MEAN_SESSIONS_PER_USER
        else:                                                 # fit the session mix to the asked user count
            per_user = clean_total / args.users
            sessions = per_user / (MEAN_VIEWS_PER_SESSION * funnel)
            if sessions < 1:                                  # fewer events per user: shorter sessions
                self.views_per_session = max(1.0, per_user / funnel)
        self.events_per_session = self.views_per_session * funnel
        self.requested_sessions_per_user = sessions
        self.sessions_per_user = min(max(sessions, 1.0), float(self.max_sessions))

    def item_ranks(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Popularity ranks (0 = most popular) drawn from the bounded Zipf law."""
        ranks = np.searchsorted(self.item_cdf, rng.random(size), side="right")
        return np.minimum(ranks, self.items - 1)


def _clean_batch(rng: np.random.Generator, model: Model, n_users: int) -> dict:
    """Sessions and funnels of `n_users` fresh users, sorted by (user, time). Times are ms from
    the window start. Keys: user, sess, ts, ev, rank (all numpy arrays)."""
    sps = np.minimum(rng.geometric(1.0 / model.sessions_per_user, n_users), model.max_sessions)
    n_sess = int(sps.sum())
    sess_user = np.repeat(np.arange(n_users, dtype=np.int64), sps)

    # Views: the first at offset 0, then 1.5 s + truncated exponential gaps.
    vps = np.minimum(rng.geometric(1.0 / model.views_per_session, n_sess), MAX_VIEWS_PER_SESSION)
    view_sess = np.repeat(np.arange(n_sess, dtype=np.int64), vps)
    first_view = _segment_starts(vps)
    gaps = VIEW_GAP_MIN + _trunc_exp(rng, VIEW_GAP_MEAN, VIEW_GAP_CAP, len(view_sess))
    gaps[first_view] = 0.0
    csum = np.cumsum(gaps)
    view_off = csum - csum[first_view][view_sess]
    keep = view_off <= MAX_VIEW_OFFSET
    view_sess, view_off = view_sess[keep], view_off[keep]
    view_rank = model.item_ranks(rng, len(view_sess))

    # Funnel: view -> cart of the same item (once per session and item) -> purchase at checkout.
    carted = np.flatnonzero(rng.random(len(view_sess)) < CART_PROB)
    pair = view_sess[carted] * model.items + view_rank[carted]
    _, first = np.unique(pair, return_index=True)
    carted = carted[np.sort(first)]
    cart_sess, cart_rank = view_sess[carted], view_rank[carted]
    cart_off = view_off[carted] + CART_DELAY_MIN + _trunc_exp(rng, CART_DELAY_MEAN, CART_DELAY_CAP, len(carted))
    bought = rng.random(len(carted)) < PURCHASE_PROB
    buy_sess, buy_rank = cart_sess[bought], cart_rank[bought]

    views_per_sess = np.bincount(view_sess, minlength=n_sess)
    duration = view_off[np.cumsum(views_per_sess) - 1]
    np.maximum.at(duration, cart_sess, cart_off)
    checkout = duration + CHECKOUT_DELAY_MIN + _trunc_exp(rng, CHECKOUT_DELAY_MEAN, CHECKOUT_DELAY_CAP, n_sess)
    buy_off = checkout[buy_sess] + rng.integers(0, PURCHASE_SPREAD, len(buy_sess))
    np.maximum.at(duration, buy_sess, buy_off)
    duration = np.ceil(duration).astype(np.int64)

    # Sessions of a user: > 1 h apart, extra gaps shrunk when the user would overflow the window.
    first_sess = _segment_starts(sps)
    last_sess = first_sess + sps - 1
    is_first = np.zeros(n_sess, dtype=bool)
    is_first[first_sess] = True
    extra = rng.exponential(SESSION_GAP_EXTRA_MEAN, n_sess)
    extra[is_first] = 0.0
    base = np.bincount(sess_user, weights=duration, minlength=n_users) + (sps - 1) * SESSION_GAP_MIN
    room = model.usable_ms - base
    assert (room >= 0).all(), "session layout cannot fit the window"
    extra_sum = np.bincount(sess_user, weights=extra, minlength=n_users)
    fill = rng.uniform(0.5, 1.0, n_users)       # a crowded user spans part of the window, not all of it
    scale = np.where(extra_sum > room, fill * room / np.maximum(extra_sum, 1.0), 1.0)
    extra = np.floor(extra * scale[sess_user]).astype(np.int64)
    step = np.where(is_first, 0, np.roll(duration, 1) + SESSION_GAP_MIN + extra)
    csum_step = np.cumsum(step)
    rel_start = csum_step - csum_step[first_sess][sess_user]
    span = rel_start[last_sess] + duration[last_sess]
    user_start = np.floor(rng.random(n_users) * (model.usable_ms - span + 1)).astype(np.int64)
    sess_start = user_start[sess_user] + rel_start

    sess = np.concatenate((view_sess, cart_sess, buy_sess))
    off = np.floor(np.concatenate((view_off, cart_off, buy_off))).astype(np.int64)
    ev = np.concatenate((
        np.full(len(view_sess), VIEW, np.int8),
        np.full(len(cart_sess), CART, np.int8),
        np.full(len(buy_sess), PURCHASE, np.int8),
    ))
    rank = np.concatenate((view_rank, cart_rank, buy_rank))
    user = sess_user[sess]
    ts = sess_start[sess] + off
    order = np.argsort(user * (model.window_ms + 1) + ts, kind="stable")
    return {"user": user[order], "sess": sess[order], "ts": ts[order], "ev": ev[order], "rank": rank[order]}


def _strictly_increasing(user: np.ndarray, ts: np.ndarray, span: int) -> np.ndarray:
    """Nudge times forward by whole ms so each user's times (sorted by user, time) are distinct."""
    if len(ts) == 0:
        return ts
    pos = np.arange(len(ts), dtype=np.int64) - np.searchsorted(user, user, side="left")
    big = span + (1 << 24)
    key = np.maximum.accumulate(user * big + ts - pos)
    return key - user * big + pos


class Counters:
    """Global running counters across chunks (ids handed out, totals)."""

    def __init__(self):
        self.users = 0
        self.bots = 0
        self.transactions = 0
        self.sessions = 0
        self.clean_max_per_minute = 0
        self.bot_min_peak_per_minute = None
        self.min_ts = None
        self.max_ts = None
        self.bot_ids: list[int] = []

    def see_times(self, ts: np.ndarray):
        """Track the smallest and largest timestamp written."""
        if len(ts):
            lo, hi = int(ts.min()), int(ts.max())
            self.min_ts = lo if self.min_ts is None else min(self.min_ts, lo)
            self.max_ts = hi if self.max_ts is None else max(self.max_ts, hi)


def _clean_chunk(rng: np.random.Generator, model: Model, target: int, counters: Counters) -> dict:
    """Exactly `target` clean events of fresh users (the last user may be cut short, keeping
    their earliest events). Returns ts (epoch ms), vis, ev, item, txn (-1 = none)."""
    parts = []
    have = 0
    if target == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {"ts": empty, "vis": empty, "ev": np.zeros(0, np.int8), "item": empty, "txn": empty}
    while have < target:
        need = target - have
        n_users = int(need / (model.sessions_per_user * model.events_per_session) * 1.05) + 16
        batch = _clean_batch(rng, model, n_users)
        n = len(batch["ts"])
        if n > need:
            batch = {k: v[:need] for k, v in batch.items()}
            n = need
        user, ts = batch["user"], batch["ts"]
        ts = _strictly_increasing(user, ts, model.window_ms)
        kept_users = int(user[-1]) + 1
        minute = (model.start_ms + ts) // 60_000 - model.start_ms // 60_000
        minutes = model.window_ms // 60_000 + 2
        counters.clean_max_per_minute = max(counters.clean_max_per_minute, _max_run(user * minutes + minute))
        is_buy = batch["ev"] == PURCHASE
        sessions, inverse = np.unique(batch["sess"][is_buy], return_inverse=True)
        txn = np.full(n, -1, dtype=np.int64)
        txn[is_buy] = counters.transactions + inverse
        counters.transactions += len(sessions)
        counters.sessions += len(np.unique(batch["sess"]))
        parts.append({
            "ts": model.start_ms + ts,
            "vis": model.visitor_ids(counters.users + user),
            "ev": batch["ev"],
            "item": model.item_ids(batch["rank"]),
            "txn": txn,
        })
        counters.users += kept_users
        have += n
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _bot_chunk(rng: np.random.Generator, model: Model, total: int, counters: Counters) -> dict:
    """`total` bot views (0 or >= BOT_MIN_BURST): fresh bot users, each a few bursts of 61-179
    views crawling consecutive catalogue ranks inside one calendar minute."""
    empty = np.zeros(0, dtype=np.int64)
    if total == 0:
        return {"ts": empty, "vis": empty, "ev": np.zeros(0, np.int8), "item": empty, "txn": empty}
    n_bursts = max(1, int(round(total / BOT_TARGET_BURST)))
    sizes = _allocate(total, n_bursts)
    n_bots = max(1, n_bursts // BOT_BURSTS_PER_USER)
    burst_bot = np.sort(np.arange(n_bursts) % n_bots)
    bursts_per_bot = np.bincount(burst_bot, minlength=n_bots)

    # Minutes: a bot's bursts are >= 2 minutes apart, the whole bot inside the window.
    step = BOT_MINUTES_BETWEEN_BURSTS + rng.geometric(0.1, n_bursts) - 1
    first_burst = _segment_starts(bursts_per_bot)
    step[first_burst] = 0
    csum = np.cumsum(step)
    rel_minute = csum - csum[first_burst][burst_bot]
    need = rel_minute[first_burst + bursts_per_bot - 1]
    lo = -(-model.start_ms // 60_000)
    hi = (model.start_ms + model.usable_ms) // 60_000 - 1
    slack = np.maximum(hi - lo - need, 0)
    bot_start = lo + np.floor(rng.random(n_bots) * (slack + 1)).astype(np.int64)
    burst_minute = bot_start[burst_bot] + rel_minute

    # Events inside a burst: sub-second gaps, span <= 55 s, placed inside the burst's minute.
    ev_burst = np.repeat(np.arange(n_bursts), sizes)
    gap_max = np.minimum(BOT_GAP_MAX, BOT_BURST_SPAN_MAX // np.maximum(sizes - 1, 1))
    gaps = rng.integers(BOT_GAP_MIN, gap_max[ev_burst] + 1)
    first_ev = _segment_starts(sizes)
    gaps[first_ev] = 0
    csum = np.cumsum(gaps)
    off = csum - csum[first_ev][ev_burst]
    span = off[first_ev + sizes - 1]
    shift = np.floor(rng.random(n_bursts) * (60_000 - span)).astype(np.int64)
    ts = burst_minute[ev_burst] * 60_000 + shift[ev_burst] + off

    crawl_start = rng.integers(0, model.items, n_bursts)
    rank = (crawl_start[ev_burst] + (np.arange(total) - first_ev[ev_burst])) % model.items
    bot_index = counters.bots + burst_bot[ev_burst]
    vis = model.visitor_ids(model.visitor_ids.prime - 1 - bot_index)

    peak = _min_peak_per_group(bot_index, ts // 60_000)
    counters.bot_min_peak_per_minute = peak if counters.bot_min_peak_per_minute is None else min(counters.bot_min_peak_per_minute, peak)
    counters.bot_ids.extend(int(v) for v in model.visitor_ids(model.visitor_ids.prime - 1 - (counters.bots + np.arange(n_bots))))
    counters.bots += n_bots
    return {"ts": ts, "vis": vis, "ev": np.zeros(total, np.int8), "item": model.item_ids(rank), "txn": np.full(total, -1, np.int64)}


def _malformed_lines(rng: np.random.Generator, model: Model, n: int) -> list[str]:
    """Lines that do not split into 5 comma-separated fields."""
    kinds = rng.integers(0, 4, n)
    ts = model.start_ms + rng.integers(0, model.usable_ms, n)
    vis = model.visitor_ids(rng.integers(0, model.visitor_ids.prime // 2, n))
    item = model.item_ids(model.item_ranks(rng, n))
    lengths = rng.integers(12, 41, n)
    chars = GARBAGE_ALPHABET[rng.integers(0, len(GARBAGE_ALPHABET), int(lengths.sum()))]
    cuts = np.concatenate(([0], np.cumsum(lengths)))
    lines = []
    for i in range(n):
        t, v, it = int(ts[i]), int(vis[i]), int(item[i])
        kind = kinds[i]
        if kind == 0:                      # truncated row: 3 fields
            lines.append(f"{t},{v},view")
        elif kind == 1:                    # an extra field: 6 fields
            lines.append(f"{t},{v},view,{it},,{''.join(chars[cuts[i]:cuts[i] + 6])}")
        elif kind == 2:                    # wrong delimiter: 1 field
            lines.append(f"{t};{v};view;{it};")
        else:                              # garbage text: 1 field
            lines.append("".join(chars[cuts[i]:cuts[i + 1]]).strip() or "garbage")
    return lines


def _bad_timestamp_lines(rng: np.random.Generator, model: Model, n: int, visitors: np.ndarray) -> tuple[list[str], int]:
    """5-field view rows of this chunk's users whose timestamp is empty or non-numeric; distinct
    from each other (one per visitor while visitors last). Returns (lines, how many empty)."""
    kinds = rng.integers(0, len(BAD_TIMESTAMPS), n)
    users = np.unique(visitors)
    if n <= len(users):
        vis = rng.choice(users, n, replace=False)
        rank = model.item_ranks(rng, n)
    else:                                  # more rows than users: (visitor, item) pairs stay distinct
        order = rng.permutation(n)
        vis = users[order % len(users)]
        rank = (order // len(users)) % model.items
    item = model.item_ids(rank)
    lines = [f"{BAD_TIMESTAMPS[k]},{v},view,{it}," for k, v, it in zip(kinds.tolist(), vis.tolist(), item.tolist())]
    return lines, int(np.count_nonzero(kinds == 0))


def _format_rows(ts, vis, ev, item, txn) -> list[str]:
    """Well-formed rows as CSV lines (transactionid as `N.0` or empty)."""
    names = np.array(EVENT_NAMES, dtype=object)[ev].tolist()
    tx = np.full(len(txn), "", dtype=object)
    has = np.flatnonzero(txn >= 0)
    tx[has] = [f"{t}.0" for t in txn[has].tolist()]
    return list(map(",".join, zip(map(str, ts.tolist()), map(str, vis.tolist()), names, map(str, item.tolist()), tx.tolist())))


# --------------------------------------------------------------------------- driver
def _parse_users(text: str):
    """'auto' or a positive integer."""
    if text == "auto":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("--users must be 'auto' or a positive integer")
    return value


def _parse_start(text: str) -> int:
    """ISO date or datetime (UTC unless an offset is given) -> epoch ms."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="generate_clickstream.py",
        description="Write synthetic raw clickstream in the Retailrocket events.csv layout, with bots and dirt "
        "at known rates, plus GENERATED.json holding the exact counts of what was planted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--events", type=int, required=True, help="data rows to write in total (all kinds of rows, header lines excluded)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--files", type=int, default=1, help="number of CSV files, events-00000.csv ...")
    p.add_argument("--seed", type=int, default=42, help="random seed; the same seed and options give byte-identical files")
    p.add_argument("--bot-rate", type=float, default=0.01, help="fraction of rows that are bot views (a non-zero total is raised to at least 61)")
    p.add_argument("--dirt-rate", type=float, default=0.002, help="fraction of rows that are dirt: half malformed lines, half bad timestamps")
    p.add_argument("--duplicate-rate", type=float, default=0.001, help="fraction of rows that are exact copies of clean rows")
    p.add_argument("--items", type=int, default=50_000, help="catalogue size (items with Zipf popularity)")
    p.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of item popularity")
    p.add_argument("--users", type=_parse_users, default="auto",
                   help="approximate number of clean visitors (sessions per visitor, or session length, are fitted to it); "
                   "'auto' gives ~%.1f sessions of ~%.1f views per visitor. The exact count is in the manifest"
                   % (MEAN_SESSIONS_PER_USER, MEAN_VIEWS_PER_SESSION))
    p.add_argument("--start", type=_parse_start, default="2015-06-01", dest="start_ms", help="window start, ISO date/time, UTC")
    p.add_argument("--days", type=float, default=30.0, help="window length in days")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="rows generated per chunk (bounds memory; part of the seed's layout)")
    p.add_argument("--overwrite", action="store_true", help="delete existing events-*.csv and GENERATED.json in --out first")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def _validate(p: argparse.ArgumentParser, args: argparse.Namespace):
    """Reject option values the generator cannot honour."""
    if args.events < 1 or args.files < 1 or args.chunk_size < 1000:
        p.error("--events and --files must be >= 1 and --chunk-size >= 1000")
    if args.items < 200:
        p.error("--items must be >= 200 (a bot burst crawls up to 179 distinct items)")
    if args.events < 100 * args.files:
        p.error("need at least 100 events per file")
    for name in ("bot_rate", "dirt_rate", "duplicate_rate"):
        if not 0.0 <= getattr(args, name) < 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1)")
    if args.bot_rate + args.dirt_rate + args.duplicate_rate > 0.5:
        p.error("bot, dirt and duplicate rates together must not exceed 0.5")
    if args.zipf <= 0 or args.days <= 0:
        p.error("--zipf and --days must be positive")


def generate(args: argparse.Namespace, log=None) -> dict:
    """Write the files and the manifest; returns the manifest."""
    started = time.perf_counter()
    n = args.events
    bots = int(round(n * args.bot_rate))
    if 0 < bots < BOT_MIN_BURST:
        bots = BOT_MIN_BURST
    dirt = int(round(n * args.dirt_rate))
    malformed = (dirt + 1) // 2
    bad_ts = dirt - malformed
    dups = int(round(n * args.duplicate_rate))
    clean = n - bots - dirt - dups
    if clean < max(dups, 1) or clean < 50 * args.files:
        raise ValueError("too few clean events left for these rates")

    per_file = -(-math.ceil(n / args.chunk_size) // args.files)
    n_chunks = per_file * args.files
    if n // n_chunks < 50:
        raise ValueError("too many chunks for so few events")
    seeds = np.random.SeedSequence(args.seed).spawn(n_chunks + 1)
    model = Model(args, clean, np.random.default_rng(seeds[-1]))
    if log and args.users is not None and model.requested_sessions_per_user > model.sessions_per_user:
        log(f"note: --users {args.users} needs {model.requested_sessions_per_user:.2f} sessions per user; using "
            f"{model.sessions_per_user:.2f}, so the visitor count will differ (see manifest)")
    plan = {
        "clean": _allocate(clean, n_chunks),
        "bot": _allocate_bots(bots, n_chunks),
        "malformed": _allocate(malformed, n_chunks),
        "bad_ts": _allocate(bad_ts, n_chunks),
        "dup": _allocate(dups, n_chunks),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stale = sorted(args.out.glob("events-*.csv")) + ([args.out / MANIFEST] if (args.out / MANIFEST).exists() else [])
    if stale:
        if not args.overwrite:
            raise FileExistsError(f"{args.out} already holds generated files (use --overwrite)")
        for path in stale:
            path.unlink()

    counters = Counters()
    by_event = {k: np.zeros(3, dtype=np.int64) for k in ("clean", "bot", "duplicate")}
    empty_ts = 0
    files = []
    handle = None
    for c in range(n_chunks):
        rng = np.random.default_rng(seeds[c])
        tick = time.perf_counter()
        rows = _clean_chunk(rng, model, int(plan["clean"][c]), counters)
        by_event["clean"] += np.bincount(rows["ev"], minlength=3)
        bot_rows = _bot_chunk(rng, model, int(plan["bot"][c]), counters)
        by_event["bot"] += np.bincount(bot_rows["ev"], minlength=3)
        counters.see_times(rows["ts"])
        counters.see_times(bot_rows["ts"])
        src = np.sort(rng.choice(len(rows["ts"]), int(plan["dup"][c]), replace=False))
        by_event["duplicate"] += np.bincount(rows["ev"][src], minlength=3)
        good = {k: np.concatenate((rows[k], bot_rows[k], rows[k][src])) for k in rows}
        perm = rng.permutation(len(good["ts"]))
        lines = _format_rows(*(good[k][perm] for k in ("ts", "vis", "ev", "item", "txn")))
        bad_lines, empties = _bad_timestamp_lines(rng, model, int(plan["bad_ts"][c]), rows["vis"])
        empty_ts += empties
        dirt_lines = _malformed_lines(rng, model, int(plan["malformed"][c])) + bad_lines
        total = len(lines) + len(dirt_lines)
        out = np.empty(total, dtype=object)
        at = rng.choice(total, len(dirt_lines), replace=False)
        mask = np.ones(total, dtype=bool)
        mask[at] = False
        out[mask] = lines
        out[at] = dirt_lines
        text = ("\n".join(out.tolist()) + "\n").encode("ascii")

        f = c // per_file
        if handle is None or files[-1]["name"] != FILE_PATTERN.format(f):
            if handle is not None:
                handle.close()
            files.append({"name": FILE_PATTERN.format(f), "data_lines": 0, "bytes": 0, "sha256": hashlib.sha256()})
            handle = open(args.out / files[-1]["name"], "wb")
            head = (HEADER + "\n").encode("ascii")
            handle.write(head)
            files[-1]["sha256"].update(head)
            files[-1]["bytes"] += len(head)
        handle.write(text)
        files[-1]["sha256"].update(text)
        files[-1]["bytes"] += len(text)
        files[-1]["data_lines"] += total
        if log:
            log(f"chunk {c + 1}/{n_chunks} -> {files[-1]['name']}: {total:,} lines in {time.perf_counter() - tick:.1f}s")
    handle.close()
    for entry in files:
        entry["sha256"] = entry["sha256"].hexdigest()

    if counters.clean_max_per_minute > 60:
        raise RuntimeError(f"a clean user has {counters.clean_max_per_minute} events in one minute (bug)")
    def names(counts):
        return {EVENT_NAMES[i]: int(counts[i]) for i in range(3)}

    total_by_event = by_event["clean"] + by_event["bot"] + by_event["duplicate"]
    total_by_event[VIEW] += bad_ts
    manifest = {
        "generator": "benchmarks/generate_clickstream.py",
        "format": "retailrocket events.csv",
        "header": HEADER.split(","),
        "seed": args.seed,
        "parameters": {
            "events": n, "files": args.files, "bot_rate": args.bot_rate, "dirt_rate": args.dirt_rate,
            "duplicate_rate": args.duplicate_rate, "items": args.items, "zipf_exponent": args.zipf,
            "users": "auto" if args.users is None else args.users,
            "window_start": dt.datetime.fromtimestamp(args.start_ms / 1000, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "days": args.days, "chunk_size": args.chunk_size,
        },
        "counts": {
            "data_lines": int(sum(f["data_lines"] for f in files)),
            "clean_events": int(clean),
            "bot_events": int(bots),
            "duplicate_rows": int(dups),
            "malformed_lines": int(malformed),
            "bad_timestamp_lines": int(bad_ts),
            "bad_timestamp_empty": int(empty_ts),
            "bad_timestamp_non_numeric": int(bad_ts - empty_ts),
            "clean_users": counters.users,
            "clean_sessions": counters.sessions,
            "transactions": counters.transactions,
            "bot_users": counters.bots,
            "clean_by_event": names(by_event["clean"]),
            "bot_by_event": names(by_event["bot"]),
            "duplicate_by_event": names(by_event["duplicate"]),
            "bad_timestamp_by_event": {"view": int(bad_ts), "addtocart": 0, "transaction": 0},
            "five_field_rows_by_event": names(total_by_event),
        },
        "checks": {
            "clean_max_events_per_user_minute": counters.clean_max_per_minute,
            "bot_min_peak_events_per_user_minute": counters.bot_min_peak_per_minute,
            "min_timestamp_ms": counters.min_ts,
            "max_timestamp_ms": counters.max_ts,
            "window_start_ms": model.start_ms,
            "window_end_ms": model.end_ms,
        },
        "expected_reasons_recsynth_defaults": {
            "accepted": int(clean),
            "exact_duplicate": int(dups),
            "near_duplicate": 0,
            "bot": int(bots),
            "malformed_row": int(malformed),
            "missing_field": int(empty_ts),
            "bad_timestamp": int(bad_ts - empty_ts),
        },
        "bot_visitor_ids": sorted(counters.bot_ids),
        "files": files,
        "definitions": {
            "data_lines": "lines after the header, all files; = clean + bot + duplicate + malformed + bad_timestamp",
            "clean_events": "rows of simulated shoppers, all distinct, no user above 60 events in a minute",
            "bot_events": "views by bot users (ids in bot_visitor_ids); each bot has > 60 events in some calendar minute",
            "duplicate_rows": "extra exact copies of clean rows (each copied row appears exactly twice, same file)",
            "malformed_lines": "lines that do not split into exactly 5 comma-separated fields",
            "bad_timestamp_lines": "5-field view rows whose timestamp is empty (bad_timestamp_empty) or not an integer",
            "expected_reasons_recsynth_defaults": "reason counts the recsynth clean job should give with conf/defaults.yaml",
        },
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if log:
        log(f"wrote {n:,} rows in {len(files)} file(s) to {args.out} in {time.perf_counter() - started:.1f}s")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        generate(args, log)
    except (ValueError, FileExistsError) as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
