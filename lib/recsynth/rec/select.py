"""Model selection on the validation period, as a careful team does it: the best setting of a
model by its mean validation NDCG, and the served model by a challenge in order of complexity,
where a more complex model replaces the current choice only when the paired-bootstrap interval
of its NDCG minus the choice's lies above zero. Test figures never reach this module."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from recsynth.errors import RecommenderError
from recsynth.rec.evaluate import MODEL, NDCG, POOLED, TASK
from recsynth.rec.intervals import paired_difference
from recsynth.rec.rules import NEXT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    """One step of the served model's selection: `challenger` against `holder`, the mean paired
    NDCG difference and its interval, and whether the challenger took over."""
    challenger: str
    holder: str
    difference: float
    low: float
    high: float
    won: bool


def setting_label(name: str, setting: dict) -> str:
    """A setting's label on validation: the model's name, then `key=value` per key (the name
    alone for no setting); the name is everything before the first space."""
    return " ".join([name, *(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                             for key, value in setting.items())])


def best_setting(rows: list[dict], labels: list[str], task: str) -> str:
    """Of `labels` (settings of one model), the one with the highest pooled mean NDCG on `task`
    (ties: the first)."""
    scores = {r[MODEL]: r[NDCG] for r in rows if r[TASK] == task and r["source"] == POOLED and r[MODEL] in labels}
    missing = [label for label in labels if scores.get(label) is None]
    if missing:
        raise RecommenderError(f"no validation NDCG on {task} for {missing}")
    return max(labels, key=lambda label: (scores[label], -labels.index(label)))


def champion(replicates: dict[tuple[str, str], np.ndarray], candidates: list[str], *, task: str = NEXT
             ) -> tuple[str, list[Challenge]]:
    """The served model among `candidates` (simplest first), and the challenges that chose it;
    `replicates` maps (model, task) to its pooled NDCG's replicate means (`evaluate`'s)."""
    if not candidates:
        raise RecommenderError("no candidate model to select from")
    holder, steps = candidates[0], []
    for challenger in candidates[1:]:
        compared = paired_difference(replicates[(challenger, task)], replicates[(holder, task)])
        if np.isnan(compared.difference) or np.isnan(compared.low):
            raise RecommenderError(f"no validation user scored by both {challenger} and {holder}")
        won = compared.low > 0
        steps.append(Challenge(challenger, holder, compared.difference, compared.low, compared.high, won))
        log.debug("selection on %s: %s - %s = %.4f [%.4f, %.4f]%s", task, challenger, holder, compared.difference,
                  compared.low, compared.high, " -> replaces it" if won else "")
        if won:
            holder = challenger
    return holder, steps
