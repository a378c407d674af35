"""Cut the completion where the model starts to loop.

Small models fall into loops: the same line again and again, the line just above the cursor
written once more, or a pattern that only counts up (`elif n == 2: … elif n == 3: …`) until
the token limit. Two rules, both over whole lines:
  * exact: a block of 1–`MAX_PERIOD` lines (with `MIN_BLOCK_CHARS` or more non-blank
    characters) that repeats the block right before it — which may lie in the prefix — is cut
    at its start;
  * counting: a block whose lines differ from the previous block's only in their numbers may
    occur `MAX_SIMILAR_COPIES` times in a row; the completion is cut before the next copy.
Blocks are compared with their indentation, so `return x` in two nested blocks is no loop.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ghostfill.completion.filters.layout import cursor_line_prefix, keep_lines, tail_lines

if TYPE_CHECKING:
    from ghostfill.completion.postprocess import FilterContext

MAX_PERIOD = 8  # longest repeated block looked for, in lines
MIN_BLOCK_CHARS = 10  # shorter blocks (`}`, `pass`, `break;`) repeat legitimately
MAX_SIMILAR_COPIES = 3  # copies of a counting pattern kept
_NUMBER = re.compile(r"\d+")


def cut_repetition(text: str, ctx: FilterContext) -> str:
    lines = text.split("\n")
    context = tail_lines(ctx.prefix, MAX_PERIOD)
    cursor_prefix = cursor_line_prefix(ctx.prefix)
    # Line 0 of the completion completes the cursor's line; when the user already typed part
    # of that line, repeating the line above is their choice, not a loop.
    seq = [*context, cursor_prefix + lines[0], *lines[1:]]
    first = len(context)  # index in `seq` of the completion's first line
    cut = _exact_repeat(seq, first + 1 if cursor_prefix.strip() else first)
    similar = _counting_repeat([cursor_prefix + lines[0], *lines[1:]])
    if similar is not None and (cut is None or similar + first < cut):
        cut = similar + first
    if cut is None:
        return text
    keep = cut - first
    return keep_lines(lines, keep, ctx.suffix, ctx.before_code) if keep > 0 else ""


def _exact_repeat(seq: list[str], first: int) -> int | None:
    """Index in `seq` (at or after `first`) where a block repeating the one before it starts."""
    stripped = [line.rstrip() for line in seq]
    for start in range(first, len(seq)):
        for period in range(1, MAX_PERIOD + 1):
            if start - period < 0 or start + period > len(seq):
                continue
            block = stripped[start : start + period]
            if block != stripped[start - period : start]:
                continue
            if sum(len(line.replace(" ", "").replace("\t", "")) for line in block) < (
                MIN_BLOCK_CHARS
            ):
                continue
            return start
    return None


def _counting_repeat(lines: list[str]) -> int | None:
    """Line index where the (MAX_SIMILAR_COPIES + 1)-th copy of a counting pattern starts."""
    shapes = [_NUMBER.sub("0", line.rstrip()) for line in lines]
    earliest: int | None = None
    for period in range(1, MAX_PERIOD + 1):
        for start in range(len(lines) - period * (MAX_SIMILAR_COPIES + 1) + 1):
            if earliest is not None and start + MAX_SIMILAR_COPIES * period >= earliest:
                break
            block = shapes[start : start + period]
            if sum(len(line.strip()) for line in block) < MIN_BLOCK_CHARS // 2:
                continue
            if not any(_NUMBER.search(line) for line in lines[start : start + period]):
                continue
            copies = 1
            while (
                start + (copies + 1) * period <= len(lines)
                and shapes[start + copies * period : start + (copies + 1) * period] == block
            ):
                copies += 1
            if copies > MAX_SIMILAR_COPIES:
                earliest = start + MAX_SIMILAR_COPIES * period
                break
    return earliest
