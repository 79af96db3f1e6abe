"""Where output goes, set up in one place for a recsynth command: the console shows recsynth's own
records (at ops.log_level) and results; the log file gets recsynth's records down to DEBUG,
third-party records (deprecation warnings included), and everything written below Python: the
JVM's console with Spark's log4j lines, TensorFlow's C++ notices, the Horovod ranks' and Spark's
Python workers' output (local mode; on a cluster theirs stays in the executors' logs). A user
reads a report; whoever debugs a run reads the file, whose path the summary and failures name."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from recsynth.config import Conf
from recsynth.paths import resolve_uri

LOG_FILE = "recsynth.log"
FILE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

_installed: list[logging.Handler] = []
_streams: list[tuple] = []  # (sys attribute, descriptor, the stream it had, the one on a copy of the descriptor)
_last_file: Path | None = None


class ConsoleFormatter(logging.Formatter):
    """A console record is its time and message; only a warning or error names its level. Without a
    level column a message has 71 of 80 columns, so most records take one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname}: {message}"


def log_path(conf: Conf) -> Path:
    """The run log, beside the logs of the services (ops.service_dir): on local disk wherever the
    lake is, and not on the lake's storage, whose failures the log must record."""
    return Path(resolve_uri(conf.ops.service_dir)) / LOG_FILE


def configure(conf: Conf, console: Console) -> Path:
    """Send records to `console` and to the log file of `conf`, and the process's own stdout and
    stderr to that file, until `reset`; returns the file's path."""
    global _last_file
    reset()
    path = _last_file = log_path(conf)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, encoding="utf-8", delay=True)  # created by the first record
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    to_console = RichHandler(console=console, level=conf.ops.log_level, show_path=False, show_level=False,
                             log_time_format="%H:%M:%S")
    to_console.setFormatter(ConsoleFormatter())
    to_console.addFilter(logging.Filter("recsynth"))  # third-party records only in the file
    _installed[:] = [to_file, to_console]
    root = logging.getLogger()
    for handler in _installed:
        root.addHandler(handler)
    logging.getLogger("recsynth").setLevel(logging.DEBUG)  # third-party loggers: WARNING and up, as root
    logging.captureWarnings(True)  # libraries' deprecation warnings: records of "py.warnings"
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # else MLflow's records go to stderr by its own handler
    _descriptors_to(path)
    return path


def _descriptors_to(path: Path) -> None:
    """Point descriptors 1 and 2 at the log file, and Python's sys.stdout and sys.stderr at copies
    of what they were: C libraries and every process started from here on (the JVM, and what it and
    Horovod start in turn) write to the file, Python's own writes (rich, click) still reach the
    console. Only for the process's own streams: in-process callers that captured them (tests) keep
    their output."""
    if not all(_on_descriptor(stream, fd) for stream, fd in ((sys.stdout, 1), (sys.stderr, 2))):
        return
    with path.open("ab") as log_file:
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream = getattr(sys, name)
            stream.flush()
            console_side = open(os.dup(fd), "w", buffering=1, encoding=stream.encoding, errors=stream.errors)
            _streams.append((name, fd, stream, console_side))
            setattr(sys, name, console_side)
            os.dup2(log_file.fileno(), fd)


def _on_descriptor(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return False


def reset() -> None:
    """Undo `configure`: a command run in-process (by tests) leaves nothing behind."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    logging.getLogger("recsynth").setLevel(logging.NOTSET)
    logging.captureWarnings(False)
    for name, fd, stream, console_side in _streams:
        console_side.flush()
        os.dup2(console_side.fileno(), fd)
        console_side.close()
        setattr(sys, name, stream)
    _streams.clear()


def last_file() -> Path | None:
    """The log file of the last command, also once it ended: where a failure's detail is."""
    return _last_file
