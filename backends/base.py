"""The backend protocol: stream tokens for a prompt under a deadline and a cancel signal.

Stop rules live in the context engine (`ghostfill.completion.stopping`) and are consulted per
token, so every backend stops at the same clean boundaries and none stops later than one
token after a cancel or a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from ghostfill.completion.tokenizer import Tokenizer

StopReason = Literal[
    "stop_token", "stop_rule", "max_tokens", "deadline", "cancelled", "context_full", "error"
]


class CancelToken:
    """Set by whoever no longer wants the answer; checked by the backend between tokens."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Call `callback` when (or, if already cancelled, now that) the request is cancelled:
        how a cancel leaves this process at once, for a model in another one (the engine
        process), instead of waiting for the next poll."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class Stopper(Protocol):
    def check(self, text: str) -> int | None:
        """Length of `text` to keep if generation must stop now, else None."""
        ...

    def cut_at_deadline(self, text: str) -> str:
        """What of a partial answer is worth showing when time is up."""
        ...


@dataclass(frozen=True)
class PromptParts:
    """The prompt a backend is handed: rendered, and in labelled parts.

    Each backend takes what it needs: the rendered prompt's token ids (llama.cpp,
    transformers), its text (servers behind OpenAI's completions API, which tokenize
    themselves), or the parts, for an engine that lays out the FIM prompt itself (llama.cpp's
    `/infill`). The parts, in document order: cross-file `context`, then `prefix` (the head of
    the prompt and the document up to the cursor line), `middle` (the typed part of the cursor
    line), the answer, `suffix`.
    """

    #: The rendered prompt's ids, in the backend's tokenizer.
    tokens: list[int] = field(default_factory=list)
    #: The rendered prompt as text, control tokens spelled out (None: not rendered as text).
    text: str | None = None
    #: Chunks of other files, as (filename, text), placed before the document.
    context: Sequence[tuple[str, str]] = ()
    #: What precedes the cursor line's typed part (None: the prompt is not given in parts).
    prefix: str | None = None
    #: The typed part of the cursor line (and what a resumed generation produced so far): kept
    #: apart because a keystroke changes only it (llama.cpp `prompt` on `/infill`, which the
    #: server tokenizes on its own and places right after the prefix).
    middle: str = ""
    suffix: str = ""
    #: The document the prompt is for (its path): a server with slots keeps one per document.
    document: str | None = None


@dataclass
class GenerationRequest:
    prompt: PromptParts
    max_tokens: int
    stop_ids: frozenset[int] = frozenset()
    #: The template's control tokens spelled as text: stop strings for engines that take text.
    stop_strings: tuple[str, ...] = ()
    stopper: Stopper | None = None
    #: Absolute `time.monotonic()` deadline; None means no budget.
    deadline: float | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    #: Called with each piece of text the answer keeps, as it is generated: how a caller
    #: watches the answer stream in (`TokenLoop.add_text`).
    on_text: Callable[[str], None] | None = None
    #: When the keystroke that caused the request happened (monotonic), for queue timing.
    created: float = field(default_factory=time.monotonic)
    #: Allow speculative drafts (prompt lookup or a draft model), when the backend has them.
    speculative: bool = True
    temperature: float = 0.0
    #: Minimum indentation of generated lines, for engines that stop on it themselves
    #: (llama.cpp `n_indent`); None leaves it unset.
    min_indent: int | None = None
    #: Ids the first non-whitespace token may not be: the model's next choice after the
    #: filters rejected answers starting with them (whitespace first tokens are indentation,
    #: not a different answer). Honoured by the token-prompt backends, without drafts.
    banned_first: frozenset[int] = frozenset()
    #: Nobody waits for this answer now (a warm-up, an answer finishing after its budget, a
    #: prefetch): backends that can let keystrokes' requests go first (llama.cpp).
    background: bool = False

    @property
    def tokens(self) -> list[int]:
        """The rendered prompt's ids (`prompt.tokens`)."""
        return self.prompt.tokens


@dataclass
class Timings:
    queued_ms: float = 0.0
    prompt_ms: float = 0.0
    first_token_ms: float = 0.0
    decode_ms: float = 0.0
    total_ms: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    #: Of the reused tokens, those kept by shifting the cache after the window start moved.
    shifted_tokens: int = 0
    generated_tokens: int = 0
    drafted_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def decode_tokens_per_s(self) -> float:
        return 1000.0 * self.generated_tokens / self.decode_ms if self.decode_ms > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        out = {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}
        out["decode_tokens_per_s"] = round(self.decode_tokens_per_s, 2)
        return out


@dataclass
class Generation:
    text: str
    tokens: list[int]
    stop_reason: StopReason
    timings: Timings


def check_prompt(tokens: list[int], context_length: int) -> None:
    """Refuse prompts a backend cannot run, before it takes its lock."""
    from ghostfill.errors import BackendError

    if not tokens:
        raise BackendError("empty prompt")
    if len(tokens) >= context_length:
        raise BackendError(
            f"prompt of {len(tokens)} tokens does not fit the {context_length}-token context"
        )


class Backend(Protocol):
    """What the engine needs of a backend: what it is and can do, generation, cache warming."""

    @property
    def name(self) -> str: ...

    @property
    def model_name(self) -> str: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def context_length(self) -> int:
        """Tokens a prompt and its answer may take; a remote backend learns it from its
        server (`probe`)."""
        ...

    @property
    def resumable(self) -> bool:
        """Prompts are token ids and `Generation.tokens` the very ids generated, so a
        generation can be resumed token for token (`CompletionEngine.resume`) and the first
        token of a rejected answer banned (`banned_first`). Remote backends send text and
        re-encode what came back: False."""
        ...

    def probe(self) -> dict[str, object]:
        """Learn what the server offers (context length, slots) and adopt it; returns what it
        said. Local backends have nothing to ask ({}). Raises BackendError when the server
        cannot be asked."""
        ...

    def generate(self, request: GenerationRequest) -> Generation:
        """Generate greedily (or sampled) until a stop; never raise for cancel or deadline."""
        ...

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        """Prefill `tokens` into the cache ahead of a request; returns tokens evaluated.
        `document` names the per-document cache slot to fill (`PromptParts.document`)."""
        ...

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        """The model's log-probability of each continuation right after `prompt` (summed over
        its ids), for choosing among candidate answers by how well the code after the cursor
        follows them (`completion/suffix_check.py`). None when the backend cannot say
        (remote engines return no prompt log-probabilities) or `cancel` fired."""
        ...

    def options(self) -> dict[str, object]:
        """How this backend runs the model, for logs, `ghostfill/stats` and `ghostfill doctor`."""
        ...

    def close(self) -> None: ...
