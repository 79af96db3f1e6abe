"""The sequence generator of synthesize-events: its tokens on a tiny frame (exact), then two real
Horovod ranks learning planted sessions - walks round one of two cycles of items, every session
of a person on that person's cycle, a session's top category set by where its walk starts, a
cart, when it has one, on its second step and a purchase, when it has one, on its last - and
writing them back into planned sessions: moves, types, a person's cycle across sessions and
each session's planned context, which the Markov chain cannot keep (it draws each session's
start alone, and knows no plan)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import types

import numpy as np
import pytest

from recsynth.rec import sequence as seq
from recsynth.rec import sequence_features as sf
from recsynth.rec.features import item_vocabulary
from recsynth.synth import clickstream_fidelity as shape
from recsynth.synth.clickstream import (Blocks, fit_markov, fit_sessions, plan_sessions, sample_clickstream,
                                        session_contexts, session_steps)
from recsynth.synth import moves as moves_module
from recsynth.synth.clickstream_sequences import category_vocabulary, person_sequences
from recsynth.synth.moves import (Replay, closes_distinctive, distinctive_paths, item_moves, item_paths, path_code,
                                  replay_of)
from recsynth.synth.sequence_walker import (TrainedGenerator, _draw, planned_steps, planned_types, step_contexts,
                                           training_window, write_sequences)
from recsynth.rec.sequence_items import item_arrays
from recsynth.train.launcher import run_on_ranks
from recsynth.train.shards import current_files

pytestmark = pytest.mark.spark

START = dt.datetime(2026, 1, 1, 12)
SCHEMA = "source string, user_id string, session_id string, item_id string, event_type string, event_time timestamp"


def _code(category: int, purchases: int, carts: int, left: int) -> int:
    """`sequence.context_code` written out: 16 buckets each of carts, purchases and steps left."""
    return category * 4096 + carts * 256 + purchases * 16 + left


def test_a_persons_tokens_are_their_sessions_in_start_order_with_session_ends_and_contexts(spark):
    at = lambda minutes: START + dt.timedelta(minutes=minutes)   # noqa: E731
    events = spark.createDataFrame([
        ("s", "u1", "later", "c", "view", at(60)), ("s", "u1", "later", "c", "cart", at(61)),
        ("s", "u1", "first", "a", "view", at(0)), ("s", "u1", "first", "rare", "view", at(1)),
        ("s", "u1", "first", "b", "view", at(2)), ("s", "u1", "first", "b", "view", at(3)),   # a reload stays
        ("t", "u2", "only", "d", "purchase", at(5)),
    ], SCHEMA)
    vocabulary = spark.createDataFrame([("a", 2), ("b", 3), ("c", 4), ("d", 5)], "item_id string, item_idx int")
    contexts = spark.createDataFrame([("s", "first", "toys"), ("s", "later", "food"), ("t", "only", "rare")],
                                     "source string, session_id string, top_category string")
    categories = category_vocabulary(contexts, max_categories=2)   # one session each: ties by source, then name
    assert sorted(tuple(r) for r in categories.collect()) == [("s", "food", 2), ("s", "toys", 3)]
    rows = {r["user_id"]: (r["source_idx"], [(t["item"], t["type"], t["context"]) for t in r["_sequence"]])
            for r in person_sequences(session_steps(events), vocabulary, {"s": 0, "t": 1}, contexts, categories).collect()}
    # begin (OOV, view + end, no context); the first session a, b, b (its last step + 3), then c
    # view, c cart (+ 3); "rare" is not in the vocabulary: not a step, nor counted in the steps
    # left. Contexts: category 3 (toys), no purchase or cart to come, 2, 1, 0 steps left;
    # category 2 (food), one cart to come at both steps (the view's and the cart's own), 1, 0
    # left; t's category is past max_categories: 1 (other), one purchase to come (its own)
    assert rows["u1"] == (0, [(1, 4, 0), (2, 1, _code(3, 0, 0, 2)), (3, 1, _code(3, 0, 0, 1)), (3, 4, _code(3, 0, 0, 0)),
                              (4, 1, _code(2, 0, 1, 1)), (4, 5, _code(2, 0, 1, 0))])
    assert rows["u2"] == (1, [(1, 4, 0), (5, 6, _code(1, 1, 0, 0))])


def test_the_writer_reads_each_step_where_training_showed_it(spark):
    """A sequence of N tokens is cut from its end into windows: the writer, predicting token m,
    reads the tokens of m's window before it at their very slots, and predicts at the slot
    training predicted m from (not at the last slot, where training put only the sequence's end)."""
    length = 4
    sizes = (2, 5, 6, 9, 12)
    sequences = spark.createDataFrame(
        [(n, 0, [{"item": 100 + j, "type": 1} for j in range(n)]) for n in sizes],
        "n int, source_idx int, _sequence array<struct<item:int, type:int>>")
    shown = {}   # (N, target token) -> (tokens read before it, slot it was predicted from)
    for n in sizes:
        for row in sf.training_windows(sequences.where(f"n = {n}"), length).collect():
            for slot in range(length):
                if row["items"][slot] and row["items"][slot + 1]:
                    shown[(n, row["items"][slot + 1] - 100)] = ([i - 100 if i else -1 for i in row["items"][:slot + 1]],
                                                               slot)
    for (n, target), (read, slot) in shown.items():
        gather, at = training_window(np.array([n]), target, length)
        assert (gather[0, :slot + 1].tolist(), int(at[0])) == (read, slot)
        assert (gather[0, slot + 1:] == -1).all()   # not yet written: padding, as causal attention reads it
    assert len(shown) == sum(n - 1 for n in sizes)   # every token but the first is a target once


def test_a_planned_sessions_purchases_and_carts_count_down_as_they_are_written():
    """A person plans a session of 3 steps (category 2, a purchase and 2 carts) and one of 2
    (category 3, 20 carts: more than EVENTS_LEFT counts, and than its steps). Each step's context
    holds what the session still asks for, given what was written before it in that session."""
    plan = [{"category_idx": 2, "n_purchases": 1, "n_carts": 2}, {"category_idx": 3, "n_purchases": 0, "n_carts": 20}]
    planned = planned_steps([plan], [np.array([3, 2])], 6)
    assert planned.opens[0].tolist() == [1, 0, 0, 1, 0, 0] and planned.left[0].tolist() == [2, 1, 0, 1, 0, 0]
    person = np.array([0])
    written = lambda view, cart, purchase: np.array([[view, cart, purchase]])   # noqa: E731
    assert step_contexts(planned, written(0, 0, 0), person, 0).tolist() == [_code(2, 1, 2, 2)]
    assert step_contexts(planned, written(0, 1, 0), person, 1).tolist() == [_code(2, 1, 1, 1)]
    assert step_contexts(planned, written(0, 2, 0), person, 2).tolist() == [_code(2, 1, 0, 0)]
    assert step_contexts(planned, written(0, 3, 1), person, 2).tolist() == [_code(2, 0, 0, 0)]   # more than planned: 0
    assert step_contexts(planned, written(0, 0, 0), person, 3).tolist() == [_code(3, 0, 15, 1)]   # 20 carts: capped
    assert step_contexts(planned, written(0, 6, 0), person, 4).tolist() == [_code(3, 0, 14, 0)]


def test_a_steps_event_types_are_bounded_by_what_its_plan_still_asks_for():
    """Sessions of 3 steps (view, cart, purchase allowed per step). Planned 1 purchase: any type
    but a cart at first; once 2 steps are left for it, still a view; at the last step only the
    purchase. Once written, only views. Planned 4 carts in 3 steps (more than fit): carts only."""
    plan = [[{"category_idx": 2, "n_purchases": 1, "n_carts": 0}], [{"category_idx": 2, "n_purchases": 0, "n_carts": 4}]]
    planned = planned_steps(plan, [np.array([3]), np.array([3])], 3)
    people = np.array([0, 1])
    written = lambda *rows: np.array(rows)   # noqa: E731   per person: views, carts, purchases so far
    allowed = lambda step, *rows: planned_types(planned, written(*rows), people, step).astype(int).tolist()  # noqa: E731
    assert allowed(0, [0, 0, 0], [0, 0, 0]) == [[1, 0, 1], [0, 1, 0]]
    assert allowed(1, [1, 0, 0], [0, 1, 0]) == [[1, 0, 1], [0, 1, 0]]
    assert allowed(2, [2, 0, 0], [0, 2, 0]) == [[0, 0, 1], [0, 1, 0]]   # the last step: the purchase is owed
    assert allowed(2, [1, 0, 1], [0, 2, 0]) == [[1, 0, 0], [0, 1, 0]]   # the purchase written: views only
    assert planned_types(planned, written([0, 0, 0], [0, 0, 0]), np.array([1]), 0).astype(int).tolist() == [[0, 1, 0]]

def test_a_temperature_below_one_draws_the_likelier_item_more_often():
    """Scores 0 and ln 3: at temperature 1 the second item has probability 3/4; at 1/2 the
    weights are 1 and 9 (9/10); at 2 they are 1 and sqrt 3. A -inf score (another source's item)
    is never drawn at any temperature. 1000 evenly spread uniforms count the shares exactly."""
    logits = np.tile([[0.0, np.log(3.0), -np.inf]], (1000, 1))
    u = (np.arange(1000) + 0.5) / 1000
    picked = {t: np.bincount(_draw(logits, u, t), minlength=3).tolist() for t in (1.0, 0.5, 2.0)}
    assert picked[1.0] == [250, 750, 0] and picked[0.5] == [100, 900, 0]
    assert picked[2.0] == [366, 634, 0]   # 1 / (1 + sqrt 3) = 0.366


def test_min_p_never_draws_an_item_below_its_share_of_the_likeliest_and_keeps_the_others_ratios():
    """Weights 1, 3 and 9 (1/9, 1/3 and 1 of the likeliest): uncut, 1000 evenly spread uniforms
    draw them 1/13, 3/13 and 9/13 of the time; a cut at 0.2 drops the first and keeps 3 : 9;
    a cut at 0.5 leaves the likeliest alone. A -inf score stays undrawn."""
    logits = np.tile([[0.0, np.log(3.0), np.log(9.0), -np.inf]], (1000, 1))
    u = (np.arange(1000) + 0.5) / 1000
    picked = {p: np.bincount(_draw(logits, u, 1.0, p), minlength=4).tolist() for p in (0.0, 0.2, 0.5)}
    assert picked[0.0] == [77, 231, 692, 0]
    assert picked[0.2] == [0, 250, 750, 0] and picked[0.5] == [0, 0, 1000, 0]



def test_a_sharper_draw_reshapes_the_shared_items_and_leaves_the_stand_ins_their_share():
    """Weights 1 and 3 on shared items, 9 on a stand-in: 1/13, 3/13 and 9/13 as scored. A cut at
    0.5 drops the first shared item (1/3 of the likeliest shared one, whatever the stand-in
    weighs) and gives its share to the second: 4/13 = 308 of 1000; temperature 1/2 splits the
    shared 4/13 as 1 : 9 (31 and 277). The stand-in keeps its 9/13 = 692 either way, where
    sharpening all three would have raised it (81/91 = 890 at temperature 1/2)."""
    logits = np.tile([[0.0, np.log(3.0), np.log(9.0)]], (1000, 1))
    u = (np.arange(1000) + 0.5) / 1000
    stand_in = np.array([False, False, True])
    count = lambda *how: np.bincount(_draw(logits, u, *how), minlength=3).tolist()  # noqa: E731
    assert count(1.0, 0.5, stand_in) == [0, 308, 692]
    assert count(0.5, 0.0, stand_in) == [31, 277, 692]
    assert count(0.5, 0.0) == [11, 99, 890]   # 1, 9 and 81 of 91


# --- two Horovod ranks on planted sessions -------------------------------------------------------
CYCLE, WALK, SESSIONS, PEOPLE = 12, 4, 3, 160
GENERATOR = seq.SequenceParams(max_length=16, embedding_dim=32, heads=2, blocks=1, dropout=0.0, batch_size=32,
                               learning_rate=0.01, max_epochs=80, negatives=8, full_softmax_max_items=100,
                               seed=5, generator=True)


def _item(cycle: str, n: int) -> str:
    return f"{cycle}{n % CYCLE:02d}"


def _kind(step: int, carted: bool, purchased: bool) -> str:
    """A planted step's event type: set by the session's planned cart and purchase, not by the item."""
    return "purchase" if purchased and step == WALK - 1 else "cart" if carted and step == 1 else "view"


def _categories(spark):
    """An item's category: the first half of either cycle is "low", the second "high" (a walk of
    4 from 4 to 10 is mostly, or in a tie alphabetically, "high")."""
    return spark.createDataFrame([("shop", _item(cycle, n), "low" if n < CYCLE // 2 else "high")
                                  for cycle in "ab" for n in range(CYCLE)],
                                 "source string, item_id string, category string")


def _planted(spark):
    """PEOPLE people, each on cycle a or b: SESSIONS sessions, each WALK steps forward from a
    random start, an hour apart, half of them with a cart and, drawn alone, half ending in a purchase."""
    rng = np.random.default_rng(11)
    rows = []
    for person in range(PEOPLE):
        cycle = "ab"[person % 2]
        for session in range(SESSIONS):
            first, carted, purchased = int(rng.integers(CYCLE)), bool(rng.integers(2)), bool(rng.integers(2))
            for step in range(WALK):
                item = _item(cycle, first + step)
                kind = _kind(step, carted, purchased)
                rows.append(("shop", f"u{person}", f"u{person}-{session}", item, kind,
                             START + dt.timedelta(hours=session, minutes=step)))
    return spark.createDataFrame(rows, SCHEMA)


def _sessions(steps) -> tuple[dict[str, list[tuple[str, str]]], dict[str, set[str]]]:
    """The written sessions' (item, type) steps by session id, and each person's cycles."""
    sessions: dict[str, list] = {}
    cycles: dict[str, set[str]] = {}
    for r in steps.orderBy("session_id", "position").collect():
        sessions.setdefault(r["session_id"], []).append((r["item_id"], r["event_type"]))
        cycles.setdefault(r["user_id"], set()).add(r["item_id"][0])
    return sessions, cycles


def _forward_share(sessions) -> float:
    moves = [(a, b) for walk in sessions.values() for (a, _), (b, _) in zip(walk, walk[1:])]
    return sum(b == _item(a[0], int(a[1:]) + 1) for a, b in moves) / len(moves)


def test_the_real_moves_and_paths_are_those_enough_people_took_within_a_session(spark, monkeypatch):
    """The planted people walk forward round their cycle: every move taken is n -> n + 1 and every
    3-item path n, n + 1, n + 2, each by many people (480 sessions of 4 steps). One person's own
    jump a00 -> b05 is replayable only when one person is enough; a session's last item moves
    nowhere, and a 2-step session holds no path."""
    jump = spark.createDataFrame([("shop", "odd", "odd-0", item, "view", START + dt.timedelta(minutes=k))
                                  for k, item in enumerate(["a00", "b05"])], SCHEMA)
    steps = session_steps(_planted(spark).unionByName(jump))
    vocabulary = item_vocabulary(steps, 100)
    ids = {r["item_idx"]: r["item_id"] for r in vocabulary.collect()}
    index = {item: k for k, item in ids.items()}
    found = {(ids[r["item"]], ids[r["next"]]): r["taken"] for r in item_moves(steps, vocabulary, 2).collect()}
    forward = {(_item(c, n), _item(c, n + 1)) for c in "ab" for n in range(CYCLE)}
    assert set(found) == forward and sum(found.values()) == PEOPLE * SESSIONS * (WALK - 1)
    assert (index["a00"], index["b05"]) in {(r["item"], r["next"]) for r in item_moves(steps, vocabulary, 1).collect()}
    items = 2 + len(ids)
    paths = {r["path"] for r in item_paths(steps, vocabulary, item_moves(steps, vocabulary, 2), 2, items).collect()}
    assert paths == {path_code(index[_item(c, n)], index[_item(c, n + 1)], index[_item(c, n + 2)], items)
                     for c in "ab" for n in range(CYCLE)}
    replay = replay_of(steps, vocabulary, 2, items)
    assert sorted(replay.paths.tolist()) == sorted(paths) and replay.moves.cum[-1] == sum(found.values())
    shared_forward = item_moves(steps, vocabulary, 2).where(f"next = {index['a01']}")
    assert {r["path"] for r in item_paths(steps, vocabulary, shared_forward, 2, items).collect()} == \
        {path_code(index[_item("a", CYCLE - 1)], index["a00"], index["a01"], items)}
    monkeypatch.setattr(moves_module, "MAX_SUCCESSORS", 0)
    assert item_moves(steps, vocabulary, 2).count() == 0
    assert item_paths(steps, vocabulary, item_moves(steps, vocabulary, 1), 2, items).count() == 0


def test_a_replayed_step_follows_a_real_move_and_never_completes_a_path_too_few_people_took():
    """Moves 0 -> 1, 1 -> 2 and 2 -> 0; the only common path is 0, 1, 2. A chosen step after an
    item with a move replays it; from a session's third step on, only where the path from the
    item before is common (0, 1 -> 2 is; 2, 1 -> 2 is not). Without any common path, only a
    session's second step replays."""
    moves = Blocks.of(3, [(0, 1, 5), (1, 2, 1), (2, 0, 1)])
    before, previous = np.array([0, 0, 2, 0, 0]), np.array([0, 1, 1, 2, 0])
    chosen = np.array([True, True, True, True, False])
    third = np.array([False, True, True, False, False])
    u = np.full(5, 0.5)
    replay = Replay(moves, np.array([path_code(0, 1, 2, 3)]), 3)
    replayed, item = replay.replayed(before, previous, chosen, third, u)
    assert replayed.tolist() == [True, True, False, True, False] and item[replayed].tolist() == [1, 2, 0]
    bare = Replay(moves, np.zeros(0, dtype=np.int64), 3).replayed(before, previous, chosen, third, u)[0]
    assert bare.tolist() == [True, False, False, True, False]


def test_a_third_step_draws_among_the_moves_that_close_a_common_path_and_taste_weighs_the_network_in():
    """Out of item 1: 1 -> 2 taken once, 1 -> 3 three times; the only common path is 0, 1, 2. A
    second step draws by the counts (u 0.5 of 1 + 3: item 3). A third step after 0, 1 draws among
    the moves closing a common path only (item 2, where drawing first and checking after would
    not replay); after 3, 1 none closes one. With the network scoring 2 nine times likelier than
    3, taste 1 weighs 1 x 9 against 3 x 1 (u 0.5: item 2) and taste 0.5 weighs 3 against 3 (u 0.4:
    item 2; u 0.6: item 3)."""
    replay = Replay(Blocks.of(4, [(1, 2, 1), (1, 3, 3)]), np.array([path_code(0, 1, 2, 4)]), 4)
    before, previous, third = np.array([0, 0, 3]), np.array([1, 1, 1]), np.array([False, True, True])
    replayed, item = replay.replayed(before, previous, np.ones(3, dtype=bool), third, np.full(3, 0.5))
    assert replayed.tolist() == [True, True, False] and item[replayed].tolist() == [3, 2]
    scores = np.log(np.array([[1.0, 1.0, 9.0, 1.0]] * 2)) - 40.0
    second, chosen = np.zeros(2, dtype=bool), np.ones(2, dtype=bool)
    at = lambda u, taste: replay.replayed(np.zeros(2, dtype=np.int64), np.ones(2, dtype=np.int64), chosen, second,  # noqa: E731
                                         np.array(u), scores, taste)[1].tolist()
    assert at([0.5, 0.5], 0.0) == [3, 3] and at([0.5, 0.5], 1.0) == [2, 2] and at([0.4, 0.6], 0.5) == [2, 3]


def _untrained_writer(spark, keep):
    """An untrained network over the planted sessions, ready to write their plan: it writes items
    at random (about 1 in 12 of its moves forward)."""
    steps = keep(session_steps(_planted(spark)))
    contexts = keep(session_contexts(steps, _categories(spark)))
    vocabulary, categories = item_vocabulary(steps, 100), keep(category_vocabulary(contexts, 10))
    params = dataclasses.replace(GENERATOR, context_categories=2 + categories.count())
    vocab_size = 2 + vocabulary.count()
    item_ids = np.array([None] * vocab_size, dtype=object)
    for row in vocabulary.collect():
        item_ids[row["item_idx"]] = row["item_id"]
    walks = keep(plan_sessions(fit_sessions(steps, contexts, max_session_events=50, keep=keep), users_multiplier=1.0,
                               seed=2, prefix="syn"))

    def write(**settings):
        generator = TrainedGenerator(seq.SequenceNetwork(params, vocab_size).get_weights(), seq.params_dict(params),
                                     item_ids, np.array([-1, -1] + [0] * (vocab_size - 2)), **settings)
        return keep(write_sequences(walks, generator, {"shop": 0}, categories))

    return types.SimpleNamespace(steps=steps, vocabulary=vocabulary, vocab_size=vocab_size, item_ids=item_ids,
                                 walks=walks, write=write)


def test_with_replay_one_every_step_within_a_session_is_a_real_move_even_from_an_untrained_network(spark, keep):
    """With `replay` 1 every step after a session's first takes a real move, all of which go
    forward and make common paths, so every move written is forward; the plan's lengths,
    purchases and carts still hold."""
    untrained = _untrained_writer(spark, keep)
    replays = replay_of(untrained.steps, untrained.vocabulary, 2, untrained.vocab_size)
    written = {replay: untrained.write(replay=replay, replays=replays) for replay in (0.0, 1.0)}
    assert _forward_share(_sessions(written[1.0])[0]) == 1.0
    assert _forward_share(_sessions(written[0.0])[0]) < 0.3
    kept = shape.context_agreement(untrained.walks, session_contexts(written[1.0], _categories(spark)))
    assert written[1.0].count() == PEOPLE * SESSIONS * WALK
    assert kept["cart_count"] == 1.0 and kept["purchase_count"] == 1.0
    # the same writer told that every forward 3-item path is distinctive: no person's path
    # (across sessions, a repeat collapsed) completes one, though every replayed move went forward
    index = {item: k for k, item in enumerate(untrained.item_ids) if item is not None}
    forward = np.sort(np.array([path_code(index[_item(c, n)], index[_item(c, n + 1)], index[_item(c, n + 2)],
                                          untrained.vocab_size) for c in "ab" for n in range(CYCLE)], dtype=np.int64))
    careful = untrained.write(replay=1.0, replays=replays, distinctive=forward)
    assert _person_path_codes(written[1.0], index, untrained.vocab_size) & set(forward.tolist())
    assert not _person_path_codes(careful, index, untrained.vocab_size) & set(forward.tolist())
    assert careful.count() == PEOPLE * SESSIONS * WALK


def test_the_item_just_written_is_shifted_within_a_session_and_not_across_sessions(spark, keep):
    """`same_item_shift`: far above 0 every step after a session's first stays on the item just
    written, far below 0 none does; a session's first step is never shifted, so the untrained
    network opens the next session elsewhere (most of the time, of 24 items)."""
    untrained = _untrained_writer(spark, keep)

    def stays(shift):
        sessions = _sessions(untrained.write(same_item_shift=shift))[0]
        within = [a == b for walk in sessions.values() for (a, _), (b, _) in zip(walk, walk[1:])]
        people = {}
        for session, walk in sorted(sessions.items()):
            people.setdefault(session.rsplit("-", 1)[0], []).append(walk)
        across = [s[-1][0] == t[0][0] for walks in people.values() for s, t in zip(walks, walks[1:])]
        return np.mean(within), np.mean(across)

    (sticky, sticky_across), (restless, _), (plain, _) = stays(50.0), stays(-50.0), stays(0.0)
    assert (sticky, restless) == (1.0, 0.0) and 0.0 < plain < 1.0
    assert sticky_across < 0.5


def _person_path_codes(steps, index: dict, items: int) -> set[int]:
    """The 3-item path codes of each written person's items in the order written (sessions by
    start, then id), a repeat collapsed."""
    paths: dict[str, list[int]] = {}
    for r in steps.orderBy("user_id", "start_s", "session_id", "position").collect():
        path = paths.setdefault(r["user_id"], [])
        if not path or path[-1] != index[r["item_id"]]:
            path.append(index[r["item_id"]])
    return {path_code(*path[k:k + 3], items) for path in paths.values() for k in range(len(path) - 2)}


def test_distinctive_paths_are_a_persons_collapsed_3_item_paths_fewer_people_took(spark):
    """u1 walks a, b, c then (next session) c, d: collapsed a, b, c, d; u2 walks a, b, c; u3 a
    rare item (its stand-in), b, c. With support 2: a, b, c is two people's, b, c, d one's, and
    the stand-in's path is no one's; with support 3 a, b, c is distinctive too."""
    walks = {("u1", "s1"): "abc", ("u1", "s2"): "cd", ("u2", "s3"): "abc", ("u3", "s4"): ["~rare~shop~x", "b", "c"]}
    steps = spark.createDataFrame([("shop", user, session, k + 1, item, "view", START + dt.timedelta(hours=h, minutes=k))
                                   for h, ((user, session), items) in enumerate(walks.items())
                                   for k, item in enumerate(items)],
                                  "source string, user_id string, session_id string, position int, item_id string, "
                                  "event_type string, event_time timestamp")
    vocabulary = spark.createDataFrame([("a", 2), ("b", 3), ("c", 4), ("d", 5), ("~rare~shop~x", 6)],
                                       "item_id string, item_idx int")
    assert distinctive_paths(steps, vocabulary, 2, 7).tolist() == [path_code(3, 4, 5, 7)]
    assert distinctive_paths(steps, vocabulary, 3, 7).tolist() == sorted([path_code(2, 3, 4, 7), path_code(3, 4, 5, 7)])


def test_a_step_completing_a_distinctive_path_is_flagged_after_two_items_and_not_on_a_repeat():
    distinctive = np.array([path_code(1, 2, 3, 5)])
    second, last = np.array([1, 1, -1, 1]), np.array([2, 2, 2, 2])
    assert closes_distinctive(distinctive, second, last, np.array([3, 4, 3, 2]), 5).tolist() == [True, False, False, False]


@pytest.mark.horovod
@pytest.mark.slow
def test_two_ranks_learn_planted_moves_types_a_persons_cycle_and_each_sessions_context(spark, keep, tmp_path):
    steps = keep(session_steps(_planted(spark)))
    contexts = keep(session_contexts(steps, _categories(spark)))
    vocabulary, categories = item_vocabulary(steps, 100), keep(category_vocabulary(contexts, 10))
    params = dataclasses.replace(GENERATOR, context_categories=2 + categories.count())
    sources = sf.source_indices(["shop"])
    sf.training_windows(person_sequences(steps, vocabulary, sources, contexts, categories), params.max_length) \
        .repartition(4).write.parquet(str(tmp_path / "windows"))
    windows = spark.read.parquet(str(tmp_path / "windows"))
    vocab_size, item_sources, log_q = item_arrays(steps, vocabulary, windows, sources)
    results = run_on_ranks(spark, seq.train_rank, num_proc=2, kwargs={
        "files": current_files(windows), "params": seq.params_dict(params), "vocab_size": vocab_size,
        "item_sources": item_sources, "log_q": log_q, "epochs": params.max_epochs})
    chief = next(r for r in results if r["rank"] == 0)
    assert sum(r["rows"] for r in results) == windows.count() and len(chief["history"]) == params.max_epochs

    item_ids = np.array([None] * vocab_size, dtype=object)
    for row in vocabulary.collect():
        item_ids[row["item_idx"]] = row["item_id"]
    generator = TrainedGenerator(chief["weights"], seq.params_dict(params), item_ids, item_sources)
    walks = keep(plan_sessions(fit_sessions(steps, contexts, max_session_events=50, keep=keep), users_multiplier=1.0,
                               seed=2, prefix="syn"))
    written = keep(write_sequences(walks, generator, sources, categories))
    chain = keep(sample_clickstream(fit_markov(_planted(spark), _categories(spark), min_people=2, max_session_events=50,
                                               keep=keep), users_multiplier=1.0, seed=2, prefix="syn"))
    (sessions, cycles), (chain_sessions, chain_cycles) = _sessions(written), _sessions(chain)
    plans = {r["session_id"]: (r["n_carts"] > 0, r["n_purchases"] > 0) for r in walks.collect()}
    kinds = [kind == _kind(step, *plans[session]) for session, walk in sessions.items()
             for step, (_, kind) in enumerate(walk)]
    one_cycle = {name: sum(len(c) == 1 for c in found.values()) / len(found)
                 for name, found in (("sequence", cycles), ("markov", chain_cycles))}
    kept = {name: shape.context_agreement(walks, session_contexts(found, _categories(spark)))
            for name, found in (("sequence", written), ("markov", chain))}
    print(f"planted sessions: forward moves {_forward_share(sessions):.3f} (chain {_forward_share(chain_sessions):.3f}), "
          f"types {np.mean(kinds):.3f}, people on one cycle {one_cycle}, planned context kept {kept}")
    # a re-run writes the same clickstream, however the plan's rows arrive
    again = write_sequences(walks.repartition(3), generator, sources, categories)
    assert written.exceptAll(again).count() == 0 and again.exceptAll(written).count() == 0
    # every person and session of the plan is written, at its planned length
    assert written.count() == PEOPLE * SESSIONS * WALK
    assert {len(walk) for walk in sessions.values()} == {WALK} and len(cycles) == PEOPLE
    # the planted moves and types (a cart and a purchase where the plan has them), learnt; the chain learns
    # the moves too, but not a person's cycle: it draws each session's start alone, so 3
    # sessions share one cycle a quarter of the time
    assert _forward_share(sessions) >= 0.95 and np.mean(kinds) >= 0.95
    assert one_cycle["sequence"] >= 0.9
    assert one_cycle["markov"] < 0.5
    # the planned top category, purchase and cart: the generator starts its walk where the
    # category says and writes a cart where the plan has one; the chain knows no plan, so about
    # half its sessions have the category, and the cart, by chance
    assert kept["sequence"]["category"] >= 0.9 and kept["sequence"]["purchase"] >= 0.95
    assert kept["sequence"]["cart_count"] == 1.0 and kept["sequence"]["purchase_count"] == 1.0   # bounded by the plan
    assert kept["markov"]["category"] < 0.7 and kept["markov"]["cart"] < 0.7
