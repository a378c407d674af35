"""The local acceptance statistics file: what was shown and what was kept, per language.

It stays on this machine: nothing in ghostfill sends it anywhere. It lives in the user's state
folder (`state_dir()`: $GHOSTFILL_STATE_DIR, else platformdirs' user state dir, e.g.
~/.local/state/ghostfill/usage.json on Linux), readable by the user only (0600, in a 0700
folder), and `ghostfill stats` prints it (`--reset` deletes it).

Several servers may run at once (one per editor window), so none of them owns the totals:
each keeps the counts it gathered since its last write and adds them to the file under a lock,
reading it afresh each time (`add`). Writes are atomic (a temporary file renamed over the old
one), so a reader never sees half a file. Servers write at most every `FLUSH_S` seconds
(`UsageWriter`) and once more when they exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ghostfill.crash_guard import state_dir

try:
    import fcntl
except ImportError:  # Windows: one writer at a time is then not guaranteed
    fcntl = None  # type: ignore[assignment]

FILE_NAME = "usage.json"
VERSION = 1
#: The counters kept per language.
COUNTERS = ("shown", "accepted", "partial", "rejected", "chars_shown", "chars_kept")
#: Longest wait between a server's counts and the file.
FLUSH_S = 2.0

Counts = dict[str, dict[str, int]]


def usage_path() -> Path:
    return state_dir() / FILE_NAME


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read(path: Path | None = None) -> dict[str, Any]:
    """The file's contents ({"languages": {}} when there is none or it is unreadable)."""
    path = path or usage_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"version": VERSION, "languages": {}}
    if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
        return {"version": VERSION, "languages": {}}
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".usage-", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def add(counts: Counts, path: Path | None = None) -> None:
    """Add `counts` ({language: {counter: n}}) to the file's totals."""
    if not any(any(c.values()) for c in counts.values()):
        return
    path = path or usage_path()
    with _locked(path):
        data = read(path)
        languages: dict[str, dict[str, int]] = data["languages"]
        for language, deltas in counts.items():
            kept = languages.setdefault(language, {})
            for name, value in deltas.items():
                kept[name] = int(kept.get(name, 0)) + value
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        data.setdefault("since", now)
        data.update(version=VERSION, updated=now)
        _write(path, data)


def reset(path: Path | None = None) -> bool:
    """Delete the file; True if there was one."""
    path = path or usage_path()
    with _locked(path):
        try:
            path.unlink()
        except FileNotFoundError:
            return False
    return True


class UsageWriter:
    """A server's counts on their way to the file: gathered in memory, written by a timer
    at most every `flush_s` seconds, and at exit."""

    def __init__(self, path: Path | None = None, flush_s: float = FLUSH_S) -> None:
        self.path = path
        self.flush_s = flush_s
        self._pending: Counts = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._atexit = False

    def note(self, language: str, **counts: int) -> None:
        with self._lock:
            kept = self._pending.setdefault(language, {})
            for name, value in counts.items():
                kept[name] = kept.get(name, 0) + value
            if self._timer is None:
                self._timer = threading.Timer(self.flush_s, self.flush)
                self._timer.daemon = True
                self._timer.start()
            if not self._atexit:
                atexit.register(self.flush)
                self._atexit = True

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if not pending:
            return
        # A read-only home must not stop completion; these counts are then lost.
        with contextlib.suppress(OSError):
            add(pending, self.path)


def report(data: dict[str, Any], path: Path) -> list[str]:
    """The file as `ghostfill stats` prints it: a line per language, then all of them."""
    languages: dict[str, dict[str, int]] = data.get("languages", {})
    if not languages:
        return [f"no suggestions counted yet ({path})"]
    total = {name: sum(int(c.get(name, 0)) for c in languages.values()) for name in COUNTERS}
    rows = sorted(languages.items(), key=lambda kv: -int(kv[1].get("shown", 0)))
    lines = [f"{'language':<16}{'shown':>8}{'accepted':>10}{'partial':>9}{'rejected':>10}"
             f"{'chars kept':>22}"]
    for name, counts in [*rows, ("all", total)]:
        shown_chars = int(counts.get("chars_shown", 0))
        kept = int(counts.get("chars_kept", 0))
        share = f"{100 * kept / shown_chars:.0f}%" if shown_chars else "-"
        lines.append(f"{name:<16}{int(counts.get('shown', 0)):>8}"
                     f"{int(counts.get('accepted', 0)):>10}{int(counts.get('partial', 0)):>9}"
                     f"{int(counts.get('rejected', 0)):>10}"
                     f"{f'{kept}/{shown_chars} ({share})':>22}")
    lines.append(f"since {data.get('since', '?')}, updated {data.get('updated', '?')}")
    lines.append(f"kept on this machine only: {path}")
    return lines
