"""End an insertion before code with its line break.

With the cursor in the leading whitespace of a line that holds code (`FilterContext.before_code`:
column 0 of `    return True`, or anywhere in its indentation), a suggestion is inserted as
whole lines before that line. Accepting `            return False` there as it stands would
give `            return False    return True`; so the answer must end with a line break,
followed by the cursor's own indentation (the part of that line's indentation the cursor
stands after, which the insertion pushes away from the line).

The stop rules and the other filters already cut such an answer at line ends and keep the line
break of its last line (`layout.end_of_lines`). What is left is an answer whose last line has
none: the model ended it (an end-of-text token after a finished statement) or it was cut (the
token limit, in the middle of a statement). The line is kept, with a line break added, when it
adds no parse errors to the window around it, judged against the answer without it
(tree-sitter, as `syntax_validity`); otherwise it goes. Without a grammar it is kept.

This step runs after all the filters (`postprocess`): the filters only cut, and this is the one
place where text is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import cursor_line_prefix
from ghostfill.completion.filters.splice import errors, make_splice

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext


def end_insertion(text: str, ctx: FilterContext) -> str:
    if not ctx.before_code:
        return text
    stripped = text.rstrip()
    if not stripped:
        return ""
    if "\n" not in text[len(stripped) :] and not _last_line_finished(stripped, ctx):
        stripped = stripped[: stripped.rfind("\n") + 1].rstrip()
        if not stripped:
            return ""
    return stripped + "\n" + cursor_line_prefix(ctx.prefix)


def _last_line_finished(text: str, ctx: FilterContext) -> bool:
    """Whether the last line of `text` (which has no line break) reads as a finished line."""
    if ctx.grammar is None:
        return True
    splice = make_splice(ctx.prefix, ctx.suffix, text, before_code=True)
    without = text[: text.rfind("\n") + 1]
    return errors(splice.text, ctx.grammar) <= errors(splice.around(without), ctx.grammar)
