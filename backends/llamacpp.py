"""Quantized CPU backend on llama.cpp (llama-cpp-python), reusing the KV cache.

We drive llama.cpp's batch API ourselves instead of `Llama.create_completion` because we need
(1) control tokens inserted by id (its `suffix=` path inserts token 0 for every FIM marker),
(2) a check after every token for cancel, deadline and stop rules, and
(3) exact bookkeeping of which prompt tokens sit in the KV cache, so a keystroke only
evaluates the tokens after the longest common prefix with the previous request.

The KV cache keeps one slot per recently used document: each slot is a llama.cpp sequence
with its own stream of cells in one context, so switching files does not re-read the file's
window, and a prompt computes the same whichever slot it runs in.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from ghostfill.backends.sequences import common_prefix, prompt_lookup, shift_match
from ghostfill.backends.token_loop import TokenLoop
from ghostfill.completion.tokenizer import LlamaCppTokenizer, route_llama_logs
from ghostfill.errors import BackendError, ModelLoadError
from ghostfill.models import check_gguf

#: Held while a load patches llama-cpp-python's module (re-entrant: the model's and the
#: context's patches nest).
_PARAMS_LOCK = threading.RLock()


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


@contextmanager
def _context_params(llama_cpp: Any, configure: Callable[[Any, Any], None]) -> Iterator[None]:
    """Create the context with parameters `Llama()` has no argument for (`n_seq_max`,
    `kv_unified`), sized from the model being loaded.

    Like `_model_params`, a patch of llama-cpp-python's module for the length of the load
    (0.3.x offers no hook). Not of `llama_context_default_params`, though: `Llama.__init__`
    reads those defaults before it loads the model, while the slot count depends on the model
    (its KV bytes per token, its training context). `llama_init_from_model` is the one call
    that sees both the loaded model and the context parameters, so it is wrapped:
    `configure(model, params)` edits a copy of the parameters (`Llama` keeps its per-slot
    values, which size its own batch) just before the context is created. Only the loading
    thread's call is touched: another thread may be making a tokenizer (a `vocab_only` Llama,
    which has a context too) at the same time.
    """
    module = llama_cpp.llama_cpp
    original = module.llama_init_from_model
    loader = threading.get_ident()

    def init(model: Any, params: Any) -> Any:
        if threading.get_ident() == loader:
            params = type(params).from_buffer_copy(params)
            configure(model, params)
        return original(model, params)

    with _PARAMS_LOCK:
        module.llama_init_from_model = init
        try:
            yield
        finally:
            module.llama_init_from_model = original


def _meta(llama_cpp: Any, model: Any, key: str) -> str | None:
    """A GGUF metadata value of the loaded model, as text (None: not in the file)."""
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode(errors="replace") if n >= 0 else None


def kv_bytes_per_token(llama_cpp: Any, model: Any) -> int:
    """Bytes of keys and values one cached token takes: f16 K and V of each layer's KV heads.

    Known from the model's shape before the context exists, which is when the slots are
    sized. Matches what llama.cpp stores per token to within its per-cell bookkeeping
    (measured with `llama_state_seq_get_size`: tests/test_kv_slots.py). With `swa_full` (the
    default) sliding-window layers keep every token too, so they count in full.
    """
    n_layer = llama_cpp.llama_model_n_layer(model)
    n_head_kv = llama_cpp.llama_model_n_head_kv(model)
    n_head = llama_cpp.llama_model_n_head(model)
    arch = _meta(llama_cpp, model, "general.architecture") or ""
    fallback = llama_cpp.llama_model_n_embd(model) // max(1, n_head)
    key = int(_meta(llama_cpp, model, f"{arch}.attention.key_length") or fallback)
    value = int(_meta(llama_cpp, model, f"{arch}.attention.value_length") or key)
    return int(n_layer * n_head_kv * (key + value) * 2)


def available_memory() -> int | None:
    """Bytes the machine can still give (Linux `MemAvailable`), None where it cannot say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


#: Slots when memory decides: a developer switches between a handful of files, and each slot
#: is a whole window of keys and values kept in memory.
MAX_AUTO_SLOTS = 8
#: The share of available memory the slots may take when memory decides, and its cap.
AUTO_KV_SHARE = 1 / 8
AUTO_KV_CAP = 2 << 30
#: Memory assumed available where the machine cannot say.
UNKNOWN_MEMORY = 4 << 30


def choose_slots(bytes_per_slot: int, *, slots: int | None = None,
                 kv_cache_bytes: int | None = None,
                 available: int | None = None) -> tuple[int, str]:
    """How many documents keep a KV cache slot, and why (for `options()`).

    `slots` given: that many. Else as many whole slots as fit the memory budget, at least
    one (the engine needs a cache) and at most MAX_AUTO_SLOTS: `kv_cache_bytes` when given
    (`model.kv_cache_mb`), else AUTO_KV_SHARE of the available memory, capped at AUTO_KV_CAP
    so a big machine does not hand a small model gigabytes it will not use.
    """
    if slots is not None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        return slots, "set"
    if kv_cache_bytes is not None:
        budget, why = kv_cache_bytes, f"kv_cache {kv_cache_bytes >> 20} MiB"
    else:
        memory = available if available is not None else UNKNOWN_MEMORY
        budget = min(int(memory * AUTO_KV_SHARE), AUTO_KV_CAP)
        why = f"auto: {budget >> 20} MiB of {memory >> 20} MiB available"
    count = max(1, min(MAX_AUTO_SLOTS, budget // max(1, bytes_per_slot)))
    return count, why


#: Prompt chunks under a deadline are at least this long: smaller batches cost more per
#: token (the weights are read once per batch), and the speed estimate is only updated from
#: chunks this long (a keystroke's 2-token batch is mostly fixed cost).
PREFILL_MIN_CHUNK = 16
#: Weight of the newest chunk in the prefill speed's moving average.
PREFILL_SPEED_WEIGHT = 0.3
#: Background reads (warm-ups, answers finishing after their budget) go in batches of about
#: this long while the user types, so that a keystroke's request waits at most that for the
#: model (see `LlamaCppBackend._step_aside`) and keeps most of a 150 ms budget. On two cores
#: 16-token batches cost ~25 % more per token than 256-token ones, which take ~800 ms late in
#: a 2,048-token window; between bursts of typing the slices are long (`TYPING_PAUSE_S`).
PREFILL_SLICE_MS = 50.0
#: Slice length before this machine's prompt speed is measured.
PREFILL_SLICE_TOKENS = 32
#: While nobody has typed for this long, background reads take longer slices
#: (`PREFILL_IDLE_SLICE_MS`, ~128 tokens: full speed) at the risk of making the first
#: keystroke after the pause wait for one of them.
TYPING_PAUSE_S = 1.0
PREFILL_IDLE_SLICE_MS = 400.0


def prefill_chunk(remaining: int, batch_size: int, *, time_left_ms: float | None,
                  ms_per_token: float | None, min_chunk: int = PREFILL_MIN_CHUNK,
                  slice_ms: float | None = None) -> int:
    """How many prompt tokens to evaluate in the next batch.

    A batch cannot be interrupted: a cancel or a deadline is only seen between batches, and
    a whole `batch_size` batch is ~500 ms on two cores, far over a 150 ms latency budget. So
    under a deadline a batch is sized to the time left at this machine's measured speed:
    the request ends about at its deadline, late by at most one `min_chunk` batch, and the
    chunks it evaluated stay cached for the next keystroke. Without a deadline (warming, or
    an infinite one: `ghostfill complete`, doctor, benchmarks without a budget) full batches
    are fastest; before the speed is measured, the smallest chunk is the safe guess.
    `slice_ms` (background reads, which give way to keystrokes between batches) caps any
    batch to about that long, deadline or not.
    """
    if time_left_ms is None or time_left_ms == math.inf:
        size = batch_size
    elif ms_per_token is None or ms_per_token <= 0:
        size = min_chunk
    else:
        size = max(min_chunk, int(time_left_ms / ms_per_token))
    if slice_ms is not None:
        if ms_per_token is None or ms_per_token <= 0:
            size = min(size, PREFILL_SLICE_TOKENS)
        else:
            size = min(size, max(min_chunk, int(slice_ms / ms_per_token)))
    return max(1, min(remaining, batch_size, size))


def _log_prob(logits: np.ndarray, token: int) -> float:
    """log softmax(logits)[token], in float64 (a sum over ~30 ids must not lose precision)."""
    values = logits.astype(np.float64)
    top = values.max()
    return float(values[token] - top - math.log(np.exp(values - top).sum()))


@dataclass
class _Slot:
    """One document's KV cache: a llama.cpp sequence and the token ids cached in it."""

    seq: int
    #: Token ids whose keys/values are in the sequence, in order (positions 0..n-1).
    cached: list[int] = field(default_factory=list)


class _SlotTable:
    """Which slot each recently used document has; a new document takes a slot never used
    or the least recently used one's. Documents without a path (None) share one slot."""

    def __init__(self, count: int) -> None:
        self.slots = [_Slot(seq) for seq in range(count)]
        self._of: OrderedDict[str | None, _Slot] = OrderedDict()

    def take(self, document: str | None) -> tuple[_Slot, bool]:
        """The document's slot, and whether it was another document's (to be emptied)."""
        slot = self._of.get(document)
        evicted = False
        if slot is None:
            if len(self._of) < len(self.slots):
                slot = self.slots[len(self._of)]
            else:
                _, slot = self._of.popitem(last=False)
                evicted = True
            self._of[document] = slot
        self._of.move_to_end(document)
        return slot, evicted

    def documents(self) -> list[str | None]:
        """Documents holding a slot, least recently used first."""
        return list(self._of)


class _Prefill(NamedTuple):
    reused: int  # cached tokens kept (shifted ones included)
    evaluated: int
    finished: bool  # False: cancel or deadline came first
    shifted: int  # of `reused`, those kept by shifting a moved window


class _Plan(NamedTuple):
    """What the context was created with (decided in `_context_params`' `configure`)."""

    slots: int
    context_length: int  # per slot
    kv_bytes_per_token: int
    reason: str


#: The shortest n-gram a prompt-lookup draft is copied after (single tokens match too often).
LOOKUP_MIN_NGRAM = 2


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
        slots: int | None = None,
        kv_cache_bytes: int | None = None,
    ) -> None:
        """`context_length` is what one prompt and its answer may take: each of the `slots`
        documents kept warm has that much. `slots` None: as many as `kv_cache_bytes` holds,
        or, that None too, as fit a share of the machine's memory (`choose_slots`)."""
        path = Path(model_path)
        check_gguf(path)
        if slots is not None and slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
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
        plans: list[_Plan] = []

        def plan(model: Any, params: Any) -> None:
            plans.append(self._plan(llama_cpp, model, params, n_ctx, slots, kv_cache_bytes))

        try:
            with _context_params(llama_cpp, plan):
                self._llm = self._load(llama_cpp, path, n_ctx, n_threads, batch_size,
                                       self.extra_buffers.enabled, on_progress)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"cannot load {path.name}: {str(e).splitlines()[0]}") from e
        if not plans:  # a llama-cpp-python that creates its context some other way
            self._llm.close()
            raise ModelLoadError(f"cannot load {path.name}: llama-cpp-python did not create "
                                 "its context through llama_init_from_model (slots unsized)")
        self._plan_taken = plans[-1]
        self._check_context(llama_cpp, self._plan_taken)
        self._lib = llama_cpp
        self.model_name = model_name or path.name
        self.model_path = path
        #: Tokens one prompt and its answer may take: each slot's size.
        self.context_length = self._plan_taken.context_length
        #: Documents whose KV cache is kept, each in its own llama.cpp sequence.
        self.slots = self._plan_taken.slots
        #: Bytes of keys and values one cached token takes (f16 K and V, all layers).
        self.kv_bytes_per_token = self._plan_taken.kv_bytes_per_token
        self.batch_size = batch_size
        self.threads = n_threads
        #: Prompt-lookup draft length (0 disables drafts) and the longest n-gram matched.
        self.draft_tokens = draft_tokens
        self.kv_reuse = kv_reuse
        self.ngram_max = ngram_max
        self.tokenizer = LlamaCppTokenizer(self._llm, name=self.model_name)
        self._n_vocab = self._llm._model.n_vocab()
        self._lock = threading.Lock()
        #: Interactive requests waiting for `_lock`, and the condition they are counted
        #: under: background work steps aside for them (`_step_aside`).
        self._waiting = 0
        self._turn = threading.Condition()
        self._table = _SlotTable(self.slots)
        #: The slot of the request being served (the last one served, between requests).
        self._slot = self._table.take(None)[0]
        # Our own batch: llama-cpp-python's `set_batch` always writes sequence 0.
        self._batch = llama_cpp.llama_batch_init(batch_size, 0, 1)
        #: This machine's prompt speed, ms per token (moving average over prefill chunks);
        #: None until measured. Sizes the chunks read under a deadline (`prefill_chunk`).
        self.prefill_ms_per_token: float | None = None
        #: Times background work gave the model to a waiting keystroke (`_step_aside`).
        self.stepped_aside = 0
        #: When the last interactive request ended (monotonic; -inf: never).
        self.last_interactive = -math.inf
        #: Shift cached keys/values when the window start moves (see `_shift_window`).
        self.kv_shift = kv_shift
        self._shift_ok: bool | None = None

    @staticmethod
    def _plan(llama_cpp: Any, model: Any, params: Any, n_ctx: int, slots: int | None,
              kv_cache_bytes: int | None) -> _Plan:
        """Size the slots for the loaded `model` and set the context `params` to match:
        `n_seq_max` sequences, each its own stream of cells (`kv_unified` off, so a
        sequence's attention only reads its own cells and a prompt computes the same in
        any slot), which gives each `n_ctx / n_seq_max` cells."""
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        if 0 < n_ctx_train < n_ctx:  # never ask for more than the model was trained on
            n_ctx = n_ctx_train
        per_token = kv_bytes_per_token(llama_cpp, model)
        count, reason = choose_slots(per_token * n_ctx, slots=slots,
                                     kv_cache_bytes=kv_cache_bytes,
                                     available=available_memory())
        limit = llama_cpp.llama_max_parallel_sequences()
        if count > limit:
            raise ValueError(f"{count} slots: llama.cpp runs at most {limit} sequences")
        params.n_seq_max = count
        params.kv_unified = False
        params.n_ctx = count * n_ctx
        return _Plan(count, n_ctx, per_token, reason)

    def _check_context(self, llama_cpp: Any, plan: _Plan) -> None:
        """The context has the sequences asked for, each with room for a whole prompt
        (llama.cpp rounds each sequence's cells up to a multiple of 256)."""
        ctx = self._llm._ctx.ctx
        n_seq = llama_cpp.llama_n_seq_max(ctx)
        per_seq = getattr(llama_cpp, "llama_n_ctx_seq", None)  # llama-cpp-python >= 0.3.17
        n_ctx_seq = per_seq(ctx) if per_seq else llama_cpp.llama_n_ctx(ctx) // max(1, n_seq)
        if n_seq != plan.slots or n_ctx_seq < plan.context_length:
            self._llm.close()
            raise ModelLoadError(
                f"llama.cpp made {n_seq} sequences of {n_ctx_seq} tokens, "
                f"not {plan.slots} of {plan.context_length}")

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
                n_ctx=n_ctx,  # per slot: `_context_params` multiplies it by the slots
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
            "slots": self.slots,
            "slots_sized_by": self._plan_taken.reason,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "kv_cache_mb": round(self.slots * self.context_length * self.kv_bytes_per_token
                                 / (1 << 20), 1),
        }

    # -- cache management -------------------------------------------------------------
    @property
    def _cached(self) -> list[int]:
        """Token ids cached in the current slot's sequence."""
        return self._slot.cached

    def _use_slot(self, document: str | None) -> None:
        """Make `document`'s slot the current one, emptying it first if it was another's."""
        slot, evicted = self._table.take(document)
        if evicted:
            self._llm._ctx.kv_cache_seq_rm(slot.seq, 0, -1)
            slot.cached.clear()
        self._slot = slot

    def _truncate_cache(self, keep: int) -> None:
        if keep < len(self._cached):
            self._llm._ctx.kv_cache_seq_rm(self._slot.seq, keep, -1)
            del self._cached[keep:]

    def _fill_batch(self, tokens: list[int], all_logits: bool) -> None:
        """`tokens` after the current slot's cache, in its sequence, with their positions."""
        batch, seq, n_past = self._batch, self._slot.seq, len(self._cached)
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = all_logits
        batch.logits[len(tokens) - 1] = True

    def _decode(self, tokens: list[int], all_logits: bool = False) -> None:
        """Evaluate `tokens` after the cache in one batch (logits for the last, or for all)."""
        if len(tokens) > self.batch_size:
            raise BackendError(f"a batch of {len(tokens)} tokens exceeds {self.batch_size}")
        self._fill_batch(tokens, all_logits)
        code = self._lib.llama_decode(self._llm._ctx.ctx, self._batch)
        if code != 0:
            # A failed decode leaves the slot in an unknown state: empty it.
            self._llm._ctx.kv_cache_seq_rm(self._slot.seq, 0, -1)
            self._cached.clear()
            raise BackendError(f"llama.cpp decode failed: llama_decode returned {code}")
        self._cached.extend(tokens)

    def _logits_at(self, index: int) -> np.ndarray:
        ptr = self._llm._ctx.get_logits_ith(index)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(self._n_vocab,))

    def _last_logits(self) -> np.ndarray:
        return self._logits_at(-1)

    def _prefill(self, tokens: list[int], cancel: CancelToken | None,
                 deadline: float | None, background: bool = False,
                 document: str | None = None) -> _Prefill:
        """Bring the current slot's cache to `tokens`.

        Chunks already evaluated stay in the cache when a cancel or deadline interrupts, so
        the next keystroke continues where this one stopped instead of starting over; under
        a deadline the chunks are sized to the time left (`prefill_chunk`). `background` (a
        warm-up or an answer finishing after its budget, in `document`'s slot): read in
        short slices, stepping aside between them for any keystroke that waits.
        """
        shifted = self._shift_window(tokens) if self.kv_reuse and self.kv_shift else 0
        reused = self._resume_point(tokens)
        evaluated = 0
        pos = reused
        while pos < len(tokens):
            if cancel is not None and cancel.cancelled:
                return _Prefill(reused, evaluated, False, shifted)
            if background and self._step_aside(document, cancel):
                pos = self._resume_point(tokens)
                continue
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return _Prefill(reused, evaluated, False, shifted)
            size = prefill_chunk(
                len(tokens) - pos, self.batch_size,
                time_left_ms=None if deadline is None else (deadline - now) * 1000,
                ms_per_token=self.prefill_ms_per_token,
                slice_ms=self._slice_ms(now) if background else None)
            self._decode(tokens[pos : pos + size])
            self._note_speed(size, (time.monotonic() - now) * 1000)
            pos += size
            evaluated += size
        return _Prefill(reused, evaluated, True, shifted)

    def _slice_ms(self, now: float) -> float:
        """How long a background batch may take now: short while the user types."""
        typing = now - self.last_interactive < TYPING_PAUSE_S
        return PREFILL_SLICE_MS if typing else PREFILL_IDLE_SLICE_MS

    def _resume_point(self, tokens: list[int]) -> int:
        """Cut the slot's cache to what `tokens` can keep of it, and say how much that is (the
        last token is evaluated again when all match: its logits are needed)."""
        kept = min(common_prefix(self._cached, tokens), len(tokens) - 1) if self.kv_reuse else 0
        self._truncate_cache(kept)
        return kept

    def _step_aside(self, document: str | None, cancel: CancelToken | None) -> bool:
        """Background work gives the model to the keystrokes waiting for it, then takes it
        back for `document` (whose slot they may have used, or taken: callers re-check the
        cache). False when nobody waits. Called with `_lock` held; holds it again after.

        Without it a warm-up or a late answer in another document (of this editor window or,
        in a shared engine, of another one) makes every keystroke wait until it ends.
        """
        if not self._waiting:
            return False
        self._lock.release()
        try:
            with self._turn:
                while self._waiting and not (cancel is not None and cancel.cancelled):
                    self._turn.wait(0.05)
        finally:
            self._lock.acquire()
        self._use_slot(document)
        self.stepped_aside += 1
        return True

    @contextmanager
    def _model_turn(self, interactive: bool) -> Iterator[None]:
        """Hold the model; an interactive request is counted while it waits, so that
        background work steps aside for it (`_step_aside`)."""
        if interactive:
            with self._turn:
                self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            if interactive:
                with self._turn:
                    self._waiting -= 1
                    self._turn.notify_all()
        try:
            yield
        finally:
            if interactive:
                self.last_interactive = time.monotonic()
            self._lock.release()

    def _note_speed(self, tokens: int, ms: float) -> None:
        """Fold a prefill chunk's speed into the moving average (long chunks only: a short
        one is mostly the fixed cost of a batch)."""
        if tokens < PREFILL_MIN_CHUNK:
            return
        rate = ms / tokens
        old = self.prefill_ms_per_token
        self.prefill_ms_per_token = rate if old is None else \
            old + PREFILL_SPEED_WEIGHT * (rate - old)

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
        match = shift_match(cached, tokens)
        if match is None or not self._can_shift():
            return 0
        head, start, kept = match
        ctx, seq = self._llm._ctx, self._slot.seq
        ctx.kv_cache_seq_rm(seq, head, start)
        ctx.kv_cache_seq_shift(seq, start, -1, head - start)
        del cached[head:start]
        return kept

    def _can_shift(self) -> bool:
        if self._shift_ok is None:
            self._shift_ok = bool(self._lib.llama_memory_can_shift(self._llm._ctx.memory))
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
        with self._model_turn(interactive=False):
            self._use_slot(document)
            return self._prefill(tokens, cancel, None, background=True,
                                 document=document).evaluated

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        """Each continuation read after `prompt` in `document`'s slot, logits for all its
        ids; the prompt's cache is reused and kept (the slot holds the prompt after)."""
        if not prompt:
            return None
        check_prompt([*prompt, *max(continuations, key=len, default=[])], self.context_length)
        scores: list[float] = []
        with self._model_turn(interactive=True):
            self._use_slot(document)
            if not self._prefill(prompt, cancel, None, document=document).finished:
                return None
            for continuation in continuations:
                if cancel is not None and cancel.cancelled:
                    return None
                # The last prompt id again: its logits predict the continuation's first id.
                self._truncate_cache(len(prompt) - 1)
                sequence = [prompt[-1], *continuation]
                total = 0.0
                for start in range(0, len(sequence) - 1, self.batch_size):
                    chunk = sequence[start : start + self.batch_size]
                    self._decode(chunk, all_logits=True)
                    for i, token in enumerate(sequence[start + 1 : start + 1 + len(chunk)]):
                        total += _log_prob(self._logits_at(i), token)
                scores.append(total)
            self._truncate_cache(len(prompt))
        return scores

    def generate(self, request: GenerationRequest) -> Generation:
        timings = Timings(prompt_tokens=len(request.tokens))
        check_prompt(request.tokens, self.context_length)
        background, document = request.background, request.prompt.document
        with self._model_turn(interactive=not background):
            start = time.monotonic()
            timings.queued_ms = (start - request.created) * 1000
            if request.cancel.cancelled:
                return Generation("", [], "cancelled", timings)
            self._use_slot(request.prompt.document)
            done = self._prefill(request.tokens, request.cancel, request.deadline, background,
                                 document)
            timings.reused_tokens, timings.evaluated_tokens = done.reused, done.evaluated
            timings.shifted_tokens = done.shifted
            after_prompt = time.monotonic()
            timings.prompt_ms = (after_prompt - start) * 1000
            if not done.finished:
                reason: StopReason = "cancelled" if request.cancel.cancelled else "deadline"
                timings.total_ms = (after_prompt - request.created) * 1000
                return Generation("", [], reason, timings)
            result = self._decode_loop(request, timings, after_prompt, background)
            timings.total_ms = (time.monotonic() - request.created) * 1000
            return result

    def _decode_loop(self, request: GenerationRequest, timings: Timings,
                     t0: float, background: bool = False) -> Generation:
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
                    budget = min(self.draft_tokens, self.batch_size - 1,
                                 limit - len(loop.tokens) - 1)
                    draft = prompt_lookup([*request.tokens, *loop.tokens], budget,
                                          self.ngram_max, LOOKUP_MIN_NGRAM) if budget > 0 else []
                batch = [next_token, *draft]
                document = request.prompt.document
                if background and self._step_aside(document, request.cancel):
                    if loop.interrupted():
                        break
                    # Back in this document's slot: it must hold the prompt and the answer
                    # so far (all but `next_token`, which the batch evaluates).
                    held = [*request.tokens, *loop.tokens[:-1]]
                    if self._cached != held:
                        self._prefill(held, request.cancel, None, True, document)
                    if request.cancel.cancelled:
                        loop.interrupt("cancelled")
                        break
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
            if self._batch is not None:
                self._lib.llama_batch_free(self._batch)
                self._batch = None
            self._llm.close()
