"""Greedy speculative decoding with per-token control, on transformers models.

transformers' assisted generation checks stop strings and time only once per draft round, so
a stop or a cancel inside an accepted chunk is seen late (design.md §2). This loop drafts k
tokens (with a small draft model or by prompt lookup), verifies them in one target forward
pass, keeps the agreeing prefix plus the target's own next token, rolls both KV caches back,
and hands every kept token to a sink one at a time, so stops, cancellation and the deadline
act per token. Greedy output is exactly the target's own greedy output.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ghostfill.backends.base import CancelToken
from ghostfill.backends.sequences import common_prefix, prompt_lookup


def _interrupted(cancel: CancelToken | None, deadline: float | None) -> bool:
    return (cancel is not None and cancel.cancelled) or (
        deadline is not None and time.monotonic() >= deadline
    )


@dataclass
class SyncResult:
    """What `KVModel.sync` did: tokens reused from the cache, tokens evaluated, logits."""

    reused: int
    evaluated: int
    #: Logits for the token after the last one, or None when interrupted.
    logits: Any


class KVModel:
    """A causal LM with its own DynamicCache and the exact token ids the cache holds."""

    def __init__(self, model: Any, *, max_positions: int, chunk_size: int = 512) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.max_positions = max_positions
        self.chunk_size = chunk_size
        #: Token ids whose keys/values sit in `cache`, in order.
        self.tokens: list[int] = []
        self.cache = self._new_cache()

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def reset(self) -> None:
        self.tokens = []
        self.cache = self._new_cache()

    def crop(self, keep: int) -> None:
        """Drop cached positions from `keep` on (DynamicCache.crop takes a negative count)."""
        remove = len(self.tokens) - keep
        if remove > 0:
            self.cache.crop(-remove)
            del self.tokens[keep:]

    def extend(self, ids: list[int], *, last_only: bool = False) -> Any:
        """Run `ids` after the cached tokens; logits (len(ids) or 1, vocab) as float32."""
        import torch

        if len(self.tokens) + len(ids) > self.max_positions:
            raise ValueError(f"{len(self.tokens) + len(ids)} positions exceed {self.max_positions}")
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        try:
            with torch.inference_mode():
                out = self.model(input_ids=input_ids, past_key_values=self.cache, use_cache=True,
                                 logits_to_keep=1 if last_only else 0)
        except BaseException:
            # The cache may hold part of this call: start from scratch next time.
            self.reset()
            raise
        self.cache = out.past_key_values
        self.tokens.extend(ids)
        return out.logits[0].float()

    def sync(self, tokens: list[int], cancel: CancelToken | None = None,
             deadline: float | None = None) -> SyncResult:
        """Bring the cache to `tokens` reusing the longest common prefix; chunked prefill.

        Chunks already evaluated stay cached when a cancel or the deadline interrupts, so the
        next keystroke continues from there.
        """
        if not tokens:
            raise ValueError("nothing to evaluate")
        reused = common_prefix(self.tokens, tokens)
        if reused == len(tokens):
            reused -= 1  # the last token is run again to get its logits
        self.crop(reused)
        evaluated = 0
        logits = None
        pos = reused
        while pos < len(tokens):
            if _interrupted(cancel, deadline):
                return SyncResult(reused, evaluated, None)
            chunk = tokens[pos : pos + self.chunk_size]
            logits = self.extend(chunk, last_only=True)[-1]
            pos += len(chunk)
            evaluated += len(chunk)
        return SyncResult(reused, evaluated, logits)


class DraftSource(Protocol):
    """Proposes tokens that may follow `seq`; the target decides which to keep."""

    name: str
    #: Seconds per drafted token in the last proposal (None when it could not be measured).
    step_s: float | None

    def propose(self, seq: list[int], k: int, cancel: CancelToken | None,
                deadline: float | None) -> list[int]: ...


class ModelDraft:
    """Greedy drafts from a small model that shares the target's vocabulary."""

    name = "draft"

    def __init__(self, kv: KVModel, vocab_limit: int) -> None:
        self.kv = kv
        #: Ids the target can embed; a padded draft vocabulary must not propose beyond it.
        self.vocab_limit = vocab_limit
        self.step_s: float | None = None

    def propose(self, seq: list[int], k: int, cancel: CancelToken | None,
                deadline: float | None) -> list[int]:
        self.step_s = None
        if k <= 0 or len(seq) + k > self.kv.max_positions:
            return []
        # Catch up first (a new prompt, or rounds without drafting): that is prefill work,
        # not what a draft token costs, so it stays out of the timing.
        behind = common_prefix(self.kv.tokens, seq) < len(seq) - 1
        if behind and self.kv.sync(seq[:-1], cancel, deadline).logits is None:
            return []
        t0 = time.perf_counter()
        synced = self.kv.sync(seq, cancel, deadline)
        if synced.logits is None:
            return []
        out = [int(synced.logits[: self.vocab_limit].argmax())]
        while len(out) < k and not _interrupted(cancel, deadline):
            logits = self.kv.extend([out[-1]])[-1]
            out.append(int(logits[: self.vocab_limit].argmax()))
        self.step_s = (time.perf_counter() - t0) / len(out)
        return out

    def warm(self, seq: list[int], cancel: CancelToken | None) -> int:
        if not seq or len(seq) > self.kv.max_positions:
            return 0
        return self.kv.sync(seq, cancel).evaluated


class PromptLookupDraft:
    """Model-free drafts: copy what followed the latest earlier match of the last n-gram.

    Code repeats itself (names, call patterns, the suffix after the cursor), so the context
    often already holds the continuation. Longer n-grams are tried first.
    """

    name = "prompt-lookup"
    step_s: float | None = 0.0

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1) -> None:
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def propose(self, seq: list[int], k: int, cancel: CancelToken | None = None,
                deadline: float | None = None) -> list[int]:
        return prompt_lookup(seq, k, self.max_ngram, self.min_ngram)


class DraftLength:
    """Chooses k from the running acceptance rate and the measured cost of drafting.

    With per-token acceptance a, a round of k drafts yields E(k) = (1 - a^(k+1)) / (1 - a)
    tokens for one target step, k draft steps and k extra verified positions; we pick the k
    with the most tokens per second. When no k beats plain decoding (k = 0) we still probe
    with k = 1 every few rounds, so the estimates can recover when the text changes.
    """

    def __init__(self, k_init: int = 4, k_max: int = 8, smoothing: float = 0.2,
                 probe_every: int = 8, adaptive: bool = True) -> None:
        self.k = k_init
        self.k_max = k_max
        #: False keeps k fixed at `k_init` (benchmarks and tests that need exact rounds).
        self.adaptive = adaptive
        self.smoothing = smoothing
        self.probe_every = probe_every
        self._accepted = 1.0  # smoothed accepted drafts per round
        self._rejected = 1.0  # smoothed rejections per round (0 or 1 each)
        self._t_step: float | None = None  # a target step without drafts
        self._t_extra = 0.0  # extra verify time per drafted position
        self._t_draft = 0.0  # drafting time per drafted token
        self._idle_rounds = 0

    @property
    def acceptance(self) -> float:
        """Running estimate of the chance that the next draft token is accepted."""
        return self._accepted / (self._accepted + self._rejected)

    def _ema(self, old: float | None, new: float) -> float:
        if old is None:
            return new
        if old > 0:
            new = min(new, 4 * old)  # one stall (another process, a GC) must not swamp it
        return old + self.smoothing * (new - old)

    def record(self, drafted: int, accepted: int, verify_s: float,
               draft_step_s: float | None) -> None:
        if drafted == 0:
            self._t_step = self._ema(self._t_step, verify_s)
            return
        self._accepted = self._ema(self._accepted, accepted)
        self._rejected = self._ema(self._rejected, 1.0 if accepted < drafted else 0.0)
        if self._t_step is not None:
            self._t_extra = self._ema(self._t_extra, max(0.0, verify_s - self._t_step) / drafted)
        if draft_step_s is not None:
            self._t_draft = self._ema(self._t_draft, draft_step_s)
        if self.adaptive:
            self.k = self.best_k()

    def expected_tokens(self, k: int) -> float:
        a = min(self.acceptance, 0.999)
        return (1 - a ** (k + 1)) / (1 - a)

    def best_k(self) -> int:
        if self._t_step is None:
            return max(1, self.k)
        per_draft = self._t_extra + self._t_draft
        rates = [self.expected_tokens(k) / (self._t_step + k * per_draft)
                 for k in range(self.k_max + 1)]
        return max(range(self.k_max + 1), key=rates.__getitem__)

    def snapshot(self) -> dict[str, float | int | None]:
        """The controller's current estimates, for diagnostics and benchmarks."""
        return {"k": self.k, "acceptance": round(self.acceptance, 3),
                "target_step_ms": _ms(self._t_step),
                "verify_extra_ms_per_draft": _ms(self._t_extra),
                "draft_ms_per_token": _ms(self._t_draft)}

    def next_k(self) -> int:
        if not self.adaptive:
            return self.k
        if self._t_step is None:
            return 0  # time one plain step first: every later choice is compared with it
        if self.k == 0:
            self._idle_rounds += 1
            if self._idle_rounds % self.probe_every == 0:
                return 1
        return self.k


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


@dataclass
class DecodeStats:
    drafted: int = 0
    accepted: int = 0
    rounds: int = 0


class TokenSink(Protocol):
    """Receives tokens one at a time and owns every stop rule and the stop reason."""

    def push(self, token: int) -> bool:
        """Take one token; False ends generation (stop id, stop rule, limit, cancel, deadline)."""
        ...

    def interrupted(self) -> bool:
        """Cancelled or past the deadline: no further forward pass may start."""
        ...


def _valid_prefix(drafts: list[int], vocab_limit: int) -> list[int]:
    for i, d in enumerate(drafts):
        if not 0 <= d < vocab_limit:
            return drafts[:i]
    return drafts


def greedy_pick(logits: Any) -> int:
    return int(logits.argmax())


def decode(target: KVModel, first_logits: Any, sink: TokenSink, *,
           source: DraftSource | None = None, controller: DraftLength | None = None,
           max_new: int, pick: Callable[[Any], int] = greedy_pick,
           cancel: CancelToken | None = None, deadline: float | None = None) -> DecodeStats:
    """Generate after the tokens in `target`'s cache, whose next-token logits are given.

    Invariant between rounds: the target cache holds every committed token but the newest,
    `nxt`. A round feeds [nxt, d1..dk] in one pass; the prediction at each position checks the
    following draft, so the agreeing prefix d1..dm and then the target's own prediction after
    dm are exactly what one-token greedy steps produce. Drafting needs greedy picking: callers
    that sample pass no `source`.
    """
    stats = DecodeStats()
    logits = first_logits
    vocab_limit = int(first_logits.shape[-1])
    emitted = 0
    while True:
        nxt = pick(logits)
        if not sink.push(nxt):
            return stats
        emitted += 1
        free = target.max_positions - len(target.tokens)  # positions left for [nxt, drafts]
        if emitted >= max_new or free < 1 or sink.interrupted():
            return stats
        k = 0
        drafts: list[int] = []
        if source is not None and controller is not None:
            k = max(0, min(controller.next_k(), max_new - emitted - 1, free - 1))
            if k:
                drafts = source.propose([*target.tokens, nxt], k, cancel, deadline)
        drafts = _valid_prefix(drafts[:k], vocab_limit)
        if sink.interrupted():
            return stats
        t1 = time.perf_counter()
        m, logits = verify(target, nxt, drafts)
        t2 = time.perf_counter()
        stats.rounds += 1
        stats.drafted += len(drafts)
        stats.accepted += m
        if controller is not None and source is not None:
            controller.record(len(drafts), m, t2 - t1, source.step_s if drafts else None)
        for token in drafts[:m]:
            if not sink.push(token):
                return stats
            emitted += 1


def verify(target: KVModel, nxt: int, drafts: list[int]) -> tuple[int, Any]:
    """Run [nxt, *drafts] in one target pass; keep nxt and the drafts the target agrees with.

    Returns how many drafts were accepted and the logits after the last kept token; the
    cache is cropped to exactly the kept tokens.
    """
    base = len(target.tokens)
    out = target.extend([nxt, *drafts])
    # Always read the predictions back: on a GPU this waits for the pass, so the time the
    # caller measures is the real cost of a verification.
    preds = out.argmax(-1).tolist()
    m = 0
    while m < len(drafts) and drafts[m] == preds[m]:
        m += 1
    if drafts:
        target.crop(base + 1 + m)
    return m, out[m]
