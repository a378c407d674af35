"""GPU (or CPU) backend on transformers, with speculative decoding under per-token control.

Loading lives in `hf_loading` (native classes, no remote code), the decoding loop in
`speculative`; this module ties them to the Backend protocol: KV reuse between requests by
longest common prefix, the per-token checks of a request (`token_loop`, shared with the other
backends) and the pairing check that makes a draft model safe to use.
"""

from __future__ import annotations

import os
import threading
import time
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
    ) -> None:
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
        self._target = KVModel(loaded.model, max_positions=self.context_length)
        self._vocab_limit = int(loaded.model.get_output_embeddings().weight.shape[0])
        self._draft: ModelDraft | None = None
        #: Why an optional draft model is not in use (shown by diagnostics), or "".
        self.draft_problem = ""
        if draft is not None and speculative in ("auto", "draft"):
            try:
                self._draft = self._load_draft(loaded, draft, trust_remote_code)
            except ModelNotAvailable as e:
                if speculative == "draft":
                    raise
                # "auto" is best effort: without the draft's files, prompt lookup still helps.
                self.draft_problem = str(e)
        self._lookup = PromptLookupDraft()
        self._controllers = _controllers(None)
        self._lock = threading.Lock()

    def _load_draft(self, target: LoadedModel, spec: str | Path,
                    trust_remote_code: bool) -> ModelDraft:
        loaded = load_model(_model_path(spec), device=str(target.device), dtype=target.dtype,
                            trust_remote_code=trust_remote_code)
        check_pairing(target.tokenizer, loaded.tokenizer, self.model_name, str(spec))
        kv = KVModel(loaded.model, max_positions=min(loaded.max_positions, self.context_length))
        return ModelDraft(kv, vocab_limit=self._vocab_limit)

    @property
    def cached_tokens(self) -> list[int]:
        """Token ids whose keys/values the target cache holds (for tests and diagnostics)."""
        return list(self._target.tokens)

    def reset_cache(self) -> None:
        """Forget cached keys/values, e.g. so a benchmark measures every prompt afresh."""
        with self._lock:
            self._target.reset()
            if self._draft is not None:
                self._draft.kv.reset()

    def fix_draft_length(self, k: int | None) -> None:
        """Draft exactly `k` tokens per round (None: adapt k to the acceptance rate again)."""
        with self._lock:
            self._controllers = _controllers(k)

    def speculation_stats(self) -> dict[str, dict[str, float | int | None]]:
        """Per draft source: current k, acceptance and measured step costs."""
        return {name: c.snapshot() for name, c in self._controllers.items()}

    def draft_source(self, request: GenerationRequest) -> tuple[DraftSource | None,
                                                                DraftLength | None]:
        """Which drafts this request gets: none when sampling or when speculation is off."""
        if not request.speculative or request.temperature > 0 or self.speculative == "off":
            return None, None
        if self._draft is not None and self.speculative in ("auto", "draft"):
            return self._draft, self._controllers["draft"]
        return self._lookup, self._controllers["prompt-lookup"]

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
            evaluated = self._guarded(lambda: self._target.sync(tokens, cancel).evaluated)
            if self._draft is not None and not (cancel is not None and cancel.cancelled):
                draft = self._draft
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
            synced = self._guarded(
                lambda: self._target.sync(request.tokens, request.cancel, request.deadline)
            )
            timings.reused_tokens, timings.evaluated_tokens = synced.reused, synced.evaluated
            after_prompt = time.monotonic()
            timings.prompt_ms = (after_prompt - start) * 1000
            if synced.logits is None:
                reason: StopReason = "cancelled" if request.cancel.cancelled else "deadline"
                timings.total_ms = (after_prompt - request.created) * 1000
                return Generation("", [], reason, timings)
            result = self._decode(request, synced.logits, timings, after_prompt)
            timings.total_ms = (time.monotonic() - request.created) * 1000
            return result

    def _decode(self, request: GenerationRequest, logits: Any, timings: Timings,
                t0: float) -> Generation:
        room = self.context_length - len(request.tokens)
        limit = min(request.max_tokens, room)
        loop = TokenLoop(request, timings, tokenizer=self.tokenizer, limit=limit,
                         context_limited=room < request.max_tokens)
        source, controller = self.draft_source(request)
        pick = greedy_pick if request.temperature <= 0 else _sampler(request.temperature)
        if request.banned_first:
            source, controller = None, None  # every token through `pick`
            pick = _banning(pick, request.banned_first, loop)
        stats = self._guarded(lambda: decode(
            self._target, logits, loop, source=source,
            controller=controller, max_new=limit, pick=pick, cancel=request.cancel,
            deadline=request.deadline,
        ))
        text = loop.finish()
        timings.generated_tokens = len(loop.tokens)
        timings.drafted_tokens, timings.accepted_tokens = stats.drafted, stats.accepted
        timings.decode_ms = (time.monotonic() - t0) * 1000
        return Generation(text, loop.tokens, loop.reason, timings)

    def _guarded(self, fn: Any) -> Any:
        """Run model work; a failure (e.g. out of GPU memory) becomes a BackendError."""
        try:
            return fn()
        except (RuntimeError, ValueError, IndexError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BackendError(f"transformers generation failed: {first}") from e

    def options(self) -> dict[str, object]:
        return {"device": str(self.device), "speculative": self.speculative,
                "context_length": self.context_length}

    def close(self) -> None:
        with self._lock:
            self._target.reset()
            if self._draft is not None:
                self._draft.kv.reset()
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


__all__ = ["PAIRED_PIECES", "TransformersBackend", "check_pairing"]
