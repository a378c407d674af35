"""Generation on any server that speaks OpenAI's legacy completions API, streamed.

ghostfill renders the FIM prompt itself (`request.prompt.text`, control tokens spelled out) and
sends it to `POST {endpoint}/v1/completions` with `stream: true`. The engines differ in small
ways, all absorbed here:

* vLLM sends token counts only when asked (`stream_options.include_usage`), in a last chunk
  with empty `choices`; llama.cpp adds `timings` to its last chunk; Ollama, TGI and
  llama-cpp-python send no counts, so the number of streamed deltas stands in (one per token);
* TGI writes `data:` without a space and reports `finish_reason` as `eos_token`/`stop_sequence`;
* a server that rejects `stream_options` (strict validators) gets the request again without it;
* `model` is sent only when `remote.model` is set (vLLM and Ollama need it, others ignore it);
* at most 4 stop strings are sent: OpenAI's limit, and TGI's default `max_stop_sequences`;
* llama-server (recognised by its `/props`, which `probe` reads for the slot size) also gets
  `id_slot`, a slot per document, as the `infill` backend sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ghostfill.backends.base import Generation, GenerationRequest, StopReason
from ghostfill.backends.remote_base import Chunk, StreamingRemoteBackend, count
from ghostfill.backends.remote_errors import RemoteError
from ghostfill.backends.remote_sse import SSEEvent, json_event
from ghostfill.completion.tokenizer import Tokenizer
from ghostfill.config import RemoteConfig
from ghostfill.errors import BackendError

MAX_STOP_STRINGS = 4


def finish_reason(value: Any) -> StopReason | None:
    """OpenAI `length` means the token limit; every other reason (stop, eos_token, …) a stop."""
    if not value:
        return None
    return "max_tokens" if value == "length" else "stop_token"


class OpenAICompletionsBackend(StreamingRemoteBackend):
    name = "openai"
    path = "/v1/completions"

    def __init__(
        self,
        config: RemoteConfig,
        *,
        tokenizer: Tokenizer | None = None,
        context_length: int | None = None,
        stop: Sequence[str] = (),
        include_usage: bool = True,
        backoff_s: float = 1.0,
        max_backoff_s: float = 8.0,
    ) -> None:
        super().__init__(config, tokenizer=tokenizer, context_length=context_length, stop=stop,
                         backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self.include_usage = include_usage

    def build_body(self, request: GenerationRequest) -> dict[str, Any]:
        if request.prompt.text is None:
            raise BackendError("the openai backend needs the rendered prompt's text "
                               "(request.prompt.text)")
        body: dict[str, Any] = {
            "prompt": request.prompt.text,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
        }
        if self.config.model:
            body["model"] = self.config.model
        stop = self.stop_strings(request)[:MAX_STOP_STRINGS]
        if stop:
            body["stop"] = stop
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        slot = self.slot_for(request.prompt.document)
        if slot is not None:  # llama-server only (slots come from its /props)
            body["id_slot"] = slot
        return body

    def generate(self, request: GenerationRequest) -> Generation:
        try:
            return super().generate(request)
        except RemoteError as e:
            if not (self.include_usage and e.status in (400, 422) and "stream_options" in str(e)):
                raise
            self.include_usage = False  # this server validates strictly: stop asking
            return super().generate(request)

    def parse(self, event: SSEEvent) -> Chunk:
        obj = json_event(event, self.where)
        if obj is None:
            return Chunk(done=True)
        chunk = Chunk()
        for choice in obj.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                text = choice.get("text")
                chunk.text = text if isinstance(text, str) else ""
                chunk.finish = finish_reason(choice.get("finish_reason"))
        usage = obj.get("usage")
        if isinstance(usage, dict):
            chunk.prompt_tokens = count(usage.get("prompt_tokens"))
            chunk.generated_tokens = count(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details")
            if isinstance(details, dict):
                chunk.cached_tokens = count(details.get("cached_tokens"))
        timings = obj.get("timings")  # llama.cpp's server
        if isinstance(timings, dict):
            chunk.prompt_tokens = chunk.prompt_tokens or _sum(timings, "prompt_n", "cache_n")
            chunk.generated_tokens = chunk.generated_tokens or count(timings.get("predicted_n"))
            chunk.cached_tokens = chunk.cached_tokens or count(timings.get("cache_n"))
        return chunk

    def probe(self) -> dict[str, Any]:
        """Ask `/v1/models`; adopt vLLM's `max_model_len` as the context length when given,
        else llama-server's slot size from its `/props` (other engines have no such page)."""
        info = self.get_json("/v1/models")
        models = info.get("data") if isinstance(info, dict) else None
        n_ctx = None
        for model in models or ():
            if not isinstance(model, dict):
                continue
            if self.config.model and model.get("id") != self.config.model:
                continue
            n_ctx = count(model.get("max_model_len"))
            break
        if n_ctx is None:
            try:
                props = self.get_json("/props")
            except RemoteError:
                props = None
            settings = props.get("default_generation_settings") if isinstance(props, dict) \
                else None
            n_ctx = count(settings.get("n_ctx")) if isinstance(settings, dict) else None
            slots = count(props.get("total_slots")) if isinstance(props, dict) else None
            if slots and isinstance(settings, dict):  # llama-server: it takes id_slot
                self.slots = slots
        if n_ctx:
            self.context_length = n_ctx
        return info if isinstance(info, dict) else {"data": info}


def _sum(obj: dict[str, Any], *keys: str) -> int | None:
    values = [count(obj.get(k)) for k in keys]
    present = [v for v in values if v is not None]
    return sum(present) if present else None
