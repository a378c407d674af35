"""One open document and everything the server keeps for it, with one `close()`.

Per-document state used to live in URI-keyed maps spread over the server and the completion
service, each cleaned up by hand on close (and each a leak when one was forgotten). Here it is
one object: the server holds `dict[str, DocumentSession]` and closing a document is dropping
its session.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ghostfill.backends.base import CancelToken
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.lsp.cache import Suggestion
from ghostfill.lsp.documents import OpenDocument

if TYPE_CHECKING:
    from ghostfill.engine import Prepared


@dataclass
class PartialLine:
    """A line the deadline cut, with what `CompletionEngine.resume` needs to finish it."""

    prepared: Prepared
    tokens: list[int]
    prefix: str
    suffix: str
    text: str  # as shown


#: Edits kept for replaying onto a snapshot's tree (`DocumentSession.adopt`): a request is
#: prepared within milliseconds, so a few hundred keystrokes are far more than it can miss.
JOURNAL_EDITS = 256


class DocumentSession:
    def __init__(self, doc: OpenDocument) -> None:
        self.doc = doc
        #: Edits applied since open, and the last `JOURNAL_EDITS` of them (`adopt`).
        self.edits = 0
        self._journal: list[tuple[int, int, str]] = []
        self._journal_start = 0  # the edit number of _journal[0]
        #: The request running for this document (a newer one cancels it).
        self.inflight: CancelToken | None = None
        #: Low-priority work (warm-up, prefetch, a late answer): replaced by the next such
        #: job, cancelled by any request.
        self.background: CancelToken | None = None
        #: The running warm-up's token (a kind of background work), and whether a warm-up was
        #: given up for a request elsewhere and is owed once typing pauses.
        self.warming: CancelToken | None = None
        self.warm_owed = False
        #: Whether the running warm-up reads the short window, and whether one is owed
        #: (read before other documents' full windows: `lsp.warmups`).
        self.warming_short = False
        self.short_owed = False
        #: The prompt ids each of this document's cache slots holds, as far as this server
        #: knows (`lsp.reading`): whether a keystroke's window can be read in its budget.
        self.held: dict[str, list[int]] = {}
        #: The cursor's offset as the client last reported it (`textDocument/didFocus`) or
        #: asked at; None: unknown. Where the window is warmed (`lsp.warmups`).
        self.cursor: int | None = None
        #: When (an ordinal) the user was last in this document (0: never said), and when
        #: its cursor was hinted or it was opened: the order of warm-ups.
        self.active_at = 0
        self.hinted_at = 0
        #: What the running prefetch computes (cache key head), so that it is not restarted.
        self.prefetch_target: tuple[str, str] | None = None
        #: The suggestion on screen (type-through serves its rest).
        self.shown: Suggestion | None = None
        #: The last line cut by the deadline, being resumed.
        self.partial: PartialLine | None = None
        #: Where the client last asked: (version, offset); `ghostfill/suggestionReady` goes
        #: there only.
        self.asked: tuple[int, int] | None = None
        #: Line of the last edit remembered as a cross-file snippet.
        self.snippet_line: int | None = None
        #: The idle reparse scheduled after the last edit.
        self.reparse: asyncio.TimerHandle | None = None
        #: The server's edit count at this document's last edit: a request that arrived
        #: before it asked about an older text (`lsp.protocol.ARRIVED_AT`).
        self.edited_at = 0
        #: Snapshots taken, and the number of the last one adopted (`adopt`).
        self._taken = 0
        self._adopted = 0

    def stale_for(self, arrived_at: int | None) -> bool:
        """Whether the document was edited after a request that arrived at `arrived_at`."""
        return arrived_at is not None and self.edited_at > arrived_at

    @property
    def uri(self) -> str:
        return self.doc.uri

    # -- edits ----------------------------------------------------------------------------
    def edit(self, start: int, end: int, new_text: str) -> None:
        """Replace text[start:end] by `new_text` (code-point offsets)."""
        self.doc.edit(start, end, new_text)
        self.edits += 1
        self._journal.append((start, end, new_text))
        if len(self._journal) > JOURNAL_EDITS:
            del self._journal[0]
            self._journal_start += 1

    def replace_all(self, text: str, version: int) -> None:
        """A full-text sync: no earlier snapshot's tree can be brought up to this text."""
        self.doc.replace_all(text, version)
        self.edits += 1
        self._journal.clear()
        self._journal_start = self.edits

    # -- snapshots ------------------------------------------------------------------------
    def snapshot(self, offset: int, edit: tuple[int, int, str] | None = None) -> CompletionInput:
        """The document at `offset` as a request sees it; with `edit` (start, end, text), as
        it would be after that edit (a completion item applied, a hole cut out, a suggestion
        accepted). Costs a tree copy (microseconds): the parse happens off the loop."""
        doc = self.doc
        anchor = doc.anchor.copy()
        if edit is None:
            # This request parses on and its tree replaces the document's: it takes over a
            # halted parse (`SyntaxDocument.take`).
            syntax = doc.syntax.take()
            self._taken += 1
            return CompletionInput(doc.text, offset, syntax.grammar, syntax, anchor, doc.starts,
                                   uri=doc.uri, version=doc.version, language_id=doc.language_id,
                                   edits=self.edits, taken=self._taken)
        syntax = doc.syntax.fork()  # a what-if text: the document keeps its own parse
        start, end, new_text = edit
        first = bisect.bisect_right(doc.starts, start)
        last = bisect.bisect_right(doc.starts, end)
        syntax.edit(start, end, new_text, rows=(first - 1, last - 1))
        delta = len(new_text) - (end - start)
        starts = (doc.starts[:first] + [start + i + 1 for i, ch in enumerate(new_text)
                                        if ch == "\n"]
                  + [s + delta for s in doc.starts[last:]])
        anchor.edited(start)
        return CompletionInput(syntax.text, offset, syntax.grammar, syntax, anchor, starts,
                               uri=doc.uri, version=doc.version, language_id=doc.language_id,
                               edited=True)

    def adopt(self, source: CompletionInput) -> None:
        """Keep what a request's worker did — the parse, the window anchor — once no worker
        uses the snapshot any more (call it once per snapshot).

        The request parsed its own copy of the tree within the parse budget, perhaps not to
        the end. Edits that came in meanwhile are replayed onto that copy (edits are cheap; the
        parse waits for the next `refresh`, which resumes a halted parse and then catches up),
        and it becomes the document's tree. Without this, a file whose reparse needs more
        than one budget would never be parsed while the user types: each request would start
        again from the document's old tree. The anchor (window start, token cache, head) is
        kept too, moved by the missed edits as the document's own would have been. A snapshot
        older than one adopted already is not adopted: the later one knows where the user is.
        """
        if source.edited or source.edits < self._journal_start:
            return
        if source.taken < self._adopted:
            # A later snapshot was adopted already (a warm-up's prepare that ended after the
            # request that superseded it): its anchor is for where the user is now, and its
            # tree took over this one's parse.
            return
        self._adopted = source.taken
        doc = self.doc
        missed = self._journal[source.edits - self._journal_start:]
        if not doc.syntax.fresh and doc.syntax is not source.syntax:
            syntax = source.syntax
            for start, end, new_text in missed:
                syntax.edit(start, end, new_text)
            if syntax.text == doc.text:  # always, unless a caller broke the rules above
                doc.syntax = syntax
        anchor = source.anchor.copy()
        for start, _, _ in missed:  # as `OpenDocument.edit` moves the document's anchor
            anchor.edited(start)
        doc.anchor = anchor

    def note_read(self, prepared: Prepared, read: int) -> None:
        """`read` ids of `prepared`'s prompt are now in its cache slot."""
        slot = prepared.slot
        if slot is not None:
            self.held[slot] = prepared.prompt.tokens[:read]

    # -- request tokens -------------------------------------------------------------------
    def supersede(self, reason: str) -> CancelToken:
        """A new request cancels the one before it and any background work."""
        for token in (self.inflight, self.background):
            if token is not None:
                token.cancel(reason)
        self.background = None
        self.inflight = CancelToken()
        return self.inflight

    def start_background(self, reason: str) -> CancelToken:
        """A token for background work: replaces the previous such job (cancelling it with
        `reason`), never cancels a request."""
        if self.background is not None:
            self.background.cancel(reason)
        self.background = CancelToken()
        return self.background

    def cancel(self, reason: str) -> None:
        if self.inflight is not None:
            self.inflight.cancel(reason)
            self.inflight = None

    def done(self, token: CancelToken) -> None:
        if self.inflight is token:
            self.inflight = None
        if self.background is token:
            self.background = None

    def close(self) -> None:
        self.cancel("closed")
        if self.background is not None:
            self.background.cancel("closed")
            self.background = None
        if self.reparse is not None:
            self.reparse.cancel()
            self.reparse = None
        self.shown = None
        self.partial = None
