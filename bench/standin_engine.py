"""A fast stand-in serving engine for soak tests: OpenAI-compatible `/v1/completions` (SSE).

It answers instantly with text derived from the prompt (its last characters), so a client can
tell which document version an answer was computed for. It exercises ghostfill's real remote
path (HTTP, SSE parsing, cancellation) without a model's cost; results from it say nothing
about completion quality or model latency.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TAIL = 6


def answer_for(prompt: str) -> str:
    """`  # <tail>`: a comment carrying the prompt's last characters (newlines as '/')."""
    return "  # " + prompt[-TAIL:].replace("\n", "/").replace("\r", "/")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        text = answer_for(str(body.get("prompt", "")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                chunk = {"choices": [{"text": piece, "index": 0, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            done = {"choices": [{"text": "", "index": 0, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass


class StandinEngine:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StandinEngine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
