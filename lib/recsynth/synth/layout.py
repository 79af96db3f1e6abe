"""The GAN's row vector: the transformer's compact codes expanded into blocks (one tanh value
per continuous alpha, one softmax block per mode choice, null flag and categorical column),
and back. Also the conditional vector used for training-by-sampling."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsynth.synth.transformer import FittedTransformer, decoded_value


@dataclass(frozen=True)
class Block:
    code: str          # the encode() column this block carries
    kind: str          # "tanh" (one value) or "softmax" (one-hot over `width`)
    width: int
    conditional: bool  # part of the conditional vector: a categorical column or a null flag


def blocks(fitted: FittedTransformer) -> list[Block]:
    out = []
    for c in fitted.continuous:
        out.append(Block(f"{c.name}__alpha", "tanh", 1, False))
        out.append(Block(f"{c.name}__mode", "softmax", len(c.means), False))
        if c.has_nulls:  # conditional, so training-by-sampling also learns the rarer side (the few priced sessions)
            out.append(Block(f"{c.name}__null", "softmax", 2, True))
        if c.zero_inflated:  # conditional too: the few sessions with a non-zero spend
            out.append(Block(f"{c.name}__zero", "softmax", 2, True))
    for c in fitted.categorical:
        out.append(Block(f"{c.name}__code", "softmax", c.width, True))
    return out


def width(layout: list[Block]) -> int:
    return sum(b.width for b in layout)


def to_vectors(codes: dict[str, np.ndarray], layout: list[Block]) -> np.ndarray:
    """Compact codes -> float32 row vectors."""
    parts = []
    for b in layout:
        values = np.asarray(codes[b.code])
        if b.kind == "tanh":
            parts.append(values.astype(np.float32).reshape(-1, 1))
        else:
            parts.append(np.eye(b.width, dtype=np.float32)[values.astype(int)])
    return np.concatenate(parts, axis=1)


def to_codes(vectors: np.ndarray, layout: list[Block]) -> dict[str, np.ndarray]:
    """Row vectors (real or generated) -> compact codes: argmax of every softmax block."""
    codes, start = {}, 0
    for b in layout:
        part = vectors[:, start:start + b.width]
        codes[b.code] = part[:, 0] if b.kind == "tanh" else part.argmax(axis=1)
        start += b.width
    return codes


class ConditionSampler:
    """Training-by-sampling (CTGAN): pick a conditional column uniformly, then one of its
    values with probability proportional to log(1 + frequency), so rare categories are
    learned; return the condition vector and real rows that carry that value."""

    def __init__(self, codes: dict[str, np.ndarray], layout: list[Block], seed: int):
        self.columns = [b for b in layout if b.conditional]
        self.rng = np.random.default_rng(seed)
        self.width = sum(b.width for b in self.columns)
        self.offsets = np.cumsum([0] + [b.width for b in self.columns])[:-1]
        self.rows_of, self.probabilities = [], []
        for b in self.columns:
            values = np.asarray(codes[b.code]).astype(int)
            self.rows_of.append([np.flatnonzero(values == v) for v in range(b.width)])
            frequency = np.bincount(values, minlength=b.width).astype(float)
            weight = np.log1p(frequency)
            self.probabilities.append(weight / weight.sum())

    def sample(self, batch: int):
        """(condition vectors, mask of chosen column, row indices of real rows that match)."""
        conditions = np.zeros((batch, self.width), dtype=np.float32)
        masks = np.zeros((batch, len(self.columns)), dtype=np.float32)
        rows = np.empty(batch, dtype=int)
        chosen = self.rng.integers(len(self.columns), size=batch)
        for i, column in enumerate(chosen):
            value = self.rng.choice(len(self.probabilities[column]), p=self.probabilities[column])
            conditions[i, self.offsets[column] + value] = 1.0
            masks[i, column] = 1.0
            rows[i] = self.rng.choice(self.rows_of[column][value])
        return conditions, masks, rows



PRESENT, NULL_FLAG = "present", "null"   # the values of a null flag, as a sampling condition
NONZERO, ZERO = "nonzero", "0"             # the values of a zero flag


def _conditionals(fitted: FittedTransformer) -> list[tuple[str, list[str], np.ndarray]]:
    """(column, values, row shares or counts) of every conditional block, in layout order."""
    out = []
    for c in fitted.continuous:
        out += [(c.name, [PRESENT, NULL_FLAG], np.asarray([1.0 - c.null_share, c.null_share]))] if c.has_nulls else []
        out += [(c.name, [NONZERO, ZERO], np.asarray([1.0 - c.zero_share, c.zero_share]))] if c.zero_inflated else []
    return out + [(c.name, list(c.values), np.asarray(c.counts, dtype=float)) for c in fitted.categorical]


def condition_values(fitted: FittedTransformer) -> list[tuple[str, list[str]]]:
    """(column, values) of every conditional block, in layout order: a continuous column's null
    flag (present, null) and zero flag (nonzero, 0), then each categorical column's values. Any
    of these can pin the rows sampled (`conditions_like_data`), so the rare side of a flag (a
    non-zero spend) can be generated on demand, as a rare category can."""
    return [(name, values) for name, values, _ in _conditionals(fitted)]


def flagged_columns(fitted: FittedTransformer) -> dict[str, str]:
    """Continuous column -> the flag a `fill` reads it by: ZERO for a zero-inflated one (its rare
    side is the non-zero), else NULL_FLAG for one with nulls."""
    return {c.name: ZERO if c.zero_inflated else NULL_FLAG for c in fitted.continuous if c.zero_inflated or c.has_nulls}


def condition_frequencies(fitted: FittedTransformer) -> list[np.ndarray]:
    """Row counts (or shares) per value of every conditional block, in layout order."""
    return [shares for *_, shares in _conditionals(fitted)]


def condition_width(fitted: FittedTransformer) -> int:
    """The length of the condition vector the generator takes beside its noise."""
    return sum(len(f) for f in condition_frequencies(fitted))


def condition_position(fitted: FittedTransformer, column: str, value: str) -> int:
    """Where `column`=`value` sits in the condition vector (ValueError: not a condition the model has)."""
    offset = 0
    for name, values in condition_values(fitted):
        if name == column and value in values:
            return offset + values.index(value)
        offset += len(values)
    raise ValueError(f"condition {column}={value!r}: not a categorical value, null flag or zero flag of the model")


def rows_meeting(fitted: FittedTransformer, decoded: dict[str, np.ndarray], fixed: dict[str, str] | None) -> np.ndarray:
    """Which decoded rows meet every condition of `fixed` (what `condition_position` pins)."""
    keep = np.ones(len(next(iter(decoded.values()))), dtype=bool)
    numeric = {c.name for c in fitted.continuous}
    discrete = {c.name for c in fitted.categorical if c.numeric}
    for name, value in (fixed or {}).items():
        column = decoded[name]
        if name in numeric:
            missing = np.isnan(column.astype(float))
            met = {PRESENT: ~missing, NULL_FLAG: missing, ZERO: column == 0, NONZERO: ~missing & (column != 0)}[value]
        else:  # compared as decoded: a discrete count's "0" is the number 0.0
            wanted = decoded_value(value, name in discrete)
            met = pd.isna(column) if pd.isna(wanted) else column == wanted
        keep &= met
    return keep


def conditions_like_data(fitted: FittedTransformer, batch: int, rng: np.random.Generator,
                         fixed: dict[str, str] | None = None) -> np.ndarray:
    """Condition vectors for sampling: one conditional column chosen uniformly per row, its value
    drawn with the fitted frequencies; `fixed` ({column: value}, `condition_values`) pins every row instead."""
    frequencies = condition_frequencies(fitted)
    offsets = np.cumsum([0] + [len(f) for f in frequencies])[:-1]
    conditions = np.zeros((batch, condition_width(fitted)), dtype=np.float32)
    if fixed:
        for name, value in fixed.items():
            conditions[:, condition_position(fitted, name, value)] = 1.0
        return conditions
    chosen = rng.integers(len(frequencies), size=batch)
    for position, counts in enumerate(frequencies):
        rows = np.flatnonzero(chosen == position)
        conditions[rows, offsets[position] + rng.choice(len(counts), size=len(rows), p=counts / counts.sum())] = 1.0
    return conditions
