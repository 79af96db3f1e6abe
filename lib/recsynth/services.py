"""Background services on this machine (the shared metastore, the SQL server, a standalone
cluster): start one detached with a pid file and a log, wait until its port answers, stop it.

A service is known by its name; its pid file and log live in `ops.service_dir`, so any later
`recsynth` process (or a script) can find and stop what an earlier one started.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from recsynth.errors import ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0


@dataclass(frozen=True)
class ServiceState:
    name: str
    address: str
    listening: bool
    pid: int | None
    log: str


def spark_home() -> Path:
    """The installed pyspark package: it holds Spark's jars and bin/ (no system Spark needed)."""
    import pyspark

    return Path(pyspark.__file__).parent


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not found:
        raise ServiceError("no java: set JAVA_HOME or put java on PATH (scripts/setup.sh checks for Java 17)")
    return found


def listening(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _pid_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.pid"


def _log_file(folder: Path, name: str) -> Path:
    return folder / f"{name}.log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded_pid(folder: Path, name: str) -> int | None:
    try:
        pid = int(_pid_file(folder, name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def state(service: Service, folder: Path) -> ServiceState:
    return ServiceState(service.name, f"{service.host}:{service.port}", listening(service.host, service.port),
                        _recorded_pid(folder, service.name), str(_log_file(folder, service.name)))


def start(service: Service, folder: Path) -> ServiceState:
    """Start the service unless its port already answers; raise ServiceError (with the log's end)
    when it exits or does not answer within its start timeout. Idempotent."""
    folder.mkdir(parents=True, exist_ok=True)
    if listening(service.host, service.port):
        current = state(service, folder)
        if current.pid is None:
            log.info("%s: something already listens on %s; using it", service.name, current.address)
        return current
    log_path = _log_file(folder, service.name)
    with log_path.open("ab") as log_stream:
        process = subprocess.Popen(service.command, stdout=log_stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **service.env}, start_new_session=True)
    _pid_file(folder, service.name).write_text(str(process.pid))
    log.debug("%s: starting on %s:%s (pid %s, log %s)", service.name, service.host, service.port, process.pid, log_path)
    deadline = time.monotonic() + service.start_timeout_s
    while not listening(service.host, service.port):
        if process.poll() is not None:
            _pid_file(folder, service.name).unlink(missing_ok=True)
            if listening(service.host, service.port):  # another process started it at the same moment
                log.info("%s: started by another process meanwhile; using it", service.name)
                return state(service, folder)
            raise ServiceError(f"{service.name} exited with status {process.returncode} before listening on "
                               f"{service.host}:{service.port}; end of {log_path}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            _stop_pid(process.pid)
            _pid_file(folder, service.name).unlink(missing_ok=True)
            raise ServiceError(f"{service.name} did not listen on {service.host}:{service.port} within "
                               f"{service.start_timeout_s:.0f} s; end of {log_path}:\n{_log_tail(log_path)}")
        time.sleep(0.5)
    return state(service, folder)


def _stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM the service's whole process group (a launcher and its JVM), SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                waited, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child: poll instead
                waited = 0 if _alive(pid) else pid
            if waited == pid or not _alive(pid):
                return
            time.sleep(0.2)


def stop(service: Service, folder: Path) -> bool:
    """Stop the service this machine started (by its pid file); False when none was running."""
    pid = _recorded_pid(folder, service.name)
    _pid_file(folder, service.name).unlink(missing_ok=True)
    if pid is None:
        return False
    _stop_pid(pid)
    log.debug("%s: stopped (pid %s)", service.name, pid)
    return True
