"""Stop the completion where the cursor's block ends.

A model asked for the rest of a block keeps going: it closes the function and starts the next
one. The answer ends at the first of:
  * single-line mode: the end of the first line (or of the next line, when the cursor ends a
    non-blank line and the model starts with a line break, as after `def f():`); before code,
    the end of the first statement (a block header's block, when the code after the cursor
    is not its body: `stopping.statement_length`);
  * a blank line (multi-line mode; the blank line is dropped);
  * a line indented less than the cursor's block (from a blank cursor line: less than the
    first line written): dropped, unless it is a closing line (`}`, `)`, `end`…), which is
    kept as the block's last line;
  * a line whose brackets close the block the cursor is in (tree-sitter tokens, so brackets
    in strings do not count): kept as the last line.
Trailing whitespace is dropped, except that when the cursor's line continues with closing
brackets (`{█}`) a line break stays, so those brackets land on a line of their own
(`layout.keep_lines`). Before code on the cursor's line (`FilterContext.before_code`) the answer
is whole lines: each kept line keeps its line break, the last one too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import (
    cursor_line_prefix,
    keep_lines,
    line_rest,
    tidy_end,
)
from ghostfill.completion.filters.splice import (
    CLOSERS,
    OPENERS,
    bracket_tokens,
    make_splice,
    open_depth,
)
from ghostfill.completion.lines import indent_width
from ghostfill.completion.stopping import statement_length

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

# Lines that close a block in keyword languages (Lua, Ruby, shell).
_CLOSING_WORDS = ("end", "fi", "done", "esac")


def cut_at_block_end(text: str, ctx: FilterContext) -> str:
    cursor_prefix = cursor_line_prefix(ctx.prefix)
    lines = text.split("\n")
    if ctx.before_code and not ctx.multiline:
        return keep_lines(lines, _statement_line_count(lines, ctx), ctx.suffix, True)
    if not ctx.multiline:
        return tidy_end(_single_line(lines, cursor_prefix), ctx.suffix)
    return keep_lines(lines, _kept_line_count(text, lines, ctx), ctx.suffix, ctx.before_code)


def _statement_line_count(lines: list[str], ctx: FilterContext) -> int:
    """Before code, single-line: the lines of the first statement (the first line, and the
    block it opens when the line after the cursor is not that block's body), as the stop rule
    counts them (`stopping.statement_length`)."""
    cursor_prefix = cursor_line_prefix(ctx.prefix)
    if not lines[0].strip():
        return 0
    following = indent_width(cursor_prefix + line_rest(ctx.suffix))
    length = statement_length([cursor_prefix + lines[0], *lines[1:]], following)
    return len(lines) if length is None else length


def _single_line(lines: list[str], cursor_prefix: str) -> str:
    if lines[0].strip() or not cursor_prefix.strip() or len(lines) == 1:
        return lines[0]
    # The cursor ends a line such as `def f():`; the one line to suggest is the next one.
    return lines[0] + "\n" + lines[1]


def _kept_line_count(text: str, lines: list[str], ctx: FilterContext) -> int:
    depths = _depth_after_each_line(text, lines, ctx)
    start_depth = depths[0] if depths else 0
    block_indent = ctx.block_indent
    if not cursor_line_prefix(ctx.prefix).strip():
        # From a blank line the first line written shows the depth of the block being
        # written (the cursor's own column, often 0, does not).
        first = next((line for line in lines if line.strip()), "")
        block_indent = max(block_indent, indent_width(first))
    for i, line in enumerate(lines):
        if i > 0:
            if not line.strip():
                return i
            if indent_width(line) < block_indent:
                return i + 1 if _is_closing_line(line) else i
        if depths and depths[i + 1] < start_depth:
            return i + 1
    return len(lines)


def _depth_after_each_line(text: str, lines: list[str], ctx: FilterContext) -> list[int]:
    """Bracket depth before the completion (openers left open on the cursor's line), then after
    each completion line; a line that brings it below the first value closes the block."""
    splice = make_splice(ctx.prefix, ctx.suffix, text, ctx.before_code)
    full = splice.text
    cursor_line_tokens = bracket_tokens(full, ctx.grammar, splice.line_start, splice.start)
    tokens = bracket_tokens(full, ctx.grammar, splice.start, splice.end)
    if not tokens:
        return []
    depth = open_depth(cursor_line_tokens)
    depths = [depth]
    line_end = splice.start
    index = 0
    for line in lines:
        line_end += len(line) + 1
        while index < len(tokens) and tokens[index][0] < line_end:
            kind = tokens[index][1]
            depth += 1 if kind in OPENERS else -1 if kind in CLOSERS else 0
            index += 1
        depths.append(depth)
    return depths


def _is_closing_line(line: str) -> bool:
    stripped = line.strip()
    if stripped[:1] in CLOSERS:
        return True
    word = stripped.split(None, 1)[0].rstrip(";")
    return word in _CLOSING_WORDS
