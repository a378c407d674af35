"""Line helpers for the filters: the cursor's line, the lines around it, a cut answer's end.

Filters reason about lines: where the cursor line starts, what follows the cursor on its line,
which lines come before and after it, and how to end an answer that was cut. Indentation is
measured in `completion.lines`, the same way the syntax layer and the stop rules measure it.
"""

from __future__ import annotations

__all__ = [
    "cursor_line_prefix",
    "end_of_lines",
    "following_lines",
    "is_before_code",
    "keep_lines",
    "leading_whitespace",
    "line_rest",
    "tail_lines",
    "tidy_end",
]


def cursor_line_prefix(prefix: str) -> str:
    """Text between the start of the cursor's line and the cursor."""
    return prefix[prefix.rfind("\n") + 1 :]


def is_before_code(prefix: str, suffix: str) -> bool:
    """Whether the cursor stands in the leading whitespace of a line that holds code (column 0
    of `    return True`, or anywhere in its indentation): a suggestion there is inserted as
    whole lines before that line, which becomes the suffix."""
    return not cursor_line_prefix(prefix).strip() and bool(line_rest(suffix).strip())


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


def tidy_end(text: str, suffix: str, before_code: bool = False) -> str:
    """The end of a cut completion, tidied for the text that follows the cursor. Always a
    prefix of `text`.

    Before code (`before_code`), the completion is whole lines: see `end_of_lines`.

    At the end of a line, trailing whitespace is noise and goes. Before text on the cursor's
    line it may be meaningful: spaces separate the completion from that text (`+1 █555`), and
    a line break plus indentation puts it on a line of its own (`{█}`); those stay (one line
    break at most, and no spaces when that text starts with a space itself).
    """
    if before_code:
        return end_of_lines(text)
    rest = line_rest(suffix)
    stripped = text.rstrip()
    if not rest.strip() or not stripped:
        return stripped
    tail = text[len(stripped) :]
    if "\n" in tail:
        return text if tail.count("\n") == 1 else text[: len(stripped) + tail.index("\n") + 1]
    return stripped if rest[0] in " \t" else text


def keep_lines(lines: list[str], count: int, suffix: str, before_code: bool = False) -> str:
    """The first `count` of a completion's `lines` as text to insert, its end tidied by
    `tidy_end`; when lines were cut off before text on the cursor's line, the line break (and
    indentation) of the first cut line is kept so that text lands on a line of its own.
    Before code (`before_code`) the kept lines end with their line break and nothing else:
    the line after them keeps its own indentation."""
    kept = "\n".join(lines[:count])
    if before_code:
        return end_of_lines(kept + "\n" if count < len(lines) else kept)
    if count < len(lines) and line_rest(suffix).strip():
        kept += "\n" + leading_whitespace(lines[count])
    return tidy_end(kept, suffix)


def end_of_lines(text: str) -> str:
    """`text` cut to end with its last line that holds something, and with that line's line
    break if it has one: blank lines and indentation after it go. Always a prefix of `text`.

    This is the end of an insertion before code: whole lines, each ending with its line break
    (a last line without one is either unfinished or was ended by the model; the pipeline's
    last step decides, see `filters.insertion`)."""
    stripped = text.rstrip()
    if not stripped:
        return ""
    newline = text.find("\n", len(stripped))
    return text[: newline + 1] if newline >= 0 else stripped


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
