"""Line and indentation helpers shared by the filters and the syntax layer.

Filters reason about lines: where the cursor line starts, what follows the cursor on its line,
how deep a line is indented and whether the file indents with tabs or spaces. Keeping those
answers in one place means every filter measures indentation the same way as the stop rules
(`completion.stopping.indent_width`, tabs expand to the next multiple of 4).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import gcd

from ghostfill.completion.stopping import TAB_WIDTH, indent_width

__all__ = [
    "TAB_WIDTH",
    "IndentStyle",
    "cursor_line_prefix",
    "detect_indent_style",
    "following_lines",
    "indent_style_for",
    "indent_width",
    "keep_lines",
    "leading_whitespace",
    "line_rest",
    "tail_lines",
    "tidy_end",
]

# Style detection only looks at this many lines on each side of the cursor: the style of a file
# is visible in a screenful, and reading a 10,000-line buffer per keystroke would cost more.
STYLE_SAMPLE_LINES = 400


def cursor_line_prefix(prefix: str) -> str:
    """Text between the start of the cursor's line and the cursor."""
    return prefix[prefix.rfind("\n") + 1 :]


def line_rest(suffix: str) -> str:
    """Text after the cursor up to (not including) the end of its line."""
    newline = suffix.find("\n")
    return suffix if newline < 0 else suffix[:newline]


def following_lines(suffix: str, count: int) -> list[str]:
    """The first `count` lines after the cursor's line (the suffix may be a whole file, so
    this reads no further than it must)."""
    lines: list[str] = []
    newline = suffix.find("\n")
    while newline >= 0 and len(lines) < count:
        end = suffix.find("\n", newline + 1)
        lines.append(suffix[newline + 1 : end if end >= 0 else len(suffix)])
        newline = end
    return lines


def tail_lines(prefix: str, count: int) -> list[str]:
    """The last `count` complete lines before the cursor's line, oldest first (the prefix may
    be a whole file, so this reads no further back than it must)."""
    lines: list[str] = []
    end = prefix.rfind("\n")
    while end >= 0 and len(lines) < count:
        start = prefix.rfind("\n", 0, end) + 1
        lines.append(prefix[start:end])
        end = start - 1
    lines.reverse()
    return lines


def tidy_end(text: str, suffix: str) -> str:
    """The end of a cut completion, tidied for the text that follows the cursor. Always a
    prefix of `text`.

    At the end of a line, trailing whitespace is noise and goes. Before text on the cursor's
    line it may be meaningful: spaces separate the completion from that text (`+1 █555`), and
    a line break plus indentation puts it on a line of its own (`{█}`); those stay (one line
    break at most, and no spaces when that text starts with a space itself).
    """
    rest = line_rest(suffix)
    stripped = text.rstrip()
    if not rest.strip() or not stripped:
        return stripped
    tail = text[len(stripped) :]
    if "\n" in tail:
        return text if tail.count("\n") == 1 else text[: len(stripped) + tail.index("\n") + 1]
    return stripped if rest[0] in " \t" else text


def keep_lines(lines: list[str], count: int, suffix: str) -> str:
    """The first `count` of a completion's `lines` as text to insert, its end tidied by
    `tidy_end`; when lines were cut off before text on the cursor's line, the line break (and
    indentation) of the first cut line is kept so that text lands on a line of its own."""
    kept = "\n".join(lines[:count])
    if count < len(lines) and line_rest(suffix).strip():
        kept += "\n" + leading_whitespace(lines[count])
    return tidy_end(kept, suffix)


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


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
