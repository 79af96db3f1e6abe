"""What recsynth's own console lines look like, to find any other output in a command's stdout and
stderr: a third-party line there (Spark's log4j, TensorFlow, a Horovod rank, a Python warning)
belongs in the log file (recsynth.logs)."""
from __future__ import annotations

import re

RECSYNTH_LINE = re.compile("|".join([
    r"\d\d:\d\d:\d\d \S",                         # a log record (time, then the message; recsynth.logs)
    r" {9,}\S",                                   # one in the same second as the one before (time left out),
                                                  # a record's message wrapped, or its traceback, under its column
    "[\u2500-\u257f]",                            # the summary: sections and pointers start with box drawing
    "(failed|error|configuration error|full log): ",  # a failure, as `recsynth.cli.main` reports it
    "aborted$",
]))
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def foreign_console_lines(text: str) -> list[str]:
    """The lines of captured console output (stdout, stderr or both) that are not recsynth's, by the
    format recsynth's own lines have; blank lines and colours are ignored."""
    lines = (ANSI_ESCAPE.sub("", line).rstrip() for line in text.splitlines())
    return [line for line in lines if line and not RECSYNTH_LINE.match(line)]
