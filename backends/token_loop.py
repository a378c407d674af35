"""The per-token bookkeeping of one request, shared by every backend.

Each generated token passes the same checks in the same order, whoever generated it: the
request's stop ids, its stop rules (`Stopper.check`, on the text so far), cancellation, the
deadline (where `Stopper.cut_at_deadline` decides what of the text is worth showing) and the
token limit. The loop also streams what it keeps (`GenerationRequest.on_text`) and times the
first token.

Token backends (llama.cpp, transformers) `push` each id they generate. Remote backends receive
text, not ids: they `add_text` each streamed piece, and the stream pump (`remote_stream.pump`)
watches cancel and deadline while it waits, reported here with `interrupt`.
"""

from __future__ import annotations

import time

from ghostfill.backends.base import GenerationRequest, StopReason, Timings
from ghostfill.completion.tokenizer import StreamDecoder, Tokenizer

#: Reasons after which the decoder's held-back bytes are part of the answer (the text was not
#: cut by a stop rule, a cancel or the deadline).
_FLUSHED: frozenset[StopReason] = frozenset({"max_tokens", "stop_token", "context_full"})


class TokenLoop:
    """Collects one request's tokens and text and decides when generation stops."""

    def __init__(
        self,
        request: GenerationRequest,
        timings: Timings,
        *,
        tokenizer: Tokenizer | None = None,
        limit: int | None = None,
        context_limited: bool = False,
    ) -> None:
        self.request = request
        self.timings = timings
        #: Tokens that may be generated; reaching it ends with `context_full` when
        #: `context_limited` (the context, not `max_tokens`, set it), else `max_tokens`.
        self.limit = limit
        self.context_limited = context_limited
        self._tokenizer = tokenizer
        self._decoder = StreamDecoder(tokenizer) if tokenizer is not None else None
        self.tokens: list[int] = []
        self.text = ""
        self.reason: StopReason = "max_tokens"
        #: When the first token (or piece of text) arrived (`time.monotonic()`), else None.
        self.first: float | None = None
        #: True until a non-whitespace token is generated while `request.banned_first` is
        #: set: until then those ids may not be chosen (and no drafts are taken).
        self.banning = bool(request.banned_first)

    def push(self, token: int) -> bool:
        """Take one generated id; False when generation must stop (`reason` says why)."""
        request = self.request
        if token in request.stop_ids:
            self.reason = "stop_token"
            return False
        self.tokens.append(token)
        if self.banning and self._tokenizer is not None \
                and self._tokenizer.decode_bytes([token]).strip():
            self.banning = False
        self._arrived()
        piece = self._decoder.push(token) if self._decoder is not None else ""
        if piece and not self.add_text(piece):
            return False
        if self.interrupted():
            return False
        if self.limit is not None and len(self.tokens) >= self.limit:
            self.reason = "context_full" if self.context_limited else "max_tokens"
            return False
        return True

    def add_text(self, piece: str) -> bool:
        """Append generated text and apply the stop rules; stream out only what is kept.
        False when a stop rule ended the answer."""
        self._arrived()
        request = self.request
        new = self.text + piece
        cut = request.stopper.check(new) if request.stopper is not None else None
        kept = new if cut is None else new[:cut]
        if request.on_text is not None and len(kept) > len(self.text):
            request.on_text(kept[len(self.text):])
        self.text = kept
        if cut is not None:
            self.reason = "stop_rule"
            return False
        return True

    def interrupted(self) -> bool:
        """Cancelled or past the deadline (then `reason` says which): no further forward
        pass may start."""
        request = self.request
        if request.cancel.cancelled:
            self.interrupt("cancelled")
            return True
        if request.deadline is not None and time.monotonic() >= request.deadline:
            self.interrupt("deadline")
            return True
        return False

    def interrupt(self, reason: StopReason) -> None:
        """End for `reason`; at the deadline keep only what is worth showing of the text."""
        self.reason = reason
        if reason == "deadline" and self.request.stopper is not None:
            self.text = self.request.stopper.cut_at_deadline(self.text)

    def finish(self) -> str:
        """The answer's text, with the decoder's last bytes when nothing cut it."""
        if self._decoder is not None and self.reason in _FLUSHED:
            self.text += self._decoder.flush()
        return self.text

    def _arrived(self) -> None:
        if self.first is None:
            self.first = time.monotonic()
            self.timings.first_token_ms = (self.first - self.request.created) * 1000
