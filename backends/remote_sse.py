"""Server-sent events: the line parser and the JSON in each event."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ghostfill.backends.remote_errors import RemoteError, server_message


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str


class SSEParser:
    """Line-by-line server-sent events (WHATWG rules), tolerant of the engines' variants.

    Handles `data:` with or without the space (TGI omits it), multi-line data, `:` comment pings
    (llama.cpp, sse-starlette), CRLF, and llama.cpp's old `error: {...}` lines.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "error":  # llama.cpp before 2025: `error: {json}`
            self._event, self._data = "error", [value]
        return None

    def end(self) -> SSEEvent | None:
        """A last event not followed by a blank line (some servers end the body there)."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event



def json_event(event: SSEEvent, where: str) -> dict[str, Any] | None:
    """The event's JSON object; None for `[DONE]`; RemoteError for an error the server streamed."""
    data = event.data.strip()
    if data == "[DONE]":
        return None
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise RemoteError(f"remote server {where} sent malformed data: {data[:80]!r}",
                          down=False) from e
    if event.event == "error" or (isinstance(obj, dict) and "error" in obj):
        raise RemoteError(
            f"remote server {where} reported an error: {server_message(data)}", down=False
        )
    if not isinstance(obj, dict):
        raise RemoteError(f"remote server {where} sent unexpected data: {data[:80]!r}",
                          down=False)
    return obj
