"""Generation on llama.cpp's `llama-server` through its `/infill` endpoint.

Here the server builds the FIM prompt from the model's own FIM tokens (GGUF metadata), so it
receives the raw parts: `input_prefix`, `input_suffix` and cross-file chunks in `input_extra`
(which the server lays out in the repo-level form when the vocabulary has `<file_sep>` and
`<repo_name>`). Written against llama.cpp's tools/server (README.md "POST /infill",
server-context.cpp); the test suite runs it against a real llama-server built from the llama.cpp
that llama-cpp-python vendors (tests/test_llama_server.py), and against a stand-in for the
error cases.

What the engine offers for code completion is used: `cache_prompt` keeps the KV cache between
keystrokes, `t_max_predict_ms` lets the server itself stop at the deadline after a newline, and
`n_indent` makes it stop at a line indented less than the cursor's block, and `id_slot` keeps
each document in a slot of its own (once `probe` has read how many the server has), so that
switching between two files does not throw away the other's cached prompt.

What llama-server does with it (server-common.cpp `format_prompt_infill`): `[input_extra]
<bos> <FIM_PRE> prefix prompt <FIM_SUF> suffix <FIM_MID>`, or with `--spm-infill` the suffix part
first, which keeps the text being typed at the end of the prompt, so that a keystroke re-reads
only its own tokens instead of the whole suffix. It keeps at most 3/4 of a batch (`-b`) of the
prefix and 1/4 of the suffix, and cross-file chunks only in the part of a slot's context beyond
one batch. A model without FIM tokens is refused (HTTP 501, "Infill is not supported by this
model"); the `openai` backend with `model.template` serves such models.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ghostfill.backends.base import GenerationRequest, StopReason
from ghostfill.backends.remote_base import Chunk, StreamingRemoteBackend, count
from ghostfill.backends.remote_sse import SSEEvent, json_event
from ghostfill.errors import BackendError


class InfillBackend(StreamingRemoteBackend):
    name = "infill"
    path = "/infill"

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        prompt = request.prompt
        if prompt.prefix is None:
            raise BackendError(
                "the infill backend needs the prefix and suffix: the prompt in parts "
                "(request.prompt.prefix)"
            )
        body: dict[str, Any] = {
            "input_prefix": prompt.prefix,
            "input_suffix": prompt.suffix,
            "input_extra": [{"filename": name, "text": text} for name, text in prompt.context],
            "prompt": prompt.middle,
            "n_predict": request.max_tokens,
            "temperature": request.temperature,
            "cache_prompt": True,
            "stream": True,
            # Counts (cached, evaluated) in every event, not only the last one, which never
            # arrives when ghostfill closes the stream at a stop rule or the deadline.
            "timings_per_token": True,
        }
        if self.config.model:
            body["model"] = self.config.model  # router mode picks the model by name
        stop = self.stop_strings(request)
        if stop:
            body["stop"] = stop
        if request.min_indent:
            body["n_indent"] = request.min_indent
        slot = self.slot_for(prompt.document)
        if slot is not None:
            body["id_slot"] = slot
        if request.deadline is not None and math.isfinite(request.deadline):
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
        # `timings.cache_n` is the prompt tokens taken from the slot's cache; `tokens_cached`
        # (older servers' only count) is every token in the slot, the answer's included.
        chunk.cached_tokens = count(timings.get("cache_n")) if timings else None
        if chunk.cached_tokens is None:
            chunk.cached_tokens = count(obj.get("tokens_cached"))
        return chunk

    def probe(self) -> dict[str, Any]:
        """Ask `/props`; adopt the slot's context size and the number of slots."""
        info = self.get_json("/props")
        settings = info.get("default_generation_settings") if isinstance(info, dict) else None
        n_ctx = count(settings.get("n_ctx")) if isinstance(settings, dict) else None
        if n_ctx:
            self.context_length = n_ctx
        slots = count(info.get("total_slots")) if isinstance(info, dict) else None
        if slots and slots > 0:
            self.slots = slots
        return info if isinstance(info, dict) else {"props": info}


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
