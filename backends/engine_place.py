"""Where an engine process lives and how a client finds or starts it.

One engine serves one model configuration for one user: its socket is named after a hash of
the model settings and ghostfill's version, in a directory only the user can enter
(`$XDG_RUNTIME_DIR/ghostfill`, else a 0700 folder in the user's cache). Starting is race-safe:
starters take an exclusive lock (`flock`) on the configuration's spawn lock, look again, and
only then start an engine; a running engine holds its own lock for its whole life, which tells
a stale socket (its engine was killed) from a live one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import platformdirs

from ghostfill import __version__
from ghostfill.config import Config, ModelConfig
from ghostfill.errors import BackendError

#: AF_UNIX paths are limited to 107 bytes on Linux (103 on macOS).
MAX_SOCKET_PATH = 100
#: How long a starter waits for a new engine to listen (it binds before loading the model).
LISTEN_TIMEOUT_S = 30.0


class EngineStartError(BackendError):
    """The engine process could not be started (it exited, or never listened)."""

    def __init__(self, message: str, *, returncode: int | None = None) -> None:
        super().__init__(message)
        #: The process's exit status when it exited; negative: the signal that killed it.
        self.returncode = returncode

    @property
    def crashed(self) -> bool:
        """Killed by a signal: a crash the next start may avoid (`crash_guard`), unlike an
        exit with a status (a bad configuration says so again)."""
        return self.returncode is not None and self.returncode < 0


def runtime_dir() -> Path:
    """The user's private folder for engine sockets, locks and logs (created 0700).

    A folder that others may enter is refused: its sockets would be theirs to connect to.
    """
    configured = os.environ.get("GHOSTFILL_RUNTIME_DIR")
    if configured:
        path = Path(configured)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "ghostfill"
    else:
        path = Path(platformdirs.user_cache_dir("ghostfill")) / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise BackendError(f"{path} belongs to another user: not using it for engine sockets")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    if len(str(path)) > MAX_SOCKET_PATH - 40:
        raise BackendError(f"{path} is too long for a socket path; set GHOSTFILL_RUNTIME_DIR "
                           "to a shorter private folder")
    return path


def engine_key(model: ModelConfig) -> str:
    """Names the engine for these model settings and this version of ghostfill: clients that
    would load the same model the same way share it; another version never shares a socket."""
    blob = json.dumps({"version": __version__, "model": dataclasses.asdict(model)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EnginePlace:
    """The files of one engine: socket, lifetime lock, spawn lock, log."""

    directory: Path
    name: str

    @classmethod
    def for_config(cls, config: Config, private: bool = False) -> EnginePlace:
        key = engine_key(config.model)
        name = f"engine-{key}-p{os.getpid()}" if private else f"engine-{key}"
        return cls(runtime_dir(), name)

    @property
    def key(self) -> str:
        return self.name.split("-")[1]

    @property
    def socket(self) -> Path:
        return self.directory / f"{self.name}.sock"

    @property
    def lock(self) -> Path:
        return self.directory / f"{self.name}.lock"

    @property
    def spawn_lock(self) -> Path:
        return self.directory / f"{self.name}.spawn"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.name}.log"


def all_places() -> list[EnginePlace]:
    """Every engine socket in the runtime folder (live or stale)."""
    directory = runtime_dir()
    return [EnginePlace(directory, p.stem) for p in sorted(directory.glob("engine-*.sock"))]


@contextlib.contextmanager
def locked(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (waiting up to `timeout` seconds)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= end:
                    raise EngineStartError(f"another process holds {path.name}") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def engine_alive(place: EnginePlace) -> bool:
    """Whether an engine holds this place's lifetime lock."""
    try:
        fd = os.open(place.lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def engine_pid(place: EnginePlace) -> int | None:
    """The pid the engine wrote into its lock file, if it is alive."""
    if not engine_alive(place):
        return None
    try:
        return int(place.lock.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def connect(place: EnginePlace) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(place.socket))
    except OSError:
        sock.close()
        raise
    return sock


def connect_or_start(place: EnginePlace, config: Config, *, private: bool,
                     idle_s: float) -> tuple[socket.socket, subprocess.Popen[bytes] | None]:
    """A connection to the engine at `place`, starting one if none listens; also the process
    when this call started it (its exit status names a crash's signal)."""
    with contextlib.suppress(OSError):
        return connect(place), None
    with locked(place.spawn_lock, LISTEN_TIMEOUT_S):
        with contextlib.suppress(OSError):
            return connect(place), None
        process = None
        if not engine_alive(place):
            with contextlib.suppress(FileNotFoundError):
                place.socket.unlink()  # left by a killed engine
            process = spawn(place, config, private=private, idle_s=idle_s)
        return wait_listening(place, process), process


def spawn(place: EnginePlace, config: Config, *, private: bool,
          idle_s: float) -> subprocess.Popen[bytes]:
    """Start `ghostfill engine run` for `place`. A shared engine gets its own session, so an
    editor that stops its language server's process group leaves it to the other windows."""
    args = [sys.executable, "-m", "ghostfill", "engine", "run",
            "--socket", str(place.socket), "--idle", str(idle_s),
            "--model-config", json.dumps(dataclasses.asdict(config.model))]
    if private:
        args.append("--private")
    log = _open_log(place.log)
    try:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=not private, close_fds=True)
    finally:
        log.close()


def _open_log(path: Path) -> BinaryIO:
    """The engine's log (its stderr), restarted when it grew past 1 MB."""
    try:
        if path.stat().st_size > 1 << 20:
            path.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


def log_tail(place: EnginePlace, lines: int = 3) -> str:
    try:
        text = place.log.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line for line in text.strip().splitlines()[-lines:])


def wait_listening(place: EnginePlace, process: subprocess.Popen[bytes] | None) -> socket.socket:
    end = time.monotonic() + LISTEN_TIMEOUT_S
    while True:
        try:
            return connect(place)
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            tail = log_tail(place)
            raise EngineStartError(f"the engine process exited ({process.returncode}) before "
                                   f"listening" + (f": {tail}" if tail else ""),
                                   returncode=process.returncode)
        if time.monotonic() >= end:
            raise EngineStartError(f"no engine listened on {place.socket} within "
                                   f"{LISTEN_TIMEOUT_S:.0f}s")
        time.sleep(0.02)
