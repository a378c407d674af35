"""Prompt windows: the prefix and suffix around the cursor that fit the model's budget.

Budget = context window - tokens reserved for the answer - template overhead, counted with the
model's own tokenizer. The prefix gets `prefix_share` of it (unused suffix budget flows back to
the prefix and vice versa). Cuts land on syntax boundaries (`boundaries`: lines where a
statement or definition starts) and, failing that, on line starts.

Windows are cache-friendly: a per-document `WindowAnchor` keeps the prefix start where it was as
long as the window still fits, and when it must move it jumps ahead by a slack so that the next
lines typed do not move it again. An unchanged window start keeps the backend's KV cache valid.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

from ghostfill.completion.tokenizer import Tokenizer

if TYPE_CHECKING:  # headers imports the tree-sitter layer; only the types are needed here
    from ghostfill.completion.crossfile import Snippet
    from ghostfill.completion.headers import Head


@dataclass(frozen=True)
class Budget:
    context_length: int
    reserved_for_answer: int
    template_overhead: int
    prefix_limit: int
    suffix_limit: int
    #: Kept for the head (imports, scope headers) and cross-file snippets.
    reserved: int = 0
    #: Whether the suffix may use what the prefix leaves unused. Not in PSM order, where the
    #: suffix follows the typed text and every keystroke re-evaluates all of it.
    suffix_takes_unused: bool = True

    @property
    def available(self) -> int:
        return (self.context_length - self.reserved_for_answer - self.template_overhead
                - self.reserved)


@dataclass(frozen=True)
class Window:
    prefix: str
    suffix: str
    prefix_ids: list[int]
    suffix_ids: list[int]
    #: Offsets into the document where the windows start/end (cut points).
    prefix_start: int
    suffix_end: int
    budget: Budget

    def to_dict(self) -> dict[str, object]:
        return {
            "prefix_start": self.prefix_start,
            "suffix_end": self.suffix_end,
            "prefix_tokens": len(self.prefix_ids),
            "suffix_tokens": len(self.suffix_ids),
            "budget": {
                "context_length": self.budget.context_length,
                "reserved_for_answer": self.budget.reserved_for_answer,
                "template_overhead": self.budget.template_overhead,
                "prefix_limit": self.budget.prefix_limit,
                "suffix_limit": self.budget.suffix_limit,
                "reserved": self.budget.reserved,
            },
        }


@dataclass
class WindowAnchor:
    """Per-document memory of the prefix window start (a document offset).

    What is decided once per window start rides along: the head (imports and scope headers)
    and the cross-file snippets, so they change only when the start moves.
    """

    start: int | None = None
    decided_for: int | None = None
    head: Head | None = None
    snippets: list[Snippet] = field(default_factory=list)
    #: Edits in other files when the snippets were decided (`EditHistory.stamp`).
    edits_seen: int = 0
    #: Token cache for the stable part of the prefix (text up to the end of the previous line).
    stable_text: str = ""
    stable_ids: list[int] = field(default_factory=list)
    #: Whose token ids `stable_ids` are (see `for_vocabulary`).
    vocabulary: str = ""
    #: The short window's own anchor (`context.short_window_tokens`): its start is not this
    #: one's, and each must stay put for its own cache slot.
    short: WindowAnchor | None = None

    def copy(self) -> WindowAnchor:
        """A request's own copy (the short window's anchor too): workers change theirs."""
        return replace(self, short=self.short.copy() if self.short is not None else None)

    def edited(self, start: int) -> None:
        """An edit at `start`: a window start after it no longer names the same text."""
        if self.start is not None and start < self.start:
            self.start = None
        if self.short is not None:
            self.short.edited(start)

    def for_vocabulary(self, vocabulary: str) -> None:
        """Forget everything when another model's tokenizer asks: token ids of one vocabulary
        are garbage in another (a model switch kept the document's anchor)."""
        if self.vocabulary != vocabulary:
            fresh = WindowAnchor(vocabulary=vocabulary)
            for f in fields(self):
                setattr(self, f.name, getattr(fresh, f.name))


def line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    pos = find("\n")
    while pos >= 0:
        starts.append(pos + 1)
        pos = find("\n", pos + 1)
    return starts


def make_budget(
    context_length: int,
    max_tokens: int,
    overhead: int,
    *,
    prefix_share: float,
    max_suffix_tokens: int,
    suffix_used: bool,
    reserved: int = 0,
    suffix_takes_unused: bool = True,
) -> Budget:
    """`reserved`: tokens kept for text outside the windows (headers, cross-file snippets)."""
    available = max(0, context_length - max_tokens - overhead - reserved)
    if not suffix_used:
        return Budget(context_length, max_tokens, overhead, available, 0, reserved)
    suffix_limit = min(max_suffix_tokens, int(available * (1.0 - prefix_share)))
    return Budget(context_length, max_tokens, overhead, available - suffix_limit, suffix_limit,
                  reserved, suffix_takes_unused)


def _encode_prefix(tokenizer: Tokenizer, text: str, anchor: WindowAnchor | None) -> list[int]:
    """Tokenize the prefix window, reusing the tokens of its stable part.

    The split sits before the last newline so that indentation stays attached to its newline
    (tokenizers merge "\\n    "), and the stable part is the same string while the user types
    on one line, so its tokens come from the anchor's cache.
    """
    cut = text.rfind("\n")
    # Keep a trailing run of blank lines whole: tokenizers merge "\n\n" and a split there
    # shows the model a sequence it rarely saw in training.
    while cut > 0 and text[cut - 1] in "\n\r \t":
        cut -= 1
    if anchor is None or cut <= 0:
        return tokenizer.encode(text)
    stable = text[:cut]
    if anchor.stable_text != stable:
        anchor.stable_text = stable
        anchor.stable_ids = tokenizer.encode(stable)
    return anchor.stable_ids + tokenizer.encode(text[cut:])


def _snap(candidate: int, allowed: Sequence[int]) -> int:
    """First allowed line at or after `candidate`."""
    i = bisect.bisect_left(allowed, candidate)
    return allowed[i] if i < len(allowed) else candidate


def build_window(
    text: str,
    offset: int,
    tokenizer: Tokenizer,
    budget: Budget,
    *,
    boundaries: Sequence[int] | None = None,
    anchor: WindowAnchor | None = None,
    starts: Sequence[int] | None = None,
) -> Window:
    """Cut `text` around `offset` into a prefix and a suffix window within `budget`.

    `boundaries` are sorted line numbers where a cut is allowed (syntax boundaries); every
    line start is allowed when None. `starts` may pass precomputed line start offsets.
    """
    offset = max(0, min(offset, len(text)))
    starts = starts if starts is not None else line_starts(text)
    cursor_line = bisect.bisect_right(starts, offset) - 1
    allowed = list(boundaries) if boundaries is not None else None

    kept = _kept_anchor(text, offset, starts, budget, tokenizer, anchor)
    if kept is not None:
        prefix_start, prefix_ids = kept
    else:
        prefix_start = _choose_prefix_start(text, offset, cursor_line, starts, allowed, budget,
                                            tokenizer, anchor)
        prefix_ids = _encode_prefix(tokenizer, text[prefix_start:offset], anchor)
    prefix = text[prefix_start:offset]
    # Exact check with the real tokenization; per-line estimates can be off by a few tokens.
    while len(prefix_ids) > budget.prefix_limit and prefix_start < offset:
        line = bisect.bisect_right(starts, prefix_start)
        if line > cursor_line:
            prefix_start = offset
        else:
            if allowed is not None:
                nxt = _snap(line, allowed)
                line = nxt if nxt <= cursor_line else line
            prefix_start = starts[line] if line <= cursor_line else offset
        prefix = text[prefix_start:offset]
        prefix_ids = tokenizer.encode(prefix)
    if prefix_start == offset and len(prefix_ids) > budget.prefix_limit:
        prefix, prefix_ids = "", []
    if anchor is not None:
        anchor.start = prefix_start

    unused = max(0, budget.prefix_limit - len(prefix_ids)) if budget.suffix_takes_unused else 0
    suffix_limit = budget.suffix_limit + unused if budget.suffix_limit else 0
    suffix, suffix_ids, suffix_end = _choose_suffix(text, offset, cursor_line, starts, allowed,
                                                    suffix_limit, tokenizer)
    return Window(prefix, suffix, prefix_ids, suffix_ids, prefix_start, suffix_end, budget)


def _kept_anchor(text: str, offset: int, starts: Sequence[int], budget: Budget,
                 tokenizer: Tokenizer, anchor: WindowAnchor | None
                 ) -> tuple[int, list[int]] | None:
    """The anchored start and the prefix's ids when the window from there still fits: the
    common case while typing, decided with the prefix's own tokens (the stable part cached,
    the cursor line's part tokenized once) instead of a per-line estimate that tokenizes the
    cursor line a second time (a round trip to an engine process's tokenizer)."""
    if anchor is None or anchor.start is None or not 0 <= anchor.start <= offset \
            or budget.prefix_limit <= 0:
        return None
    if anchor.start > 0 and offset <= budget.prefix_limit:
        return None  # the whole prefix fits (a token is at least a character): start at 0
    i = bisect.bisect_left(starts, anchor.start)
    if i >= len(starts) or starts[i] != anchor.start:
        return None
    ids = _encode_prefix(tokenizer, text[anchor.start:offset], anchor)
    return (anchor.start, ids) if len(ids) <= budget.prefix_limit else None


def _line_tokens(tokenizer: Tokenizer, text: str, starts: Sequence[int], line: int) -> int:
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return len(tokenizer.encode(text[starts[line] : end]))


def _choose_prefix_start(
    text: str,
    offset: int,
    cursor_line: int,
    starts: Sequence[int],
    allowed: list[int] | None,
    budget: Budget,
    tokenizer: Tokenizer,
    anchor: WindowAnchor | None,
) -> int:
    limit = budget.prefix_limit
    if limit <= 0:
        return offset
    # Walk back line by line with (cached) per-line counts to estimate the earliest start.
    total = len(tokenizer.encode(text[starts[cursor_line] : offset]))
    line = cursor_line
    while line > 0:
        cost = _line_tokens(tokenizer, text, starts, line - 1)
        if total + cost > limit:
            break
        total += cost
        line -= 1
    earliest = line
    if earliest == 0:
        return 0
    if anchor is not None and anchor.start is not None and anchor.start <= offset:
        anchor_line = bisect.bisect_right(starts, anchor.start) - 1
        if starts[anchor_line] == anchor.start and earliest <= anchor_line <= cursor_line:
            return anchor.start  # still fits: keep the start, keep the KV cache
    # Moving: leave slack so the next lines typed do not move the start again.
    slack = max(limit // 8, 1)
    while earliest < cursor_line and total > limit - slack:
        total -= _line_tokens(tokenizer, text, starts, earliest)
        earliest += 1
    if allowed is not None:
        snapped = _snap(earliest, allowed)
        if snapped <= cursor_line:
            earliest = snapped
    return starts[earliest]


def _choose_suffix(
    text: str,
    offset: int,
    cursor_line: int,
    starts: Sequence[int],
    allowed: list[int] | None,
    limit: int,
    tokenizer: Tokenizer,
) -> tuple[str, list[int], int]:
    if limit <= 0:
        return "", [], offset
    end_line = cursor_line + 1
    total = len(tokenizer.encode(text[offset : starts[end_line]])) if end_line < len(starts) \
        else len(tokenizer.encode(text[offset:]))
    if total > limit:
        return "", [], offset
    while end_line < len(starts):
        cost = _line_tokens(tokenizer, text, starts, end_line)
        if total + cost > limit:
            break
        total += cost
        end_line += 1
    if end_line < len(starts) and allowed is not None:
        # End the suffix where a statement starts, so it holds whole statements.
        i = bisect.bisect_right(allowed, end_line) - 1
        if i >= 0 and allowed[i] > cursor_line:
            end_line = allowed[i]
    end = starts[end_line] if end_line < len(starts) else len(text)
    suffix = text[offset:end]
    ids = tokenizer.encode(suffix)
    while len(ids) > limit and end > offset:
        end = text.rfind("\n", offset, end - 1) + 1
        end = max(end, offset)
        suffix = text[offset:end]
        ids = tokenizer.encode(suffix)
    return suffix, ids, end
