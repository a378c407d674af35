"""GPU (or CPU) backend on transformers, with speculative decoding under per-token control.

Loading lives in `hf_loading` (native classes, no remote code), the decoding loop in
`speculative`; this module ties them to the Backend protocol: one KV cache per document,
reused between requests by longest common prefix (`DocumentCaches`), the per-token checks of a
request (`token_loop`, shared with the other backends) and the pairing check that makes a draft
model safe to use.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghostfill.backends.base import (
    CancelToken,
    Generation,
    GenerationRequest,
    StopReason,
    Timings,
    check_prompt,
)
from ghostfill.backends.hf_loading import LoadedModel, load_model
from ghostfill.backends.speculative import (
    DraftLength,
    DraftSource,
    KVModel,
    ModelDraft,
    PromptLookupDraft,
    decode,
    greedy_pick,
)
from ghostfill.backends.token_loop import TokenLoop
from ghostfill.completion.tokenizer import HFTokenizer
from ghostfill.errors import BackendError, ModelLoadError, ModelNotAvailable
from ghostfill.models import resolve

#: Control tokens a draft must spell with the same ids as its target (FIM and stops).
PAIRED_PIECES = (
    "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>",
    "<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>",
    "<|endoftext|>", "<file_sep>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
)
SPECULATIVE_MODES = ("auto", "off", "prompt-lookup", "draft")
#: The default bound on the document caches: this share of the memory the device has free
#: once the models are loaded...
KV_CACHE_MEMORY_SHARE = 0.25
#: ...but no more than this many full contexts (more would keep documents long closed)...
KV_CACHE_MAX_CONTEXTS = 16
#: ...and never less than one full context, the active document's. When the free memory
#: cannot be learned, this many full contexts.
KV_CACHE_UNKNOWN_CONTEXTS = 4


@dataclass
class DocumentCache:
    """One document's keys/values: the target's cache and, with a draft model, the draft's.

    Each is a `KVModel` of its own over the shared weights, so switching documents is picking
    another object, and a failure that resets one cache leaves the other documents' alone.
    """

    target: KVModel
    draft: ModelDraft | None


class DocumentCaches:
    """The per-document caches, least recently used first, bounded in bytes.

    Returning to a file must not re-read its window after another file ran, so each document
    (None: one anonymous slot) keeps its own cache. A slot's size is its cached tokens times
    the KV bytes per token of each model (`kv_bytes_per_token`): DynamicCache holds exactly
    one key and one value vector per layer, KV head and token. Before a slot is used, the
    least recently used other slots are dropped until the slot, grown to what the work needs,
    fits the bound beside the rest; the slot in use is never dropped, even when it alone is
    over the bound (its size is capped by the context length anyway).
    """

    def __init__(self, new: Callable[[], DocumentCache], *, limit_bytes: int,
                 target_bytes_per_token: int, draft_bytes_per_token: int = 0) -> None:
        self._new = new
        self.limit_bytes = limit_bytes
        self.target_bytes_per_token = target_bytes_per_token
        self.draft_bytes_per_token = draft_bytes_per_token
        self._slots: OrderedDict[str | None, DocumentCache] = OrderedDict()
        #: Guards the table only: `options()` reads it while a request runs on a slot.
        self._lock = threading.Lock()

    @property
    def bytes_per_token(self) -> int:
        """KV bytes one token takes in a slot, target and draft together."""
        return self.target_bytes_per_token + self.draft_bytes_per_token

    def slot_bytes(self, slot: DocumentCache) -> int:
        draft = len(slot.draft.kv.tokens) if slot.draft is not None else 0
        return (len(slot.target.tokens) * self.target_bytes_per_token
                + draft * self.draft_bytes_per_token)

    def used_bytes(self) -> int:
        with self._lock:
            slots = list(self._slots.values())
        return sum(self.slot_bytes(s) for s in slots)

    def __len__(self) -> int:
        return len(self._slots)

    def peek(self, document: str | None) -> DocumentCache | None:
        """The document's cache if it has one, without making it the most recent."""
        with self._lock:
            return self._slots.get(document)

    def latest(self) -> DocumentCache | None:
        """The most recently used cache, if any."""
        with self._lock:
            return next(reversed(self._slots.values()), None)

    def use(self, document: str | None, need_tokens: int) -> DocumentCache:
        """The document's cache (a new one if it has none), now the most recently used, with
        the least recently used others dropped until it fits at `need_tokens` tokens."""
        with self._lock:
            slot = self._slots.pop(document, None) or self._new()
            self._slots[document] = slot
            need = max(self.slot_bytes(slot), need_tokens * self.bytes_per_token)
            others = [d for d in self._slots if d != document]
            total = need + sum(self.slot_bytes(self._slots[d]) for d in others)
            for oldest in others:
                if total <= self.limit_bytes:
                    break
                total -= self.slot_bytes(self._slots.pop(oldest))
            return slot

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()


class TransformersBackend:
    """A Hugging Face causal LM, optionally sped up by a draft model or prompt lookup."""

    name = "transformers"
    resumable = True  # token prompts, generated ids returned (see LlamaCppBackend)

    def __init__(
        self,
        model_dir_or_repo: str | Path,
        *,
        draft: str | Path | None = None,
        device: str = "auto",
        context_length: int | None = None,
        speculative: str = "auto",
        trust_remote_code: bool = False,
        model_name: str = "",
        kv_cache_bytes: int | None = None,
    ) -> None:
        """`kv_cache_bytes` bounds the per-document caches (`DocumentCaches`); None sizes it
        with `default_kv_cache_bytes` from the model's KV bytes per token and the memory the
        device has free once the models are loaded."""
        if speculative not in SPECULATIVE_MODES:
            raise ModelLoadError(
                f"speculative must be one of {', '.join(SPECULATIVE_MODES)}, not '{speculative}'"
            )
        if speculative == "draft" and draft is None:
            raise ModelLoadError("speculative 'draft' needs a draft model (model.draft)")
        path = _model_path(model_dir_or_repo)
        loaded = load_model(path, device=device, trust_remote_code=trust_remote_code)
        self.model_name = model_name or (path.name if Path(model_dir_or_repo).exists()
                                         else str(model_dir_or_repo))
        self.device = loaded.device
        self.dtype = loaded.dtype
        self.loader = loaded.loader
        #: The transformers tokenizer itself (vocabulary, saving, chat templates).
        self.hf_tokenizer = loaded.tokenizer
        self.tokenizer = HFTokenizer(loaded.tokenizer, name=self.model_name)
        self.context_length = min(context_length or loaded.max_positions, loaded.max_positions)
        self.speculative = speculative
        self._target_model = loaded.model
        self._vocab_limit = int(loaded.model.get_output_embeddings().weight.shape[0])
        self._draft_model: Any = None
        self._draft_positions = 0
        #: Why an optional draft model is not in use (shown by diagnostics), or "".
        self.draft_problem = ""
        if draft is not None and speculative in ("auto", "draft"):
            try:
                self._draft_model = self._load_draft(loaded, draft, trust_remote_code)
            except ModelNotAvailable as e:
                if speculative == "draft":
                    raise
                # "auto" is best effort: without the draft's files, prompt lookup still helps.
                self.draft_problem = str(e)
        self._slots = self._document_caches(kv_cache_bytes)
        self._lookup = PromptLookupDraft()
        self._controllers = _controllers(None)
        self._lock = threading.Lock()

    def _load_draft(self, target: LoadedModel, spec: str | Path, trust_remote_code: bool) -> Any:
        """The draft model, once its vocabulary is known to mean what the target's does."""
        loaded = load_model(_model_path(spec), device=str(target.device), dtype=target.dtype,
                            trust_remote_code=trust_remote_code)
        check_pairing(target.tokenizer, loaded.tokenizer, self.model_name, str(spec))
        self._draft_positions = min(loaded.max_positions, self.context_length)
        return loaded.model

    def _document_caches(self, limit_bytes: int | None) -> DocumentCaches:
        target = kv_bytes_per_token(self._target_model.config, self.dtype)
        draft = (kv_bytes_per_token(self._draft_model.config, self.dtype)
                 if self._draft_model is not None else 0)
        if limit_bytes is None:
            limit_bytes = default_kv_cache_bytes(target + draft, self.context_length,
                                                 free_device_memory(self.device))
        return DocumentCaches(self._new_cache, limit_bytes=limit_bytes,
                              target_bytes_per_token=target, draft_bytes_per_token=draft)

    def _new_cache(self) -> DocumentCache:
        """Empty caches for a document: new KVModels over the loaded weights."""
        draft = None
        if self._draft_model is not None:
            kv = KVModel(self._draft_model, max_positions=self._draft_positions)
            draft = ModelDraft(kv, vocab_limit=self._vocab_limit)
        return DocumentCache(KVModel(self._target_model, max_positions=self.context_length),
                             draft)

    @property
    def cached_tokens(self) -> list[int]:
        """Token ids whose keys/values the most recently used target cache holds (for tests
        and diagnostics)."""
        slot = self._slots.latest()
        return list(slot.target.tokens) if slot is not None else []

    def slot_tokens(self, document: str | None, *, draft: bool = False) -> list[int] | None:
        """Token ids cached for `document` (the draft model's with `draft`); None when the
        document has no cache (never used, or evicted)."""
        slot = self._slots.peek(document)
        if slot is None:
            return None
        if draft:
            return list(slot.draft.kv.tokens) if slot.draft is not None else None
        return list(slot.target.tokens)

    def reset_cache(self) -> None:
        """Forget cached keys/values, e.g. so a benchmark measures every prompt afresh."""
        with self._lock:
            self._slots.clear()

    def fix_draft_length(self, k: int | None) -> None:
        """Draft exactly `k` tokens per round (None: adapt k to the acceptance rate again)."""
        with self._lock:
            self._controllers = _controllers(k)

    def speculation_stats(self) -> dict[str, dict[str, float | int | None]]:
        """Per draft source: current k, acceptance and measured step costs."""
        return {name: c.snapshot() for name, c in self._controllers.items()}

    def draft_source(self, request: GenerationRequest, slot: DocumentCache | None = None
                     ) -> tuple[DraftSource | None, DraftLength | None]:
        """Which drafts this request gets: none when sampling or when speculation is off.
        A draft model drafts on `slot`'s draft cache (by default the request document's)."""
        if not request.speculative or request.temperature > 0 or self.speculative == "off":
            return None, None
        if self._draft_model is not None and self.speculative in ("auto", "draft"):
            slot = slot or self._slots.peek(request.prompt.document) or self._new_cache()
            if slot.draft is not None:
                return slot.draft, self._controllers["draft"]
        return self._lookup, self._controllers["prompt-lookup"]

    # -- Backend protocol -------------------------------------------------------------
    def probe(self) -> dict[str, object]:
        """Nothing to ask: the model is in this process."""
        return {}

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        tokens = tokens[: self.context_length - 1]
        if not tokens or (cancel is not None and cancel.cancelled):
            return 0
        with self._lock:
            slot = self._slots.use(document, len(tokens))
            evaluated = self._guarded(lambda: slot.target.sync(tokens, cancel).evaluated)
            draft = slot.draft
            if draft is not None and not (cancel is not None and cancel.cancelled):
                self._guarded(lambda: draft.warm(tokens, cancel))
            return evaluated

    def generate(self, request: GenerationRequest) -> Generation:
        timings = Timings(prompt_tokens=len(request.tokens))
        check_prompt(request.tokens, self.context_length)
        with self._lock:
            start = time.monotonic()
            timings.queued_ms = (start - request.created) * 1000
            if request.cancel.cancelled:
                return Generation("", [], "cancelled", timings)
            slot = self._slots.use(request.prompt.document,
                                   len(request.tokens) + request.max_tokens)
            synced = self._guarded(
                lambda: slot.target.sync(request.tokens, request.cancel, request.deadline)
            )
            timings.reused_tokens, timings.evaluated_tokens = synced.reused, synced.evaluated
            after_prompt = time.monotonic()
            timings.prompt_ms = (after_prompt - start) * 1000
            if synced.logits is None:
                reason: StopReason = "cancelled" if request.cancel.cancelled else "deadline"
                timings.total_ms = (after_prompt - request.created) * 1000
                return Generation("", [], reason, timings)
            result = self._decode(request, slot, synced.logits, timings, after_prompt)
            timings.total_ms = (time.monotonic() - request.created) * 1000
            return result

    def _decode(self, request: GenerationRequest, slot: DocumentCache, logits: Any,
                timings: Timings, t0: float) -> Generation:
        room = self.context_length - len(request.tokens)
        limit = min(request.max_tokens, room)
        loop = TokenLoop(request, timings, tokenizer=self.tokenizer, limit=limit,
                         context_limited=room < request.max_tokens)
        source, controller = self.draft_source(request, slot)
        pick = greedy_pick if request.temperature <= 0 else _sampler(request.temperature)
        if request.banned_first:
            source, controller = None, None  # every token through `pick`
            pick = _banning(pick, request.banned_first, loop)
        stats = self._guarded(lambda: decode(
            slot.target, logits, loop, source=source,
            controller=controller, max_new=limit, pick=pick, cancel=request.cancel,
            deadline=request.deadline,
        ))
        text = loop.finish()
        timings.generated_tokens = len(loop.tokens)
        timings.drafted_tokens, timings.accepted_tokens = stats.drafted, stats.accepted
        timings.decode_ms = (time.monotonic() - t0) * 1000
        return Generation(text, loop.tokens, loop.reason, timings)

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        """One forward pass over prompt + continuation each, without the document caches:
        scoring is rare (an invoked request before code) and a KVModel holds one sequence, so
        a cached prompt would be re-read per continuation anyway."""
        if not prompt:
            return None
        import torch

        check_prompt([*prompt, *max(continuations, key=len, default=[])], self.context_length)
        scores: list[float] = []
        with self._lock:
            for continuation in continuations:
                if cancel is not None and cancel.cancelled:
                    return None
                ids = torch.tensor([[*prompt, *continuation]], device=self.device)

                def forward(ids: Any = ids) -> Any:
                    with torch.no_grad():
                        return self._target_model(ids).logits[0].float()

                logits = self._guarded(forward)
                logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
                picked = logp.gather(1, ids[0, len(prompt):].unsqueeze(1))
                scores.append(float(picked.sum()))
        return scores

    def _guarded(self, fn: Any) -> Any:
        """Run model work; a failure (e.g. out of GPU memory) becomes a BackendError."""
        try:
            return fn()
        except (RuntimeError, ValueError, IndexError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BackendError(f"transformers generation failed: {first}") from e

    def options(self) -> dict[str, object]:
        return {"device": str(self.device), "speculative": self.speculative,
                "context_length": self.context_length,
                "kv_cache_bytes": self._slots.limit_bytes,
                "kv_cache_used_bytes": self._slots.used_bytes(),
                "kv_cache_slots": len(self._slots),
                "kv_bytes_per_token": self._slots.bytes_per_token}

    def close(self) -> None:
        with self._lock:
            self._slots.clear()
            if self.device.type == "cuda":
                import torch

                torch.cuda.empty_cache()


def check_pairing(target_tokenizer: Any, draft_tokenizer: Any, target_name: str,
                  draft_name: str) -> None:
    """Refuse a draft whose token ids mean anything different from the target's."""
    tv, dv = target_tokenizer.get_vocab(), draft_tokenizer.get_vocab()
    if tv != dv:
        differing = sorted(set(tv.items()) ^ set(dv.items()), key=lambda kv: kv[1])
        example = ", ".join(repr(piece) for piece, _ in differing[:3])
        raise ModelLoadError(
            f"draft model {draft_name} cannot speculate for {target_name}: their vocabularies "
            f"differ ({len(tv)} vs {len(dv)} tokens; e.g. {example}); pick a draft with the "
            "same tokenizer or set model.speculative = 'prompt-lookup'"
        )
    for piece in PAIRED_PIECES:
        t_id, d_id = tv.get(piece), dv.get(piece)
        if t_id != d_id:
            raise ModelLoadError(
                f"draft model {draft_name} cannot speculate for {target_name}: '{piece}' is "
                f"id {t_id} in the target and {d_id} in the draft"
            )
    if target_tokenizer.eos_token_id != draft_tokenizer.eos_token_id:
        raise ModelLoadError(
            f"draft model {draft_name} cannot speculate for {target_name}: different "
            f"end-of-text ids ({target_tokenizer.eos_token_id} vs {draft_tokenizer.eos_token_id})"
        )


def kv_bytes_per_token(config: Any, dtype: Any) -> int:
    """Bytes one token takes in a model's KV cache: layers x 2 (key, value) x KV heads x head
    dim x the dtype's size, read from the config.

    Multi-query models (GPTBigCode's `multi_query`) have one KV head; a config without
    `head_dim` splits `hidden_size` over the attention heads. Sliding-window layers hold
    fewer positions, so for them this is an upper bound.
    """
    import torch

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(text.num_attention_heads)
    kv_heads = getattr(text, "num_key_value_heads", None) or (
        1 if getattr(text, "multi_query", False) else heads)
    head_dim = getattr(text, "head_dim", None) or int(text.hidden_size) // heads
    size = torch.empty((), dtype=dtype).element_size()
    return int(text.num_hidden_layers) * 2 * int(kv_heads) * int(head_dim) * size


def default_kv_cache_bytes(bytes_per_token: int, context_length: int,
                           free_bytes: int | None) -> int:
    """The default bound on the document caches.

    A quarter (`KV_CACHE_MEMORY_SHARE`) of the memory the device has free with the models
    loaded, capped at `KV_CACHE_MAX_CONTEXTS` full contexts and never below one (the active
    document must fit); `KV_CACHE_UNKNOWN_CONTEXTS` full contexts when the free memory is
    unknown. A full context is `context_length` tokens at `bytes_per_token`.
    """
    one = bytes_per_token * context_length
    if free_bytes is None:
        return KV_CACHE_UNKNOWN_CONTEXTS * one
    return max(one, min(int(free_bytes * KV_CACHE_MEMORY_SHARE), KV_CACHE_MAX_CONTEXTS * one))


def free_device_memory(device: Any) -> int | None:
    """Bytes free on `device` now: CUDA asks the driver; otherwise the machine's available
    RAM (the CPU's, and what Apple's unified memory shares). None when it cannot be told."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return _available_ram()


def _available_ram() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _controllers(fixed_k: int | None) -> dict[str, DraftLength]:
    if fixed_k is not None:
        return {name: DraftLength(k_init=fixed_k, adaptive=False)
                for name in ("draft", "prompt-lookup")}
    # Lookup drafts cost no model time, so longer ones pay off sooner.
    return {"draft": DraftLength(), "prompt-lookup": DraftLength(k_max=10)}


def _model_path(spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if path.exists():
        return path
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return resolve(str(spec), offline=offline).path


def _banning(pick: Any, banned: frozenset[int], loop: TokenLoop) -> Any:
    """`pick` that refuses `banned` ids until the loop has taken a non-whitespace token."""
    ids = list(banned)

    def banning_pick(logits: Any) -> int:
        if loop.banning:
            logits = logits.clone()
            logits[..., ids] = float("-inf")
        return pick(logits)

    return banning_pick


def _sampler(temperature: float) -> Any:
    import torch

    def pick(logits: Any) -> int:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return int(torch.multinomial(probs, 1))

    return pick


__all__ = ["PAIRED_PIECES", "DocumentCache", "DocumentCaches", "TransformersBackend",
           "check_pairing", "default_kv_cache_bytes", "kv_bytes_per_token"]
