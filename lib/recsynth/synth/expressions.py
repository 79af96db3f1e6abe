"""Reading conf's Spark SQL text without Spark, so the conf can be validated before a session starts."""
from __future__ import annotations

import re


def names_itself(column: str, expression: str) -> bool:
    """Whether `expression` reads `column` (word boundaries; backquoted names too)."""
    return re.search(rf"(?<![\w`]){re.escape(column)}(?![\w`])|`{re.escape(column)}`", expression) is not None
