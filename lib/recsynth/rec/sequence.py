"""A repeat-aware sequence recommender in the SASRec style (Kang & McAuley 2018), in Keras 2.

Input: a user's most recent `max_length` events (item index, event type), oldest first, padded
with 0 on the left (`recsynth.rec.sequence_features`). Causal self-attention blocks (pre-layer
norm, as SASRec) turn position t into a vector h_t, the user's state after the event at t.

Score of item i after position t (one formula for training, early stopping and serving):
    h_t . E_i + b_i + repeat_t(i)
where E is the input item embedding (shared, as in SASRec), b_i a learnt item bias, and
repeat_t(i) a small network over how the user has used i up to t (how many events, how
recently with two decays, whether it is the item at t) - non-zero only for the user's own items.
So one list serves both tasks: the user's own items compete with new ones on one scale.

Loss: cross-entropy of the items of the next `horizon` events at every real position (padding
and items outside the vocabulary are not targets): horizon 1 is SASRec's next item; a longer one
asks, as the `next` task does, for what the user will touch soon, not only next (the "dense all
action" loss of PinnerFormer, Pancha et al. 2022). Candidates are every item of the vocabulary (full softmax) when
it has at most `full_softmax_max_items` items, otherwise `negatives` items drawn from the
targets' distribution q with the logQ correction (logit - log q) and accidental hits masked.
Items of another source than the sequence's, padding and the out-of-vocabulary index are never
candidates. The user's own items are rarely among the sampled candidates, so the repeat score is
seldom weighed against them and grows (the sample's generator sent 73% of its moves out of a
shared item to that same item, against 31% real); with `own_items_exact` they are candidates at
every position, each counted once and uncorrected (it is drawn with probability 1), against the
sampled others corrected by log(n q) (n draws: their expected count), as a sampled softmax over
two proposals. A very frequent target (a generator's stand-in for rare items) is still
over-scored: drawn about n q times as a negative but counted once as a positive, it looks less
likely to the loss than it is.

As a generator (`generator`: the synthetic clickstream's, `recsynth.synth.sequence_walker`) the
same network also reads where sessions end - a token's type index is its event type's + 3 when
the next token opens a new session - and predicts the next event's type from h_t and the next
item's embedding (a cross-entropy added to the item loss), so that it can write a session's
items and events one step at a time. A conditioned generator (`context_categories` > 0) also
reads, at each position, the context of the session the next token belongs to - its top
category, how many purchases and carts it has from that token on, and how many of its steps
come after that token (`context_code`) - so that a planned session's context steers what is
written into it.

`train_rank` is the body of each Horovod rank (the shared launcher and epoch loop): it reads its
Petastorm shard of the training windows, averages gradients over ranks, and with validation
users stops early on rank 0's NDCG@k (`patience` epochs without a better one, at most
`max_epochs`), returning the best epoch's weights. TensorFlow is imported inside functions.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from recsynth.errors import RecommenderError

LAYOUT_VERSION = 4   # part of a checkpoint's key: bumped when the network's variables change (2: positions learnt,
                     # 4: a generator's contexts count the purchases and carts still to come)
PAD, OOV, FIRST_KNOWN = 0, 1, 2          # item indices, as `recsynth.rec.features`' vocabularies
EVENT_TYPES = ("view", "cart", "purchase")   # type index = position + 1; 0 is padding
ITEMS, TYPES, CONTEXTS, SOURCE_INDEX = "items", "types", "contexts", "source_idx"
STEPS_LEFT = 16   # context buckets of the steps left in a session: 0 .. 15 (and more)
EVENTS_LEFT = 16  # context buckets of the purchases (or carts) still to come in a session: 0 .. 15 (and more);
                  # a retailrocket session with 4 or more purchases holds 30% of them: a smaller cap under-writes them
REPEAT_DECAYS = (0.5, 0.9)
MASKED = -1e9


@dataclass(frozen=True)
class SequenceParams:
    max_length: int = 30                 # events of the user's history the model sees
    embedding_dim: int = 64
    blocks: int = 2                      # self-attention blocks
    heads: int = 2
    dropout: float = 0.2
    batch_size: int = 128                # windows per rank and step
    learning_rate: float = 2e-3
    max_epochs: int = 15
    patience: int = 2                    # epochs without a better validation NDCG before stopping
    negatives: int = 1000                # sampled candidates per step (sampled softmax)
    full_softmax_max_items: int = 5000   # at most this many items: every item is a candidate
    horizon: int = 1                     # the following events whose items are each position's targets
    logq_correction: bool = True
    own_items_exact: bool = False        # sampled softmax: the user's own items are candidates at every step
    k: int = 10                          # the NDCG@k of early stopping
    seed: int = 0
    generator: bool = False              # read session ends, predict event types (see the module doc)
    context_categories: int = 0          # > 0: a generator conditioned on session contexts with this many
                                         # category indices (0 padding, 1 any other category)

    def __post_init__(self):
        for name in ("max_length", "embedding_dim", "blocks", "heads", "batch_size", "max_epochs", "patience",
                     "negatives", "full_softmax_max_items", "horizon", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RecommenderError(f"sequence {name} must be an integer >= 1, got {value!r}")
        if self.embedding_dim % self.heads:
            raise RecommenderError(f"sequence embedding_dim ({self.embedding_dim}) must be a multiple of heads "
                                   f"({self.heads})")
        if isinstance(self.context_categories, bool) or not isinstance(self.context_categories, int) or \
                self.context_categories < 0 or (self.context_categories and not self.generator):
            raise RecommenderError(f"sequence context_categories must be an integer >= 0, and 0 unless a generator, "
                                   f"got {self.context_categories!r}")
        if not 0 <= self.dropout < 1 or not self.learning_rate > 0:
            raise RecommenderError(f"sequence dropout must be in [0, 1) and learning_rate > 0, got "
                                   f"{self.dropout!r}, {self.learning_rate!r}")


def type_inputs(params: SequenceParams) -> int:
    """Type indices the network reads: padding, the event types, and as a generator each again
    for a token that ends its session."""
    return 1 + len(EVENT_TYPES) * (2 if params.generator else 1)


def context_code(category, purchases_left, carts_left, steps_left):
    """One token's session context as one index (numpy arrays or Spark columns alike):
    `category` >= 1; the purchases and carts of the session from this token on (itself
    included), capped at EVENTS_LEFT - 1; the steps after it, capped at STEPS_LEFT - 1. 0 is
    padding."""
    return ((category * EVENTS_LEFT + carts_left) * EVENTS_LEFT + purchases_left) * STEPS_LEFT + steps_left


def encoder_inputs(network: "SequenceNetwork", items, types, contexts=None) -> dict:
    """The encoder's input dict: a conditioned generator's also holds the positions' contexts."""
    inputs = {ITEMS: items, TYPES: types}
    if network.params.context_categories:
        inputs[CONTEXTS] = contexts
    return inputs


def params_dict(params: SequenceParams) -> dict:
    return asdict(params)


_SAMPLED_CANDIDATES = ("negatives", "full_softmax_max_items", "own_items_exact", "logq_correction")


def checkpoint_params(params: SequenceParams, vocab_size: int) -> dict:
    """`params_dict` as a checkpoint key: under a full softmax (at most `full_softmax_max_items`
    items) the settings of sampled candidates do not touch training, so they are left out, and
    a new threshold or number of negatives resumes the same network instead of training it again
    (Online Retail's 3,347 items retrained when the generator's threshold went from 5,000 to
    20,000)."""
    values = params_dict(params)
    if vocab_size <= params.full_softmax_max_items:
        for name in _SAMPLED_CANDIDATES:
            values.pop(name)
    return values


def params_from_dict(values: dict) -> SequenceParams:
    unknown = sorted(set(values) - {f.name for f in fields(SequenceParams)})
    if unknown:
        raise RecommenderError(f"unknown sequence parameter(s) {unknown}")
    return SequenceParams(**values)


# --- the network -------------------------------------------------------------------------------
class SequenceNetwork:
    """The encoder (items, types -> one state per position), the item bias and the repeat scorer;
    layers are created in a fixed order, so weights lists are interchangeable between builds."""

    def __init__(self, params: SequenceParams, vocab_size: int):
        import tensorflow as tf

        p, length = params, params.max_length
        self.params, self.vocab_size = p, int(vocab_size)
        self.item_embedding = tf.keras.layers.Embedding(self.vocab_size, p.embedding_dim, name="item_embedding")
        items = tf.keras.Input((length,), dtype="int32", name=ITEMS)
        types = tf.keras.Input((length,), dtype="int32", name=TYPES)
        real = tf.cast(tf.not_equal(items, PAD), tf.float32)[:, :, None]
        x = self.item_embedding(items) * (p.embedding_dim ** 0.5)
        x = x + tf.keras.layers.Embedding(type_inputs(p), p.embedding_dim, name="type_embedding")(types)
        # positions from the input, so that the embedding is one of the model's variables (on a
        # constant, Keras would bake its random initial table into the graph: untrained, unsaved)
        positions = tf.zeros_like(items) + tf.range(length)[None, :]
        x = x + tf.keras.layers.Embedding(length, p.embedding_dim, name="position_embedding")(positions)
        inputs = {ITEMS: items, TYPES: types}
        if p.context_categories:
            contexts = inputs[CONTEXTS] = tf.keras.Input((length,), dtype="int32", name=CONTEXTS)
            for name, size, part in (("context_category", p.context_categories,
                                      contexts // (EVENTS_LEFT * EVENTS_LEFT * STEPS_LEFT)),
                                     ("context_purchases_left", EVENTS_LEFT, (contexts // STEPS_LEFT) % EVENTS_LEFT),
                                     ("context_carts_left", EVENTS_LEFT,
                                      (contexts // (EVENTS_LEFT * STEPS_LEFT)) % EVENTS_LEFT),
                                     ("context_steps_left", STEPS_LEFT, contexts % STEPS_LEFT)):
                x = x + tf.keras.layers.Embedding(size, p.embedding_dim, name=name)(part)
        x = tf.keras.layers.Dropout(p.dropout)(x) * real
        causal = tf.linalg.band_part(tf.ones((length, length), tf.bool), -1, 0)[None]
        attend = causal & tf.not_equal(items, PAD)[:, None, :]
        for block in range(p.blocks):
            normed = tf.keras.layers.LayerNormalization(epsilon=1e-6, name=f"attention_norm_{block}")(x)
            x = x + tf.keras.layers.MultiHeadAttention(p.heads, p.embedding_dim // p.heads, dropout=p.dropout,
                                                       name=f"attention_{block}")(normed, normed, attention_mask=attend)
            normed = tf.keras.layers.LayerNormalization(epsilon=1e-6, name=f"feed_forward_norm_{block}")(x)
            hidden = tf.keras.layers.Dense(p.embedding_dim, activation="relu", name=f"feed_forward_{block}_in")(normed)
            hidden = tf.keras.layers.Dropout(p.dropout)(hidden)
            x = (x + tf.keras.layers.Dense(p.embedding_dim, name=f"feed_forward_{block}_out")(hidden)) * real
        states = tf.keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")(x)
        self.encoder = tf.keras.Model(inputs, states, name="sequence_encoder")
        self.item_bias = tf.Variable(tf.zeros((self.vocab_size,)), name="item_bias")
        self.repeat_hidden = tf.keras.layers.Dense(8, activation="relu", name="repeat_hidden")
        self.repeat_out = tf.keras.layers.Dense(1, name="repeat_out")
        self.repeat_hidden.build((None, 2 + len(REPEAT_DECAYS)))
        self.repeat_out.build((None, 8))
        self.type_layers = []
        if p.generator:
            self.type_layers = [tf.keras.layers.Dense(p.embedding_dim, activation="relu", name="type_hidden"),
                                tf.keras.layers.Dense(len(EVENT_TYPES), name="type_out")]
            self.type_layers[0].build((None, 2 * p.embedding_dim))
            self.type_layers[1].build((None, p.embedding_dim))

    @property
    def variables(self) -> list:
        return [*self.encoder.variables, self.item_bias, *self.repeat_hidden.variables, *self.repeat_out.variables,
                *[v for layer in self.type_layers for v in layer.variables]]

    @property
    def trainable_variables(self) -> list:
        return [*self.encoder.trainable_variables, self.item_bias, *self.repeat_hidden.trainable_variables,
                *self.repeat_out.trainable_variables, *[v for layer in self.type_layers for v in layer.trainable_variables]]

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for v in self.variables]

    def set_weights(self, weights) -> None:
        for variable, value in zip(self.variables, weights, strict=True):
            variable.assign(value)

    @staticmethod
    def _same_known(items):
        """(batch, j, k): whether slots j and k hold the same known item."""
        import tensorflow as tf

        known = items >= FIRST_KNOWN
        return tf.equal(items[:, :, None], items[:, None, :]) & known[:, :, None] & known[:, None, :]

    def own_slots(self, items):
        """(batch, t, j): whether slot j holds, by position t, one of the user's own items: the
        first slot of each distinct known item with j <= t (so each item counts once)."""
        import tensorflow as tf

        length = self.params.max_length
        same = self._same_known(items)
        up_to = tf.linalg.band_part(tf.ones((length, length), tf.bool), -1, 0)   # [j, k]: k <= j
        first = (items >= FIRST_KNOWN) & ~tf.reduce_any(same & (up_to & ~tf.eye(length, dtype=tf.bool))[None], axis=2)
        return first[:, None, :] & up_to[None]   # [t, j]: j <= t

    def repeat_scores(self, items):
        """(batch, t, j): the repeat score of the item at slot j after position t, on the user's
        own slots (`own_slots`; 0 elsewhere)."""
        import tensorflow as tf

        length = self.params.max_length
        same = self._same_known(items)
        k, t = np.arange(length)[:, None], np.arange(length)[None, :]
        gap = np.where(k <= t, t - k, -1)
        weights = np.stack([(gap >= 0), *[np.where(gap >= 0, d ** np.maximum(gap, 0), 0) for d in REPEAT_DECAYS],
                            (gap == 0)], axis=-1).astype(np.float32)               # (k, t, features)
        used = tf.einsum("bjk,ktf->btjf", tf.cast(same, tf.float32), tf.constant(weights))
        features = tf.concat([tf.math.log1p(used[..., :1]), used[..., 1:]], axis=-1)
        scores = self.repeat_out(self.repeat_hidden(features))[..., 0]
        return tf.where(self.own_slots(items), scores, 0.0)

    def candidate_logits(self, states, items, repeat, candidates):
        """(batch, t, c): the scores of `candidates` ((c,) item indices) after each position."""
        import tensorflow as tf

        base = tf.einsum("btd,cd->btc", states, tf.gather(self.item_embedding.embeddings, candidates))
        owned = tf.cast(tf.equal(items[:, :, None], candidates[None, None, :]), tf.float32)   # (b, j, c)
        return base + tf.gather(self.item_bias, candidates)[None, None, :] + tf.einsum("btj,bjc->btc", repeat, owned)

    def type_logits(self, states, next_items):
        """(..., event types): a generator's scores of the next event's type, from the states and
        the embeddings of the items that follow them (same leading shape)."""
        import tensorflow as tf

        hidden, out = self.type_layers
        return out(hidden(tf.concat([states, self.item_embedding(next_items)], axis=-1)))

    def target_logits(self, states, items, repeat, targets):
        """(batch, t): the score of each position's own target."""
        import tensorflow as tf

        base = tf.reduce_sum(states * self.item_embedding(targets), axis=-1) + tf.gather(self.item_bias, targets)
        owned = tf.cast(tf.equal(targets[:, :, None], items[:, None, :]), tf.float32)          # (b, t, j)
        return base + tf.reduce_sum(repeat * owned, axis=-1)


def sequence_loss(network: SequenceNetwork, windows, types, sources, item_sources, log_q, rng, training: bool = True,
                  contexts=None):
    """Mean cross-entropy of the items that follow each real position of `windows` ((batch,
    max_length + 1) item indices; `types` alike, and a conditioned generator's `contexts`, each
    token's own session context; `sources` (batch,) source indices): the next
    `horizon` events' items, each a positive against the same candidates (horizon 1: the next
    item, as SASRec). `item_sources` (vocab,) is the source index of each item (-1: padding,
    OOV), `log_q` (vocab,) the log share of each item among targets, `rng` a tf.random.Generator
    for the negatives."""
    import tensorflow as tf

    p = network.params
    items = windows[:, :-1]
    following = None if contexts is None else contexts[:, 1:]   # position t reads the context of token t + 1
    states = network.encoder(encoder_inputs(network, items, types[:, :-1], following), training=training)
    repeat = network.repeat_scores(items)
    padded = tf.pad(windows, [[0, 0], [0, p.horizon - 1]])
    targets = tf.stack([padded[:, h:h + p.max_length] for h in range(1, p.horizon + 1)], axis=-1)   # (b, t, h)
    real = (targets >= FIRST_KNOWN) & (items != PAD)[:, :, None]
    if network.vocab_size <= p.full_softmax_max_items:
        candidates = tf.range(network.vocab_size)
        logits = network.candidate_logits(states, items, repeat, candidates)
        allowed = tf.equal(tf.gather(item_sources, candidates)[None, :], sources[:, None])[:, None, :]
        logits = tf.where(allowed, logits, MASKED)
        losses = tf.reduce_logsumexp(logits, axis=-1)[:, :, None] - tf.gather(logits, targets, batch_dims=2)
    else:
        seed = rng.make_seeds(1)[:, 0]
        candidates = tf.cast(tf.random.stateless_categorical(log_q[None, :], p.negatives, seed)[0], tf.int32)
        negatives = network.candidate_logits(states, items, repeat, candidates)
        positives = tf.stack([network.target_logits(states, items, repeat, targets[:, :, h])
                              for h in range(p.horizon)], axis=-1)
        shift = float(np.log(p.negatives)) if p.own_items_exact else 0.0
        if p.logq_correction:
            negatives -= tf.gather(log_q, candidates)[None, None, :] + shift
            corrected = positives - tf.gather(log_q, targets) - shift
        same_source = tf.equal(tf.gather(item_sources, candidates)[None, :], sources[:, None])[:, None, :]
        hit = tf.reduce_any(tf.equal(candidates[None, None, None, :], targets[:, :, :, None]), axis=2)
        negatives = tf.where(same_source & ~hit, negatives, MASKED)   # no positive is also a negative
        if p.own_items_exact:
            own = network.own_slots(items)
            slot_of = lambda ids: tf.equal(ids[..., None], items[:, None, None, :])   # noqa: E731  (b, t, ..., j)
            owned_target = tf.reduce_any(slot_of(targets) & own[:, :, None, :], axis=-1)   # (b, t, h)
            if p.logq_correction:   # an own target is drawn with probability 1: not corrected
                positives = tf.where(owned_target, positives, corrected)
            owned = tf.cast(own, tf.float32)
            sampled_own = tf.einsum("btj,bjc->btc", owned, tf.cast(tf.equal(items[:, :, None], candidates[None, None, :]),
                                                                    tf.float32)) > 0
            own_logits = (tf.einsum("btd,bjd->btj", states, network.item_embedding(items))
                          + tf.gather(network.item_bias, items)[:, None, :] + repeat)
            own_logits = tf.where(own & ~tf.reduce_any(slot_of(targets), axis=2), own_logits, MASKED)
            negatives = tf.concat([tf.where(sampled_own, MASKED, negatives), own_logits], axis=-1)
        elif p.logq_correction:
            positives = corrected
        losses = tf.math.softplus(tf.reduce_logsumexp(negatives, axis=-1)[:, :, None] - positives)
    weights = tf.cast(real, losses.dtype)
    loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)
    if p.generator:   # the next event's type, at every position followed by a known item
        follows = tf.cast(real[:, :, 0], tf.float32)
        kinds = tf.math.floormod(types[:, 1:] - 1, len(EVENT_TYPES))
        missed = tf.nn.sparse_softmax_cross_entropy_with_logits(kinds, network.type_logits(states, windows[:, 1:]))
        loss += tf.reduce_sum(missed * follows) / tf.maximum(tf.reduce_sum(follows), 1.0)
    return loss


# --- scoring -----------------------------------------------------------------------------------
def last_states(network: SequenceNetwork, items: np.ndarray, types: np.ndarray):
    """(users, dim) states after each history's last event, and (users, max_length) repeat
    scores of its slots (histories as in serving: `max_length` events, right-aligned)."""
    import tensorflow as tf

    items, types = tf.constant(items, tf.int32), tf.constant(types, tf.int32)
    states = network.encoder({ITEMS: items, TYPES: types}, training=False)[:, -1, :]
    return states.numpy(), network.repeat_scores(items)[:, -1, :].numpy()


def full_scores(network: SequenceNetwork, items: np.ndarray, types: np.ndarray, sources: np.ndarray,
                item_sources: np.ndarray) -> np.ndarray:
    """(users, vocab) scores of every item after each history; other sources', padding and
    OOV at -inf."""
    states, repeat = last_states(network, items, types)
    embeddings = network.item_embedding.embeddings.numpy()
    scores = states @ embeddings.T + network.item_bias.numpy()[None, :]
    rows = np.repeat(np.arange(len(items)), items.shape[1])
    np.add.at(scores, (rows, items.reshape(-1)), repeat.reshape(-1))
    scores[item_sources[None, :] != sources[:, None]] = -np.inf
    return scores


def ndcg_at_k(scores: np.ndarray, truth: np.ndarray, truth_sizes: np.ndarray, k: int) -> float:
    """Mean NDCG@k of score rows against `truth` ((users, width) item indices, 0 padding);
    `truth_sizes` counts every relevant item (also those outside the vocabulary) for the ideal."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.array([np.isin(row, t[t >= FIRST_KNOWN]) for row, t in zip(top, truth)], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.array([discounts[:min(int(n), k)].sum() for n in truth_sizes])
    dcg = (hits * discounts[None, :]).sum(axis=1)
    return float(np.mean(np.where(ideal > 0, dcg / np.maximum(ideal, 1e-12), 0.0))) if len(ideal) else 0.0


def validation_ndcg(network: SequenceNetwork, validation: dict, item_sources: np.ndarray, k: int,
                    chunk: int = 256) -> float:
    """NDCG@k on `validation` ({items, types, sources, truth, truth_sizes} arrays) in chunks."""
    users = len(validation["sources"])
    total = 0.0
    for start in range(0, users, chunk):
        part = {name: values[start:start + chunk] for name, values in validation.items()}
        scores = full_scores(network, part[ITEMS], part[TYPES], part["sources"], item_sources)
        total += ndcg_at_k(scores, part["truth"], part["truth_sizes"], k) * len(part["sources"])
    return total / users if users else 0.0


# --- one Horovod rank --------------------------------------------------------------------------
def train_rank(files: list[str], params: dict, vocab_size: int, item_sources, log_q, epochs: int | None = None,
               validation: dict | None = None, checkpoint_uri: str | None = None, checkpoint_every: int = 1) -> dict:
    """Horovod rank body: train on this rank's Petastorm shard of the training windows.

    `epochs` fixed (a refit) or None: up to `max_epochs`, stopping early on rank 0's NDCG@k of
    `validation` (which is then required). Every rank takes the same number of steps per epoch
    (the smallest shard's full batches, at least one), so the allreduces line up. Rank 0 returns
    the weights of the best epoch (the last one without validation) and the epoch it was."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from recsynth.train.launcher import init_rank
    from recsynth.train.loop import EarlyStopping, kept_weights, run_epochs
    from recsynth.train.shards import read_shard

    rank, size = init_rank()
    p = params_from_dict(params)
    if epochs is None and validation is None:
        raise RecommenderError("sequence training needs validation users to stop early, or a number of epochs")
    tf.keras.utils.set_random_seed(p.seed + rank)
    columns = read_shard(files, rank, size, [ITEMS, TYPES, SOURCE_INDEX, *([CONTEXTS] if p.context_categories else [])])
    windows, types = (np.asarray(columns[c], dtype=np.int32) for c in (ITEMS, TYPES))
    contexts = np.asarray(columns[CONTEXTS], dtype=np.int32) if p.context_categories else np.zeros_like(windows)
    sources = np.asarray(columns[SOURCE_INDEX], dtype=np.int32)
    if windows.ndim != 2 or windows.shape[1] != p.max_length + 1:
        raise RecommenderError(f"rank {rank}: windows have shape {windows.shape}, expected (rows, {p.max_length + 1})")
    rows = len(windows)
    batch = min(p.batch_size, rows)
    steps = max(1, min(hvd.allgather_object(rows // batch)))
    item_sources_t = tf.constant(np.asarray(item_sources, dtype=np.int32))
    log_q_t = tf.constant(np.asarray(log_q, dtype=np.float32))
    network = SequenceNetwork(p, vocab_size)
    optimizer = tf.keras.optimizers.Adam(p.learning_rate)
    optimizer.build(network.trainable_variables)
    early = EarlyStopping(network.variables, "validation_ndcg", p.patience, rank) if validation else None
    rng = tf.random.Generator.from_seed(p.seed * 1000 + rank)

    @tf.function
    def step(window, kinds, source, context):
        with tf.GradientTape() as tape:
            loss = sequence_loss(network, window, kinds, source, item_sources_t, log_q_t, rng, contexts=context)
        tape = hvd.DistributedGradientTape(tape)
        variables = network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def train_epoch(epoch: int):
        order = np.random.default_rng([p.seed, rank, epoch]).permutation(rows)
        total = 0.0
        for k in range(steps):
            picked = order[(k * batch) % rows:][:batch]
            total += float(step(windows[picked], types[picked], sources[picked], contexts[picked]))
        loss = float(hvd.allreduce(tf.constant(total / steps), op=hvd.Average))
        score = validation_ndcg(network, validation, np.asarray(item_sources), p.k) if validation and rank == 0 else None
        score = hvd.broadcast_object(score, root_rank=0)   # every rank keeps the same history
        return {"loss": loss, "validation_ndcg": score}, {"loss": loss, **({"validation_ndcg": score} if score is not None else {})}

    state = {"model": network.variables, "optimizer": optimizer.variables(), **({"best": early.best} if early else {})}
    first_epoch, history = run_epochs(state, train_epoch, epochs or p.max_epochs, rank, checkpoint_uri,
                                      checkpoint_every, stop=early.stop if early else None)
    best_epoch, weights = kept_weights(early, history, network.variables)
    return {"rank": rank, "size": size, "rows": rows, "steps_per_epoch": steps, "history": history,
            "resumed_from_epoch": first_epoch, "best_epoch": best_epoch, "weights": weights if rank == 0 else None}
