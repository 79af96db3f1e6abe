"""Lake URIs for Python-side I/O: `dbfs:` paths go through the /dbfs FUSE mount on Databricks,
so checkpoints, models and Petastorm shards work where fsspec has no DBFS filesystem."""
import numpy as np
import pytest

from recsynth.paths import DBFS_FUSE_ROOT_VAR, python_io_uri, resolve_uri
from recsynth.train import artifacts, checkpoints


@pytest.mark.parametrize("uri, expected", [
    ("dbfs:/recsynth/warehouse/models/gan/r1", "file:///dbfs/recsynth/warehouse/models/gan/r1"),
    ("dbfs:///recsynth/x.parquet", "file:///dbfs/recsynth/x.parquet"),
    ("/Volumes/main/recsynth/raw/x", "/Volumes/main/recsynth/raw/x"),
    ("s3a://bucket/lake/x", "s3a://bucket/lake/x"),
    ("file:/tmp/lake/x", "file:/tmp/lake/x"),
])
def test_only_dbfs_uris_are_mapped_to_the_mount(uri, expected, monkeypatch):
    monkeypatch.delenv(DBFS_FUSE_ROOT_VAR, raising=False)
    assert python_io_uri(uri) == expected


def test_dbfs_uris_stay_as_they_are_for_spark():
    assert resolve_uri("dbfs:/recsynth/warehouse") == "dbfs:/recsynth/warehouse"


def test_models_and_checkpoints_under_a_dbfs_root_land_in_the_mount(tmp_path, monkeypatch):
    monkeypatch.setenv(DBFS_FUSE_ROOT_VAR, str(tmp_path))
    artifacts.write_files("dbfs:/recsynth/models/r1", {"params.json": artifacts.json_file({"a": 1})})
    assert (tmp_path / "recsynth" / "models" / "r1" / "params.json").read_text() == '{\n  "a": 1\n}'
    assert artifacts.file_reader("dbfs:/recsynth/models/r1")("params.json") == b'{\n  "a": 1\n}'

    checkpoints.save("dbfs:/recsynth/checkpoints/k", checkpoints.Checkpoint(2, {"w": [np.ones(3)]}, [{"loss": 1.0}]))
    assert (tmp_path / "recsynth" / "checkpoints" / "k" / "latest.json").is_file()
    restored = checkpoints.load_latest("dbfs:/recsynth/checkpoints/k")
    assert restored.epoch == 2 and np.array_equal(restored.arrays["w"][0], np.ones(3))
