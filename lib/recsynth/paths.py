"""Turn conf paths into absolute URIs: relative local paths are taken from the working directory."""
import re
from pathlib import Path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def resolve_uri(path: str) -> str:
    """`warehouse` -> `/abs/cwd/warehouse`; `s3a://b/x`, `dbfs:/x` and `file:/x` stay as they are."""
    if _SCHEME.match(path):
        return path
    return str(Path(path).expanduser().absolute())
