"""Keyed pseudonyms for personal ids: gold and everything built on it (models, synthetic data,
recommendations, metrics) never see a real user or session id.

A pseudonym is HMAC-SHA256(key, id), hex, first 32 characters (128 bits): stable for a key, so
joins and a user's recommendations still line up, and not reversible or recomputable without the
key. The HMAC is built from Spark's own sha2/unhex/concat (no Python UDF); `pseudonym()` is the
same function in Python, for looking one id up (`recsynth pseudonym`) and for tests.

The key never comes from the repository or the conf files: it is read from an environment
variable, a Databricks secret scope, or (local runs only) a key file generated on first use
outside version control. It is never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from recsynth.config import PseudonymConf
from recsynth.errors import ConfigError
from recsynth.paths import create_new, resolve_uri

log = logging.getLogger(__name__)

HEX_CHARS = 32
BLOCK = 64  # SHA-256 block size in bytes
MIN_KEY_BYTES = 16


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def pseudonym_column(column: Column, key: bytes) -> Column:
    """HMAC-SHA256(key, column) as hex, truncated; null stays null."""
    inner_pad, outer_pad = _pads(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), column.cast("string").cast("binary")), 256))
    return F.substring(F.sha2(F.concat(F.lit(outer_pad), inner), 256), 1, HEX_CHARS)


def pseudonymise(frame: DataFrame, columns: list[str], key: bytes) -> DataFrame:
    """`frame` with each of `columns` replaced by its pseudonym."""
    return frame.withColumns({c: pseudonym_column(F.col(c), key) for c in columns})


def pseudonym(value: str, key: bytes) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:HEX_CHARS]


def _from_secret_scope(scope: str, name: str) -> str:
    try:
        from pyspark.dbutils import DBUtils  # only on Databricks
        from pyspark.sql import SparkSession
    except ImportError as err:
        raise ConfigError("privacy.pseudonym.secret is set, but this is not a Databricks cluster "
                          "(no dbutils); set the key's environment variable instead") from err
    return DBUtils(SparkSession.getActiveSession()).secrets.get(scope=scope, key=name)


def _from_key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if create_new(path, secrets.token_hex(32), mode=0o600):
        log.info("generated a new pseudonymisation key in %s (keep it: other keys give other pseudonyms)", path)
    return path.read_text().strip()


def load_key(conf: PseudonymConf) -> bytes:
    """The key from the environment, else the secret scope, else the local key file."""
    source = f"${conf.key_env}"
    value = os.environ.get(conf.key_env)
    if not value and conf.secret:
        source, value = f"secret {conf.secret.scope}/{conf.secret.key}", _from_secret_scope(conf.secret.scope, conf.secret.key)
    if not value and conf.key_file:
        source, value = f"key file {conf.key_file}", _from_key_file(Path(resolve_uri(conf.key_file)))
    if not value:
        raise ConfigError(f"no pseudonymisation key: set ${conf.key_env} (at least {MIN_KEY_BYTES} characters), "
                          "or privacy.pseudonym.secret on Databricks, or privacy.pseudonym.key_file for local runs")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise ConfigError(f"the pseudonymisation key from {source} is shorter than {MIN_KEY_BYTES} characters")
    return value.encode()
