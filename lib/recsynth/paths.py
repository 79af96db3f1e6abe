"""Turn conf paths into absolute URIs: relative local paths are taken from the working directory."""
import os
import re
from pathlib import Path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def resolve_uri(path: str) -> str:
    """`warehouse` -> `/abs/cwd/warehouse`; `s3a://b/x`, `dbfs:/x` and `file:/x` stay as they are."""
    if _SCHEME.match(path):
        return path
    return str(Path(path).expanduser().absolute())


DBFS_SCHEME = "dbfs:"
DBFS_FUSE_ROOT_VAR = "RECSYNTH_DBFS_FUSE_ROOT"


def python_io_uri(uri: str) -> str:
    """The URI Python-side I/O (fsspec, Petastorm, pyarrow) uses for a lake path.

    Spark reads `dbfs:/x` natively, but fsspec has no credential-free DBFS filesystem. On a
    Databricks node the same file is at the FUSE mount /dbfs/x, so `dbfs:/x` becomes
    `file:///dbfs/x` (the mount root is overridable through $RECSYNTH_DBFS_FUSE_ROOT). Every
    other URI is returned unchanged."""
    if not uri.startswith(DBFS_SCHEME):
        return uri
    mount = os.environ.get(DBFS_FUSE_ROOT_VAR, "/dbfs").rstrip("/")
    return f"file://{mount}/{uri[len(DBFS_SCHEME):].lstrip('/')}"


def filesystem(uri: str):
    """(fsspec filesystem, path) for a lake URI, local, cloud or `dbfs:` (see python_io_uri)."""
    import fsspec

    return fsspec.core.url_to_fs(python_io_uri(uri))


def create_new(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` to `path` only if no such file exists, atomically (exactly one of several
    processes wins); False when it already existed."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
    except OSError:  # a full disk: leave no empty file that would read as someone else's
        path.unlink(missing_ok=True)
        raise
    return True
