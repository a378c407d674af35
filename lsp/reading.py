"""Whether a window can be read within a keystroke's budget, and which one to read.

A document's window is read into its cache slot once; afterwards each keystroke reads a token
or two. Until then (a file just opened or switched to, a jump far away) a 2,048-token window
costs seconds on a CPU, and a keystroke that must read it shows nothing. The server therefore
keeps, per document and cache slot, the prompt ids it knows the slot holds (what its requests
and warm-ups read), and this machine's measured reading speed; a keystroke whose window would
not be read in its budget is served from the short window (`context.short_window_tokens`) when
that needs less reading, while the full window is read in the background.

What the server knows of a slot is an estimate (the backend may have evicted it, the engine
may have restarted): a wrong guess costs one keystroke, whose timings then correct it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ghostfill.backends.sequences import common_prefix, shift_match

if TYPE_CHECKING:
    from ghostfill.engine import CompletionEngine, Prepared

#: Tokens assumed readable within a budget before any speed was measured: a few chunks'
#: worth, so an unread window (hundreds of tokens) is never assumed to fit.
UNMEASURED_TOKENS = 64
#: Chunks shorter than this say little about the speed (fixed costs dominate them).
MIN_MEASURED_TOKENS = 32
#: Weight of the newest measurement in the moving average.
SPEED_WEIGHT = 0.3
#: Share of the budget that reading may take: the answer's tokens need the rest.
READ_SHARE = 0.5


@dataclass
class ReadingSpeed:
    """This machine's prompt reading speed, from the timings requests report."""

    ms_per_token: float | None = None

    def note(self, tokens: int, ms: float) -> None:
        if tokens < MIN_MEASURED_TOKENS or ms <= 0:
            return
        rate = ms / tokens
        old = self.ms_per_token
        self.ms_per_token = rate if old is None else old + SPEED_WEIGHT * (rate - old)

    def readable(self, budget_ms: float) -> int:
        """Tokens that can be read in the reading share of `budget_ms`."""
        if self.ms_per_token is None:
            return UNMEASURED_TOKENS
        return int(budget_ms * READ_SHARE / self.ms_per_token)


def to_read(held: list[int] | None, prompt: list[int], *, shift: bool = False) -> int:
    """Tokens of `prompt` a slot holding `held` must still read; with `shift` (a backend that
    shifts its cache when the window start moved down), less what it keeps that way."""
    if not held:
        return len(prompt)
    match = shift_match(held, prompt) if shift else None
    if match is not None:
        head, _, kept = match
        return len(prompt) - head - kept
    return len(prompt) - common_prefix(held, prompt)


def fits_short(engine: CompletionEngine, prepared: Prepared) -> bool:
    """Whether `prepared` (a full window) is no longer than a short window would be, or
    there is none: then the short window is the same text, and never worth a slot."""
    short = engine.short_window
    return short is None or len(prepared.prompt.tokens) + engine.config.completion.max_tokens \
        <= short
