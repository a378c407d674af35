"""What one request completes: an immutable snapshot of a document at the cursor.

The language server edits documents on its event loop while requests are prepared on a worker
thread (parsing and definition lookups take milliseconds to seconds). A request therefore works
on a snapshot the session made for it: the text (an immutable string), its own fork of the
syntax tree, and its own copy of the window anchor. Nothing the loop does afterwards can change
what the worker reads; the session adopts the fresher tree and anchor afterwards if the
document has not moved on (`DocumentSession.adopt`).

The same type serves the CLI and the benchmarks (`CompletionInput.of_text`), so what is
measured is what the editor gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from ghostfill.completion.context import WindowAnchor, line_starts
from ghostfill.completion.crossfile import Snippet, SnippetStore
from ghostfill.completion.definitions import DefinitionIndex
from ghostfill.completion.edits import Edit, EditHistory, for_request
from ghostfill.completion.languages import language_for
from ghostfill.completion.syntax import SyntaxDocument


@dataclass(frozen=True)
class CompletionInput:
    """The document as the request sees it (after `edit`, for what-if requests)."""

    text: str
    #: The cursor, as a code-point offset into `text`.
    offset: int
    grammar: str | None
    #: This request's own tree: refreshed off the event loop within the parse budget.
    syntax: SyntaxDocument
    #: This request's own copy of the document's window anchor (KV-cache-friendly window
    #: start, token cache, head and snippets decided for it).
    anchor: WindowAnchor
    #: Line start offsets of `text` (never changed in place).
    starts: list[int]
    uri: str = ""
    version: int = 0
    language_id: str | None = None
    #: A what-if text (a completion item applied, a hole cut out, a suggestion accepted):
    #: its tree and anchor are never adopted by the document.
    edited: bool = False
    #: The document's edit count when the snapshot was taken (`DocumentSession.adopt`
    #: replays the edits made since onto the snapshot's tree).
    edits: int = 0
    #: The snapshot's number in its session: a later one's worker knows more (`adopt`).
    taken: int = 0

    @property
    def path(self) -> str:
        return self.uri

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset :]

    @classmethod
    def of_text(cls, text: str, offset: int, *, language_id: str | None = None,
                path: str | None = None, anchor: WindowAnchor | None = None,
                syntax: SyntaxDocument | None = None) -> CompletionInput:
        """A snapshot of a text that no session holds (CLI, benchmarks, tests)."""
        grammar = language_for(language_id, path)
        return cls(text, offset, grammar,
                   syntax if syntax is not None else SyntaxDocument(text, grammar),
                   anchor if anchor is not None else WindowAnchor(), line_starts(text),
                   uri=path or "", language_id=language_id)


@dataclass(frozen=True)
class ContextSources:
    """Where context from outside the document comes from: other open buffers' recent edits
    (the ring's chunks), the workspace's definitions of imported names, and the user's recent
    edits (`history`, and `edits`: its view when the request was made)."""

    snippets: SnippetStore | None = None
    definitions: DefinitionIndex | None = None
    history: EditHistory | None = None
    edits: tuple[Edit, ...] = ()

    def edits_for(self, uri: str, text: str, offset: int, window_text: str = "",
                  starts: list[int] | None = None) -> list[Snippet]:
        """The recent edits a request in `uri` at `offset` may show (`edits.candidates`)."""
        if not self.edits:
            return []
        roots = self.definitions.roots if self.definitions is not None else ()
        return for_request(self.edits, tuple(str(r) for r in roots), uri, text, offset,
                           window_text, starts)

    def edits_stamp(self, uri: str) -> int:
        return self.history.stamp(uri) if self.history is not None else 0
