"""Keyed pseudonyms: Spark's built-in HMAC equals Python's hmac, keys come from the environment,
a secret or a generated local file, never from conf, and a missing or short key stops the job."""
import hashlib
import hmac
import os
import stat

import pytest
from pyspark.sql import functions as F

from recsynth.config import PseudonymConf
from recsynth.errors import ConfigError
from recsynth.etl.pseudonyms import load_key, pseudonym, pseudonymise

IDS = ["retailrocket:257597", "rees46:512475445", "ünïcödé:42", ""]


@pytest.mark.spark
@pytest.mark.parametrize("key", [b"k" * 16, b"a-longer-key-" * 10])  # shorter and longer than a SHA-256 block
def test_spark_hmac_equals_python_hmac(spark, key):
    frame = spark.createDataFrame([(i, i) for i in IDS] + [(None, None)], "raw string, user_id string")
    rows = pseudonymise(frame, ["user_id"], key).collect()
    assert {r["raw"]: r["user_id"] for r in rows} == {
        **{i: hmac.new(key, i.encode(), hashlib.sha256).hexdigest()[:32] for i in IDS}, None: None}
    assert pseudonymise(frame, ["user_id"], b"another-key-0123").where(F.col("user_id") == F.lit(rows[0]["user_id"])).count() == 0


def test_pseudonyms_are_stable_and_keyed():
    assert pseudonym("retailrocket:1", b"k" * 16) == pseudonym("retailrocket:1", b"k" * 16)
    assert pseudonym("retailrocket:1", b"k" * 16) != pseudonym("retailrocket:1", b"j" * 16)
    assert len(pseudonym("retailrocket:1", b"k" * 16)) == 32 and "retailrocket" not in pseudonym("retailrocket:1", b"k" * 16)


def test_the_key_comes_from_the_environment_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "from-the-environment-0123")
    conf = PseudonymConf(key_env="MY_KEY", key_file=str(tmp_path / "key"))
    assert load_key(conf) == b"from-the-environment-0123"
    assert not (tmp_path / "key").exists()


def test_a_local_key_file_is_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    conf = PseudonymConf(key_env="MY_KEY", key_file=str(tmp_path / "keys" / "pseudonym.key"))
    first = load_key(conf)
    assert len(first) == 64 and load_key(conf) == first
    assert stat.S_IMODE(os.stat(tmp_path / "keys" / "pseudonym.key").st_mode) == 0o600


def test_no_key_or_a_short_key_stops_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"no pseudonymisation key: set \$MY_KEY"):
        load_key(PseudonymConf(key_env="MY_KEY"))
    monkeypatch.setenv("MY_KEY", "short")
    with pytest.raises(ConfigError, match="shorter than 16"):
        load_key(PseudonymConf(key_env="MY_KEY"))


def test_a_secret_scope_off_databricks_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="not a Databricks cluster"):
        load_key(PseudonymConf(key_env="MY_KEY", secret={"scope": "recsynth", "key": "pseudonym-key"}))
