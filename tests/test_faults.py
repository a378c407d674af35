"""Faults: a serving engine that hangs, errors or sends garbage; broken model files; a full
disk. Each gives a clear message, the server stays up, and the next request is served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, vocab
from tests.sync_client import SyncClient

URI = "file:///faults/main.py"
TEXT = "def add(a, b):\n    return a + b\n\n\nresult = add(1, "


class FaultyEngine:
    """A real HTTP server speaking the OpenAI completions API, misbehaving on demand."""

    def __init__(self) -> None:
        self.mode = "ok"
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = engine.mode
                if mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "engine exploded"}}')
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if mode == "hang":
                    time.sleep(30)
                    return
                if mode == "garbage":
                    self.wfile.write(b"data: {not json at all\n\ndata: \x00\x01\x02\n\n")
                    return
                if mode == "bad-utf8":
                    self.wfile.write(b'data: {"choices": [{"text": "2)\xff\xfe", "index": 0}]}\n\n')
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                chunk = {"choices": [{"text": "2)", "index": 0, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def engine():
    e = FaultyEngine()
    yield e
    e.close()


@pytest.fixture(scope="module")
def server(engine: FaultyEngine):
    client = SyncClient({"model": {"backend": "openai", "template": "starcoder"},
                         "remote": {"endpoint": engine.url, "readTimeoutS": 5.0},
                         "completion": {"latencyBudgetMs": 1500, "invokedBudgetMs": 1500},
                         "server": {"debounceMs": 0, "cacheSize": 0, "prefetch": False}})
    client.open(URI, TEXT)
    yield client
    client.stop()


def complete(server: SyncClient) -> tuple[list, float]:
    started = time.monotonic()
    result = server.inline(URI, 4, 16, invoked=True)
    return (list(result.items) if result else []), time.monotonic() - started


def test_healthy_engine_is_served(server: SyncClient, engine: FaultyEngine):
    engine.mode = "ok"
    items, _ = complete(server)
    assert items and items[0].insert_text.startswith("2")


@pytest.mark.parametrize("mode", ["hang", "garbage", "bad-utf8", "500"])
def test_fault_then_recovery(server: SyncClient, engine: FaultyEngine, mode: str):
    engine.mode = mode
    items, took = complete(server)
    # A hanging engine costs the latency budget, not the read timeout or forever.
    assert took < 1.5 + 2.0
    if mode == "bad-utf8" and items:
        items[0].insert_text.encode("utf-8")  # whatever came back is valid text
    assert server.alive()
    engine.mode = "ok"
    deadline = time.monotonic() + 20  # after an error the backend backs off briefly
    while time.monotonic() < deadline:
        items, _ = complete(server)
        if items:
            break
        time.sleep(0.5)
    assert items and items[0].insert_text.startswith("2")
    if mode == "500":
        assert any("engine exploded" in m.message or "500" in m.message
                   for m in server.messages)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    lines = (EXAMPLES / "stats.py").read_text().split("\n")
    line = next(i for i, s in enumerate(lines) if "standard deviation" in s) + 2
    return subprocess.run([sys.executable, "-m", "ghostfill", "complete",
                           f"{EXAMPLES / 'stats.py'}:{line}:5", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_wrong_architecture_file_is_a_clear_error():
    # A real GGUF that holds only a tokenizer: no architecture, no weights.
    out = run_cli("--model", str(vocab("starcoder")))
    assert out.returncode != 0
    assert "ggml-vocab-starcoder.gguf" in out.stderr and "Traceback" not in out.stderr


def test_full_disk_while_assembling_the_default_model(tmp_path: Path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        out = run_cli(env={"GHOSTFILL_CACHE_DIR": str(mount)})
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left" in lines[0], out.stderr
        assert "GHOSTFILL_CACHE_DIR" in lines[0]
        leftovers = [p for p in (mount / "models").glob("*")] if (mount / "models").exists() \
            else []
        assert not leftovers, leftovers  # no half-written model left behind
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
