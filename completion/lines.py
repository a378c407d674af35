"""How deep a line is indented, and how a file indents: measures shared by every layer.

The syntax layer (block indentation at the cursor), the stop rules (a line indented less than
the block ends it) and the filters (re-indenting an answer) must measure indentation the same
way, so they all take it from here: tabs expand to the next multiple of `TAB_WIDTH`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import gcd

__all__ = [
    "LANGUAGE_INDENT_STYLES",
    "STYLE_SAMPLE_LINES",
    "TAB_WIDTH",
    "IndentStyle",
    "detect_indent_style",
    "indent_style_for",
    "indent_width",
]

TAB_WIDTH = 4

# Style detection only looks at this many lines on each side of the cursor: the style of a file
# is visible in a screenful, and reading a 10,000-line buffer per keystroke would cost more.
STYLE_SAMPLE_LINES = 400


def indent_width(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += TAB_WIDTH - width % TAB_WIDTH
        else:
            break
    return width


@dataclass(frozen=True)
class IndentStyle:
    """How a file indents: with tabs, or with `unit` spaces per level."""

    use_tabs: bool = False
    unit: int = 4

    def render(self, width: int) -> str:
        """Whitespace that indents to column `width` in this style."""
        if self.use_tabs:
            tabs, spaces = divmod(width, TAB_WIDTH)
            return "\t" * tabs + " " * spaces
        return " " * width


# Styles assumed for a language when the text around the cursor has no indented line yet:
# PEP 8's four spaces for Python, gofmt's tabs for Go. Other languages vary too much to guess.
LANGUAGE_INDENT_STYLES: dict[str, IndentStyle] = {
    "python": IndentStyle(use_tabs=False, unit=4),
    "go": IndentStyle(use_tabs=True, unit=TAB_WIDTH),
}


def indent_style_for(text: str, grammar: str | None) -> IndentStyle | None:
    """The style of `text`, else the language's customary style, else None (unknown)."""
    return detect_indent_style(text) or LANGUAGE_INDENT_STYLES.get(grammar or "")


def detect_indent_style(text: str) -> IndentStyle | None:
    """Guess the indentation style of `text`; None when no line is indented.

    Tabs win when more indented lines start with a tab than with a space. The space unit is the
    most common step of 2, 3 or 4 between consecutive indented lines (alignment continuations
    give odd steps, so a vote beats a gcd); with only steps of 8, it is 8.
    """
    lines = text.split("\n")
    if len(lines) > 2 * STYLE_SAMPLE_LINES:
        lines = lines[:STYLE_SAMPLE_LINES] + lines[-STYLE_SAMPLE_LINES:]
    tab_lines = space_lines = 0
    steps: Counter[int] = Counter()
    previous = 0
    for line in lines:
        if not line.strip():
            continue
        if line[0] == "\t":
            tab_lines += 1
        elif line[0] == " ":
            space_lines += 1
        width = indent_width(line)
        if width > previous:
            steps[width - previous] += 1
        previous = width
    if tab_lines > space_lines:
        return IndentStyle(use_tabs=True, unit=TAB_WIDTH)
    if not space_lines:
        return None
    votes = {unit: steps[unit] for unit in (2, 3, 4) if steps[unit]}
    if votes:
        best = max(votes.values())
        return IndentStyle(unit=min(u for u, v in votes.items() if v == best))
    if steps[8]:
        return IndentStyle(unit=8)
    unit = 0
    for step in steps:
        unit = gcd(unit, step)
    return IndentStyle(unit=unit) if unit >= 2 else None
