"""One streamed answer, read on a daemon thread that the caller can cut off at any moment.

A remote backend must never make the editor wait on a sick server, so the answer is read on a
daemon thread and handed over through a queue; the thread that called `generate` waits on the
queue in short slices (`pump`) and gives up the moment the request is cancelled or its deadline
passes. Giving up shuts the socket down, which unblocks the reader and tells the server
(llama.cpp, vLLM, llama-cpp-python all watch for the disconnect) to stop generating. Only a
connect failure is retried (once, at once): nothing was sent, so repeating is safe.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ghostfill.backends.base import GenerationRequest, StopReason
from ghostfill.backends.remote_errors import StatusError, is_tls_failure
from ghostfill.backends.remote_sse import SSEEvent, SSEParser

#: How often the waiting caller looks at its cancel token and deadline.
POLL_S = 0.01
#: Repeats of a request whose connection could not be opened (nothing was sent yet).
CONNECT_RETRIES = 1

_OPENED = object()
_END = object()


class _Abandoned(Exception):
    """The caller gave up before the request went out: do not send it at all."""


class StreamReader:
    """Reads one POST's SSE answer on a daemon thread; `close()` makes it stop at once."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        body: dict[str, Any],
        headers: dict[str, str],
        *,
        on_error: Callable[[BaseException, StreamReader], None],
        on_open: Callable[[], None],
    ) -> None:
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.stopped: StopReason | None = None
        self._client, self._url, self._body, self._headers = client, url, body, headers
        self._on_error, self._on_open = on_error, on_open
        self._closed = threading.Event()
        self._lock = threading.Lock()
        #: The connection's network stream while this reader owns it (never a pooled one after).
        self._net: Any = None
        self._interrupted = False
        self._thread = threading.Thread(target=self._run, name="ghostfill-remote", daemon=True)
        self._thread.start()

    def _trace(self, name: str, info: dict[str, Any]) -> None:
        # A fresh connection is ours from connect on: grab it so a cancel can cut it even
        # before the response headers arrive (llama.cpp sends them only after the prompt).
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                if not self._closed.is_set():
                    self._net = info.get("return_value")
        elif name == "http11.send_request_headers.started" and self._closed.is_set():
            raise _Abandoned  # a slow connect outlived the keystroke: spare the server the work

    def _run(self) -> None:
        try:
            for attempt in range(CONNECT_RETRIES + 1):
                try:
                    self._request()
                    return
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                    if attempt >= CONNECT_RETRIES or self._closed.is_set() or is_tls_failure(exc):
                        raise
                    time.sleep(0.05)
        except _Abandoned:
            pass
        except BaseException as exc:
            with self._lock:
                self._net = None
                ours = self._interrupted
            if not ours:  # an error we caused by shutting the socket is no error
                self._on_error(exc, self)

    def _request(self) -> None:
        with self._client.stream(
            "POST", self._url, json=self._body, headers=self._headers,
            extensions={"trace": self._trace},
        ) as response:
            try:
                with self._lock:
                    self._net = response.extensions.get("network_stream", self._net)
                if self._closed.is_set():
                    return
                if response.status_code >= 400:
                    raise StatusError(response.status_code, response.reason_phrase,
                                      _read_capped(response))
                self._on_open()
                self.items.put(_OPENED)
                parser = SSEParser()
                for line in response.iter_lines():
                    if self._closed.is_set():
                        return
                    event = parser.feed(line)
                    if event is not None:
                        self.items.put(event)
                tail = parser.end()
                if tail is not None:
                    self.items.put(tail)
                with self._lock:
                    self._net = None  # done reading: the pooled connection is not ours to cut
                self.items.put(_END)
            finally:
                with self._lock:
                    self._net = None

    def finish(self, wait_s: float = 0.05) -> None:
        """Close after a normal end, letting the reader drain so the connection is reused."""
        self._thread.join(wait_s)
        self.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            net, self._net = self._net, None
            if net is None:
                return
            self._interrupted = True
            _shutdown(net)


def _shutdown(net: Any) -> None:
    """Shut the connection down under a reader blocked in recv (close() would not wake it)."""
    try:
        sock = net.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return
        # A dup shares the connection: shutting it down works for plain and TLS sockets alike
        # without touching the SSL object the reader thread is using.
        with socket.socket(fileno=os.dup(fd)) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _read_capped(response: httpx.Response, limit: int = 8192) -> str:
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", errors="replace")


def pump(stream: StreamReader, request: GenerationRequest) -> Iterator[SSEEvent]:
    """Events of `stream` until it ends, the request is cancelled or its deadline passes.

    The deadline is read on every slice, so a scheduler may move it while the answer streams.
    Sets `stream.stopped` to "cancelled" or "deadline" when it gives up.
    """
    while True:
        if request.cancel.cancelled:
            stream.stopped = "cancelled"
            return
        deadline = request.deadline
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            stream.stopped = "deadline"
            return
        wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - now))
        try:
            item = stream.items.get(timeout=wait)
        except queue.Empty:
            continue
        if item is _END:
            return
        if item is _OPENED:
            continue
        if isinstance(item, BaseException):
            raise item
        yield item
