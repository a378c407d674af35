"""Generation on llama.cpp's `llama-server` through its `/infill` endpoint.

Here the server builds the FIM prompt from the model's own FIM tokens (GGUF metadata), so it
receives the raw parts: `input_prefix`, `input_suffix` and cross-file chunks in `input_extra`
(which the server lays out in the repo-level form when the vocabulary has `<file_sep>` and
`<repo_name>`). Written against the documented API (tools/server/README.md, "POST /infill");
the test suite runs it against a stand-in HTTP server, not a real llama-server.

What the engine offers for code completion is used: `cache_prompt` keeps the KV cache between
keystrokes, `t_max_predict_ms` lets the server itself stop at the deadline after a newline, and
`n_indent` makes it stop at a line indented less than the cursor's block.
"""

from __future__ import annotations

import time
from typing import Any

from ghostfill.backends.base import GenerationRequest, StopReason
from ghostfill.backends.remote_common import (
    Chunk,
    SSEEvent,
    StreamingRemoteBackend,
    count,
    extras_of,
    json_event,
)
from ghostfill.errors import BackendError


class InfillBackend(StreamingRemoteBackend):
    name = "infill"
    path = "/infill"

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        extras = extras_of(request)
        if extras is None or extras.prefix is None:
            raise BackendError(
                "the infill backend needs the prefix and suffix: set request.infill to a "
                "RemoteRequestExtras"
            )
        body: dict[str, Any] = {
            "input_prefix": extras.prefix,
            "input_suffix": extras.suffix or "",
            "input_extra": [_chunk(c) for c in extras.extra or ()],
            "prompt": extras.prompt,
            "n_predict": request.max_tokens,
            "temperature": request.temperature,
            "cache_prompt": True,
            "stream": True,
        }
        if self.config.model:
            body["model"] = self.config.model  # router mode picks the model by name
        stop = self.stop_strings(request)
        if stop:
            body["stop"] = stop
        if extras.n_indent:
            body["n_indent"] = extras.n_indent
        if request.deadline is not None:
            left_ms = (request.deadline - time.monotonic()) * 1000
            body["t_max_predict_ms"] = max(1, int(left_ms))
        return body

    def parse(self, event: SSEEvent) -> Chunk:
        obj = json_event(event, self.where)
        if obj is None:
            return Chunk(done=True)
        content = obj.get("content")
        chunk = Chunk(text=content if isinstance(content, str) else "")
        if obj.get("stop") is True:
            chunk.done = True
            chunk.finish = _stop_reason(obj)
        timings = obj.get("timings") if isinstance(obj.get("timings"), dict) else {}
        evaluated = count(obj.get("tokens_evaluated"))
        if evaluated is None and timings:
            evaluated = (count(timings.get("prompt_n")) or 0) + (count(timings.get("cache_n")) or 0)
        chunk.prompt_tokens = evaluated
        chunk.generated_tokens = count(obj.get("tokens_predicted"))
        if chunk.generated_tokens is None and timings:
            chunk.generated_tokens = count(timings.get("predicted_n"))
        chunk.cached_tokens = count(obj.get("tokens_cached"))
        if chunk.cached_tokens is None and timings:
            chunk.cached_tokens = count(timings.get("cache_n"))
        return chunk

    def probe(self) -> dict[str, Any]:
        """Ask `/props`; adopt the slot's context size."""
        info = self.get_json("/props")
        settings = info.get("default_generation_settings") if isinstance(info, dict) else None
        n_ctx = count(settings.get("n_ctx")) if isinstance(settings, dict) else None
        if n_ctx:
            self.context_length = n_ctx
        return info if isinstance(info, dict) else {"props": info}


def _chunk(item: Any) -> dict[str, str]:
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        raise BackendError("input_extra chunks must be {'filename': str, 'text': str}")
    return {"filename": str(item.get("filename", "")), "text": item["text"]}


def _stop_reason(obj: dict[str, Any]) -> StopReason:
    if obj.get("truncated") is True:
        return "context_full"
    stop_type = obj.get("stop_type")
    if stop_type == "limit":
        # Also what llama.cpp reports when t_max_predict_ms ran out. That limit counts from the
        # first token, so the client's own deadline (counted from sending) normally fires first
        # and the answer is cut at a line boundary there; the server limit is the backstop.
        return "max_tokens"
    return "stop_token"
