"""Open documents: text, line table, syntax tree and window anchor per URI.

Edits are applied here once, incrementally: the line table is patched, the tree-sitter tree is
edited and reparsed incrementally, and the window anchor follows the text.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ghostfill.completion.context import WindowAnchor, line_starts
from ghostfill.completion.languages import language_for
from ghostfill.completion.syntax import SyntaxDocument
from ghostfill.lsp.positions import UTF16, offset_at, position_at

#: The parse at open (or full sync) blocks the server's loop; past this it goes on in slices
#: while the server is idle (see `GhostfillServer.reparse_when_idle`).
OPEN_PARSE_BUDGET_MS = 100.0


@dataclass
class OpenDocument:
    uri: str
    language_id: str
    version: int
    syntax: SyntaxDocument
    starts: list[int]
    anchor: WindowAnchor = field(default_factory=WindowAnchor)

    @classmethod
    def open(cls, uri: str, language_id: str, version: int, text: str) -> OpenDocument:
        grammar = language_for(language_id, uri)
        return cls(uri, language_id, version,
                   SyntaxDocument(text, grammar, budget_ms=OPEN_PARSE_BUDGET_MS),
                   line_starts(text))

    @property
    def text(self) -> str:
        return self.syntax.text

    @property
    def path(self) -> str:
        return self.uri

    def offset_at(self, line: int, character: int, encoding: str = UTF16) -> int:
        return offset_at(self.text, self.starts, line, character, encoding)

    def position_at(self, offset: int, encoding: str = UTF16) -> tuple[int, int]:
        return position_at(self.text, self.starts, offset, encoding)

    def replace_all(self, text: str, version: int) -> None:
        self.syntax = SyntaxDocument(text, self.syntax_grammar, budget_ms=OPEN_PARSE_BUDGET_MS)
        self.starts = line_starts(text)
        self.anchor = WindowAnchor()
        self.version = version

    @property
    def syntax_grammar(self) -> str | None:
        return language_for(self.language_id, self.uri)

    def edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] by `new_text` (code-point offsets)."""
        # Patch the line table: lines before the edit keep their starts, later ones shift.
        first = bisect.bisect_right(self.starts, start)  # lines starting after `start`
        last = bisect.bisect_right(self.starts, end)
        self.syntax.edit(start, end, new_text, rows=(first - 1, last - 1))
        delta = len(new_text) - (end - start)
        inserted = [start + i + 1 for i, ch in enumerate(new_text) if ch == "\n"]
        tail = [s + delta for s in self.starts[last:]]
        # A new list, never a change in place: snapshots taken for requests share the old one.
        self.starts = self.starts[:first] + inserted + tail
        self.anchor.edited(start)  # the text before a window start changed
