"""A CTGAN-style conditional GAN in Keras 2, trained with Horovod: WGAN-GP loss with pac,
a conditional vector with training-by-sampling, gumbel-softmax outputs for one-hot blocks.

`train_rank` is the body each Horovod rank runs: it reads its Petastorm shard of the encoded
table, trains with averaged gradients (DistributedGradientTape; weights broadcast from rank 0)
and returns the generator weights from rank 0. With validation rows (real people kept out of
training and of the privacy holdout), rank 0 scores every epoch's generator on them (column
shapes of `validation_rows` generated rows, `validation_quality`) and training stops after
`patience` epochs without a better score, at most `epochs`; the best epoch's generator is
returned. TensorFlow is imported inside the functions that run on executors."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recsynth.synth.layout import Block, ConditionSampler, blocks, to_codes, to_vectors, width
from recsynth.synth.transformer import FittedTransformer


@dataclass(frozen=True)
class GanParams:
    embedding_dim: int = 64
    generator_dims: tuple[int, ...] = (128, 128)
    discriminator_dims: tuple[int, ...] = (128, 128)
    pac: int = 4
    batch_size: int = 200          # per rank; a multiple of pac
    epochs: int = 50
    learning_rate: float = 2e-4
    gradient_penalty: float = 10.0
    patience: int = 5              # epochs without a better validation score before stopping
    seed: int = 0

    def __post_init__(self):
        if self.batch_size % self.pac:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of pac {self.pac}")


def build_generator(params: GanParams, condition_width: int, layout: list[Block]):
    import tensorflow as tf

    noise = tf.keras.Input(shape=(params.embedding_dim + condition_width,))
    hidden = noise
    for dim in params.generator_dims:  # residual blocks: each layer's output is concatenated on
        layer = tf.keras.layers.ReLU()(tf.keras.layers.BatchNormalization()(tf.keras.layers.Dense(dim)(hidden)))
        hidden = tf.keras.layers.Concatenate()([hidden, layer])
    raw = tf.keras.layers.Dense(width(layout))(hidden)
    return tf.keras.Model(noise, raw, name="generator")


def build_discriminator(params: GanParams, row_width: int):
    import tensorflow as tf

    packed = tf.keras.Input(shape=(row_width * params.pac,))
    hidden = packed
    for dim in params.discriminator_dims:
        hidden = tf.keras.layers.Dropout(0.5)(tf.keras.layers.LeakyReLU(0.2)(tf.keras.layers.Dense(dim)(hidden)))
    return tf.keras.Model(packed, tf.keras.layers.Dense(1)(hidden), name="discriminator")


def activate(raw, layout: list[Block], temperature: float = 0.2, hard: bool = False):
    """Generator output -> row vectors: tanh for alphas and, for every softmax block, a
    gumbel-softmax (training) or a one-hot draw from that softmax (`hard`, for sampling: the
    gumbel-max trick; a plain argmax would sharpen every categorical marginal)."""
    import tensorflow as tf

    parts, start = [], 0
    for b in layout:
        part = raw[:, start:start + b.width]
        if b.kind == "tanh":
            parts.append(tf.tanh(part))
        else:
            gumbel = -tf.math.log(-tf.math.log(tf.random.uniform(tf.shape(part), 1e-20, 1.0)))
            parts.append(tf.one_hot(tf.argmax(part + gumbel, axis=1), b.width) if hard
                         else tf.nn.softmax((part + gumbel) / temperature))
        start += b.width
    return tf.concat(parts, axis=1)


def condition_loss(raw, conditions, masks, layout: list[Block]):
    """Cross-entropy between the generated block of the chosen conditional column and the condition."""
    import tensorflow as tf

    losses, start, offset, column = [], 0, 0, 0
    for b in layout:
        if b.conditional:
            target = conditions[:, offset:offset + b.width]
            logits = raw[:, start:start + b.width]
            losses.append(tf.nn.softmax_cross_entropy_with_logits(target, logits) * masks[:, column])
            offset += b.width
            column += 1
        start += b.width
    return tf.reduce_mean(tf.add_n(losses)) if losses else 0.0


def generate(generator, fitted: FittedTransformer, layout: list[Block], params: GanParams, conditions: np.ndarray,
             seed: int) -> dict:
    """One row per condition vector from `generator`, decoded to column values."""
    import tensorflow as tf

    from recsynth.synth.transformer import decode

    noise = tf.random.stateless_normal((len(conditions), params.embedding_dim), seed=(seed, 0))
    raw = generator(tf.concat([noise, tf.constant(conditions)], axis=1), training=False)
    return decode(to_codes(activate(raw, layout, hard=True).numpy(), layout), fitted)


def validation_quality(generator, fitted: FittedTransformer, layout: list[Block], params: GanParams,
                       validation: dict, seed: int) -> float:
    """Mean column shape (1 - KS, 1 - TVD; SDMetrics' definitions) of as many generated rows as
    `validation` holds against those real rows: the held-out score that early stopping follows."""
    from recsynth.synth.layout import conditions_like_data
    from recsynth.synth.quality import column_shapes

    rows = len(next(iter(validation.values())))
    generated = generate(generator, fitted, layout, params,
                         conditions_like_data(fitted, rows, np.random.default_rng(seed)), seed)
    return column_shapes(validation, generated, [c.name for c in fitted.continuous], [c.name for c in fitted.categorical])


def train_rank(files: list[str], transformer_json: str, params: dict, checkpoint_uri: str | None = None,
               checkpoint_every: int = 1, validation: dict | None = None) -> dict:
    """Horovod rank body: train on this rank's Petastorm shard; rank 0 returns the generator weights.

    With `checkpoint_uri`, rank 0 writes progress after every epoch and a checkpoint (weights and
    optimizer state of both networks) every `checkpoint_every` epochs, and a run that finds a
    checkpoint there continues from it instead of starting again."""
    import horovod.tensorflow as hvd
    import tensorflow as tf

    from recsynth.train.launcher import init_rank
    from recsynth.train.loop import EarlyStopping, kept_weights, run_epochs
    from recsynth.train.shards import read_shard

    rank, size = init_rank()
    p = GanParams(**params)
    tf.random.set_seed(p.seed + rank)
    fitted = FittedTransformer.from_json(transformer_json)
    layout = blocks(fitted)
    columns = [b.code for b in layout]
    codes = read_shard(files, rank, size, columns)
    rows = to_vectors(codes, layout)
    sampler = ConditionSampler(codes, layout, seed=p.seed + rank)
    generator = build_generator(p, sampler.width, layout)
    discriminator = build_discriminator(p, rows.shape[1] + sampler.width)
    g_opt = tf.keras.optimizers.Adam(p.learning_rate, beta_1=0.5, beta_2=0.9)
    d_opt = tf.keras.optimizers.Adam(p.learning_rate, beta_1=0.5, beta_2=0.9)

    def pack(x):
        return tf.reshape(x, (-1, x.shape[1] * p.pac))

    @tf.function
    def step(real, conditions, masks):
        noise = tf.concat([tf.random.normal((p.batch_size, p.embedding_dim)), conditions], axis=1)
        with tf.GradientTape() as tape:
            fake = activate(generator(noise, training=True), layout)
            fake_in, real_in = tf.concat([fake, conditions], 1), tf.concat([real, conditions], 1)
            mix = tf.random.uniform((p.batch_size // p.pac, 1, 1))
            between = tf.reshape(mix * tf.reshape(real_in, (p.batch_size // p.pac, p.pac, -1))
                                 + (1 - mix) * tf.reshape(fake_in, (p.batch_size // p.pac, p.pac, -1)), (p.batch_size // p.pac, -1))
            with tf.GradientTape() as inner:
                inner.watch(between)
                score = discriminator(between, training=True)
            slopes = tf.norm(inner.gradient(score, between) + 1e-12, axis=1)
            penalty = tf.reduce_mean(tf.square(slopes - 1.0))
            d_loss = tf.reduce_mean(discriminator(pack(fake_in), training=True)) - tf.reduce_mean(
                discriminator(pack(real_in), training=True)) + p.gradient_penalty * penalty
        tape = hvd.DistributedGradientTape(tape)
        d_opt.apply_gradients(zip(tape.gradient(d_loss, discriminator.trainable_variables), discriminator.trainable_variables))
        with tf.GradientTape() as tape:
            raw = generator(noise, training=True)
            fake_in = tf.concat([activate(raw, layout), conditions], 1)
            g_loss = -tf.reduce_mean(discriminator(pack(fake_in), training=True)) + condition_loss(raw, conditions, masks, layout)
        tape = hvd.DistributedGradientTape(tape)
        g_opt.apply_gradients(zip(tape.gradient(g_loss, generator.trainable_variables), generator.trainable_variables))
        return d_loss, g_loss

    def one_step():
        conditions, masks, picked = sampler.sample(p.batch_size)
        return step(tf.constant(rows[picked]), tf.constant(conditions), tf.constant(masks))

    one_step()  # creates the optimizer slots; then every rank takes rank 0's weights and state
    state = {"generator": generator.variables, "generator_optimizer": g_opt.variables(),
             "discriminator": discriminator.variables, "discriminator_optimizer": d_opt.variables()}
    steps = min(hvd.allgather_object(max(1, len(rows) // p.batch_size)))  # every rank takes as many allreduces

    validating = bool(validation) and p.patience > 0
    early = EarlyStopping(generator.variables, "validation_quality", p.patience, rank) if validating else None
    if early:
        state["best_generator"] = early.best

    def train_epoch(epoch: int):
        for _ in range(steps):
            d_loss, g_loss = one_step()
        losses = {"discriminator_loss": float(hvd.allreduce(d_loss)), "generator_loss": float(hvd.allreduce(g_loss))}
        if validating:
            score = validation_quality(generator, fitted, layout, p, validation, p.seed + epoch) if rank == 0 else None
            losses["validation_quality"] = hvd.broadcast_object(score, root_rank=0)  # every rank keeps the same history
        return losses, losses

    first_epoch, history = run_epochs(state, train_epoch, p.epochs, rank, checkpoint_uri, checkpoint_every,
                                      stop=early.stop if early else None)
    best_epoch, weights = kept_weights(early, history, generator.variables)
    return {"rank": rank, "size": size, "rows": len(rows), "history": history, "resumed_from_epoch": first_epoch,
            "best_epoch": best_epoch, "generator": weights if rank == 0 else None, "condition_width": sampler.width}


def loaded_generator(generator_weights, fitted: FittedTransformer, params: GanParams, condition_width: int, seed: int):
    """The generator network with saved weights (or `seed`'s initial ones when None) and its output
    layout: built once, then reused for every batch a sampling task draws."""
    import tensorflow as tf

    layout = blocks(fitted)
    tf.keras.utils.set_random_seed(seed)  # an untrained generator is reproducible too
    generator = build_generator(params, condition_width, layout)
    if generator_weights is not None:
        generator.set_weights(generator_weights)
    return generator, layout


def sample_rows(generator_weights, fitted: FittedTransformer, params: GanParams, conditions: np.ndarray, seed: int) -> dict:
    """Generate one row per condition vector from saved weights and decode it to column values."""
    generator, layout = loaded_generator(generator_weights, fitted, params, conditions.shape[1], seed)
    return generate(generator, fitted, layout, params, conditions, seed)


def params_dict(params: GanParams) -> dict:
    return asdict(params)
