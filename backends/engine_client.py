"""The backend seam over a socket: `EngineBackend` runs generation in an engine process.

The language server (or `ghostfill complete`) keeps everything but the model: windows,
templates, filters, and the answers of the model's tokenizer (`engine_tokenizer`: the
vocabulary itself stays in the engine). `generate` and `warm` cross to the engine, which streams
the kept text back; a cancel crosses at once (`CancelToken.on_cancel`), so the model stops
within a token as it does in process.

`EngineSupervisor` keeps a connection alive: it finds or starts the engine, hears the load's
progress, pings it, and when the engine dies or stops answering it fails the requests in
flight with an empty answer (never a hang), tells the user once per incident, and starts a
new engine in the background, with back-off only while starts keep failing, so a crash loop
neither blocks the editor nor floods it with messages.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ghostfill import __version__
from ghostfill import errors as _errors
from ghostfill.backends.base import (
    CancelToken,
    Generation,
    GenerationRequest,
    Timings,
)
from ghostfill.backends.engine_place import (
    EnginePlace,
    EngineStartError,
    connect_or_start,
    engine_key,
    log_tail,
)
from ghostfill.backends.engine_tokenizer import EngineTokenizer
from ghostfill.backends.engine_wire import (
    PROTOCOL,
    Channel,
    ChannelClosed,
    PromptDeltas,
    generation_from_wire,
    request_to_wire,
)
from ghostfill.completion.tokenizer import Tokenizer
from ghostfill.config import Config
from ghostfill.errors import BackendError, ConfigError, GhostfillError

log = logging.getLogger("ghostfill.engine_client")

#: Delays before the next start while starts keep failing (a crash after serving restarts at
#: once: a user who was typing wants completion back now).
BACKOFF_S = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: Failed starts in a row after which the user is told the engine keeps failing.
FAILING_AFTER = 3
#: Seconds between pings.
PING_S = 1.0

#: (kind, message) events for the user: "lost", "restored", "failing", "notice".
EventSink = Callable[[str, str], None]


class EngineLost(BackendError):
    """The engine process went away before its model was ready (a crash while loading)."""


#: Starts after an engine died while loading, before the load is reported failed: the next
#: engine finds the crash marker and loads in the safe configuration (`crash_guard`).
LOAD_RETRIES = 2


class EngineMismatch(BackendError):
    """The process on the socket is not the engine this client needs (version, protocol or
    configuration)."""


def _error(kind: str, message: str) -> GhostfillError:
    """The engine's error as the same exception class (ModelNotAvailable stays one)."""
    cls = getattr(_errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, GhostfillError):
        return cls(message)
    return BackendError(message)


class _Pending:
    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.on_text = on_text
        self.done = threading.Event()
        self.answer: dict[str, Any] = {}


class EngineConnection:
    """One connection to an engine: a reader thread routes answers to their requests."""

    def __init__(self, channel: Channel, pid: int, on_lost: Callable[[EngineConnection, str],
                                                                     None]) -> None:
        self.channel = channel
        self.pid = pid
        self.info: dict[str, Any] = {}
        self.last_heard = time.monotonic()
        self.lost: str | None = None
        self._on_lost = on_lost
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        #: Prompts cross as deltas (`PromptDeltas`): encoded and sent in one critical
        #: section, so the engine reads them in the order they were encoded.
        self._deltas = PromptDeltas()
        self._send_order = threading.Lock()
        self._ready = threading.Event()
        self._failure: GhostfillError | None = None
        self._progress: Callable[[float], None] | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="ghostfill-engine-reader")

    def start(self, on_progress: Callable[[float], None] | None) -> None:
        self._progress = on_progress
        self._reader.start()

    def wait_ready(self) -> dict[str, Any]:
        """Block until the engine's model is loaded; raises its load error, or BackendError
        when the engine went away meanwhile."""
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self.info

    def submit(self, op: str, payload: dict[str, Any],
               on_text: Callable[[str], None] | None = None) -> tuple[int, _Pending]:
        rid = next(self._ids)
        pending = _Pending(on_text)
        with self._lock:
            if self.lost is not None:
                pending.answer = {"lost": self.lost}
                pending.done.set()
                return rid, pending
            self._pending[rid] = pending
        try:
            with self._send_order:
                self.channel.send({"op": op, "id": rid, **self._delta(op, payload)})
        except ChannelClosed as e:
            self._resolve(rid, {"lost": str(e)})
        return rid, pending

    def _delta(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        """`payload` with its prompt's ids as a delta (`PromptDeltas`)."""
        if op in ("warm", "score"):
            return {**payload, **self._deltas.encode(payload.get("document"),
                                                     list(payload["tokens"]))}
        if op == "generate":
            request = payload["request"]
            prompt = request["prompt"]
            delta = self._deltas.encode(prompt.get("document"), list(prompt["tokens"]))
            return {**payload, "request": {**request, "prompt": {**prompt, **delta}}}
        return payload

    def cancel(self, rid: int) -> None:
        with contextlib.suppress(ChannelClosed):
            self.channel.send({"op": "cancel", "id": rid})

    def ping(self) -> None:
        with contextlib.suppress(ChannelClosed):
            self.channel.send({"op": "ping", "id": 0})

    def close(self) -> None:
        self.channel.close()

    def _resolve(self, rid: int, answer: dict[str, Any]) -> None:
        with self._lock:
            pending = self._pending.pop(rid, None)
        if pending is not None:
            pending.answer = answer
            pending.done.set()

    def _read_loop(self) -> None:
        reason = "the connection closed"
        try:
            while True:
                message = self.channel.receive()
                self.last_heard = time.monotonic()
                rid = message.get("id")
                if "event" in message:
                    self._event(message)
                elif "text" in message:
                    with self._lock:
                        pending = self._pending.get(rid) if isinstance(rid, int) else None
                    if pending is not None and pending.on_text is not None:
                        pending.on_text(str(message["text"]))
                elif isinstance(rid, int) and rid:
                    self._resolve(rid, message)
        except ChannelClosed as e:
            reason = str(e)
        except Exception as e:  # a bug in a callback: the connection is given up, not hung
            log.exception("engine reader failed")
            reason = f"reader failed: {e!r}"
        with self._lock:
            self.lost = reason
            waiting, self._pending = self._pending, {}
        for p in waiting.values():
            p.answer = {"lost": reason}
            p.done.set()
        if not self._ready.is_set():
            self._failure = EngineLost(f"the engine process (pid {self.pid}) went away "
                                       f"while loading the model")
            self._ready.set()
        self._on_lost(self, reason)

    def _event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event == "progress" and self._progress is not None:
            self._progress(float(message["fraction"]))
        elif event == "ready":
            self.info = dict(message["info"])
            self._ready.set()
        elif event == "failed":
            self._failure = _error(str(message.get("kind")), str(message.get("error")))
            self._ready.set()


@dataclass
class _Incident:
    started: float
    message: str


class EngineSupervisor:
    """Keeps this client connected to a working engine (see the module's docstring)."""

    def __init__(self, config: Config, *, private: bool,
                 on_progress: Callable[[float], None] | None = None,
                 on_event: EventSink | None = None) -> None:
        self.config = config
        self.private = private
        self.on_progress = on_progress
        self.on_event = on_event or (lambda kind, message: log.warning("%s", message))
        self.timeout_s = config.server.engine_timeout_s
        self._conn: EngineConnection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._restarting = False
        self.incidents = 0
        self.restarts = 0
        self.notice: str | None = None

    @property
    def place(self) -> EnginePlace:
        return EnginePlace.for_config(self.config, private=self.private)

    def start(self) -> dict[str, Any]:
        """Connect (starting the engine if needed) and wait for its model; raises what the
        load raised. Pings from then on."""
        for attempt in range(LOAD_RETRIES + 1):
            try:
                conn = self._connect(self.on_progress)
                break
            except EngineMismatch as e:
                if self.private or self.config.server.engine_address:
                    raise
                self._say("notice", f"{e}; using an engine of this server's own instead")
                self.private = True
            except (EngineLost, EngineStartError) as e:
                # A crash while loading, seen on the connection or (when it came within the
                # moment between the bind and our connect) as the exit of the process.
                if attempt == LOAD_RETRIES or (isinstance(e, EngineStartError)
                                               and not e.crashed):
                    raise
                log.warning("%s; starting another", e)
                self._reap()
        else:  # a mismatch on the last try
            conn = self._connect(self.on_progress)
        with self._lock:
            self._conn = conn
        threading.Thread(target=self._heartbeat, daemon=True,
                         name="ghostfill-engine-heartbeat").start()
        return conn.info

    def current(self) -> EngineConnection | None:
        """The live connection; None while the engine is being restarted."""
        with self._lock:
            return self._conn

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _say(self, kind: str, message: str) -> None:
        try:
            self.on_event(kind, message)
        except Exception:  # the sink is the server's; its failure must not stop us
            log.exception("engine event sink failed")

    def _open(self) -> socket.socket:
        """A socket to the engine: the configured TCP one, else the local one (started here
        if none runs)."""
        address = self.config.server.engine_address
        if address:
            host, _, port = address.removeprefix("tcp:").rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"server.engine_address {address!r}: expected tcp:HOST:PORT")
            try:
                return socket.create_connection((host, int(port)), timeout=5.0)
            except OSError as e:
                raise BackendError(f"no engine answers at {address}: {e}") from e
        sock, process = connect_or_start(self.place, self.config, private=self.private,
                                         idle_s=self.config.server.engine_idle_s)
        if process is not None:
            self._process = process
        return sock

    def _connect(self, on_progress: Callable[[float], None] | None) -> EngineConnection:
        sock = self._open()
        sock.settimeout(None)
        channel = Channel(sock)
        hello = {"op": "hello", "protocol": PROTOCOL, "version": __version__,
                 "key": engine_key(self.config.model), "pid": os.getpid()}
        if self.config.server.engine_address:
            hello["token"] = os.environ.get(self.config.server.engine_token_env, "")
        try:
            channel.send(hello)
            reply = channel.receive()
        except ChannelClosed as e:
            channel.close()
            # An engine that is dying (its socket still accepts): the next start replaces it.
            raise EngineLost(f"the engine did not answer: {e}") from e
        if not reply.get("ok"):
            channel.close()
            raise EngineMismatch(str(reply.get("error") or "the engine refused this client"))
        conn = EngineConnection(channel, int(reply.get("pid") or 0), self._lost)
        conn.start(on_progress)
        try:
            conn.wait_ready()
        except GhostfillError:
            conn.close()
            raise
        notice = conn.info.get("notice")
        if notice and notice != self.notice:
            self.notice = str(notice)
            self._say("notice", self.notice)
        return conn

    def _reap(self) -> None:
        """Collect the exit of an engine this client started: until then it is a zombie,
        which looks alive to the next engine's crash check (`CrashGuard.crashed`)."""
        process = self._process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5.0)

    def _describe_end(self, conn: EngineConnection, reason: str) -> str:
        process = self._process
        how = ""
        if process is not None and process.pid == conn.pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.5)
            code = process.returncode
            if code is not None and code < 0:
                how = f": killed by {signal.Signals(-code).name}"
            elif code is not None:
                how = f": exited with status {code}"
        return f"the model engine (pid {conn.pid}) stopped{how or f' ({reason})'}"

    def _lost(self, conn: EngineConnection, reason: str) -> None:
        if self._closing.is_set():
            return
        with self._lock:
            if conn is not self._conn:
                return
            self._conn = None
            if self._restarting:
                return
            self._restarting = True
        self.incidents += 1
        message = self._describe_end(conn, reason)
        tail = log_tail(self.place, 2)
        log.warning("%s%s", message, f"; engine log: {tail}" if tail else "")
        self._say("lost", f"{message}; restarting it (requests meanwhile get no suggestion)")
        threading.Thread(target=self._restart, args=(message,), daemon=True,
                         name="ghostfill-engine-restart").start()

    def _restart(self, why: str) -> None:
        started = time.monotonic()
        failures = 0
        while not self._closing.is_set():
            delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            if delay and self._closing.wait(delay):
                return
            try:
                conn = self._connect(None)
            except GhostfillError as e:
                failures += 1
                log.warning("engine restart %d failed: %s", failures, e)
                if failures == FAILING_AFTER:
                    self._say("failing", f"the model engine keeps failing to start ({e}); "
                                         f"still trying, every {BACKOFF_S[-1]:.0f}s at most; "
                                         f"its log: {self.place.log}")
                continue
            with self._lock:
                if self._closing.is_set():
                    conn.close()
                    return
                self._conn = conn
                self._restarting = False
            self.restarts += 1
            self._say("restored", f"the model engine is back (pid {conn.pid}, "
                                  f"{time.monotonic() - started:.1f}s after: {why})")
            return

    def _heartbeat(self) -> None:
        """Ping; an engine silent for `timeout_s` is hung (a deadlock, SIGSTOP, swapping to
        death): it is killed, which the reader sees as the connection's end."""
        while not self._closing.wait(PING_S):
            conn = self.current()
            if conn is None:
                continue
            silent = time.monotonic() - conn.last_heard
            if silent > self.timeout_s:
                log.warning("the model engine (pid %d) did not answer for %.0fs; killing it",
                            conn.pid, silent)
                if conn.pid > 0 and not self.config.server.engine_address:  # ours to kill
                    with contextlib.suppress(OSError):
                        os.kill(conn.pid, signal.SIGKILL)
                conn.close()
                continue
            conn.ping()


class EngineBackend:
    """`Backend` whose model runs in an engine process (`server.engine`: shared or private)."""

    def __init__(self, config: Config, *, private: bool,
                 on_progress: Callable[[float], None] | None = None,
                 on_event: EventSink | None = None) -> None:
        self.supervisor = EngineSupervisor(config, private=private, on_progress=on_progress,
                                           on_event=on_event)
        info = self.supervisor.start()
        # The vocabulary stays in the engine; this process keeps what it answered.
        self.tokenizer: Tokenizer = EngineTokenizer(
            lambda op, payload: self._call(op, payload, None), dict(info.get("tokenizer") or {}))
        self.name = str(info["backend"])
        self.model_name = str(info["model"])
        self.context_length = int(info["context_length"])
        self.resumable = bool(info["resumable"])
        self._options = dict(info.get("options") or {})

    def probe(self) -> dict[str, object]:
        return {}

    def options(self) -> dict[str, object]:
        conn = self.supervisor.current()
        options = dict(conn.info.get("options") or {}) if conn is not None else self._options
        return {**options, "engine": "private" if self.supervisor.private else "shared",
                "engine_pid": conn.pid if conn is not None else None,
                "engine_restarts": self.supervisor.restarts}

    def _call(self, op: str, payload: dict[str, Any], cancel: CancelToken | None,
              on_text: Callable[[str], None] | None = None) -> dict[str, Any] | None:
        """The engine's answer (`done`), or None when there is no engine right now or it
        went away meanwhile: the caller answers empty."""
        conn = self.supervisor.current()
        if conn is None:
            return None
        rid, pending = conn.submit(op, payload, on_text)
        if cancel is not None:
            cancel.on_cancel(lambda: conn.cancel(rid))
        pending.done.wait()
        answer = pending.answer
        if "lost" in answer:
            return None
        if "error" in answer:
            raise _error(str(answer.get("kind")), str(answer["error"]))
        return dict(answer["done"])

    def generate(self, request: GenerationRequest) -> Generation:
        if request.cancel.cancelled:
            return Generation("", [], "cancelled", Timings(prompt_tokens=len(request.tokens)))
        done = self._call("generate", {"request": request_to_wire(request, parts=False)},
                          request.cancel,
                          request.on_text)
        if done is None:
            return Generation("", [], "error", Timings(prompt_tokens=len(request.tokens)))
        return generation_from_wire(done)

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        done = self._call("warm", {"tokens": tokens, "document": document}, cancel)
        return int(done["evaluated"]) if done is not None else 0

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        done = self._call("score", {"tokens": prompt, "continuations": continuations,
                                    "document": document}, cancel)
        scores = done.get("scores") if done is not None else None
        return [float(s) for s in scores] if isinstance(scores, list) else None

    def close(self) -> None:
        self.supervisor.close()
