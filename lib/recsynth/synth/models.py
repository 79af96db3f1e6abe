"""Versioned GAN models: the fitted transformer, generator weights and parameters stored
together under <lake.root>/models/gan/<version>/, with what they were trained on."""
from __future__ import annotations

import io
import json

import fsspec
import numpy as np

from recsynth.synth.gan import GanParams, params_dict
from recsynth.synth.transformer import FittedTransformer


def model_uri(lake_root: str, version: str) -> str:
    return f"{lake_root}/models/gan/{version}"


def save(uri: str, fitted: FittedTransformer, weights: list[np.ndarray], params: GanParams, meta: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, *weights)
    files = {
        "transformer.json": fitted.to_json().encode(),
        "generator.npz": buffer.getvalue(),
        "params.json": json.dumps(params_dict(params)).encode(),
        "meta.json": json.dumps(meta, indent=2, sort_keys=True, default=str).encode(),
    }
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    for name, data in files.items():
        with fs.open(f"{root}/{name}", "wb") as handle:
            handle.write(data)


def save_report(uri: str, html: str) -> str:
    """Store the quality report next to the model; returns where it is."""
    fs, root = fsspec.core.url_to_fs(uri)
    fs.makedirs(root, exist_ok=True)
    with fs.open(f"{root}/report.html", "w") as handle:
        handle.write(html)
    return f"{uri}/report.html"


def load(uri: str) -> tuple[FittedTransformer, list[np.ndarray], GanParams, dict]:
    fs, root = fsspec.core.url_to_fs(uri)
    read = lambda name: fs.cat_file(f"{root}/{name}")  # noqa: E731
    archive = np.load(io.BytesIO(read("generator.npz")))
    weights = [archive[f"arr_{k}"] for k in range(len(archive.files))]
    params = json.loads(read("params.json"))
    params["generator_dims"], params["discriminator_dims"] = tuple(params["generator_dims"]), tuple(params["discriminator_dims"])
    return FittedTransformer.from_json(read("transformer.json").decode()), weights, GanParams(**params), json.loads(read("meta.json"))
