"""LSP positions <-> code-point offsets, in the negotiated encoding (UTF-16 by default).

Written by hand because pygls' codec works on a list of all lines per call (O(file) per
keystroke); here a line is located through the document's line-start table.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ghostfill.errors import InvalidPosition

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def _units(ch: str, encoding: str) -> int:
    cp = ord(ch)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def line_text(text: str, starts: Sequence[int], line: int) -> str:
    end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    return text[starts[line] : end]


def offset_at(text: str, starts: Sequence[int], line: int, character: int,
              encoding: str = UTF16) -> int:
    """Code-point offset of an LSP position; InvalidPosition if it lies outside the text."""
    if line < 0 or character < 0:
        raise InvalidPosition(f"negative position {line}:{character}")
    if line >= len(starts):
        raise InvalidPosition(
            f"line {line} is past the end of the document ({len(starts)} lines)"
        )
    content = line_text(text, starts, line)
    if content.endswith("\r"):
        content = content[:-1]
    if encoding == UTF32 or content.isascii():
        if character > len(content):
            raise InvalidPosition(
                f"character {character} is past the end of line {line} ({len(content)})"
            )
        return starts[line] + character
    units = 0
    for index, ch in enumerate(content):
        if units >= character:
            if units > character:
                raise InvalidPosition(f"position {line}:{character} splits a character")
            return starts[line] + index
        units += _units(ch, encoding)
    if units == character:
        return starts[line] + len(content)
    raise InvalidPosition(f"character {character} is past the end of line {line} ({units})")


def position_at(text: str, starts: Sequence[int], offset: int,
                encoding: str = UTF16) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = bisect.bisect_right(starts, offset) - 1
    before = text[starts[line] : offset]
    if encoding == UTF32 or before.isascii():
        return line, len(before)
    return line, sum(_units(ch, encoding) for ch in before)
