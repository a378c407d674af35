"""Balance the completion's closing brackets against the text after the cursor.

A closer in the completion that closes nothing opened inside it closes something before the
cursor — which the suffix may already close (`foo(█)` answered with `a, b)`, or a function's
`}` that is also the next line). For each such closer (and each closer of the wrong kind) the
completion may be cut just before it; of the uncut completion and these cuts the filter keeps
the one whose window — prefix lines, completion, suffix lines — has the fewest closers that
close nothing or the wrong kind (ties go to the longest). So a closer stays when the suffix
lacks it, and goes when prefix line + completion + suffix would otherwise have one too many.

Brackets are tree-sitter tokens of the spliced window, so brackets inside strings and comments
are ignored. When the cut falls at the start of a line and nothing follows the cursor on its
line, the whole line goes (the closer is on the next line of the file already).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import line_rest, tidy_end
from ghostfill.completion.filters.splice import (
    bracket_tokens,
    imbalance,
    make_splice,
    unmatched_closers,
)

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

MAX_CANDIDATES = 8  # cut points tried, nearest the end first


def drop_unmatched_closers(text: str, ctx: FilterContext) -> str:
    splice = make_splice(ctx.prefix, ctx.suffix, text, ctx.before_code)
    full = splice.text
    tokens = bracket_tokens(full, ctx.grammar)
    inside = [t for t in tokens if splice.start <= t[0] < splice.end]
    loose = unmatched_closers(inside)
    if not loose:
        return text
    before = [t for t in tokens if t[0] < splice.start]
    after = [t for t in tokens if t[0] >= splice.end]
    best_text, best_score = text, imbalance(tokens)
    for offset, _ in reversed(loose[-MAX_CANDIDATES:]):
        shorter = _cut_before(text, offset - splice.start, ctx)
        kept = [t for t in inside if t[0] - splice.start < len(shorter)]
        score = imbalance([*before, *kept, *after])
        if score < best_score:
            best_text, best_score = shorter, score
    return best_text


def _cut_before(text: str, cut: int, ctx: FilterContext) -> str:
    line_start = text.rfind("\n", 0, cut) + 1
    if line_start > 0 and not text[line_start:cut].strip() and not line_rest(ctx.suffix).strip():
        return text[: line_start - 1].rstrip()
    return tidy_end(text[:cut], ctx.suffix, ctx.before_code)
