"""Training checkpoints written by rank 0 and read back when a crashed or stopped run starts
again: named arrays (weights, optimizer state) plus the loss history, through fsspec so that
local folders, DBFS and object stores work alike.

A checkpoint is `epoch-NNNNNN.npz` and becomes current only when `latest.json` names it
(replaced whole, last), so a crash at any moment of a save leaves the previous checkpoint current."""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np

from recsynth.paths import filesystem
from recsynth.train.atomic import replace_file

LATEST = "latest.json"
SEPARATOR = "/"


def folder(lake_root: str, model: str, training_data: list, layout, params: dict, ranks: int) -> str:
    """Where a model's checkpoints go, keyed by what training depends on except the epoch budget:
    a run with the same data (`training_data`: tables, versions, splits), network layout
    (`layout`: the GAN's transformer, the two-tower's vocabulary sizes), other parameters and
    ranks continues an interrupted one (or one with fewer epochs), although its Petastorm files
    are written again."""
    key = json.dumps([training_data, layout, {**params, "epochs": None}, ranks], sort_keys=True)
    return f"{lake_root}/checkpoints/{model}/{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Checkpoint:
    epoch: int                              # epochs completed
    arrays: dict[str, list[np.ndarray]]     # e.g. {"generator": [...weights], "generator_optimizer": [...]}
    history: list


def save(uri: str, checkpoint: Checkpoint) -> None:
    fs, root = filesystem(uri)
    fs.makedirs(root, exist_ok=True)
    flat = {f"{group}{SEPARATOR}{k:05d}": array for group, arrays in checkpoint.arrays.items()
            for k, array in enumerate(arrays)}
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    name = f"epoch-{checkpoint.epoch:06d}.npz"
    with fs.open(f"{root}/{name}", "wb") as handle:
        handle.write(buffer.getvalue())
    previous = _latest(fs, root)
    latest = {"epoch": checkpoint.epoch, "file": name, "history": checkpoint.history}
    replace_file(fs, f"{root}/{LATEST}", json.dumps(latest).encode())
    if previous and previous["file"] != name:
        fs.rm(f"{root}/{previous['file']}")


def clear(uri: str) -> None:
    """Remove every checkpoint under `uri` (once the trained model is stored elsewhere)."""
    fs, root = filesystem(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def fits(checkpoint: Checkpoint, shapes: dict[str, list[tuple[int, ...]]]) -> bool:
    """Whether `checkpoint` holds one array of each shape in `shapes` ({group: [variable shape]}),
    group by group: a checkpoint of another network under the same key (written before a layout
    change that kept the key) does not, and is not loaded."""
    return checkpoint.arrays.keys() == shapes.keys() and all(
        [tuple(a.shape) for a in checkpoint.arrays[group]] == [tuple(s) for s in wanted]
        for group, wanted in shapes.items())


def load_latest(uri: str) -> Checkpoint | None:
    """The current checkpoint under `uri`, or None when training has not checkpointed yet."""
    fs, root = filesystem(uri)
    latest = _latest(fs, root)
    if latest is None:
        return None
    archive = np.load(io.BytesIO(fs.cat_file(f"{root}/{latest['file']}")))
    arrays: dict[str, list[np.ndarray]] = {}
    for key in sorted(archive.files):
        group = key.rsplit(SEPARATOR, 1)[0]
        arrays.setdefault(group, []).append(archive[key])
    return Checkpoint(epoch=int(latest["epoch"]), arrays=arrays, history=latest["history"])


def _latest(fs, root: str) -> dict | None:
    path = f"{root}/{LATEST}"
    return json.loads(fs.cat_file(path)) if fs.exists(path) else None
