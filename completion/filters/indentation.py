"""Normalise the completion's indentation to the file's style.

Models trained on mixed code indent with their own habits: tabs in a file of spaces, two spaces
in a file of four, or the cursor line's indentation written a second time because the prompt's
trailing whitespace was trimmed. The other filters compare indentation widths, so this one runs
first and is the only filter that rewrites text rather than cutting it.

Rules, in order:
  1. Re-indented first line: when the cursor stands on a blank line at column `w` and the
     completion's first line starts with at least `w` columns of whitespace, the model wrote the
     line's full indentation; the first `w` columns are dropped.
  2. Tabs vs spaces: leading tabs become one indent unit of spaces in a space-indented file;
     leading spaces become tabs (by the completion's own unit) in a tab-indented file.
  3. Unit: in a space-indented file with a known unit of 2 or 4, a completion whose lines step
     by the other of the two is rescaled around the cursor line's indentation.
Only leading whitespace changes; the file's style is guessed from the lines near the cursor.
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import cursor_line_prefix, leading_whitespace
from ghostfill.completion.lines import TAB_WIDTH, IndentStyle, indent_style_for, indent_width

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

# Characters of context on each side of the cursor used to guess the file's style.
STYLE_CONTEXT_CHARS = 8_000
# Unit pairs (model, file) that are rescaled; anything else is too ambiguous (a step of 8 may be
# two levels of 4, odd steps are alignment).
RESCALABLE_UNITS = {(2, 4), (4, 2)}


def normalize_indentation(text: str, ctx: FilterContext) -> str:
    if "\n" not in text and cursor_line_prefix(ctx.prefix).strip():
        return text
    style = indent_style_for(
        ctx.prefix[-STYLE_CONTEXT_CHARS:] + ctx.suffix[:STYLE_CONTEXT_CHARS], ctx.grammar
    )
    cursor_prefix = cursor_line_prefix(ctx.prefix)
    lines = text.split("\n")
    blank_cursor_line = not cursor_prefix.strip()
    if blank_cursor_line:
        lines[0] = _drop_repeated_indent(lines[0], indent_width(cursor_prefix))
    if style is None:
        return "\n".join(lines)
    # Lines whose leading whitespace is the completion's own (line 0 only on a blank line).
    owned = range(0 if blank_cursor_line else 1, len(lines))
    space_unit = _space_unit(lines) or TAB_WIDTH
    for i in owned:
        lines[i] = _convert_whitespace(lines[i], style, space_unit)
    if not style.use_tabs and style.unit in (2, 4):
        _rescale(lines, owned, style.unit, cursor_prefix, blank_cursor_line)
    return "\n".join(lines)


def _drop_repeated_indent(line: str, cursor_width: int) -> str:
    lead = leading_whitespace(line)
    if cursor_width == 0 or not lead or not line.strip():
        return line
    width = indent_width(lead)
    if width < cursor_width:
        return line
    # Keep whatever goes beyond the cursor's column, rendered like the model wrote it.
    extra = width - cursor_width
    kept = "\t" * (extra // TAB_WIDTH) + " " * (extra % TAB_WIDTH) if "\t" in lead else " " * extra
    return kept + line[len(lead) :]


def _convert_whitespace(line: str, style: IndentStyle, space_unit: int) -> str:
    """Leading whitespace in the file's style; `space_unit` is the completion's own number of
    spaces per level (a level becomes one tab)."""
    lead = leading_whitespace(line)
    if not lead or not line.strip():
        return line
    if style.use_tabs and " " in lead:
        width = lead.count("\t") * TAB_WIDTH + lead.count(" ") * TAB_WIDTH // space_unit
        return style.render(width) + line[len(lead) :]
    if not style.use_tabs and "\t" in lead:
        width = lead.count("\t") * style.unit + lead.count(" ")
        return " " * width + line[len(lead) :]
    return line


def _space_unit(lines: list[str]) -> int:
    """Indent unit of space-indented lines in the completion (gcd of their widths)."""
    unit = 0
    for line in lines:
        lead = leading_whitespace(line)
        if lead and "\t" not in lead and line.strip():
            unit = gcd(unit, len(lead))
    return unit


def _rescale(
    lines: list[str], owned: range, file_unit: int, cursor_prefix: str, blank_cursor_line: bool
) -> None:
    base = (
        indent_width(cursor_prefix + lines[0]) if blank_cursor_line else indent_width(cursor_prefix)
    )
    widths = {i: indent_width(lines[i]) for i in owned if lines[i].strip()}
    if blank_cursor_line:
        widths.pop(0, None)
    offsets = [w - base for w in widths.values() if w != base]
    if not offsets:
        return
    model_unit = 0
    for offset in offsets:
        model_unit = gcd(model_unit, abs(offset))
    # Every step a multiple of the smallest one: levels, not alignment.
    if model_unit != min(abs(offset) for offset in offsets):
        return
    if (model_unit, file_unit) not in RESCALABLE_UNITS:
        return
    for i, width in widths.items():
        new_width = max(0, base + (width - base) * file_unit // model_unit)
        lines[i] = " " * new_width + lines[i].lstrip(" ")
