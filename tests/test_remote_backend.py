"""Remote backends against a real llama-cpp-python server, and /infill against a stand-in.

The OpenAI-API tests start `python -m llama_cpp.server` on the embedded Gemma 3 270M model, with
an API key, and exercise streaming, cancel, deadline, auth, a wrong endpoint, a server killed
mid-answer and restarted, and a port with nothing behind it. A small stdlib HTTP server that
records each request checks the exact body `InfillBackend` sends and error shapes no real server
produces on demand; the same stand-in replays the stream shapes of vLLM, TGI, Ollama and
llama.cpp's OpenAI route. Both backends against a real llama-server: tests/test_llama_server.py.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghostfill.backends.base import CancelToken, GenerationRequest, PromptParts
from ghostfill.backends.remote_errors import RemoteError
from ghostfill.backends.remote_http import base_url
from ghostfill.backends.remote_infill import InfillBackend
from ghostfill.backends.remote_openai import OpenAICompletionsBackend
from ghostfill.backends.remote_sse import SSEEvent, SSEParser
from ghostfill.completion.stopping import LineStopper
from ghostfill.completion.tokenizer import RemoteTokenizer
from ghostfill.config import RemoteConfig
from ghostfill.errors import BackendError, ConfigError, GhostfillError
from tests.conftest import vocab

KEY = "secret"
KEY_ENV = "GHOSTFILL_TEST_REMOTE_KEY"
LIST_PROMPT = "1. apple\n2. banana\n3."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gemma_path() -> Path:
    try:
        import llama_cpp.server  # noqa: F401

        from ghostfill.models import resolve

        return resolve("gemma3-270m").path
    except (ImportError, GhostfillError) as e:
        pytest.skip(f"llama-cpp-python server or the embedded model is missing: {e}")


class LlamaServer:
    """A `python -m llama_cpp.server` subprocess on a fixed port (so it can be restarted)."""

    def __init__(self, model: Path, log: Path, port: int | None = None) -> None:
        self.model, self.log, self.port = model, log, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model),
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "2048",
               "--api_key", KEY]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server exited: {tail}")
            try:
                r = httpx.get(f"{self.url}/v1/models", timeout=1.0,
                              headers={"Authorization": f"Bearer {KEY}"})
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not answer in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    srv = LlamaServer(gemma_path(), tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def openai(url: str, **kwargs: Any) -> OpenAICompletionsBackend:
    return OpenAICompletionsBackend(RemoteConfig(endpoint=url, api_key_env=KEY_ENV), **kwargs)


def request(prompt: str, max_tokens: int = 16, **kwargs: Any) -> GenerationRequest:
    return GenerationRequest(PromptParts(text=prompt), max_tokens=max_tokens, **kwargs)


# -- against llama-cpp-python's server --------------------------------------------------------


def test_streams_text_and_pieces(server: LlamaServer, keyed: None) -> None:
    backend = openai(server.url + "/v1")  # an OpenAI-style base URL works too
    pieces: list[str] = []
    result = backend.generate(request("def fib(n):\n", 12, on_text=pieces.append))
    assert result.text.strip()
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert result.stop_reason in ("max_tokens", "stop_token")
    assert 0 < result.timings.generated_tokens <= 12
    assert 0 < result.timings.first_token_ms <= result.timings.total_ms
    assert result.tokens == backend.tokenizer.encode(result.text)
    assert "data" in backend.probe()
    backend.close()


def test_cancel_mid_stream_closes_the_stream(server: LlamaServer, keyed: None) -> None:
    backend = openai(server.url)
    cancel = CancelToken()
    started = threading.Event()
    cancelled_at: list[float] = []

    def canceller() -> None:
        started.wait(30)
        time.sleep(0.1)
        cancelled_at.append(time.monotonic())
        cancel.cancel()

    threading.Thread(target=canceller, daemon=True).start()
    result = backend.generate(
        request(LIST_PROMPT, 400, cancel=cancel, on_text=lambda _: started.set())
    )
    returned = time.monotonic()
    assert result.stop_reason == "cancelled"
    # Within a poll or two, not after the ~390 tokens left (seconds even on a loaded machine).
    assert returned - cancelled_at[0] < 1.5
    assert len(result.text) < 200
    # The server saw the disconnect and stopped generating for the closed stream.
    assert backend.generate(request("x = ", 4)).stop_reason in ("max_tokens", "stop_token")
    assert "Disconnected from client" in server.log.read_text(errors="replace")


def test_deadline_keeps_whole_lines(server: LlamaServer, keyed: None) -> None:
    backend = openai(server.url)
    streamed: list[str] = []
    req = request(LIST_PROMPT, 200, stopper=LineStopper(multiline=True))
    set_at: list[float] = []

    def on_text(piece: str) -> None:
        streamed.append(piece)
        text = "".join(streamed)
        # Time runs out once a line is complete and the next one is half written.
        if not set_at and "\n" in text and not text.endswith("\n"):
            set_at.append(time.monotonic())
            req.deadline = set_at[0]

    req.on_text = on_text
    result = backend.generate(req)
    text = "".join(streamed)
    assert result.stop_reason == "deadline"
    assert result.text == text[: text.rfind("\n")] and result.text
    assert time.monotonic() - set_at[0] < 1.0


def test_wrong_or_missing_key_is_one_clear_line(server: LlamaServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-key")
    with pytest.raises(BackendError) as info:
        openai(server.url).generate(request("x", 2))
    message = str(info.value)
    assert "HTTP 401" in message and f"${KEY_ENV}" in message and "not-the-key" not in message
    assert "\n" not in message
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(BackendError, match="no API key was sent"):
        openai(server.url).generate(request("x", 2))


def test_wrong_endpoint_is_404(server: LlamaServer, keyed: None) -> None:
    backend = openai(server.url + "/nope")
    with pytest.raises(BackendError, match=r"has no /v1/completions \(HTTP 404\)"):
        backend.generate(request("x", 2))
    # Reported once; while backing off the next keystroke gets an empty answer at once.
    t0 = time.monotonic()
    assert backend.generate(request("x", 2)).stop_reason == "error"
    assert time.monotonic() - t0 < 0.5  # no network round trip, even on a loaded machine


def test_killed_server_is_reported_then_recovers(tmp_path: Path, keyed: None) -> None:
    srv = LlamaServer(gemma_path(), tmp_path / "server.log")
    srv.start()
    try:
        backend = openai(srv.url, backoff_s=0.3)
        with pytest.raises(BackendError, match="closed the connection mid-answer"):
            backend.generate(request(LIST_PROMPT, 300, on_text=lambda _: srv.kill()))
        t0 = time.monotonic()
        assert backend.generate(request("x", 2)).stop_reason == "error"  # fast, not raised
        assert time.monotonic() - t0 < 0.5  # no network round trip
        srv.start()
        time.sleep(0.4)  # past the back-off
        result = backend.generate(request("def add(a, b):\n", 8))
        assert result.text and result.stop_reason in ("max_tokens", "stop_token")
        assert not backend.health.down
    finally:
        srv.stop()


def test_dead_server_backs_off_fast(keyed: None) -> None:
    backend = openai(f"http://127.0.0.1:{free_port()}", backoff_s=0.2)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="connection refused"):
        backend.generate(request("x", 2))
    assert time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    for _ in range(20):  # keystrokes during the back-off: no network, no exception
        assert backend.generate(request("x", 2)).stop_reason == "error"
    assert time.monotonic() - t0 < 0.5  # no network round trip, even on a loaded machine
    time.sleep(0.25)
    # After the back-off one probe goes out; it fails again, quietly, and the wait doubles.
    assert backend.generate(request("x", 2)).stop_reason == "error"
    assert backend.health.down


# -- a stand-in engine ------------------------------------------------------------------------


@dataclass
class Reply:
    chunks: list[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    #: Seconds before the headers go out (llama.cpp answers only once the prompt is read).
    delay_s: float = 0.0


@dataclass
class FakeEngine:
    """Answers each POST with the next scripted reply (the last one repeats) and records it."""

    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    get_json: dict[str, Any] = field(default_factory=dict)
    #: (certificate, key) PEM files to serve HTTPS with.
    tls: tuple[Path, Path] | None = None
    #: Replies the client cut off before they were fully written.
    cut: int = 0

    def __post_init__(self) -> None:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps(engine.get_json).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                engine.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "json": json.loads(body)})
                reply = engine.replies[min(len(engine.requests), len(engine.replies)) - 1]
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    engine.cut += 1  # the client closed the stream (stop rule, cancel)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sse(*objs: Any, sep: bytes = b"\n\n", prefix: bytes = b"data: ") -> list[bytes]:
    return [prefix + (o if isinstance(o, bytes) else json.dumps(o).encode()) + sep for o in objs]


@pytest.fixture
def engine() -> Iterator[Any]:
    made: list[FakeEngine] = []

    def make(*replies: Reply) -> FakeEngine:
        made.append(FakeEngine(list(replies)))
        return made[-1]

    yield make
    for e in made:
        e.close()


def infill_stream() -> list[bytes]:
    return [
        *sse({"index": 0, "content": "    return", "tokens": [470], "stop": False,
              "id_slot": 0, "tokens_predicted": 1, "tokens_evaluated": 12}),
        b": ping\n\n",
        *sse({"index": 0, "content": " a + b", "tokens": [264, 489, 293], "stop": False}),
        *sse({"index": 0, "content": "\n", "tokens": [198], "stop": False}),
        *sse({"index": 0, "content": "", "tokens": [], "stop": True, "stop_type": "eos",
              "tokens_predicted": 5, "tokens_evaluated": 12, "tokens_cached": 8,
              "truncated": False,
              "timings": {"cache_n": 8, "prompt_n": 4, "predicted_n": 5}}),
    ]


def test_infill_request_body_and_stream(engine: Any, keyed: None) -> None:
    fake = engine(Reply(infill_stream()))
    backend = InfillBackend(RemoteConfig(endpoint=fake.url + "/v1/", api_key_env=KEY_ENV),
                            stop=["<|endoftext|>"])
    prompt = PromptParts(
        [1, 2, 3], prefix="def add(a, b):\n", suffix="\n\nprint(add(1, 2))\n",
        context=[("util.py", "X = 1\n")],
    )
    pieces: list[str] = []
    req = GenerationRequest(prompt, max_tokens=32, stop_strings=("<file_sep>",), min_indent=4,
                            deadline=time.monotonic() + 2.0, on_text=pieces.append)
    result = backend.generate(req)

    sent = fake.requests[0]
    assert sent["path"] == "/infill"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    body = sent["json"]
    assert 0 < body.pop("t_max_predict_ms") <= 2000
    assert body == {
        "input_prefix": "def add(a, b):\n",
        "input_suffix": "\n\nprint(add(1, 2))\n",
        "input_extra": [{"filename": "util.py", "text": "X = 1\n"}],
        "prompt": "",
        "n_predict": 32,
        "temperature": 0.0,
        "cache_prompt": True,
        "stream": True,
        "timings_per_token": True,
        "stop": ["<|endoftext|>", "<file_sep>"],
        "n_indent": 4,
    }
    assert result.text == "    return a + b\n" == "".join(pieces)
    assert result.stop_reason == "stop_token"
    t = result.timings
    assert (t.prompt_tokens, t.reused_tokens, t.evaluated_tokens, t.generated_tokens) == (
        12, 8, 4, 5)


def test_infill_stops_on_rule_and_closes(engine: Any, keyed: None) -> None:
    fake = engine(Reply(infill_stream()))
    backend = InfillBackend(RemoteConfig(endpoint=fake.url, api_key_env=KEY_ENV))
    req = GenerationRequest(PromptParts(prefix="def add(a, b):\n", suffix=""), max_tokens=32,
                            stopper=LineStopper(multiline=False, cursor_line_prefix=""))
    result = backend.generate(req)
    assert (result.text, result.stop_reason) == ("    return a + b", "stop_rule")


def test_cancel_before_headers_cuts_the_connection(engine: Any) -> None:
    fake = engine(Reply(infill_stream(), delay_s=3.0))
    backend = InfillBackend(RemoteConfig(endpoint=fake.url))
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    req = GenerationRequest(PromptParts(prefix="a", suffix="b"), max_tokens=4, cancel=cancel)
    t0 = time.monotonic()
    assert backend.generate(req).stop_reason == "cancelled"
    assert time.monotonic() - t0 < 2.0  # the reply was 3 s away
    # The reader was blocked waiting for headers; the socket shutdown freed it, well before
    # the server would have answered.
    end = time.monotonic() + 1.0
    while time.monotonic() < end and any(
        t.name == "ghostfill-remote" for t in threading.enumerate()
    ):
        time.sleep(0.01)
    assert not any(t.name == "ghostfill-remote" for t in threading.enumerate())
    assert not backend.health.down


def test_tls_is_verified_by_default(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    fake = FakeEngine([Reply(ENGINES["ollama"][0])], tls=(cert, key))
    try:
        untrusted = r"TLS certificate of https://127\.0\.0\.1:\d+ is not trusted"
        with pytest.raises(BackendError, match=untrusted):
            OpenAICompletionsBackend(RemoteConfig(endpoint=fake.url)).generate(request("x", 2))
        insecure = OpenAICompletionsBackend(RemoteConfig(endpoint=fake.url, verify_tls=False))
        assert insecure.generate(request("x", 2)).text == "    return a + b"
    finally:
        fake.close()


def test_infill_needs_prefix_and_suffix(engine: Any) -> None:
    backend = InfillBackend(RemoteConfig(endpoint=engine(Reply([])).url))
    with pytest.raises(BackendError, match="needs the prefix and suffix"):
        backend.generate(request("<fim_prefix>x<fim_suffix><fim_middle>"))


def test_infill_probe_reads_context_size(engine: Any) -> None:
    fake = engine(Reply([]))
    fake.get_json = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1}
    backend = InfillBackend(RemoteConfig(endpoint=fake.url))
    backend.probe()
    assert backend.context_length == 4096


@pytest.mark.parametrize("chunks", [
    sse({"error": {"code": 400, "message": "the prompt is too long", "type": "invalid"}}),
    [b'error: {"code": 500, "message": "the prompt is too long", "type": "server_error"}\n\n'],
], ids=["data-error", "old-error-line"])
def test_streamed_error_is_raised(engine: Any, chunks: list[bytes]) -> None:
    backend = InfillBackend(RemoteConfig(endpoint=engine(Reply(chunks)).url))
    req = GenerationRequest(PromptParts(prefix="a", suffix="b"), max_tokens=4)
    with pytest.raises(RemoteError, match="reported an error: the prompt is too long") as info:
        backend.generate(req)
    assert not info.value.down


def _oai(text: str, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            **extra}


ENGINES = {
    "vllm": (
        sse(_oai("    return"), _oai(" a + b", "length"),
            {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
             "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2,
                                      "total_tokens": 14,
                                      "prompt_tokens_details": {"cached_tokens": 8}}},
            b"[DONE]"),
        "max_tokens", (12, 8, 2),
    ),
    "tgi": (
        sse(_oai("    return", system_fingerprint="3.0"),
            _oai(" a + b", "eos_token", system_fingerprint="3.0"), prefix=b"data:"),
        "stop_token", (7, 0, 2),
    ),
    "ollama": (
        sse(_oai("    return", system_fingerprint="fp_ollama"),
            _oai(" a + b", "stop", system_fingerprint="fp_ollama"), b"[DONE]", sep=b"\r\n\r\n"),
        "stop_token", (7, 0, 2),
    ),
    "llama.cpp": (
        sse(_oai("    return"),
            _oai(" a + b", "stop", usage={"prompt_tokens": 12, "completion_tokens": 2},
                 timings={"cache_n": 8, "prompt_n": 4, "predicted_n": 2}),
            b"[DONE]"),
        "stop_token", (12, 8, 2),
    ),
}


@pytest.mark.parametrize("name", list(ENGINES))
def test_openai_stream_shapes(engine: Any, name: str, keyed: None) -> None:
    chunks, reason, (prompt, cached, generated) = ENGINES[name]
    fake = engine(Reply(chunks))
    backend = OpenAICompletionsBackend(
        RemoteConfig(endpoint=fake.url, model="deci", api_key_env=KEY_ENV),
        stop=["<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"],
    )
    result = backend.generate(GenerationRequest(
        PromptParts(list(range(7)), text="<fim_prefix>def add(a, b):\n"), max_tokens=2))
    assert (result.text, result.stop_reason) == ("    return a + b", reason)
    t = result.timings
    assert (t.prompt_tokens, t.reused_tokens, t.generated_tokens) == (prompt, cached, generated)
    assert fake.requests[0]["json"] == {
        "prompt": "<fim_prefix>def add(a, b):\n", "max_tokens": 2, "temperature": 0.0,
        "stream": True, "model": "deci",
        "stop": ["<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
        "stream_options": {"include_usage": True},
    }


def test_strict_server_gets_request_without_stream_options(engine: Any) -> None:
    rejected = json.dumps({"detail": [{"type": "extra_forbidden", "loc": ["body", "stream_options"],
                                       "msg": "Extra inputs are not permitted"}]}).encode()
    fake = engine(Reply([rejected], status=422, content_type="application/json"),
                  Reply(ENGINES["ollama"][0]))
    backend = OpenAICompletionsBackend(RemoteConfig(endpoint=fake.url))
    assert backend.generate(request("x", 2)).text == "    return a + b"
    assert "stream_options" in fake.requests[0]["json"]
    assert "stream_options" not in fake.requests[1]["json"]
    assert backend.include_usage is False


# -- pieces -----------------------------------------------------------------------------------


def test_sse_parser_variants() -> None:
    parser = SSEParser()
    lines = [": ping", "event: message", "data: {\"a\":", "data:1}", "", "data:[DONE]\r", "",
             "retry: 10", "data: tail"]
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert events == [SSEEvent("message", '{"a":\n1}'), SSEEvent("message", "[DONE]")]
    assert parser.end() == SSEEvent("message", "tail")


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ConfigError, match=r"remote\.endpoint"):
        OpenAICompletionsBackend(RemoteConfig(endpoint="localhost:8000"))
    assert base_url(RemoteConfig(endpoint="https://h.example/v1/")) == "https://h.example"
    assert base_url(RemoteConfig(endpoint="http://h:8080/llama")) == "http://h:8080/llama"


def _python_sources() -> list[str]:
    folder = Path(json.__file__).parent  # the interpreter's own json package: stable text
    return [Path(p).read_text() for p in sorted(glob.glob(str(folder / "*.py")))]


def test_approximate_tokenizer_round_trips_and_renders_fim() -> None:
    from ghostfill.fim import detect_template, get_template, render_prompt, select_template

    starcoder = get_template("starcoder")
    tok = RemoteTokenizer(specials=starcoder.control_tokens)
    text = "def f(x):\n    return x_value + 1234567  # <fim_middle> stays text\n"
    ids = tok.encode(text)
    assert tok.decode_bytes(ids).decode() == text
    middle = tok.special_id("<fim_middle>")
    assert middle is not None and middle not in ids and tok.decode_bytes([middle]) == b""
    assert tok.special_id("<PRE>") is None
    assert select_template(tok, "starcoder") is starcoder
    prompt = render_prompt(starcoder, tok, "def f(x):\n    ", "\n")
    assert prompt.display() == "<fim_prefix>def f(x):\n    <fim_suffix>\n<fim_middle>"
    assert len(prompt.tokens) > 4
    # With nothing known about the served vocabulary, detection does not guess a FIM format.
    assert not detect_template(RemoteTokenizer()).is_fim


def test_approximate_tokenizer_counts_near_real_ones() -> None:
    from ghostfill.completion.tokenizer import LlamaCppTokenizer

    approx = RemoteTokenizer()
    reals = [LlamaCppTokenizer.from_gguf(str(vocab(name)))
             for name in ("starcoder", "deepseek-coder", "qwen2", "llama-spm")]
    sources = _python_sources()
    ours = sum(len(approx.encode(s)) for s in sources)
    for real in reals:
        theirs = sum(len(real.encode(s)) for s in sources)
        assert 1.0 <= ours / theirs <= 1.4, (real.name, ours, theirs)


def test_vocab_gguf_gives_exact_counts_and_detects_the_template() -> None:
    from ghostfill.completion.tokenizer import LlamaCppTokenizer
    from ghostfill.fim import select_template

    path = str(vocab("starcoder"))  # DeciCoder-1B's tokenizer
    exact, real = RemoteTokenizer.from_gguf(path), LlamaCppTokenizer.from_gguf(path)
    text = _python_sources()[0]
    assert exact.encode(text) == real.encode(text)
    assert not exact.approximate and exact.eos_ids == real.eos_ids
    assert exact.special_id("<fim_prefix>") == 1
    assert select_template(exact, "auto").name == "starcoder"
