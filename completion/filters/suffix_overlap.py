"""Trim the end of the completion where it writes again what follows the cursor.

Fill-in-the-middle models see the suffix yet often re-type its start: `x)` when `)` already
follows the cursor, or the closing `}` line that is the next line of the file. Two rules:
  * running into the next lines: when the cursor's line is blank after the cursor, a
    completion line equal to the next non-blank line of the file (indentation included) ends
    the completion before it — if that line has `MIN_LINE_CHARS` or more non-blank characters,
    or everything from it to the completion's end repeats the following lines;
  * re-typing the rest of the line: when the completion ends with the start of the text after
    the cursor on its line, that overlap is trimmed — if it is made of closing punctuation, or
    is the whole rest of the line, or is at least `MIN_TEXT_OVERLAP` characters long. Closing
    brackets in the overlap must close nothing opened inside the completion (`bar(a)` before
    `)` keeps its parenthesis).
Before code on the cursor's line (`FilterContext.before_code`) the completion is inserted as
whole lines before that line, so that line is the first of the next lines: the first rule
applies with it (the cursor's indentation and the rest of its line), and the cut keeps the line
break of the last line kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import (
    cursor_line_prefix,
    end_of_lines,
    following_lines,
    line_rest,
    tidy_end,
)
from ghostfill.completion.filters.splice import (
    CLOSERS,
    bracket_tokens,
    make_splice,
    unmatched_closers,
)

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

MIN_LINE_CHARS = 4  # shorter lines (`}`, `end`, `});`) only count at the completion's end
MIN_TEXT_OVERLAP = 6  # overlaps of ordinary text this long are re-typed text
NEXT_LINES = 8  # lines after the cursor's line compared with the completion
_PUNCTUATION = frozenset(")]}>;,.:'\"` \t")


def trim_suffix_overlap(text: str, ctx: FilterContext) -> str:
    rest = line_rest(ctx.suffix)
    if ctx.before_code:
        line = (cursor_line_prefix(ctx.prefix) + rest).rstrip()
        return _trim_next_lines(text, ctx, [line, *_following_lines(ctx.suffix)])
    if rest.strip():
        return _trim_rest_of_line(text, rest, ctx)
    return _trim_next_lines(text, ctx, _following_lines(ctx.suffix))


def _trim_next_lines(text: str, ctx: FilterContext, following: list[str]) -> str:
    if not following:
        return text
    cursor_prefix = cursor_line_prefix(ctx.prefix)
    lines = text.split("\n")
    first = 0 if not cursor_prefix.strip() else 1
    for i in range(first, len(lines)):
        full = (cursor_prefix + lines[i] if i == 0 else lines[i]).rstrip()
        if not full.strip() or not _same_line(full, following[0]):
            continue
        tail = [line for line in lines[i + 1 :] if line.strip()]
        rest_matches = len(tail) < len(following) and all(
            _same_line(line, following[j + 1]) for j, line in enumerate(tail)
        )
        if len(full.strip()) >= MIN_LINE_CHARS or rest_matches:
            if ctx.before_code:
                return end_of_lines("\n".join(lines[:i]) + "\n") if i else ""
            return "\n".join(lines[:i]).rstrip() if i else ""
    return text


def _same_line(a: str, b: str) -> bool:
    """Equal, indentation included: the same text at another depth is another statement
    (`return x` inside a block the completion writes, before the `return x` that follows it),
    and cutting there leaves a block without its body."""
    return a.rstrip() == b.rstrip()


def _following_lines(suffix: str) -> list[str]:
    """Non-blank lines after the cursor's line, rstripped, at most NEXT_LINES."""
    lines = following_lines(suffix, NEXT_LINES * 2)
    return [line.rstrip() for line in lines if line.strip()][:NEXT_LINES]


def _trim_rest_of_line(text: str, rest: str, ctx: FilterContext) -> str:
    body = text.rstrip()
    target = rest.rstrip()
    candidates = [target, target.lstrip()] if target != target.lstrip() else [target]
    for wanted in candidates:
        for k in range(min(len(body), len(wanted)), 0, -1):
            overlap = wanted[:k]
            if not body.endswith(overlap) or not overlap.strip():
                continue
            if _acceptable(body, overlap, k == len(wanted), ctx):
                return tidy_end(body[: len(body) - k], ctx.suffix)
    return text


def _acceptable(body: str, overlap: str, whole_rest: bool, ctx: FilterContext) -> bool:
    punctuation = set(overlap) <= _PUNCTUATION
    if not (
        punctuation
        or (whole_rest and len(overlap.strip()) >= 2)
        or len(overlap) >= MIN_TEXT_OVERLAP
    ):
        return False
    start = len(body) - len(overlap)
    if any(ch in CLOSERS for ch in overlap):
        splice = make_splice(ctx.prefix, ctx.suffix, body)
        tokens = bracket_tokens(splice.text, ctx.grammar, splice.start, splice.end)
        loose = {offset - splice.start for offset, _ in unmatched_closers(tokens)}
        closers = [start + i for i, ch in enumerate(overlap) if ch in CLOSERS]
        # A closer of the overlap that is code (not in a string) must close nothing the
        # completion opened.
        code = {offset - splice.start for offset, _ in tokens}
        if any(c in code and c not in loose for c in closers):
            return False
    # A quote in the overlap must close nothing the completion opened.
    return not any(quote in overlap and body.count(quote) % 2 == 0 for quote in "\"'`")
