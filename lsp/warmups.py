"""Which open document's window is read into its cache slot next, and at which position.

One warm-up runs at a time (the model reads one thing at a time, and a half-read window is
worth less than a whole one): first the document the user is in, then the others in the
order their cursors became known or they were opened. The position is the cursor the client
last reported for the document (`textDocument/didFocus`) or asked a completion at; without
one, the end of the document, where new code is most often written.

Why a position matters: a prefix-only window ends at the cursor and starts ~1,500 tokens
before it, so a window read at the end of a long file shares nothing with one in its middle.

With a short window (`context.short_window_tokens`), the documents the user is not in get
theirs read before anyone's full window but that of the document in front: on a CPU a full
window takes seconds, a short one a fraction of that, so every open file can be typed in
(from its short window) sooner; full windows follow, and replace the short ones as each is
read (`lsp.reading`).
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


def gave_way(session: DocumentSession) -> None:
    """`session`'s running warm-up was stopped for something more urgent: owed again."""
    if session.warming_short:
        session.short_owed = True
    else:
        session.warm_owed = True


def next_to_warm(sessions: Iterable[DocumentSession]) -> tuple[DocumentSession, bool] | None:
    """The owed warm-up to run next, and whether it reads the short window: the full window
    of the document the user is in first, then the short windows of the others, then the
    others' full windows; each kind in the order the documents were last active, then
    hinted or opened."""
    ready = [s for s in sessions if s.background is None and s.doc.text]
    if not ready:
        return None
    front = max(ready, key=lambda s: s.active_at)
    jobs = []
    for s in ready:
        order = (-s.active_at, s.hinted_at)
        if s.warm_owed and s is front and s.active_at:
            jobs.append(((0, *order), s, False))
        elif s.short_owed:
            jobs.append(((1, *order), s, True))
        elif s.warm_owed:
            jobs.append(((2, *order), s, False))
    if not jobs:
        return None
    _, session, short = min(jobs, key=lambda job: job[0])
    return session, short
