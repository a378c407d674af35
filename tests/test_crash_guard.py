"""A server that dies in native code is known to the next one: real crashes, a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lsprotocol import types

from ghostfill.backends import engine_control
from ghostfill.backends.engine_place import all_places
from ghostfill.crash_guard import CrashGuard
from ghostfill.lsp.protocol import plain
from tests.conftest import RUNTIME_DIR
from tests.sync_client import SyncClient

#: Arms a guard the way the server does before loading, then dies of a real SIGSEGV.
CRASHING_LOAD = """
import ctypes, sys
from pathlib import Path
from ghostfill.backends import engine_control
from ghostfill.backends.engine_place import all_places
from ghostfill.crash_guard import CrashGuard
from ghostfill.lsp.protocol import plain
CrashGuard(Path(sys.argv[1])).arm("decoding its first tokens",
    {"model": "gemma3-270m", "options": {"use_extra_bufts": True}})
ctypes.string_at(0)
"""


def crash_while_armed(state: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", CRASHING_LOAD, str(state)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    return proc.returncode


def test_a_marker_outlives_a_crash_and_is_reported_once(tmp_path: Path):
    crash_while_armed(tmp_path)
    guard = CrashGuard(tmp_path)
    found = guard.crashed()
    assert len(found) == 1 and found[0]["phase"] == "decoding its first tokens"
    assert found[0]["options"] == {"use_extra_bufts": True}
    assert guard.crashed() == []  # reported once


def test_a_live_process_or_a_disarmed_guard_is_no_crash(tmp_path: Path):
    mine = CrashGuard(tmp_path)
    mine.arm("loading the model", {})
    sleeper = subprocess.Popen([sys.executable, "-c",
                                "import sys, time; from pathlib import Path; "
                                "from ghostfill.crash_guard import CrashGuard; "
                                "CrashGuard(Path(sys.argv[1])).arm('loading', {}); "
                                "print('armed', flush=True); time.sleep(60)", str(tmp_path)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout is not None and sleeper.stdout.readline().strip() == "armed"
        assert CrashGuard(tmp_path).crashed() == []  # both alive
    finally:
        sleeper.kill()
        sleeper.wait()
    mine.disarm()
    assert [d["pid"] for d in CrashGuard(tmp_path).crashed()] == [sleeper.pid]  # SIGKILL


def test_a_normal_exit_leaves_no_marker(tmp_path: Path):
    subprocess.run([sys.executable, "-c",
                    "import sys; from pathlib import Path; from ghostfill.crash_guard import "
                    "CrashGuard; CrashGuard(Path(sys.argv[1])).arm('loading', {})",
                    str(tmp_path)], check=True, timeout=120)
    assert CrashGuard(tmp_path).crashed() == []


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["shared", "inprocess"])
def test_the_model_after_a_crash_tells_the_user_and_serves_in_the_safe_configuration(
        tmp_path: Path, engine: str):
    # Shared: the engine process that starts next finds the marker and says so through the
    # server; in process: the server itself does.
    crash_while_armed(tmp_path)
    runtime = Path(tempfile.mkdtemp(prefix="gf-rt-", dir="/tmp"))  # socket paths are short
    command = ["env", f"GHOSTFILL_STATE_DIR={tmp_path}", f"GHOSTFILL_RUNTIME_DIR={runtime}",
               sys.executable, "-m", "ghostfill", "serve"]
    server = SyncClient(settings={"server": {"debounceMs": 0, "engine": engine}},
                        command=command)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.messages:
            time.sleep(0.1)
        warnings = [m for m in server.messages if m.type == types.MessageType.Warning]
        assert len(warnings) == 1, server.messages
        text = warnings[0].message
        assert "ended abruptly while decoding its first tokens" in text
        assert "extra buffer types off" in text and "ghostfill doctor" in text
        uri = "file:///tmp/ghostfill-crash/mod.py"
        server.open(uri, "def add(a, b):\n    return ")
        result = server.inline(uri, 1, 11, invoked=True)
        assert result is not None and result.items and result.items[0].insert_text.strip()
        stats = plain(server.request("ghostfill/stats", None))
        assert stats["options"]["use_extra_bufts"] is False, stats
        assert server.alive()
    finally:
        server.stop()
        if runtime.is_dir():
            os.environ["GHOSTFILL_RUNTIME_DIR"], saved = str(runtime), RUNTIME_DIR
            try:
                for place in all_places():
                    assert engine_control.stop(place)
            finally:
                os.environ["GHOSTFILL_RUNTIME_DIR"] = saved
    # The server (and its engine) exited normally: nothing is left for the next one to
    # report.
    assert CrashGuard(tmp_path).crashed() == []
    assert not list((tmp_path / "crash-guard").glob("*.json")), os.listdir(tmp_path)
