"""Line helpers for the filters: the cursor's line, the lines around it, a cut answer's end.

Filters reason about lines: where the cursor line starts, what follows the cursor on its line,
which lines come before and after it, and how to end an answer that was cut. Indentation is
measured in `completion.lines`, the same way the syntax layer and the stop rules measure it.
"""

from __future__ import annotations

__all__ = [
    "cursor_line_prefix",
    "following_lines",
    "keep_lines",
    "leading_whitespace",
    "line_rest",
    "tail_lines",
    "tidy_end",
]


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
