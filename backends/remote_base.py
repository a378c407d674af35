"""The streaming remote backend: what `openai` and `infill` share around their request bodies.

A failure that is about the server puts the backend in a *down* state (`Health`): the error is
raised once, and for a short, growing back-off later calls return an empty `error` generation
at once instead of raising the same message on every keystroke.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ghostfill.backends.base import (
    CancelToken,
    Generation,
    GenerationRequest,
    StopReason,
    Timings,
)
from ghostfill.backends.remote_errors import RemoteError, StatusError, map_error
from ghostfill.backends.remote_http import base_url, make_client, redact, request_headers
from ghostfill.backends.remote_sse import SSEEvent
from ghostfill.backends.remote_stream import StreamReader, pump
from ghostfill.backends.token_loop import TokenLoop
from ghostfill.completion.tokenizer import RemoteTokenizer, Tokenizer
from ghostfill.config import RemoteConfig

log = logging.getLogger("ghostfill.remote")


class Health:
    """Whether the server is believed up; reports a failure once and backs off while it lasts."""

    def __init__(self, backoff_s: float = 1.0, max_backoff_s: float = 8.0) -> None:
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._error: RemoteError | None = None
        self._reported = False
        self._until = 0.0
        self._current = backoff_s

    @property
    def down(self) -> bool:
        return self._error is not None

    @property
    def last_error(self) -> RemoteError | None:
        return self._error

    def admit(self) -> tuple[bool, RemoteError | None]:
        """(may send, error to raise now). While backing off: no send, and raise only once."""
        with self._lock:
            if self._error is None or time.monotonic() >= self._until:
                return True, None
            if not self._reported:
                self._reported = True
                return False, self._error
            return False, None

    def failed(self, error: RemoteError) -> None:
        with self._lock:
            if self._error is None:
                self._current = self.backoff_s
                self._reported = False
                log.warning("%s", error)
            else:
                self._current = min(self._current * 2, self.max_backoff_s)
            self._error = error
            self._until = time.monotonic() + self._current

    def claim(self, error: RemoteError) -> bool:
        """True if the caller holding `error` should raise it (nobody reported this outage yet)."""
        with self._lock:
            if self._error is error and not self._reported:
                self._reported = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            if self._error is not None:
                log.info("remote server is back")
            self._error = None
            self._reported = False
            self._current = self.backoff_s



@dataclass
class Chunk:
    """One parsed event, in the terms the generation loop needs."""

    text: str = ""
    finish: StopReason | None = None
    #: The server says the answer is complete (`[DONE]`, llama.cpp `stop: true`).
    done: bool = False
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    cached_tokens: int | None = None



class StreamingRemoteBackend:
    """Backend protocol over a streaming HTTP endpoint; subclasses say what to send and parse."""

    name = "remote"
    path = "/"
    #: The server tokenizes the text sent; `Generation.tokens` re-encode what came back.
    resumable = False

    def __init__(
        self,
        config: RemoteConfig,
        *,
        tokenizer: Tokenizer | None = None,
        context_length: int | None = None,
        stop: Sequence[str] = (),
        backoff_s: float = 1.0,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.config = config
        self.base_url = base_url(config)
        self.where = redact(self.base_url)
        self.model_name = config.model or "remote"
        self.tokenizer: Tokenizer = (
            tokenizer if isinstance(tokenizer, RemoteTokenizer) else RemoteTokenizer(tokenizer)
        )
        self.context_length = context_length or 2048
        self.stop = tuple(stop)
        self.health = Health(backoff_s, max_backoff_s)
        self._client = make_client(config)
        #: llama-server's slots (`total_slots` from `/props`, read by `probe`); 0 for other
        #: engines or before the probe, and then no `id_slot` is sent.
        self.slots = 0
        self._slot_of: OrderedDict[str, int] = OrderedDict()
        self._slot_lock = threading.Lock()

    def slot_for(self, document: str | None) -> int | None:
        """The llama-server slot `document` keeps; a new document takes the least recently
        used one. A slot per document keeps its cached prompt when the user switches files,
        and a keystroke's request waits for its own slot instead of landing on another, empty
        one while the server has not yet noticed that the previous stream was closed."""
        if not document or self.slots < 2:
            return None
        with self._slot_lock:
            slot = self._slot_of.get(document)
            if slot is None:
                if len(self._slot_of) < self.slots:
                    slot = len(self._slot_of)
                else:
                    _, slot = self._slot_of.popitem(last=False)
                self._slot_of[document] = slot
            self._slot_of.move_to_end(document)
            return slot

    # -- subclass hooks -----------------------------------------------------------------
    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, event: SSEEvent) -> Chunk:
        raise NotImplementedError

    def probe(self) -> dict[str, Any]:
        """Ask the server what it offers (each engine has its own page for it)."""
        raise NotImplementedError

    # -- Backend protocol ---------------------------------------------------------------
    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        """Nothing to do ahead of time: the servers cache prompts themselves (prefix caching)."""
        return 0

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        """Not offered: the servers return no log-probabilities of a given text."""
        return None

    def options(self) -> dict[str, object]:
        return {"endpoint": self.config.endpoint, "model": self.config.model or None}

    def close(self) -> None:
        self._client.close()

    def stop_strings(self, request: GenerationRequest) -> list[str]:
        out = list(self.stop) + list(request.stop_strings)
        return list(dict.fromkeys(s for s in out if s))

    def generate(self, request: GenerationRequest) -> Generation:
        start = time.monotonic()
        timings = Timings(prompt_tokens=len(request.tokens),
                          queued_ms=(start - request.created) * 1000)
        if request.cancel.cancelled:
            return self._done("", "cancelled", timings, request)
        if request.deadline is not None and start >= request.deadline:
            return self._done("", "deadline", timings, request)
        allowed, error = self.health.admit()
        if error is not None:
            raise error
        if not allowed:
            return self._done("", "error", timings, request)
        body = self.build_body(request)
        return self._stream(request, body, timings, start)

    def _on_error(self, exc: BaseException, stream: StreamReader) -> None:
        error = map_error(exc, self.where, self.path, self.config)
        if error.down:
            self.health.failed(error)
        stream.items.put(error)

    def _open(self, body: dict[str, Any]) -> StreamReader:
        return StreamReader(
            self._client, self.base_url + self.path, body, request_headers(self.config),
            on_error=self._on_error, on_open=self.health.succeeded,
        )

    def _stream(self, request: GenerationRequest, body: dict[str, Any], timings: Timings,
                start: float) -> Generation:
        stream = self._open(body)
        loop = TokenLoop(request, timings)
        finish: StopReason | None = None  # what the server said ended the answer
        pieces = 0
        counted: Chunk = Chunk()
        try:
            for event in pump(stream, request):
                chunk = self.parse(event)
                for name in ("prompt_tokens", "generated_tokens", "cached_tokens"):
                    if getattr(chunk, name) is not None:
                        setattr(counted, name, getattr(chunk, name))
                if chunk.text:
                    pieces += 1
                    if not loop.add_text(chunk.text):
                        break  # a stop rule
                if chunk.finish is not None and finish is None:
                    finish = chunk.finish
                if chunk.done:
                    break
            if stream.stopped is None and loop.reason != "stop_rule":
                stream.finish()  # ended normally: let the connection go back to the pool
        except RemoteError as error:
            if error.down and not self.health.claim(error):
                return self._done("", "error", timings, request)
            raise
        finally:
            stream.close()  # cancel, deadline, stop rule, error: cut the answer off now
        if stream.stopped is not None:
            loop.interrupt(stream.stopped)
        elif loop.reason != "stop_rule":
            loop.reason = finish or "stop_token"
        first = loop.first
        end = time.monotonic()
        timings.prompt_ms = ((first or end) - start) * 1000
        timings.decode_ms = (end - first) * 1000 if first is not None else 0.0
        if counted.prompt_tokens is not None:
            timings.prompt_tokens = counted.prompt_tokens
        if counted.cached_tokens is not None:
            timings.reused_tokens = counted.cached_tokens
        timings.evaluated_tokens = max(0, timings.prompt_tokens - timings.reused_tokens)
        timings.generated_tokens = (
            counted.generated_tokens if counted.generated_tokens is not None else pieces
        )
        return self._done(loop.finish(), loop.reason, timings, request)

    def _done(self, text: str, reason: StopReason, timings: Timings,
              request: GenerationRequest) -> Generation:
        timings.total_ms = (time.monotonic() - request.created) * 1000
        # Ids in this backend's own tokenizer, so callers can count or decode them consistently.
        return Generation(text, self.tokenizer.encode(text) if text else [], reason, timings)

    def get_json(self, path: str) -> Any:
        """GET a small JSON document (server info); errors mapped like generation's."""
        try:
            response = self._client.get(self.base_url + path, headers=request_headers(self.config))
            if response.status_code >= 400:
                raise StatusError(response.status_code, response.reason_phrase, response.text)
            return response.json()
        except (httpx.HTTPError, StatusError) as e:
            raise map_error(e, self.where, path, self.config) from e
        except ValueError as e:
            raise RemoteError(f"remote server {self.where}{path} did not answer JSON",
                              down=False) from e


def count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
