"""One parsed buffer per open document: its text and tree-sitter tree, kept in sync.

The questions asked of the tree live in their own modules: where a window may be cut
(`boundaries`), which definitions enclose the cursor and whether a suggestion may span lines
(`scopes`); which grammar a buffer has and its node types in `languages`, and how a parse is
run and held to a time budget in `parsing`.

Offsets in this module's API are code-point offsets into `SyntaxDocument.text`; tree-sitter
works in UTF-8 bytes, and the conversion is done here so no caller has to think about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from tree_sitter import Point, Tree
from tree_sitter_language_pack import get_parser

from ghostfill.completion.boundaries import BoundaryRows, shift_span
from ghostfill.completion.languages import loadable
from ghostfill.completion.parsing import Deadline, parse_until

__all__ = ["SyntaxDocument"]


class SyntaxDocument:
    """Text and tree-sitter tree of one buffer, kept in sync edit by edit.

    `edit()` patches the text and tells the tree what changed (bytes and points), but does not
    reparse: the parse happens once, when a request asks (`refresh`), so a burst of keystrokes
    between two requests costs one incremental parse, and keystrokes answered from the cache
    cost none. An incremental parse is usually about a millisecond on a 10,000-line file, but an
    edit that breaks Python's indentation structure can cost 10-20 ms (error recovery re-reads
    the rest of the file); `refresh(budget_ms)` gives up at the budget and leaves the edited
    tree in place. Its node positions are still right (tree-sitter shifts them on `Tree.edit`);
    only the structure inside the edited lines is old. The server completes the parse when the
    buffer goes idle. `version` counts edits (a give-up is remembered per version).
    """

    def __init__(self, text: str, grammar: str | None, budget_ms: float | None = None) -> None:
        """`budget_ms` bounds the first parse too: most files parse in tens of milliseconds,
        but some inputs take tree-sitter seconds (hundreds of KB of comments after an
        indented block); the parse then goes on in later `refresh` calls, and until it ends
        there is no tree (callers fall back to line boundaries)."""
        self.grammar = grammar if grammar and loadable(grammar) else None
        self.version = 0
        self._text = text
        self._bytes = text.encode("utf-8", "surrogatepass")
        self._ascii = len(self._bytes) == len(text)
        # Own parser: a halted parse waits in it to be resumed (see `refresh`).
        # The pack types grammar names as a Literal; ours are plain strings, known at run time.
        self._parser = get_parser(self.grammar) if self.grammar else None  # type: ignore[arg-type]
        self._tree: Tree | None = None
        self._dirty = False  # edits since the last parse
        self._pending: _PendingParse | None = None
        self._gave_up: int | None = None  # version whose budgeted parse ran out of time
        if self._parser is not None:
            self._tree = self._parse(self._bytes, None, Deadline(budget_ms))
            if self._tree is None:
                self._pending = _PendingParse(self._bytes, None, [])
                self._dirty = True
        #: Boundary lines, shifted on every edit (kept by `boundaries.boundary_lines`).
        self.boundary_rows = BoundaryRows()

    @property
    def text(self) -> str:
        return self._text

    @property
    def source(self) -> bytes:
        """The text as UTF-8, the form tree-sitter offsets refer to."""
        return self._bytes

    @property
    def tree(self) -> Tree | None:
        """The parse tree, reparsed first if edited (unless a budgeted parse of this version
        already gave up: then the edited tree, with correct positions, is what there is)."""
        if self._dirty and self._gave_up != self.version:
            self.refresh()
        return self._tree

    @property
    def fresh(self) -> bool:
        """True when the tree describes the current text."""
        return not self._dirty

    def refresh(self, budget_ms: float | None = None) -> bool:
        """Reparse incrementally if edited; within `budget_ms` when given. True when fresh.

        A budgeted parse that runs out of time is kept, not thrown away: tree-sitter resumes
        a halted parse when given the same input again, so the next call continues parsing
        that version's text (kept in `_pending`) and then catches up with the edits made since.
        Each call thus adds progress, and a burst of expensive edits costs each request at
        most the budget. A resumed parse of text without syntax errors gives the tree an
        uninterrupted parse gives; with errors, tree-sitter's error recovery may choose
        differently after a halt (a few percent of halts in a random check while writing
        this), a different but equally valid reading of broken code
        (tests/test_parse_budget.py states both). After a budgeted call gave up,
        `tree` does not retry at that version (the caller chose the budget; the stale tree is
        the answer until the next call).
        """
        if not self._dirty or self._parser is None:
            return True
        deadline = Deadline(budget_ms)
        pending = self._pending
        if pending is not None:
            done = self._parse(pending.source, pending.old, deadline)
            if done is None:
                return False
            self._pending = None
            changed = [(r.start_point.row, r.end_point.row)
                       for r in pending.old.changed_ranges(done)] if pending.old else []
            for kwargs, rows in pending.later:
                done.edit(**kwargs)
                changed = [shift_span(span, rows) for span in changed]
            self.boundary_rows.reparsed(changed)
            self._tree = done
            if not pending.later:
                self._dirty = False
                self._gave_up = None
                return True
        old = self._tree
        if old is None:  # a fork made while the first parse was pending: start it here
            self._pending = _PendingParse(self._bytes, None, [])
            return self.refresh(deadline.left_ms())
        new = self._parse(self._bytes, old, deadline)
        if new is None:
            # Keep `old` untouched for the resumed parse; later edits go to a copy.
            self._pending = _PendingParse(self._bytes, old, [])
            self._tree = old.copy()
            return False
        self.boundary_rows.reparsed(
            [(r.start_point.row, r.end_point.row) for r in old.changed_ranges(new)])
        self._tree = new
        self._dirty = False
        self._gave_up = None
        return True

    def _parse(self, source: bytes, old: Tree | None, deadline: Deadline) -> Tree | None:
        """Parse `source` against `old`; None when halted at `deadline` (resumable)."""
        assert self._parser is not None
        tree = parse_until(self._parser, source, old, deadline)
        if tree is None:
            self._gave_up = self.version
        return tree

    def byte_offset(self, offset: int) -> int:
        """UTF-8 byte offset of code-point `offset`."""
        offset = max(0, min(offset, len(self._text)))
        if self._ascii:
            return offset
        return len(self._text[:offset].encode("utf-8", "surrogatepass"))

    def point(self, offset: int, row: int | None = None) -> Point:
        """Tree-sitter point (row, byte column) of code-point `offset`; `row` if known."""
        offset = max(0, min(offset, len(self._text)))
        if row is None:
            row = self._text.count("\n", 0, offset)
        line_start = self._text.rfind("\n", 0, offset) + 1
        column = offset - line_start
        if not self._ascii:
            column = len(self._text[line_start:offset].encode("utf-8", "surrogatepass"))
        return Point(row, column)

    def edit(self, start: int, end: int, new_text: str,
             rows: tuple[int, int] | None = None) -> None:
        """Replace `text[start:end]` by `new_text`; the reparse waits for `refresh`.

        `rows` are the lines of `start` and `end` when the caller has a line table (counting
        newlines up to the edit is a tenth of a millisecond in a 10,000-line file).
        """
        if not 0 <= start <= end <= len(self._text):
            raise ValueError(f"edit range {start}..{end} outside 0..{len(self._text)}")
        start_byte, old_end_byte = self.byte_offset(start), self.byte_offset(end)
        start_point = self.point(start, rows[0] if rows else None)
        old_end_point = self.point(end, rows[1] if rows else None)
        new_bytes = new_text.encode("utf-8", "surrogatepass")
        self._text = self._text[:start] + new_text + self._text[end:]
        self._bytes = self._bytes[:start_byte] + new_bytes + self._bytes[old_end_byte:]
        self._ascii = self._ascii and len(new_bytes) == len(new_text)
        self.version += 1
        if self._parser is None:
            return
        newlines = new_text.count("\n")
        if newlines:
            tail = new_bytes[new_bytes.rfind(b"\n") + 1 :]
            new_end_point = Point(start_point.row + newlines, len(tail))
        else:
            new_end_point = Point(start_point.row, start_point.column + len(new_bytes))
        kwargs: _TreeEdit = {
            "start_byte": start_byte,
            "old_end_byte": old_end_byte,
            "new_end_byte": start_byte + len(new_bytes),
            "start_point": start_point,
            "old_end_point": old_end_point,
            "new_end_point": new_end_point,
        }
        if self._tree is not None:
            self._tree.edit(**kwargs)
        self._dirty = True
        edit = (start_point.row, old_end_point.row, new_end_point.row)
        if self._pending is not None:
            self._pending.later.append((kwargs, edit))
        self.boundary_rows.edited(edit)

    def fork(self) -> SyntaxDocument:
        """An independent copy, for a what-if edit (the text after accepting a suggestion)
        that costs an incremental parse instead of a full one."""
        twin = object.__new__(SyntaxDocument)
        twin.__dict__.update(self.__dict__)
        # The pack types grammar names as a Literal; ours are plain strings, known at run time.
        twin._parser = get_parser(self.grammar) if self.grammar else None  # type: ignore[arg-type]
        twin._tree = self._tree.copy() if self._tree is not None else None
        twin._pending = None  # a halted parse lives in our parser; the twin starts its own
        twin.boundary_rows = self.boundary_rows.copy()
        return twin

    def take(self) -> SyntaxDocument:
        """A copy that takes over this document's parse in progress: a halted parse resumes
        in the copy's parser, and this one starts any parse anew.

        For a request that parses its copy off the event loop and whose copy then replaces
        this one (`DocumentSession.adopt`): with `fork`, each request would start the halted
        parse over and, for a file whose reparse takes longer than one budget, never finish.
        """
        twin = self.fork()
        pending = self._pending
        if pending is not None and self.grammar:
            # The pack types grammar names as a Literal; ours are plain strings, known at run time.
            twin._parser, self._parser = self._parser, get_parser(self.grammar)  # type: ignore[arg-type]
            twin._pending = _PendingParse(pending.source, pending.old, list(pending.later))
            self._pending = None
        return twin

    def line_count(self) -> int:
        return self._text.count("\n") + 1


class _TreeEdit(TypedDict):
    """The arguments of `Tree.edit` for one text edit."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: Point
    old_end_point: Point
    new_end_point: Point


@dataclass
class _PendingParse:
    """A parse halted at its budget: the text and old tree it needs to resume, and the edits
    made since (to replay on its result)."""

    source: bytes
    old: Tree | None  # None: the first parse
    later: list[tuple[_TreeEdit, tuple[int, int, int]]]
