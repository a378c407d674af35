"""Drop completions that would show nothing new.

Whitespace alone is no suggestion, and a completion that is the rest of the cursor's line (or
the start of it) would only duplicate text already there. Runs last, so it also catches
completions that the other filters trimmed to nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import line_rest

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext


def drop_empty(text: str, ctx: FilterContext) -> str:
    stripped = text.strip()
    if not stripped:
        return ""
    rest = line_rest(ctx.suffix).strip()
    if rest and "\n" not in stripped and rest.startswith(stripped):
        return ""
    return text
