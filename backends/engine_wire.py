"""What crosses the engine's socket: newline-delimited JSON messages, and the backend seam's
requests and answers spelled as JSON.

A generation request carries what `GenerationRequest` carries. Two things cannot cross as
they are and are translated here: times (the deadline and the keystroke's time travel as
seconds from now, since each process has its own view of `time.monotonic()`), and the stop
rules, which cross as the `LineStopper`'s fields and are rebuilt on the other side, so that
the engine stops at the very token the in-process backend would. The stream of kept text
(`on_text`) comes back as messages; a cancel goes out as one (`op: cancel`).

Framing is one JSON object per line: the messages are small (a 2,000-token prompt is about
10 KB), and a line is what both sides can read with the standard library's buffered file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import socket
import threading
import time
from collections import OrderedDict
from typing import Any, cast

from ghostfill.backends.base import (
    CancelToken,
    Generation,
    GenerationRequest,
    PromptParts,
    Stopper,
    Timings,
)
from ghostfill.backends.sequences import common_prefix
from ghostfill.errors import BackendError

#: Bumped when a message changes meaning; the handshake refuses another protocol.
PROTOCOL = 4
#: The longest line either side accepts (a full-context prompt is far below this).
MAX_LINE = 16 * 1024 * 1024


class ChannelClosed(Exception):
    """The other side is gone (end of stream, reset, or a line that is not a message)."""


class Channel:
    """A socket that sends and receives whole messages; sends are thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        # ASCII escapes: text from an editor may hold lone surrogates (UTF-16 halves), which
        # UTF-8 cannot encode but a JSON escape carries through unchanged.
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._send_lock:
            if self.closed:
                raise ChannelClosed("closed")
            try:
                self.sock.sendall(data)
            except OSError as e:
                raise ChannelClosed(str(e)) from e

    def receive(self) -> dict[str, Any]:
        try:
            line = self._reader.readline(MAX_LINE)
        except (OSError, ValueError) as e:
            raise ChannelClosed(str(e)) from e
        if not line or not line.endswith(b"\n"):
            raise ChannelClosed("end of stream")
        try:
            message = json.loads(line)
        except ValueError as e:
            raise ChannelClosed(f"not a message: {e}") from e
        if not isinstance(message, dict):
            raise ChannelClosed("not a message: not an object")
        return message

    def close(self) -> None:
        with self._send_lock:
            self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class PromptDeltas:
    """The token prompts one connection carried, per document, so that a prompt crosses as
    what differs from the previous one for its document.

    A keystroke changes the last few tokens of a ~1,700-token prompt; sending all the ids
    each time cost ~0.5 ms of JSON on each side. Both ends apply the same rule to every
    `generate`, `warm` and `score` of the connection, in the order sent (one socket, one reading
    thread), so they hold the same prompts; a new connection starts empty.
    """

    #: Shorter common prefixes are sent whole (nothing to gain).
    MIN_KEEP = 32
    #: Documents remembered (least recently used dropped, in the same order on both ends).
    DOCUMENTS = 64

    def __init__(self) -> None:
        self._last: OrderedDict[str | None, list[int]] = OrderedDict()

    def encode(self, document: str | None, tokens: list[int]) -> dict[str, Any]:
        """{"tokens": ids} or {"keep": n, "tokens": the ids after the first n}."""
        base = self._last.get(document)
        keep = common_prefix(base, tokens) if base is not None else 0
        self._remember(document, tokens)
        if keep < self.MIN_KEEP:
            return {"tokens": tokens}
        return {"keep": keep, "tokens": tokens[keep:]}

    def decode(self, document: str | None, data: dict[str, Any]) -> list[int]:
        """The whole prompt of `data` (as `encode` made it); ValueError when its base is not
        here (a bug: the two ends disagree)."""
        keep = int(data.get("keep") or 0)
        tail = [int(t) for t in data["tokens"]]
        if keep:
            base = self._last.get(document)
            if base is None or len(base) < keep:
                raise ValueError(f"a prompt keeping {keep} tokens of one not received")
            tail = base[:keep] + tail
        self._remember(document, tail)
        return tail

    def _remember(self, document: str | None, tokens: list[int]) -> None:
        self._last[document] = tokens
        self._last.move_to_end(document)
        while len(self._last) > self.DOCUMENTS:
            self._last.popitem(last=False)


def request_to_wire(request: GenerationRequest, *, parts: bool = True) -> dict[str, Any]:
    """The request as JSON; `on_text` becomes a flag (the text comes back as messages).
    `parts` False: the prompt as ids alone (an engine process's backends read only those)."""
    now = time.monotonic()
    prompt = request.prompt
    wire_prompt: dict[str, Any] = {"tokens": prompt.tokens, "document": prompt.document}
    if parts:
        wire_prompt.update({"text": prompt.text, "context": [list(c) for c in prompt.context],
                            "prefix": prompt.prefix, "middle": prompt.middle,
                            "suffix": prompt.suffix})
    return {
        "prompt": wire_prompt,
        "max_tokens": request.max_tokens,
        "stop_ids": sorted(request.stop_ids),
        "stop_strings": list(request.stop_strings),
        "stopper": stopper_to_wire(request.stopper),
        # No deadline and an infinite one (`ghostfill complete` waits) mean the same; JSON
        # has no infinity.
        "budget_s": None if request.deadline is None or not math.isfinite(request.deadline)
        else request.deadline - now,
        "age_s": now - request.created,
        "speculative": request.speculative,
        "temperature": request.temperature,
        "min_indent": request.min_indent,
        "banned_first": sorted(request.banned_first),
        "stream": request.on_text is not None,
        "background": request.background,
    }


def request_from_wire(data: dict[str, Any], cancel: CancelToken,
                      on_text: Any = None) -> GenerationRequest:
    """The request a backend in the engine runs; raises KeyError/TypeError/ValueError on a
    malformed message (answered with an error, the connection stays up)."""
    now = time.monotonic()
    p = data["prompt"]
    prompt = PromptParts(
        tokens=[int(t) for t in p["tokens"]], text=p.get("text"),
        context=tuple((str(f), str(t)) for f, t in p.get("context") or ()),
        prefix=p.get("prefix"), middle=str(p.get("middle") or ""),
        suffix=str(p.get("suffix") or ""), document=p.get("document"),
    )
    stopper = stopper_from_wire(data.get("stopper"))
    budget = data.get("budget_s")
    return GenerationRequest(
        prompt,
        max_tokens=int(data["max_tokens"]),
        stop_ids=frozenset(int(t) for t in data.get("stop_ids") or ()),
        stop_strings=tuple(str(s) for s in data.get("stop_strings") or ()),
        stopper=stopper,
        deadline=None if budget is None else now + float(budget),
        cancel=cancel,
        on_text=on_text,
        created=now - float(data.get("age_s") or 0.0),
        speculative=bool(data.get("speculative", True)),
        temperature=float(data.get("temperature") or 0.0),
        min_indent=data.get("min_indent"),
        banned_first=frozenset(int(t) for t in data.get("banned_first") or ()),
        background=bool(data.get("background", False)),
    )


def stopper_to_wire(stopper: Stopper | None) -> dict[str, Any] | None:
    """Stop rules cross as their class's name and fields: a dataclass of ghostfill's own
    (`LineStopper`; a benchmark's baseline rule), rebuilt by the engine from the same code."""
    if stopper is None:
        return None
    cls = type(stopper)
    if not dataclasses.is_dataclass(stopper) or not cls.__module__.startswith("ghostfill."):
        raise BackendError(f"the engine process cannot apply stop rules of type "
                           f"{cls.__name__}: not a dataclass of ghostfill's")
    return {"type": f"{cls.__module__}:{cls.__qualname__}",
            "fields": dataclasses.asdict(stopper)}


def stopper_from_wire(data: dict[str, Any] | None) -> Stopper | None:
    if not data:
        return None
    module, _, name = str(data["type"]).partition(":")
    if not module.startswith("ghostfill."):  # nothing but ghostfill's own code is imported
        raise ValueError(f"stop rules of type {data['type']!r}")
    cls: Any = getattr(importlib.import_module(module), name)
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise ValueError(f"stop rules of type {data['type']!r}")
    return cast(Stopper, cls(**data["fields"]))


def generation_to_wire(generation: Generation) -> dict[str, Any]:
    return {"text": generation.text, "tokens": list(generation.tokens),
            "stop_reason": generation.stop_reason, "timings": vars(generation.timings)}


def generation_from_wire(data: dict[str, Any]) -> Generation:
    fields = {f.name for f in dataclasses.fields(Timings)}
    timings = Timings(**{k: v for k, v in (data.get("timings") or {}).items() if k in fields})
    return Generation(str(data["text"]), [int(t) for t in data["tokens"]],
                      data["stop_reason"], timings)
