"""Writing synthetic people's sessions with the trained sequence generator, on executors.

Each person's plan (`clickstream_sequences.person_plans`: sessions in start order, each with a
length and context) is filled in one step at a time: the network reads the person's tokens so
far (from the begin token) in the window and at the slot where training showed that step
(`training_window`), with the context of the session being written (its planned top
category, the purchases and carts it still asks for - planned minus written so far - and the
steps left in it); it scores every item of the person's source (the user's own items through
the repeat scorer, as in recommending). A step's item is drawn from the softmax of those scores;
`clickstream.sequence.temperature` and `min_p` reshape the draw among the shared items while
the rare items' stand-ins keep their scored share (`_sharpened`). Within a session, a share
`clickstream.sequence.replay` of the steps takes its item from the real moves out of the
previous item instead, where it has one (`recsynth.synth.moves`); `same_item_shift` is added to
the score of the item just written, within a session. A step, replayed or drawn,
that would complete one of the training people's distinctive 3-item paths (each person's last
two items, a repeat collapsed, then this one) draws again from the network without that item
(`_avoiding`). Then the step's event type is drawn from the type head's own softmax given that item. The
token written carries the session end when the plan's session is over, so the next step knows
it opens a new session; a person's later sessions are conditioned on their earlier ones. Every
draw is seeded by the person's key and the step. The network's batched arithmetic can round a
person's scores differently in another batch (and a draw near a boundary then flips), so people
are written in a fixed order (by step count, then id, within the partitions of the plan's
shuffle): a re-run with the same `spark.shuffle_partitions` writes the same clickstream.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsynth.rec import sequence as seq
from recsynth.synth.clickstream import WALKED, step_uniform
from recsynth.synth.clickstream_sequences import BEGIN, CATEGORY_INDEX, PLAN, SESSION_END, person_plans
from recsynth.synth.moves import Replay, closes_distinctive
from recsynth.synth.rare_items import STAND_IN
from recsynth.train.scoring import score_on_executors

_TYPE_SALT = np.uint64(0x5DEECE66D)   # a second stream of uniforms, for the event types
_REPLAY_SALT = np.uint64(0x2545F4914F6CDD1D)   # a third, for whether a step replays a real move
_PEOPLE_CHUNK = 512                   # people written at once in a task: (chunk, items) scores per step


@dataclass(frozen=True)
class TrainedGenerator:
    """What a task needs to write with the generator: its weights and parameters, per item
    index its id and source index (-1: padding, the begin token, never drawn), and the
    temperature and min-p cut its items are drawn with (`clickstream.sequence.temperature`,
    `min_p`), and the share of steps after a session's first whose item replays a real move out
    of the previous item (`replay`), from the training people's moves and paths (`replays`), the
    network's say in which move (`replay_taste`, `moves.Replay.replayed`), what is added to the
    score of the item just written when the next step of its session is drawn (`same_item_shift`:
    below 0 a person moves on to another item more often), and the training
    people's distinctive 3-item paths that no written step may complete (`distinctive`,
    `moves.distinctive_paths`)."""
    weights: list
    params: dict
    item_ids: np.ndarray
    item_sources: np.ndarray
    temperature: float = 1.0
    min_p: float = 0.0
    replay: float = 0.0
    replays: Replay | None = None
    replay_taste: float = 0.0
    same_item_shift: float = 0.0
    distinctive: np.ndarray | None = None


def write_sequences(walks: DataFrame, generator: TrainedGenerator, sources: dict[str, int],
                    categories: DataFrame) -> DataFrame:
    """The generator's steps (`WALKED`) through planned sessions (`clickstream.plan_sessions`),
    their contexts indexed by the `categories` it was trained with, person by person on
    executors; a person of a source without a known item is left out, as the chain leaves out a
    source without a start."""
    known = sorted({int(s) for s in generator.item_sources if s >= 0})
    steps = F.aggregate(F.col(PLAN), F.lit(0), lambda total, session: total + session["length"])
    plans = (person_plans(walks, sources, categories).where(F.col(seq.SOURCE_INDEX).isin(known))
             .sortWithinPartitions(steps, "user_id"))   # alike step counts in a chunk: none waits on a long one
    return score_on_executors(plans, WALKED, generator, writer, _PEOPLE_CHUNK)


def _draw(logits: np.ndarray, u: np.ndarray, temperature: float = 1.0, min_p: float = 0.0,
          kept: np.ndarray | None = None) -> np.ndarray:
    """One column per row of `logits`, with probability softmax(logits), by u in [0, 1); at
    another temperature or a min-p cut, the columns outside `kept` (a column mask: the stand-ins)
    are reshaped by `_sharpened` while their total per row stays, so the kept columns keep the
    share they were scored."""
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    if temperature != 1.0 or min_p > 0.0:
        weights = _sharpened(logits, weights, temperature, min_p,
                             np.zeros(logits.shape[1], dtype=bool) if kept is None else kept)
    cumulative = np.cumsum(weights, axis=1)
    picked = (cumulative < (u * cumulative[:, -1])[:, None]).sum(axis=1)
    return np.minimum(picked, logits.shape[1] - 1)


def _sharpened(logits: np.ndarray, weights: np.ndarray, temperature: float, min_p: float,
               kept: np.ndarray) -> np.ndarray:
    """`weights` (exp of `logits`, per row) where the columns outside `kept` follow
    softmax(logits / temperature) among themselves, those below `min_p` times their row's
    likeliest cut (min-p sampling: the tail is cut where the row is sure, kept where it is not),
    scaled to the total they had. Below 1 the likelier columns gain, above 1 the draw flattens.
    The stand-ins are kept: sharpened with the rest, they are among the likeliest tokens and
    crowd the shared items out (on the sample, a cut at 0.05 over all items gave TSTR 0.32x and
    Gini 0.89x, against 0.41x and 1.00x uncut)."""
    free = ~kept[None, :]
    scores = np.where(free, logits, -np.inf)
    top = scores.max(axis=1, keepdims=True)
    sharp = np.exp((scores - np.where(np.isfinite(top), top, 0.0)) / temperature)
    sharp[sharp < min_p] = 0.0   # the likeliest free column's weight is 1
    mass, total = np.where(free, weights, 0.0).sum(axis=1, keepdims=True), sharp.sum(axis=1, keepdims=True)
    return np.where(free, sharp * np.divide(mass, total, out=np.zeros_like(mass), where=total > 0), weights)


def writer(generator: TrainedGenerator):
    """A task's writer over a chunk of plans (source, user_id, source_idx, _key, sessions): their
    steps in `clickstream.WALKED`."""
    import tensorflow as tf

    params = seq.params_from_dict(generator.params)
    network = seq.SequenceNetwork(params, len(generator.item_ids))
    network.set_weights(generator.weights)
    embeddings, bias = network.item_embedding.embeddings.numpy(), network.item_bias.numpy()
    stand_ins = np.array([str(item).startswith(STAND_IN) for item in generator.item_ids])

    @tf.function(reduce_retracing=True)
    def read(items, types, contexts, slots):
        """The states after each row's slot in `slots`, and the repeat scores of its items there."""
        states = network.encoder(seq.encoder_inputs(network, items, types, contexts), training=False)
        return tf.gather(states, slots, batch_dims=1), tf.gather(network.repeat_scores(items), slots, batch_dims=1)

    @tf.function(reduce_retracing=True)
    def type_logits(states, items):
        return network.type_logits(states, items)

    def write(plans: pd.DataFrame) -> pd.DataFrame:
        people = len(plans)
        sessions = [list(p) for p in plans[PLAN]]
        lengths = [np.array([int(s["length"]) for s in plan], dtype=np.int64) for plan in sessions]
        totals = np.array([ends.sum() for ends in lengths], dtype=np.int64)
        source_idx = plans[seq.SOURCE_INDEX].to_numpy(np.int64)
        keys = plans["_key"].to_numpy(np.int64).view(np.uint64)
        steps = int(totals.max(initial=0))
        # each person's tokens (the begin token, then the steps written so far), as in training
        items, types = np.zeros((people, steps + 1), dtype=np.int32), np.zeros((people, steps + 1), dtype=np.int32)
        items[:, 0], types[:, 0] = BEGIN
        planned = planned_steps(sessions, lengths, steps)
        contexts = np.zeros((people, steps + 1), dtype=np.int32)   # token t reads the context of token t + 1
        written = np.zeros((people, len(seq.EVENT_TYPES)), dtype=np.int64)   # per type, in the session being written
        path = np.full((people, 2), -1, dtype=np.int64)   # each person's last two items, a repeat collapsed
        for step in range(steps):
            alive = np.flatnonzero(totals > step)
            written[alive[planned.opens[alive, step] == 1]] = 0
            contexts[alive, step] = step_contexts(planned, written, alive, step)
            gather, slot = training_window(totals[alive] + 1, step + 1, params.max_length)
            window = lambda tokens: np.where(gather >= 0, tokens[alive[:, None], np.maximum(gather, 0)], 0)  # noqa: E731
            read_items = window(items)
            states, repeat = (x.numpy() for x in read(*(tf.constant(t) for t in (read_items, window(types),
                                                                                 window(contexts))), tf.constant(slot)))
            scores = states @ embeddings.T + bias[None, :]
            np.add.at(scores, (np.repeat(np.arange(len(alive)), params.max_length), read_items.reshape(-1)),
                      repeat.reshape(-1))
            if generator.same_item_shift:   # the item just written, where this step is of its session
                within = np.flatnonzero(planned.opens[alive, step] == 0)
                scores[within, items[alive[within], step]] += generator.same_item_shift
            scores[generator.item_sources[None, :] != source_idx[alive, None]] = -np.inf
            u = step_uniform(keys[alive], step)
            item = _draw(scores, u, generator.temperature, generator.min_p, stand_ins)
            if generator.replays is not None:   # step 0 opens every person's first session: never chosen
                chosen = (planned.opens[alive, step] == 0) & (step_uniform(keys[alive] ^ _REPLAY_SALT, step)
                                                              < generator.replay)
                earlier = max(step - 1, 0)
                replayed, moved = generator.replays.replayed(items[alive, earlier], items[alive, step], chosen,
                                                             planned.opens[alive, earlier] == 0, u, scores,
                                                             generator.replay_taste)
                item[replayed] = moved[replayed]
            if generator.distinctive is not None:
                item = _avoiding(generator.distinctive, path[alive], item, scores, u, generator, stand_ins)
            kinds = type_logits(tf.constant(states), tf.constant(item, tf.int32)).numpy()
            if params.context_categories:   # a conditioned generator writes its plan's purchases and carts
                kinds = np.where(planned_types(planned, written, alive, step), kinds, -np.inf)
            kind = _draw(kinds, step_uniform(keys[alive] ^ _TYPE_SALT, step))
            np.add.at(written, (alive, kind), 1)
            items[alive, step + 1] = item
            moved_on = alive[item != path[alive, 1]]
            path[moved_on, 0], path[moved_on, 1] = path[moved_on, 1], items[moved_on, step + 1]
            types[alive, step + 1] = kind + 1 + SESSION_END * (planned.left[alive, step] == 0)
        return _rows(plans, sessions, lengths, items[:, 1:], (types[:, 1:] - 1) % len(seq.EVENT_TYPES),
                     generator.item_ids)

    return write


def _avoiding(distinctive: np.ndarray, path: np.ndarray, item: np.ndarray, scores: np.ndarray, u: np.ndarray,
              generator: TrainedGenerator, stand_ins: np.ndarray) -> np.ndarray:
    """`item` where no step completes a distinctive path after its person's `path` (last two
    items): a step that would draws again from the network's `scores` without that item, until
    none does or the step has no item left to draw (a stand-in never completes one)."""
    item = item.copy()
    blocked = np.flatnonzero(closes_distinctive(distinctive, path[:, 0], path[:, 1], item, len(generator.item_ids)))
    while len(blocked):
        scores[blocked, item[blocked]] = -np.inf
        blocked = blocked[np.isfinite(scores[blocked]).any(axis=1)]
        item[blocked] = _draw(scores[blocked], u[blocked], generator.temperature, generator.min_p, stand_ins)
        blocked = blocked[closes_distinctive(distinctive, path[blocked, 0], path[blocked, 1], item[blocked],
                                             len(generator.item_ids))]
    return item


def training_window(tokens: np.ndarray, target: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Where training showed the token `target` of sequences of `tokens` tokens: the token index
    at each of the `length` slots the model read (-1: padding, and the slots after the one
    predicting it, which causal attention does not read), and that slot. Training cut windows of
    `length` + 1 tokens from the sequence's end (`sequence_features.training_windows`), so a
    token's window and slot depend on how many tokens come after it: the writer reads every step
    exactly as training read it."""
    first = tokens - ((tokens - 1 - target) // length + 1) * length - 1   # the window's first token (< 0: padding)
    gather = first[:, None] + np.arange(length)[None, :]
    return np.where((gather >= 0) & (gather < target), gather, -1), (target - 1 - first).astype(np.int32)


@dataclass(frozen=True)
class PlannedSteps:
    """Per person and step, (people, steps) arrays of what the plan says of the step's session:
    its category index, purchases and carts, the steps after this one in it, and 1 where the
    step opens it."""
    category: np.ndarray
    purchases: np.ndarray
    carts: np.ndarray
    left: np.ndarray
    opens: np.ndarray


def planned_steps(sessions: list, lengths: list, width: int) -> PlannedSteps:
    """Each person's planned sessions (`person_plans`) spread over their steps, 0 after the last."""
    arrays = {name: np.zeros((len(sessions), width), dtype=np.int64) for name in PlannedSteps.__dataclass_fields__}
    for person, (plan, ends) in enumerate(zip(sessions, lengths)):
        steps = int(ends.sum())
        if not steps:
            continue
        arrays["left"][person, :steps] = np.concatenate([np.arange(n - 1, -1, -1) for n in ends])
        arrays["opens"][person, np.cumsum(ends) - ends] = 1
        for name, key in (("category", CATEGORY_INDEX), ("purchases", "n_purchases"), ("carts", "n_carts")):
            arrays[name][person, :steps] = np.repeat([int(s[key]) for s in plan], ends)
    return PlannedSteps(**arrays)


def step_contexts(planned: PlannedSteps, written: np.ndarray, people: np.ndarray, step: int) -> np.ndarray:
    """The contexts (`sequence.context_code`) of `people`'s step `step`: its session's category,
    the purchases and carts the plan still asks of the session (planned minus `written`, each
    person's event types written so far in it; 0 once met), and the steps after it, as training
    read them."""
    still = lambda kind: np.minimum(_owed(planned, written, people, step, kind), seq.EVENTS_LEFT - 1)  # noqa: E731
    return seq.context_code(planned.category[people, step], still("purchase"), still("cart"),
                            np.minimum(planned.left[people, step], seq.STEPS_LEFT - 1))


def _owed(planned: PlannedSteps, written: np.ndarray, people: np.ndarray, step: int, kind: str) -> np.ndarray:
    """The purchases or carts (`kind`) that `people`'s sessions still owe at step `step`: planned
    minus written so far in the session, 0 once met."""
    count = {"purchase": planned.purchases, "cart": planned.carts}[kind]
    return np.maximum(count[people, step] - written[people, seq.EVENT_TYPES.index(kind)], 0)


def planned_types(planned: PlannedSteps, written: np.ndarray, people: np.ndarray, step: int) -> np.ndarray:
    """(people, event types) booleans: the types `people`'s step `step` may take so that their
    sessions end with the purchases and carts planned (`written`: each person's event types written
    so far in the session). A purchase or cart only while the plan still asks for one; a view only
    while the steps after this one can hold every purchase and cart still asked for. The network
    learns when in a session they come; this bounds how many, which the learnt types alone missed
    in rare contexts (a retrained generator wrote half the planned purchases of retailrocket's
    sessions, under 1% of which have one). A plan asking for more than its session's length
    gets a session of purchases and carts only."""
    owed = {kind: _owed(planned, written, people, step, kind) for kind in ("purchase", "cart")}
    allowed = {"view": owed["purchase"] + owed["cart"] <= planned.left[people, step],
               "cart": owed["cart"] > 0, "purchase": owed["purchase"] > 0}
    return np.stack([allowed[kind] for kind in seq.EVENT_TYPES], axis=1)


def _rows(plans: pd.DataFrame, sessions: list, lengths: list, items: np.ndarray, types: np.ndarray,
          item_ids: np.ndarray) -> pd.DataFrame:
    """The written steps of each person's sessions as `WALKED` rows."""
    person = np.concatenate([np.full(len(ends), n) for n, ends in enumerate(lengths)] + [np.zeros(0, np.int64)])
    length = np.concatenate(lengths + [np.zeros(0, np.int64)])
    offset = np.concatenate([np.cumsum(ends) - ends for ends in lengths] + [np.zeros(0, np.int64)])
    flat = [session for plan in sessions for session in plan]
    row_session = np.repeat(np.arange(len(flat)), length)
    position = np.arange(len(row_session)) - np.repeat(np.cumsum(length) - length, length) + 1
    row_person, column = person[row_session], offset[row_session] + position - 1
    return pd.DataFrame({
        "source": plans["source"].to_numpy()[row_person], "user_id": plans["user_id"].to_numpy()[row_person],
        "session_id": np.array([s["session_id"] for s in flat], dtype=object)[row_session],
        "position": position.astype(np.int32), "item_id": item_ids[items[row_person, column]],
        "event_type": np.array(seq.EVENT_TYPES, dtype=object)[types[row_person, column]],
        "start_s": np.array([float(s["start_s"]) for s in flat])[row_session],
        "duration_s": np.array([float(s["duration_s"]) for s in flat])[row_session],
        "length": length[row_session].astype(np.int32)})[[f.name for f in WALKED.fields]]
