"""Versioned GAN models: the fitted transformer, generator weights and parameters stored
together under <lake.root>/models/gan/<version>/, with what they were trained on."""
from __future__ import annotations

import json

import numpy as np

from recsynth.synth.gan import GanParams, params_dict
from recsynth.synth.transformer import FittedTransformer
from recsynth.train.artifacts import file_reader, json_file, weights_file, weights_from, write_files


def model_uri(lake_root: str, version: str) -> str:
    return f"{lake_root}/models/gan/{version}"


def save(uri: str, fitted: FittedTransformer, weights: list[np.ndarray], params: GanParams, meta: dict) -> None:
    write_files(uri, {"transformer.json": fitted.to_json().encode(), "generator.npz": weights_file(weights),
                      "params.json": json_file(params_dict(params)), "meta.json": json_file(meta)})


def save_report(uri: str, html: str) -> str:
    """Store the quality report next to the model; returns where it is."""
    write_files(uri, {"report.html": html.encode()})
    return f"{uri}/report.html"


def load(uri: str) -> tuple[FittedTransformer, list[np.ndarray], GanParams, dict]:
    read = file_reader(uri)
    params = json.loads(read("params.json"))
    params["generator_dims"], params["discriminator_dims"] = tuple(params["generator_dims"]), tuple(params["discriminator_dims"])
    return (FittedTransformer.from_json(read("transformer.json").decode()), weights_from(read("generator.npz")),
            GanParams(**params), json.loads(read("meta.json")))
