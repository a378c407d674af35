"""`ghostfill engine run`: the process that holds the model and serves every editor window.

The model (llama.cpp or torch) runs here and nowhere else, so a native crash ends this process
and not a language server, and every window of the user shares one copy of the weights and
one KV cache with a slot per document. Clients connect over a Unix socket that only the user
can reach (peer credentials are checked where the OS gives them), or over TCP with a token
when asked; each request runs on its own thread against the backend, whose lock orders them;
a cancel message sets the request's `CancelToken`, which the backend checks between tokens.

The socket is bound before the model loads, so a starter knows at once that the engine is
up; clients hear the load's progress and its end as events. With no client left for
`idle_s` seconds the engine exits (a private engine when its one client leaves).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hmac
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from ghostfill import __version__
from ghostfill.backends import engine_tokenizer
from ghostfill.backends.base import Backend, CancelToken
from ghostfill.backends.engine_place import engine_key
from ghostfill.backends.engine_wire import (
    PROTOCOL,
    Channel,
    ChannelClosed,
    PromptDeltas,
    generation_to_wire,
    request_from_wire,
)
from ghostfill.config import Config
from ghostfill.errors import GhostfillError

log = logging.getLogger("ghostfill.engine_service")

#: A private engine nobody connected to within this time was orphaned by its starter.
PRIVATE_FIRST_CLIENT_S = 60.0
#: What the engine decodes once after loading: where a native kernel faults, it faults early.
FIRST_DECODE = "def main():\n    return 0\n"


def rss_bytes() -> int:
    """This process's resident memory (Linux /proc; elsewhere the peak, from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Client:
    def __init__(self, channel: Channel, peer: str) -> None:
        self.channel = channel
        self.peer = peer
        self.inflight: dict[int, CancelToken] = {}
        self.lock = threading.Lock()
        #: The prompts this client sent, per document (their deltas are read in order, on
        #: the reading thread).
        self.deltas = PromptDeltas()

    def send(self, message: dict[str, Any]) -> bool:
        try:
            self.channel.send(message)
            return True
        except ChannelClosed:
            return False


class EngineService:
    def __init__(self, config: Config, socket_path: Path | None, *, idle_s: float,
                 private: bool = False, tcp: tuple[str, int] | None = None,
                 token: str | None = None) -> None:
        self.config = dataclasses.replace(
            config, server=dataclasses.replace(config.server, engine="inprocess"))
        self.key = engine_key(config.model)
        self.socket_path = socket_path
        self.idle_s = idle_s
        self.private = private
        self.tcp = tcp
        self.token = token
        self.state = "loading"
        self.progress = 0.0
        self.error: tuple[str, str] | None = None
        self.notice: str | None = None
        self.backend: Backend | None = None
        self.started = time.monotonic()
        self.served = 0
        #: Tokenizer calls answered for the clients (`engine_tokenizer`).
        self.tokenized = 0
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._ever_connected = False
        self._idle_since = time.monotonic()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._lock_fd: int | None = None

    # -- life -------------------------------------------------------------------------
    def serve(self) -> int:
        """Listen, load, serve until idle or told to stop; returns the exit status."""
        if self.socket_path is not None and not self._take_lock(self.socket_path):
            print(f"ghostfill engine: another engine serves {self.socket_path}", flush=True)
            return 0
        self._listener = self._listen()
        print(f"ghostfill engine {os.getpid()}: listening on "
              f"{self.socket_path or self.tcp}", flush=True)
        threading.Thread(target=self._load, name="engine-load", daemon=True).start()
        try:
            self._accept_loop()
        finally:
            self._shutdown()
        return 0

    def _take_lock(self, socket_path: Path) -> bool:
        """Hold the lifetime lock beside the socket: a starter that can take it knows the
        socket it finds is stale."""
        fd = os.open(socket_path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return True

    def _listen(self) -> socket.socket:
        if self.tcp is not None:
            sock = socket.create_server(self.tcp, reuse_port=False)
        else:
            assert self.socket_path is not None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)  # the socket is born 0600: no window where others connect
            try:
                sock.bind(str(self.socket_path))
            finally:
                os.umask(old)
            sock.listen(32)
        sock.settimeout(0.25)
        return sock

    def stop(self) -> None:
        self._stop.set()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except TimeoutError:
                self._check_idle()
                continue
            except OSError:
                break
            conn.settimeout(None)
            peer = self._peer_refused(conn)
            if peer.startswith("refused"):
                log.warning("%s", peer)
                conn.close()
                continue
            client = _Client(Channel(conn), peer)
            threading.Thread(target=self._serve_client, args=(client,), daemon=True,
                             name=f"engine-client-{peer}").start()

    def _peer_refused(self, conn: socket.socket) -> str:
        """The peer's description, or a reason to refuse it: a Unix socket client must be
        this user (the folder's mode already says so; this says it again where the OS lets
        us ask the kernel)."""
        if conn.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
            return "tcp" if conn.family != socket.AF_UNIX else "unix"
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            return f"refused a client of user id {uid} (pid {pid})"
        return f"pid{pid}"

    def _check_idle(self) -> None:
        with self._lock:
            idle = not self._clients
            if not idle:
                return
            waited = time.monotonic() - self._idle_since
        if self.private:
            if self._ever_connected or waited > PRIVATE_FIRST_CLIENT_S:
                self._stop.set()
        elif waited >= self.idle_s:
            print(f"ghostfill engine {os.getpid()}: no client for {waited:.0f}s, exiting",
                  flush=True)
            self._stop.set()

    def _shutdown(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self.socket_path is not None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            for token in list(client.inflight.values()):
                token.cancel("engine stopping")
            client.channel.close()
        backend, self.backend = self.backend, None
        if backend is not None:
            with contextlib.suppress(Exception):
                backend.close()

    # -- the model --------------------------------------------------------------------
    def _load(self) -> None:
        """Load with a crash marker armed, in a safe configuration after a crash (see
        `CrashGuard`); what changed is told to every client (`notice`)."""
        from ghostfill.backends.factory import create_backend
        from ghostfill.crash_guard import CrashGuard, safe_config

        guard = CrashGuard()
        config = self.config
        crashes = guard.crashed()
        if crashes:
            config, self.notice = safe_config(config, crashes)
            log.warning("%s", self.notice)
        mc = config.model
        try:
            guard.arm("loading the model", {"process": "engine", "model": mc.name, "options": {
                "extra_buffer_types": "auto" if mc.extra_buffer_types is None
                else mc.extra_buffer_types}})
            backend = create_backend(config, self._on_progress)
            backend.probe()
            guard.arm("decoding its first tokens", {"process": "engine",
                                                     "model": backend.model_name,
                                                     "options": backend.options()})
            backend.warm(backend.tokenizer.encode(FIRST_DECODE))
            guard.disarm()
        except GhostfillError as e:
            guard.disarm()
            self._fail(type(e).__name__, str(e))
            return
        except Exception as e:  # a bug; reported to the clients, not a silent hang
            guard.disarm()
            log.exception("model load failed")
            self._fail("GhostfillError", f"loading the model failed: {e}")
            return
        self.backend, self.state = backend, "ready"
        self._broadcast({"event": "ready", "info": self.info()})

    def _fail(self, kind: str, message: str) -> None:
        self.error, self.state = (kind, message), "failed"
        self._broadcast({"event": "failed", "kind": kind, "error": message})

    def _on_progress(self, fraction: float) -> None:
        if fraction - self.progress >= 0.05 or fraction >= 1.0:
            self.progress = fraction
            self._broadcast({"event": "progress", "fraction": round(fraction, 3)})

    def info(self) -> dict[str, Any]:
        backend = self.backend
        if backend is None:
            return {}
        return {"backend": backend.name, "model": backend.model_name,
                "context_length": backend.context_length, "resumable": backend.resumable,
                "options": backend.options(), "notice": self.notice, "pid": os.getpid(),
                "tokenizer": engine_tokenizer.tokenizer_info(backend.tokenizer)}

    def status(self) -> dict[str, Any]:
        with self._lock:
            clients = [c.peer for c in self._clients]
        return {"pid": os.getpid(), "version": __version__, "key": self.key,
                "state": self.state, "model": self.config.model.name,
                "socket": str(self.socket_path) if self.socket_path else None,
                "private": self.private, "clients": clients,
                "uptime_s": round(time.monotonic() - self.started, 1),
                "idle_s": self.idle_s, "served": self.served, "tokenized": self.tokenized,
                "rss_bytes": rss_bytes(),
                "error": self.error[1] if self.error else None, **(
                    {"options": self.backend.options()} if self.backend else {})}

    def _broadcast(self, message: dict[str, Any]) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.send(message)

    # -- one client -------------------------------------------------------------------
    def _serve_client(self, client: _Client) -> None:
        try:
            if self._handshake(client):
                self._dispatch(client)
        except ChannelClosed:
            pass
        finally:
            with client.lock:
                tokens = list(client.inflight.values())
            for token in tokens:
                token.cancel("client gone")
            with self._lock:
                if client in self._clients:
                    self._clients.discard(client)
                    if not self._clients:
                        self._idle_since = time.monotonic()
            client.channel.close()

    def _handshake(self, client: _Client) -> bool:
        """The first message: `hello` (a client), or `status`/`shutdown` (the CLI)."""
        message = client.channel.receive()
        op = message.get("op")
        if self.token is not None and not hmac.compare_digest(
                str(message.get("token", "")).encode(), self.token.encode()):
            client.send({"op": op, "ok": False, "error": "engine: wrong or missing token"})
            return False
        if op == "status":
            client.send({"op": "status", "ok": True, **self.status()})
            return False
        if op == "shutdown":
            client.send({"op": "shutdown", "ok": True})
            self.stop()
            return False
        if op != "hello":
            client.send({"op": op, "ok": False, "error": "engine: expected hello"})
            return False
        theirs = (message.get("protocol"), message.get("version"), message.get("key"))
        if theirs != (PROTOCOL, __version__, self.key):
            client.send({"op": "hello", "ok": False, "error": (
                f"this engine (pid {os.getpid()}) runs ghostfill {__version__}, protocol "
                f"{PROTOCOL}, configuration {self.key}; the client asked for "
                f"{theirs[1]}, protocol {theirs[0]}, configuration {theirs[2]}")})
            return False
        with self._lock:
            self._clients.add(client)
            self._ever_connected = True
        client.send({"op": "hello", "ok": True, "pid": os.getpid(), "state": self.state,
                     "progress": self.progress})
        # Sent after registering, so that no event falls between the two.
        if self.state == "ready":
            client.send({"event": "ready", "info": self.info()})
        elif self.state == "failed" and self.error is not None:
            client.send({"event": "failed", "kind": self.error[0], "error": self.error[1]})
        return True

    def _dispatch(self, client: _Client) -> None:
        while True:
            message = client.channel.receive()
            op, rid = message.get("op"), message.get("id")
            if op == "ping":
                client.send({"id": rid, "pong": True})
            elif op == "cancel":
                with client.lock:
                    token = client.inflight.get(rid) if isinstance(rid, int) else None
                if token is not None:
                    token.cancel("cancelled by the client")
            elif op in ("generate", "warm", "score") and isinstance(rid, int):
                try:
                    self._whole_prompt(client, op, message)
                except (KeyError, TypeError, ValueError) as e:
                    client.send({"id": rid, "error": f"engine: malformed {op} request: {e!r}",
                                 "kind": "BackendError"})
                    continue
                token = CancelToken()
                with client.lock:
                    client.inflight[rid] = token
                threading.Thread(target=self._run, args=(client, op, rid, message, token),
                                 daemon=True, name=f"engine-{op}-{rid}").start()
            elif op in engine_tokenizer.OPS:
                # Answered on the reading thread: a tokenizer call takes well under a
                # millisecond (no model lock), less than starting a thread would.
                self._tokenize(client, op, rid, message)
            elif op == "status":
                client.send({"id": rid, "done": self.status()})
            elif op == "shutdown":
                client.send({"id": rid, "done": {}})
                self.stop()
            else:
                client.send({"id": rid, "error": f"engine: unknown request {op!r}",
                             "kind": "BackendError"})

    @staticmethod
    def _whole_prompt(client: _Client, op: str, message: dict[str, Any]) -> None:
        """Replace the prompt's delta (`PromptDeltas`) by its ids, on the reading thread."""
        if op in ("warm", "score"):
            message["tokens"] = client.deltas.decode(message.get("document"), message)
            message.pop("keep", None)
        else:
            prompt = message["request"]["prompt"]
            prompt["tokens"] = client.deltas.decode(prompt.get("document"), prompt)
            prompt.pop("keep", None)

    def _tokenize(self, client: _Client, op: str, rid: Any, message: dict[str, Any]) -> None:
        backend = self.backend
        if backend is None:
            client.send({"id": rid, "error": f"the engine's model is {self.state}",
                         "kind": "BackendError"})
            return
        try:
            done = engine_tokenizer.answer(backend.tokenizer, op, message)
            self.tokenized += 1
            client.send({"id": rid, "done": done})
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            client.send({"id": rid, "error": f"engine: malformed {op} request: {e!r}",
                         "kind": "BackendError"})

    def _run(self, client: _Client, op: str, rid: int, message: dict[str, Any],
             cancel: CancelToken) -> None:
        try:
            backend = self.backend
            if backend is None:
                raise GhostfillError(f"the engine's model is {self.state}")
            if op == "warm":
                done: dict[str, Any] = {"evaluated": backend.warm(
                    [int(t) for t in message["tokens"]], cancel, message.get("document"))}
            elif op == "score":
                done = {"scores": backend.score(
                    [int(t) for t in message["tokens"]],
                    [[int(t) for t in ids] for ids in message["continuations"]],
                    document=message.get("document"), cancel=cancel)}
            else:
                data = message["request"]

                def on_text(piece: str) -> None:
                    if not client.send({"id": rid, "text": piece}):
                        cancel.cancel("client gone")

                request = request_from_wire(data, cancel, on_text if data.get("stream")
                                            else None)
                done = generation_to_wire(backend.generate(request))
                self.served += 1
            client.send({"id": rid, "done": done})
        except GhostfillError as e:
            client.send({"id": rid, "error": str(e), "kind": type(e).__name__})
        except (KeyError, TypeError, ValueError) as e:
            client.send({"id": rid, "error": f"engine: malformed {op} request: {e!r}",
                         "kind": "BackendError"})
        except Exception as e:  # a bug: answered, so that the client never waits forever
            log.exception("%s failed", op)
            client.send({"id": rid, "error": f"engine: {op} failed: {e!r}",
                         "kind": "BackendError"})
        finally:
            with client.lock:
                client.inflight.pop(rid, None)
