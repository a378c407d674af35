"""Stop rules checked after every generated token.

Stopping early is where latency is won: a single-line suggestion ends at the newline, a block
ends at the first line indented less than the cursor's block or at a blank line, and nothing is
generated past a line that repeats the text after the cursor.

Before code (the cursor in the leading whitespace of a line that holds code) the answer is
inserted as whole lines before that line: every cut falls right after a line break, and that
line itself is the suffix, so generating it again ends the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ghostfill.completion.lines import indent_width

#: A word at the very end of text cut by the deadline, which may be unfinished.
_PARTIAL_WORD = re.compile(r"\w+$")
#: Text that ends a line opening a block (Python's `:`, the braces of the others).
_OPENERS = (":", "{")
#: How a line goes on with the statement of the block header above it, at its depth:
#: `else:`, `} else {`, `except E:`, a closing brace.
_CLAUSE = re.compile(r"(?:else|elif|except|finally|catch|end)\b|[}\])]")
#: Line comments: a comment that ends with `:` opens nothing.
_COMMENTS = ("#", "//", "--", ";")


def opens_block(line: str) -> bool:
    """Whether `line` ends with a block opener (`if x:`, `for (…) {`, `} else {`); comments
    do not count."""
    code = line.strip()
    return code.endswith(_OPENERS) and not code.startswith(_COMMENTS)


def statement_length(lines: list[str], next_indent: int) -> int | None:
    """How many of `lines` (complete lines, the first one whole, cursor prefix included) make
    the first statement, or None while the block that statement opens is still open.

    A line that opens no block is a statement by itself; so is a block header when the code
    after the insertion (indented `next_indent`) is deeper, and so that header's body. Any
    other header opens a block that the answer must write: the statement runs through the
    lines deeper than the header and through the clauses that continue it at the header's
    depth (`else:`, `} else {`, `except E:`); a closing line (`}`) there is its last line, and
    any other line (or a blank one) is the next statement.
    """
    header = lines[0]
    depth = indent_width(header)
    if not opens_block(header) or next_indent > depth:
        return 1
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            return i
        width = indent_width(line)
        if width > depth:
            continue
        if width == depth and _CLAUSE.match(line.strip()):
            if opens_block(line):
                continue  # `else:`, `} else {`: the statement goes on
            return i + 1  # `}`: its last line
        return i
    return None


@dataclass
class LineStopper:
    """Stop rules for one request.

    `multiline`: whether the answer may span lines. `block_indent`: indentation of the block the
    cursor is in; a later non-blank line indented less ends the answer. `cursor_line_prefix`: the
    text before the cursor on its line, which the first generated line continues.
    `next_line`: the first non-blank line after the cursor; generating it again means the answer
    has run into the suffix. `before_code`: the cursor stands in the leading whitespace of a
    line that holds code; the answer is whole lines inserted before it (`next_line` is then
    that line, indentation included).
    """

    multiline: bool
    block_indent: int = 0
    cursor_line_prefix: str = ""
    next_line: str = ""
    max_lines: int = 64
    #: Text after the cursor on its line (an auto-closed `}`): a block answer then ends with
    #: its line break, so that text lands on a line of its own.
    cursor_line_rest: str = ""
    #: Text generated before this generation resumed (a line cut by the deadline, continued):
    #: the rules judge it and the new text together; cuts are returned in the new text.
    generated: str = ""
    before_code: bool = False

    def check(self, text: str) -> int | None:
        if self.generated:
            cut = self._check(self.generated + text)
            return None if cut is None else max(0, cut - len(self.generated))
        return self._check(text)

    def _check(self, text: str) -> int | None:
        newline = text.find("\n")
        if newline < 0:
            return None
        if self.before_code:
            return self._check_lines(text)
        if not self.multiline:
            if text[:newline].strip() or self.cursor_line_prefix.strip() == "":
                return newline
            # The cursor ends a line (`def f():|`): the one line to suggest is the next one.
            following = text.find("\n", newline + 1)
            if following < 0:
                return None
            if not text[newline + 1 : following].strip():
                return newline
            return following
        # Only complete lines are judged; the line being generated may still change.
        start = 0
        lines_seen = 0
        block_indent = self.block_indent
        blank_cursor_line = not self.cursor_line_prefix.strip()
        while True:
            end = text.find("\n", start)
            if end < 0:
                return None
            line = text[start:end]
            full = self.cursor_line_prefix + line if start == 0 else line
            lines_seen += 1
            if blank_cursor_line and line.strip():
                # From a blank line (column 0 of a hole) the first line written shows the
                # depth of the block being written: the cursor's own indentation does not.
                block_indent = max(block_indent, indent_width(full))
                blank_cursor_line = False
            if start > 0:
                cut = start if self.cursor_line_rest.strip() else start - 1
                if not line.strip():
                    # First blank line ends a multi-line answer (drop the blank line too).
                    return cut
                if indent_width(full) < block_indent:
                    return cut
                # The suffix's next line, at its own depth (the same words one level deeper
                # are the body being written, not the suffix).
                if self.next_line.strip() and line.rstrip() == self.next_line.rstrip():
                    return cut
            if lines_seen >= self.max_lines:
                return end
            start = end + 1

    def _check_lines(self, text: str) -> int | None:
        """Before code: the rules of a block, each cut right after a line break. A blank line,
        a line indented less than the block (the first line written sets its depth, as from a
        blank line) or the line the answer goes before ends it. A single-line answer is one
        statement (`statement_length`): its first line, and the block it opens when the line
        it goes before is not that block's body."""
        start = 0
        lines: list[str] = []
        block_indent = self.block_indent
        while True:
            end = text.find("\n", start)
            if end < 0:
                return None
            line = text[start:end]
            full = self.cursor_line_prefix + line if start == 0 else line
            if not line.strip():
                return start
            if self.next_line.strip() and full.rstrip() == self.next_line.rstrip():
                return start
            if start == 0:
                block_indent = max(block_indent, indent_width(full))
            elif indent_width(full) < block_indent:
                return start
            lines.append(full)
            if not self.multiline:
                length = statement_length(lines, indent_width(self.next_line))
                if length is not None:
                    # The statement ended with the line before this one, or with this one.
                    return start if length < len(lines) else end + 1
            if len(lines) >= self.max_lines:
                return end + 1
            start = end + 1

    def cut_at_deadline(self, text: str) -> str:
        if self.generated:
            kept = self._cut_at_deadline(self.generated + text)
            return kept[len(self.generated):] if len(kept) > len(self.generated) else ""
        return self._cut_at_deadline(text)

    def _cut_at_deadline(self, text: str) -> str:
        """What to show when time is up: the whole lines of a block answer; otherwise (one
        line, or no line finished yet) the line so far up to its last whole word.

        A half line is shown rather than nothing, as ghost text that the user can already
        type through; the server then finishes the line in the background and the next
        keystroke shows the rest (see `CompletionService.prefetch_after`). A trailing word
        may be cut in the middle, so it is dropped: `self.comp` shows as `self.`.
        Before code only whole lines are shown (half a line accepted there would join the
        code after it).
        """
        cut = self._check(text)
        if cut is not None:
            text = text[:cut]
        if self.before_code:
            newline = text.rfind("\n")
            return text[: newline + 1] if newline >= 0 and text[:newline].strip() else ""
        newline = text.rfind("\n")
        if self.multiline and newline >= 0 and text[:newline].strip():
            return text[:newline]
        if not self.multiline and text.strip() and cut is not None:
            return text  # the line is complete
        if text.startswith("\n") and self.cursor_line_prefix.strip():
            lead, line = "\n", text[1:]  # the line after `def f():`
        else:
            lead, line = "", text
        if "\n" in line:
            line = line[: line.find("\n")]
        kept = _PARTIAL_WORD.sub("", line).rstrip()
        return lead + kept if kept.strip() else ""
