"""Post-processing: the raw model text → the text shown as ghost text.

A pipeline of small named filters (one module each in `completion/filters/`), applied in the
fixed order of `FILTERS`:

  1. indentation      — normalise leading whitespace to the file's style. First, because the
                        filters after it compare indentation widths; the only filter that
                        rewrites instead of cutting.
  2. block_end        — cut at the end of the cursor's block (dedent, closing bracket, blank
                        line; the first line in single-line mode). Early, because it removes
                        most of an over-long answer and every later filter then works on less.
  3. repetition       — cut where the model loops (repeated lines, counting patterns).
  4. brackets         — cut before closers the suffix already supplies, judged by bracket
                        balance over the whole window (prefix lines, completion, suffix).
  5. suffix_overlap   — trim the end that re-types the text after the cursor (`;`, `) {`,
                        `</h1>`, the next line of the file). After brackets, so it also trims
                        an overlap that the bracket cut uncovers (`a.)` before `.`).
  6. syntax_validity  — keep the longest whole-line cut that adds no parse errors. Late,
                        because it parses (bounded, but the costliest filter) and should judge
                        the completion the others have already cleaned.
  7. empty            — drop what is left if it shows nothing new. Last, to catch completions
                        that earlier filters trimmed away.

Every filter after `indentation` only cuts: the result is always a prefix of the normalised
model text (trailing whitespace may go), or empty. Filters can be switched off by name for
ablations (`disabled`).

After the filters, `postprocess` ends an insertion before code (the cursor in the leading
whitespace of a line that holds code, `FilterContext.before_code`) with its line break, so that
accepting it never joins its last line and that code (`filters/insertion.py`; the only step
that adds text, so it is not one of the cutting filters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ghostfill.completion.filters.block_end import cut_at_block_end
from ghostfill.completion.filters.brackets import drop_unmatched_closers
from ghostfill.completion.filters.dangling_block import drop_dangling_block
from ghostfill.completion.filters.empty import drop_empty
from ghostfill.completion.filters.indentation import normalize_indentation
from ghostfill.completion.filters.insertion import end_insertion
from ghostfill.completion.filters.repetition import cut_repetition
from ghostfill.completion.filters.suffix_overlap import trim_suffix_overlap
from ghostfill.completion.filters.syntax_validity import keep_valid_syntax

__all__ = ["FILTERS", "FILTER_NAMES", "FilterContext", "postprocess", "run_filters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterContext:
    prefix: str  # full document text before the cursor
    suffix: str  # full document text after the cursor
    grammar: str | None  # tree-sitter grammar name (from syntax.language_for), None = plain text
    multiline: bool  # single- vs multi-line decision already taken
    block_indent: int  # indent width of the cursor's block
    #: The cursor stands in the leading whitespace of a line that holds code: the answer is
    #: inserted as whole lines before that line (`layout.is_before_code`).
    before_code: bool = False


Filter = Callable[[str, FilterContext], str]

FILTERS: list[tuple[str, Filter]] = [
    ("indentation", normalize_indentation),
    ("block_end", cut_at_block_end),
    ("repetition", cut_repetition),
    ("brackets", drop_unmatched_closers),
    ("suffix_overlap", trim_suffix_overlap),
    ("syntax_validity", keep_valid_syntax),
    ("dangling_block", drop_dangling_block),
    ("empty", drop_empty),
]

FILTER_NAMES: frozenset[str] = frozenset(name for name, _ in FILTERS)


def postprocess(text: str, ctx: FilterContext, disabled: frozenset[str] = frozenset()) -> str:
    """Run the enabled filters in order. A filter that fails is skipped (and logged): a bug in
    one filter must cost a worse suggestion, not the suggestion. An insertion before code
    then gets its line break (`end_insertion`)."""
    text = run_filters(text, ctx, disabled, strict=False)
    try:
        return end_insertion(text, ctx)
    except Exception:
        log.exception("ending the insertion failed; the answer is dropped")
        return ""


def run_filters(
    text: str, ctx: FilterContext, disabled: frozenset[str] = frozenset(), strict: bool = True
) -> str:
    """`postprocess` with a choice: `strict` lets a failing filter raise (for tests)."""
    unknown = disabled - FILTER_NAMES
    if unknown:
        log.warning("unknown filters ignored: %s", ", ".join(sorted(unknown)))
    for name, apply in FILTERS:
        if name in disabled:
            continue
        if not text:
            break
        try:
            text = apply(text, ctx)
        except Exception:
            if strict:
                raise
            log.exception("filter %s failed; skipped", name)
    return text
