"""Keep the longest whole-line cut of the completion that adds no parse errors.

A completion stopped by the token limit or the deadline often ends half-way through a
statement; one that went wrong earlier leaves a broken line in the middle. If splicing the
completion between prefix and suffix gives tree-sitter more ERROR/MISSING nodes than prefix and
suffix alone, shorter cuts at line ends are tried, longest first, and the first that adds none
is kept. If none does, the completion stays as it was: the user may be mid-edit, and an error
count is a coarse judge.

Cost is bounded: only a window of lines around the cursor is parsed (see `splice`), single-line
completions are never re-cut, cuts that keep the first error inside the completion are skipped
unparsed, and at most `MAX_ATTEMPTS` cuts are parsed within `TIME_BUDGET_S` (a parse of the
window costs 0.2–3 ms; broken text, whose error recovery is slow, costs the most).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import keep_lines
from ghostfill.completion.filters.splice import errors, first_error_offset, make_splice

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

MAX_ATTEMPTS = 12  # shorter cuts parsed at most
TIME_BUDGET_S = 0.015  # and no new attempt once this much time has gone


def keep_valid_syntax(text: str, ctx: FilterContext) -> str:
    if ctx.grammar is None or "\n" not in text.strip("\n"):
        return text
    started = time.perf_counter()
    splice = make_splice(ctx.prefix, ctx.suffix, text, ctx.before_code)
    baseline = errors(splice.head + splice.tail, ctx.grammar)
    if errors(splice.text, ctx.grammar) <= baseline:
        return text
    # Tree-sitter reports an error at or after its cause, so a cut that still holds the first
    # error inside the completion would still hold the error: such cuts are not parsed.
    first_error = first_error_offset(splice.text, ctx.grammar, splice.start)
    limit = len(text) if first_error is None else first_error - splice.start
    lines = text.split("\n")
    attempts = 0
    for count in range(len(lines) - 1, 0, -1):
        if len("\n".join(lines[:count])) > limit or not "".join(lines[:count]).strip():
            continue
        if attempts == MAX_ATTEMPTS or time.perf_counter() - started > TIME_BUDGET_S:
            break
        attempts += 1
        shorter = keep_lines(lines, count, ctx.suffix, ctx.before_code)
        if errors(splice.around(shorter), ctx.grammar) <= baseline:
            return shorter
    return text
