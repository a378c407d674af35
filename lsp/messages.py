"""Typed messages of ghostfill's own methods, decoded by pygls like the LSP's own.

pygls structures a request with the class `get_message_type` names for its method; for the
LSP's methods that is lsprotocol's, for these it is ours (`GhostfillProtocol`). Handlers then
get attrs objects with checked fields, and malformed params are answered with InvalidParams
before a handler runs.
"""

from __future__ import annotations

from typing import Any

import attrs
from lsprotocol import types

FIM_METHOD = "ghostfill/fim"
STATS_METHOD = "ghostfill/stats"
DOCUMENT_METHOD = "ghostfill/document"
SUGGESTION_READY = "ghostfill/suggestionReady"
#: workspace/executeCommand commands.
FIM_COMMAND = "ghostfill.fim"
ACCEPTED_COMMAND = "ghostfill.accepted"
#: Copilot's language server's notifications of what the editor did with an item
#: (lsp/feedback.py); other clients already speak them.
DID_SHOW_COMPLETION = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT_COMPLETION = "textDocument/didPartiallyAcceptCompletion"
#: Copilot's language server's notification that the user is now in a document; ghostfill
#: reads two optional fields of its own (see `DidFocusParams`).
DID_FOCUS = "textDocument/didFocus"


@attrs.define
class FimParams:
    """`ghostfill/fim`: fill the hole at `position`, or replace `range` (a selection)."""

    text_document: types.TextDocumentIdentifier
    position: types.Position | None = None
    range: types.Range | None = None

    @property
    def hole(self) -> types.Range:
        if self.range is not None:
            return self.range
        if self.position is None:
            raise ValueError("ghostfill/fim needs a position or a range")
        return types.Range(start=self.position, end=self.position)


@attrs.define
class DocumentParams:
    """`ghostfill/document`: the server's copy of a document."""

    text_document: types.TextDocumentIdentifier


@attrs.define
class SuggestionReadyParams:
    """`ghostfill/suggestionReady` (server to client): what the budget could not wait for is
    ready at `position`; the client asks again (LSP 3.18 has no refresh for inline
    completion)."""

    text_document: types.VersionedTextDocumentIdentifier
    position: types.Position


@attrs.define
class DidShowCompletionParams:
    """`textDocument/didShowCompletion`: the editor displayed `item` (the
    InlineCompletionItem as returned, kept as JSON: only its command's id is read)."""

    item: Any


@attrs.define
class DidPartiallyAcceptCompletionParams:
    """`textDocument/didPartiallyAcceptCompletion`: the user took the first `acceptedLength`
    UTF-16 code units of `item`'s insertText (all taken so far)."""

    item: Any
    accepted_length: int


@attrs.define
class DidFocusParams:
    """`textDocument/didFocus`: the user is in `text_document` (Copilot's shape). ghostfill
    adds `position`, where the cursor is, and `active`: False for a document not in front
    whose cursor is known (a buffer restored with its last position). The server reads that
    document's window at that position into its cache slot before the first keystroke."""

    text_document: types.TextDocumentIdentifier
    position: types.Position | None = None
    active: bool = True


@attrs.define
class DidFocusNotification:
    params: DidFocusParams
    method: str = DID_FOCUS
    jsonrpc: str = "2.0"


@attrs.define
class DidShowCompletionNotification:
    params: DidShowCompletionParams
    method: str = DID_SHOW_COMPLETION
    jsonrpc: str = "2.0"


@attrs.define
class DidPartiallyAcceptCompletionNotification:
    params: DidPartiallyAcceptCompletionParams
    method: str = DID_PARTIALLY_ACCEPT_COMPLETION
    jsonrpc: str = "2.0"


@attrs.define
class FimRequest:
    id: int | str
    params: FimParams
    method: str = FIM_METHOD
    jsonrpc: str = "2.0"


@attrs.define
class DocumentRequest:
    id: int | str
    params: DocumentParams
    method: str = DOCUMENT_METHOD
    jsonrpc: str = "2.0"


@attrs.define
class StatsRequest:
    id: int | str
    params: Any = None
    method: str = STATS_METHOD
    jsonrpc: str = "2.0"


REQUESTS: dict[str, type] = {FIM_METHOD: FimRequest, DOCUMENT_METHOD: DocumentRequest,
                             STATS_METHOD: StatsRequest,
                             DID_SHOW_COMPLETION: DidShowCompletionNotification,
                             DID_PARTIALLY_ACCEPT_COMPLETION:
                                 DidPartiallyAcceptCompletionNotification,
                             DID_FOCUS: DidFocusNotification}
