"""One open document and everything the server keeps for it, with one `close()`.

Per-document state used to live in URI-keyed maps spread over the server and the completion
service, each cleaned up by hand on close (and each a leak when one was forgotten). Here it is
one object: the server holds `dict[str, DocumentSession]` and closing a document is dropping
its session.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, replace
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


class DocumentSession:
    def __init__(self, doc: OpenDocument) -> None:
        self.doc = doc
        #: The request running for this document (a newer one cancels it).
        self.inflight: CancelToken | None = None
        #: Low-priority work (warm-up, prefetch, a late answer): replaced by the next such
        #: job, cancelled by any request.
        self.background: CancelToken | None = None
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

    def stale_for(self, arrived_at: int | None) -> bool:
        """Whether the document was edited after a request that arrived at `arrived_at`."""
        return arrived_at is not None and self.edited_at > arrived_at

    @property
    def uri(self) -> str:
        return self.doc.uri

    # -- snapshots ------------------------------------------------------------------------
    def snapshot(self, offset: int, edit: tuple[int, int, str] | None = None) -> CompletionInput:
        """The document at `offset` as a request sees it; with `edit` (start, end, text), as
        it would be after that edit (a completion item applied, a hole cut out, a suggestion
        accepted). Costs a tree copy (microseconds): the parse happens off the loop."""
        doc = self.doc
        syntax = doc.syntax.fork()
        anchor = replace(doc.anchor)
        if edit is None:
            return CompletionInput(doc.text, offset, syntax.grammar, syntax, anchor, doc.starts,
                                   uri=doc.uri, version=doc.version, language_id=doc.language_id)
        start, end, new_text = edit
        first = bisect.bisect_right(doc.starts, start)
        last = bisect.bisect_right(doc.starts, end)
        syntax.edit(start, end, new_text, rows=(first - 1, last - 1))
        delta = len(new_text) - (end - start)
        starts = (doc.starts[:first] + [start + i + 1 for i, ch in enumerate(new_text)
                                        if ch == "\n"]
                  + [s + delta for s in doc.starts[last:]])
        if anchor.start is not None and start < anchor.start:
            anchor.start = None
        return CompletionInput(syntax.text, offset, syntax.grammar, syntax, anchor, starts,
                               uri=doc.uri, version=doc.version, language_id=doc.language_id,
                               edited=True)

    def adopt(self, source: CompletionInput) -> None:
        """Keep what a request's worker learned — the tree it parsed, the window anchor it
        moved — if the document is still the text the snapshot was made of. Copies: the
        snapshot's own may still be read by a worker, and the document's are edited."""
        if source.edited or source.text is not self.doc.text:
            return
        if source.syntax.fresh and not self.doc.syntax.fresh:
            # Only a finished parse: a halted one lives in the snapshot's parser, and the
            # document's own (idle reparse) may be further along.
            self.doc.syntax = source.syntax.fork()
        self.doc.anchor = replace(source.anchor)

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
