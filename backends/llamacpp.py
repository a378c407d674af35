"""Quantized CPU backend on llama.cpp (llama-cpp-python), reusing the KV cache.

We drive llama.cpp's batch API ourselves instead of `Llama.create_completion` because we need
(1) control tokens inserted by id (its `suffix=` path inserts token 0 for every FIM marker),
(2) a check after every token for cancel, deadline and stop rules, and
(3) exact bookkeeping of which prompt tokens sit in the KV cache, so a keystroke only
evaluates the tokens after the longest common prefix with the previous request.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ghostfill.backends.base import (
    CancelToken,
    Generation,
    GenerationRequest,
    StopReason,
    Timings,
    check_prompt,
)
from ghostfill.backends.cpu_features import choose_extra_buffer_types, ggml_features
from ghostfill.backends.sequences import common_prefix, prompt_lookup
from ghostfill.backends.token_loop import TokenLoop
from ghostfill.completion.tokenizer import LlamaCppTokenizer, route_llama_logs
from ghostfill.errors import BackendError, ModelLoadError
from ghostfill.models import check_gguf

_PARAMS_LOCK = threading.Lock()


@contextmanager
def _model_params(llama_cpp: Any, **fields: object) -> Iterator[None]:
    """Load with model parameters that `Llama()` has no argument for (`use_extra_bufts`).

    `Llama.__init__` builds its `llama_model_params` from `llama_model_default_params()` and
    loads the model before returning, so the only way in is to hand it defaults with our
    fields set; written by hand because llama-cpp-python offers no hook (0.3.x).
    """
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def defaults() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    with _PARAMS_LOCK:
        module.llama_model_default_params = defaults
        try:
            yield
        finally:
            module.llama_model_default_params = original


class _Prefill(NamedTuple):
    reused: int  # cached tokens kept (shifted ones included)
    evaluated: int
    finished: bool  # False: cancel or deadline came first
    shifted: int  # of `reused`, those kept by shifting a moved window

#: The shortest n-gram a prompt-lookup draft is copied after (single tokens match too often).
LOOKUP_MIN_NGRAM = 2
#: A moved window is shifted in the cache when its first SHIFT_PROBE tokens are found there
#: and at least SHIFT_MIN_TOKENS in a row match (smaller moves are cheaper to re-read).
SHIFT_PROBE = 16
SHIFT_MIN_TOKENS = 64


class LlamaCppBackend:
    name = "llamacpp"
    #: Prompts are token ids and `Generation.tokens` the ids decoded: a generation can be
    #: resumed exactly by sending prompt + those ids (`CompletionEngine.resume`).
    resumable = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        context_length: int | None = None,
        threads: int | None = None,
        batch_size: int = 256,
        model_name: str = "",
        draft_tokens: int = 0,
        ngram_max: int = 3,
        kv_reuse: bool = True,
        kv_shift: bool = True,
        extra_buffer_types: bool | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        path = Path(model_path)
        check_gguf(path)
        try:
            import llama_cpp
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ModelLoadError(
                "the CPU backend needs llama-cpp-python: pip install 'ghostfill[cpu]'"
            ) from e
        route_llama_logs(llama_cpp)
        n_threads = threads or max(1, os.cpu_count() or 1)
        n_ctx = context_length or 2048
        #: Whether weights may go to llama.cpp's extra buffer types (see cpu_features).
        self.extra_buffers = choose_extra_buffer_types(extra_buffer_types,
                                                       ggml=ggml_features(llama_cpp))
        extra = self.extra_buffers.enabled
        try:
            self._llm = self._load(llama_cpp, path, n_ctx, n_threads, batch_size, extra,
                                   on_progress)
            n_ctx_train = self._llm._model.n_ctx_train()
            if 0 < n_ctx_train < n_ctx:  # never ask for more than the model was trained on
                self._llm.close()
                n_ctx = n_ctx_train
                self._llm = self._load(llama_cpp, path, n_ctx, n_threads, batch_size, extra)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"cannot load {path.name}: {str(e).splitlines()[0]}") from e
        self.model_name = model_name or path.name
        self.model_path = path
        self.context_length = n_ctx
        self.batch_size = batch_size
        self.threads = n_threads
        #: Prompt-lookup draft length (0 disables drafts) and the longest n-gram matched.
        self.draft_tokens = draft_tokens
        self.kv_reuse = kv_reuse
        self.ngram_max = ngram_max
        self.tokenizer = LlamaCppTokenizer(self._llm, name=self.model_name)
        self._n_vocab = self._llm._model.n_vocab()
        self._lock = threading.Lock()
        #: Token ids whose keys/values are in the KV cache (sequence 0), in order.
        self._cached: list[int] = []
        #: Shift cached keys/values when the window start moves (see `_shift_window`).
        self.kv_shift = kv_shift
        self._shift_ok: bool | None = None

    @staticmethod
    def _load(llama_cpp: Any, path: Path, n_ctx: int, n_threads: int, batch_size: int,
              extra_buffer_types: bool = True,
              on_progress: Callable[[float], None] | None = None) -> Any:
        fields: dict[str, object] = {"use_extra_bufts": extra_buffer_types}
        if on_progress is not None:
            # llama.cpp reports its load progress (0..1) through a C callback; returning
            # False would abort the load. Kept referenced (`fields`) until the load returns.
            def report(progress: float, _: object) -> bool:
                on_progress(progress)
                return True

            fields["progress_callback"] = llama_cpp.llama_progress_callback(report)
        with _model_params(llama_cpp, **fields):
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_batch=batch_size,
                n_ubatch=batch_size,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                logits_all=False,
                # Measured on 2 cores with the embedded model: 16 ms/token instead of 22.
                flash_attn=True,
                verbose=False,
            )

    def options(self) -> dict[str, object]:
        """The llama.cpp options this model runs with (logged at load; `ghostfill doctor`)."""
        params = self._llm.model_params
        return {
            "n_ctx": self.context_length,
            "n_threads": self.threads,
            "n_batch": self.batch_size,
            "flash_attn": True,
            "use_extra_bufts": bool(params.use_extra_bufts),
            "extra_buffer_types": self.extra_buffers.reason,
            "kv_reuse": self.kv_reuse,
            "kv_shift": self.kv_shift,
            "draft_tokens": self.draft_tokens,
        }

    # -- cache management -------------------------------------------------------------
    def _truncate_cache(self, keep: int) -> None:
        if keep < len(self._cached):
            self._llm._ctx.kv_cache_seq_rm(0, keep, -1)
            del self._cached[keep:]

    def _decode(self, tokens: list[int], all_logits: bool = False) -> None:
        """Evaluate `tokens` after the cache in one batch (logits for the last, or for all)."""
        batch = self._llm._batch
        batch.set_batch(batch=tokens, n_past=len(self._cached), logits_all=all_logits)
        try:
            self._llm._ctx.decode(batch)
        except RuntimeError as e:
            # A failed decode leaves the cache in an unknown state: start over next time.
            self._llm._ctx.kv_cache_clear()
            self._cached.clear()
            raise BackendError(f"llama.cpp decode failed: {e}") from e
        self._cached.extend(tokens)

    def _logits_at(self, index: int) -> np.ndarray:
        ptr = self._llm._ctx.get_logits_ith(index)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self._n_vocab,))

    def _last_logits(self) -> np.ndarray:
        return self._logits_at(-1)

    def _prefill(self, tokens: list[int], cancel: CancelToken | None,
                 deadline: float | None) -> _Prefill:
        """Bring the cache to `tokens`.

        Chunks already evaluated stay in the cache when a cancel or deadline interrupts, so
        the next keystroke continues where this one stopped instead of starting over.
        """
        shifted = self._shift_window(tokens) if self.kv_reuse and self.kv_shift else 0
        reused = common_prefix(self._cached, tokens) if self.kv_reuse else 0
        if reused == len(tokens):
            reused -= 1  # the last token must be evaluated again to get its logits
        self._truncate_cache(reused)
        evaluated = 0
        pos = reused
        while pos < len(tokens):
            if cancel is not None and cancel.cancelled:
                return _Prefill(reused, evaluated, False, shifted)
            if deadline is not None and time.monotonic() >= deadline:
                return _Prefill(reused, evaluated, False, shifted)
            chunk = tokens[pos : pos + self.batch_size]
            self._decode(chunk)
            pos += len(chunk)
            evaluated += len(chunk)
        return _Prefill(reused, evaluated, True, shifted)

    def _shift_window(self, tokens: list[int]) -> int:
        """When the window start moved down, drop the cut lines from the cache and shift the
        rest back, instead of re-reading the whole window; returns the tokens kept this way.

        The prompt is `head + window`: the head (template tokens, imports, snippets) stays,
        the window lost some lines at its start. The cached tokens after the lost lines get
        their positions moved back (llama.cpp re-rotates the keys), like llama-server's
        context shift. They keep what they attended to before the cut, so this is an
        approximation of a fresh read, only used when a long run of tokens matches.
        """
        cached = self._cached
        head = common_prefix(cached, tokens)
        probe = tokens[head : head + SHIFT_PROBE]
        if len(probe) < SHIFT_PROBE or head >= len(cached) - SHIFT_PROBE:
            return 0
        start = head
        while True:
            try:
                start = cached.index(probe[0], start + 1)
            except ValueError:
                return 0
            if cached[start : start + SHIFT_PROBE] == probe:
                break
        kept = common_prefix(cached[start:], tokens[head:])
        if kept < SHIFT_MIN_TOKENS or not self._can_shift():
            return 0
        ctx = self._llm._ctx
        ctx.kv_cache_seq_rm(0, head, start)
        ctx.kv_cache_seq_shift(0, start, -1, head - start)
        self._cached = cached[:head] + cached[start:]
        return kept

    def _can_shift(self) -> bool:
        if self._shift_ok is None:
            import llama_cpp

            self._shift_ok = bool(llama_cpp.llama_memory_can_shift(self._llm._ctx.memory))
        return self._shift_ok

    # -- Backend protocol -------------------------------------------------------------
    def probe(self) -> dict[str, object]:
        """Nothing to ask: the model is in this process."""
        return {}

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        tokens = tokens[: self.context_length - 1]
        if not tokens:
            return 0
        with self._lock:
            return self._prefill(tokens, cancel, None).evaluated

    def generate(self, request: GenerationRequest) -> Generation:
        timings = Timings(prompt_tokens=len(request.tokens))
        check_prompt(request.tokens, self.context_length)
        with self._lock:
            start = time.monotonic()
            timings.queued_ms = (start - request.created) * 1000
            if request.cancel.cancelled:
                return Generation("", [], "cancelled", timings)
            done = self._prefill(request.tokens, request.cancel, request.deadline)
            timings.reused_tokens, timings.evaluated_tokens = done.reused, done.evaluated
            timings.shifted_tokens = done.shifted
            after_prompt = time.monotonic()
            timings.prompt_ms = (after_prompt - start) * 1000
            if not done.finished:
                reason: StopReason = "cancelled" if request.cancel.cancelled else "deadline"
                timings.total_ms = (after_prompt - request.created) * 1000
                return Generation("", [], reason, timings)
            result = self._decode_loop(request, timings, after_prompt)
            timings.total_ms = (time.monotonic() - request.created) * 1000
            return result

    def _decode_loop(self, request: GenerationRequest, timings: Timings,
                     t0: float) -> Generation:
        """Greedy decoding with optional prompt-lookup drafts, checked token by token.

        A draft (tokens that followed the same n-gram earlier in the context) is verified in one
        batch; accepted tokens are exactly the ones greedy decoding would produce, and each one
        still passes every stop check on its own, so drafts never change what is returned.
        """
        room = self.context_length - len(self._cached) - 1
        limit = max(0, min(request.max_tokens, room))
        loop = TokenLoop(request, timings, tokenizer=self.tokenizer, limit=limit,
                         context_limited=room < request.max_tokens)
        banned = list(request.banned_first)

        def choose(logits: np.ndarray) -> int:
            if loop.banning:
                logits = logits.copy()
                logits[banned] = -np.inf
            return int(np.argmax(logits))

        if limit == 0:
            loop.reason = "context_full"
        else:
            next_token = choose(self._last_logits())
            while loop.push(next_token):
                draft: list[int] = []
                if request.speculative and self.draft_tokens > 0 and not loop.banning:
                    budget = min(self.draft_tokens, limit - len(loop.tokens) - 1)
                    draft = prompt_lookup([*request.tokens, *loop.tokens], budget,
                                          self.ngram_max, LOOKUP_MIN_NGRAM) if budget > 0 else []
                batch = [next_token, *draft]
                base = len(self._cached)
                self._decode(batch, all_logits=bool(draft))
                preds = [int(np.argmax(self._logits_at(i))) for i in range(len(batch))] \
                    if draft else [choose(self._last_logits())]
                accepted = 0
                while accepted < len(draft) and preds[accepted] == draft[accepted]:
                    accepted += 1
                timings.drafted_tokens += len(draft)
                timings.accepted_tokens += accepted
                self._truncate_cache(base + 1 + accepted)
                if not all(loop.push(token) for token in draft[:accepted]):
                    break
                next_token = preds[accepted]
        text = loop.finish()
        timings.generated_tokens = len(loop.tokens)
        timings.decode_ms = (time.monotonic() - t0) * 1000
        return Generation(text, loop.tokens, loop.reason, timings)

    def close(self) -> None:
        with self._lock:
            self._llm.close()
