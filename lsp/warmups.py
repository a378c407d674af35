"""Which open document's window is read into its cache slot next, and at which position.

One warm-up runs at a time (the model reads one thing at a time, and a half-read window is
worth less than a whole one): first the document the user is in, then the others in the
order their cursors became known or they were opened. The position is the cursor the client
last reported for the document (`textDocument/didFocus`) or asked a completion at; without
one, the end of the document, where new code is most often written.

Why a position matters: a prefix-only window ends at the cursor and starts ~1,500 tokens
before it, so a window read at the end of a long file shares nothing with one in its middle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from ghostfill.lsp.session import DocumentSession

_order = itertools.count(1)


def noted(session: DocumentSession, offset: int | None, *, active: bool) -> None:
    """The client said where the cursor is in `session` (`offset`, None: it did not say),
    and whether the user is in that document now (`active`)."""
    if offset is not None:
        session.cursor = offset
    if active:
        session.active_at = next(_order)
    else:
        session.hinted_at = next(_order)


def opened(session: DocumentSession) -> None:
    session.hinted_at = next(_order)


def warm_offset(session: DocumentSession) -> int:
    """Where to read `session`'s window: its last known cursor, else the end."""
    length = len(session.doc.text)
    return length if session.cursor is None else max(0, min(session.cursor, length))


def next_to_warm(sessions: Iterable[DocumentSession]) -> DocumentSession | None:
    """The owed warm-up to run next: the most recently active document first, then the
    others in the order they were hinted or opened."""
    owed = [s for s in sessions if s.warm_owed and s.background is None and s.doc.text]
    if not owed:
        return None
    return min(owed, key=lambda s: (-s.active_at, s.hinted_at))
