"""Remember, across a native crash, what the model was doing when the process died.

A segfault inside llama.cpp or torch ends the process before any handler of ours can tell the
editor why (`faulthandler` still prints the Python stack to stderr, the editor's server log).
So before native work that has not yet succeeded in this process (loading the model, its first
decode) the server writes a marker with the model and the options in use, and removes it once
that work succeeded or the process exits normally. A marker whose process is gone means that
process died there; the next server start tells the user once and loads in a safe
configuration (llama.cpp's extra buffer types off, the cause of llama.cpp #20824).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import platformdirs

from ghostfill.config import Config


def state_dir() -> Path:
    configured = os.environ.get("GHOSTFILL_STATE_DIR")
    return Path(configured) if configured else Path(platformdirs.user_state_dir("ghostfill"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that number: alive
        return True
    # A process that died and was not yet reaped by its parent (a zombie) is dead too.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    return True


class CrashGuard:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or state_dir()) / "crash-guard"
        self._marker = self.directory / f"{os.getpid()}.json"
        self._atexit = False

    def arm(self, phase: str, details: dict[str, Any]) -> None:
        """Native work starts that may crash the process; `phase` says what, in words."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self._marker.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "phase": phase, "time": time.time(),
                                       **details}))
            tmp.replace(self._marker)
        except OSError:
            return  # a read-only home must not stop completion
        if not self._atexit:
            atexit.register(self.disarm)
            self._atexit = True

    def disarm(self) -> None:
        with contextlib.suppress(OSError):
            self._marker.unlink(missing_ok=True)

    def crashed(self) -> list[dict[str, Any]]:
        """Markers left by processes that are gone, oldest first; each is reported once."""
        found = []
        try:
            markers = sorted(self.directory.glob("*.json"))
        except OSError:
            return []
        for marker in markers:
            try:
                data = json.loads(marker.read_text())
                pid = int(data["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    marker.unlink()
                continue
            if pid == os.getpid() or _alive(pid):
                continue
            found.append(data)
            with contextlib.suppress(OSError):
                marker.unlink()
        return sorted(found, key=lambda d: d.get("time", 0))


def safe_config(config: Config, crashes: list[dict[str, Any]]) -> tuple[Config, str]:
    """The configuration to load in after `crashes` (see `CrashGuard.crashed`), and what to
    tell the user: llama.cpp's extra buffer types go off unless the user chose them."""
    message = describe_crash(crashes[-1])
    if config.model.extra_buffer_types is None:
        config = config.updated({"model": {"extra_buffer_types": False}})
        message += ". This load runs with llama.cpp's extra buffer types off"
    else:
        message += (f". model.extraBufferTypes is {config.model.extra_buffer_types}; "
                    "if this repeats, try it the other way")
    message += ". `ghostfill doctor` checks this machine in a child process"
    return config, message


def describe_crash(data: dict[str, Any]) -> str:
    options = data.get("options") or {}
    shown = ", ".join(f"{k}={v}" for k, v in options.items()) if options else "default options"
    return (f"the previous ghostfill {data.get('process', 'server')} (pid {data.get('pid')}) "
            f"ended abruptly while "
            f"{data.get('phase', 'running')} with {data.get('model', 'the model')} "
            f"({shown}): a native crash or the out-of-memory killer")
