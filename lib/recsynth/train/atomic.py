"""Replace a small file whole, so that a reader, or a run started after a crash at any moment,
finds the old content or the new one and never a truncated file (the "latest" checkpoint pointer,
the progress record)."""
from __future__ import annotations

import os
import uuid


def replace_file(fs, path: str, data: bytes) -> None:
    """Make `data` the content of `path` on the fsspec filesystem `fs` in one step.

    Local files (and FUSE mounts such as /dbfs) are written under a temporary name in the same
    folder, synced, then renamed over `path` (os.replace: atomic on POSIX; fsspec's
    LocalFileSystem.mv is shutil.move, which may fall back to copying). Object stores get the
    whole content in one PUT (`pipe_file`), which they apply atomically."""
    from fsspec.implementations.local import LocalFileSystem

    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
