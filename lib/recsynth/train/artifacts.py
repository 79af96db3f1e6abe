"""The files of a versioned model (weights, parameters, metadata) under one folder of the lake,
on any filesystem fsspec reaches: one way to write and read them for every model."""
from __future__ import annotations

import io
import json
from typing import Callable

import numpy as np

from recsynth.paths import filesystem


def weights_file(weights) -> bytes:
    """A list of arrays (Keras `get_weights()` order) as one .npz file."""
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(w) for w in weights])
    return buffer.getvalue()


def weights_from(data: bytes) -> list[np.ndarray]:
    archive = np.load(io.BytesIO(data))
    return [archive[f"arr_{k}"] for k in range(len(archive.files))]


def json_file(value) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def write_files(uri: str, files: dict[str, bytes]) -> None:
    """Create the folder `uri` if needed and write each named file into it."""
    fs, root = filesystem(uri)
    fs.makedirs(root, exist_ok=True)
    for name, data in files.items():
        with fs.open(f"{root}/{name}", "wb") as handle:
            handle.write(data)


def file_reader(uri: str) -> Callable[[str], bytes]:
    """`read(name)` -> the bytes of the file `name` in the folder `uri`."""
    fs, root = filesystem(uri)
    return lambda name: fs.cat_file(f"{root}/{name}")
