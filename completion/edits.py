"""Recent edits as context: a short history of what the user changed, per workspace folder.

Copilot, Continue and Zed show the model the user's latest edits: the next line often repeats
what was just done elsewhere (a parameter added to a function and now to its callers, a rename
carried through, a field added to a class and now to its constructor). The server feeds every
`didChange` to `EditHistory.record` before the document applies it; the history keeps, per
workspace folder, the last `MAX_EDITS` regions the user changed (younger than `MAX_AGE_S`),
each with the lines as they were before the first keystroke there and as they are now, and a
few unchanged lines around them.

Keystrokes at one place coalesce: a change that touches or borders (within `GAP_LINES`) a
region already recorded in the same file grows that region instead of starting a new one, and
moves it to the front. Changes above a region move its line numbers. A full-text sync of a
file forgets its regions (their lines mean nothing in the new text).

A request takes a snapshot (`view`: an immutable tuple, safe to read on the prepare worker) and
asks for candidates (`candidates`): never the region the cursor is in (the prefix holds it),
never an edit undone (its lines as they were), never one of the current file whose new lines
the window already shows; ranked by recency, identifier overlap with the lines around the
cursor, and the same file before others. They compete with ring chunks and definitions for the
cross-file budget (`crossfile.select_snippets`), counted with the model's tokenizer.
"""

from __future__ import annotations

import bisect
import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ghostfill.completion.crossfile import Snippet, similarity, words_of
from ghostfill.completion.definitions import fs_path

#: Regions kept per workspace folder, and how long.
MAX_EDITS = 8
MAX_AGE_S = 900.0
#: A change this many lines or fewer from a region of the same file joins it.
GAP_LINES = 1
#: Unchanged lines shown above and below an edit.
CONTEXT_LINES = 2
#: Lines of an edit shown at most (its new lines; the removed ones count too in "diff" style).
MAX_SHOWN_LINES = 14
#: Lines a region may hold and still grow (see `EditHistory.record`).
MAX_REGION_LINES = 200
#: Edits offered to one request at most (the budget decides how many fit).
MAX_CANDIDATES = 3
#: How an edit is shown: "after" (its lines as they are now, under a comment line), "plain"
#: (the same without the comment line) or "diff" (also the removed lines, as comments).
#: `GHOSTFILL_EDIT_STYLE` overrides it, for the benchmark that compares them
#: (`bench/edit_replay.py`).
STYLE = os.environ.get("GHOSTFILL_EDIT_STYLE", "after")


@dataclass(frozen=True)
class Edit:
    """One region of a file the user changed, as it is now."""

    uri: str
    workspace: str
    #: First line of the region in the document's current text (0-based).
    line: int
    before: tuple[str, ...]
    after: tuple[str, ...]
    #: Unchanged lines just above and below the region (as they were at the last change).
    above: tuple[str, ...]
    below: tuple[str, ...]
    #: When the region was last changed (monotonic seconds), and a counter that orders edits
    #: changed at the same instant.
    at: float
    seq: int
    comment: str = "#"
    label: str = ""

    @property
    def end(self) -> int:
        """The line after the region (exclusive)."""
        return self.line + len(self.after)

    @property
    def changed(self) -> bool:
        return self.before != self.after


class EditHistory:
    """What the user changed lately, per workspace folder (see the module's docstring)."""

    def __init__(self, max_edits: int = MAX_EDITS, max_age_s: float = MAX_AGE_S) -> None:
        self.max_edits = max_edits
        self.max_age_s = max_age_s
        #: Newest first, all workspaces (bounded per workspace in `_trim`).
        self._edits: list[Edit] = []
        self._seq = 0
        #: Changes recorded in all files, and per file: `stamp` says whether files other than
        #: one changed since a request decided its context.
        self._total = 0
        self._by_uri: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._edits)

    # -- feeding -------------------------------------------------------------------------
    def record(self, uri: str, text: str, starts: Sequence[int], start: int, end: int,
               new_text: str, *, workspace: str = "", comment: str | None = "#",
               label: str = "", now: float | None = None) -> None:
        """The document `uri`, now `text` (line starts `starts`), is about to have
        text[start:end] replaced by `new_text` (code-point offsets)."""
        if start == end and not new_text:
            return
        now = time.monotonic() if now is None else now
        self._total += 1
        self._by_uri[uri] = self._by_uri.get(uri, 0) + 1
        first = bisect.bisect_right(starts, start) - 1
        last = bisect.bisect_right(starts, end) - 1
        ours = [e for e in self._edits if e.uri == uri]
        near = [e for e in ours if e.line - GAP_LINES <= last and first <= e.end - 1 + GAP_LINES]
        # A region grown past `MAX_REGION_LINES` (a large paste) is not grown further, which
        # would cost its whole size per keystroke: changed again, it is forgotten.
        big = [e for e in near if max(len(e.after), len(e.before)) > MAX_REGION_LINES]
        if big:
            gone = {id(e) for e in big}
            self._edits = [e for e in self._edits if id(e) not in gone]
            near = [e for e in near if id(e) not in gone]
        lo = min([first] + [e.line for e in near])
        hi = max([last + 1] + [e.end for e in near])  # exclusive, in the current text
        lines_now = _lines(text, starts, lo, hi)
        # The region as it was before any change here: recorded lines where an edit covers
        # them, the text's own lines elsewhere.
        before: list[str] = []
        row = lo
        for e in sorted(near, key=lambda e: e.line):
            before += lines_now[row - lo : e.line - lo]
            before += e.before
            row = e.end
        before += lines_now[row - lo : hi - lo]
        region_start = starts[lo]
        region_end = starts[hi] - 1 if hi < len(starts) else len(text)
        after = (text[region_start:start] + new_text + text[end:region_end]).split("\n")
        delta = len(after) - (hi - lo)
        above = _lines(text, starts, max(0, lo - CONTEXT_LINES), lo)
        below = _lines(text, starts, hi, min(len(starts), hi + CONTEXT_LINES))
        self._seq += 1
        edit = Edit(uri, workspace, lo, tuple(before), tuple(after), tuple(above), tuple(below),
                    now, self._seq, comment or "#", label or near[0].label if near else label)
        merged = {id(e) for e in near}
        kept: list[Edit] = []
        for e in self._edits:
            if id(e) in merged:
                continue
            if e.uri == uri and e.line >= hi:
                e = replace(e, line=e.line + delta)
            kept.append(e)
        self._edits = [edit, *kept]
        self._trim(now)

    def forget(self, uri: str) -> None:
        """A full-text sync: the file's regions no longer match its lines."""
        self._edits = [e for e in self._edits if e.uri != uri]

    def _trim(self, now: float) -> None:
        counts: dict[str, int] = {}
        kept: list[Edit] = []
        for e in self._edits:
            if now - e.at > self.max_age_s:
                continue
            counts[e.workspace] = counts.get(e.workspace, 0) + 1
            if counts[e.workspace] <= self.max_edits:
                kept.append(e)
        self._edits = kept

    # -- reading -------------------------------------------------------------------------
    def stamp(self, uri: str) -> int:
        """Changes recorded in files other than `uri`: when it moves, a request in `uri` has
        new edits to consider (its own typing does not move it)."""
        return self._total - self._by_uri.get(uri, 0)

    def view(self, now: float | None = None) -> tuple[Edit, ...]:
        """The edits now, newest first (immutable: a request reads it off the loop)."""
        now = time.monotonic() if now is None else now
        return tuple(e for e in self._edits if now - e.at <= self.max_age_s)


def candidates(edits: Sequence[Edit], uri: str, workspace: str, cursor_line: int,
               window_text: str, cursor_text: str, *, style: str | None = None,
               limit: int = MAX_CANDIDATES) -> list[Snippet]:
    """The edits a request in `uri` (cursor on `cursor_line`) may show, best first, as
    snippets (`Snippet.kind == "edit"`, text ready to render).

    Left out: edits of other workspace folders, the region the cursor is in (or borders),
    edits undone, and edits of this file whose new lines `window_text` already shows (the
    model sees them there; only the "diff" style, which also shows what they replaced, keeps
    them)."""
    near = words_of(cursor_text)
    style = style or STYLE
    scored: list[tuple[float, Snippet]] = []
    ordered = sorted(edits, key=lambda e: -e.seq)
    for age, e in enumerate(ordered):
        if e.workspace != workspace or not e.changed:
            continue
        same = e.uri == uri
        if same and e.line - GAP_LINES <= cursor_line <= e.end - 1 + GAP_LINES:
            continue  # the cursor's own edit: the prefix holds it
        text = render(e, style)
        new = "\n".join(e.after).strip()
        if same and (not new or new in window_text) and style != "diff":
            continue
        words = words_of("\n".join(e.after + e.before))
        score = 1.0 / (1 + age) + similarity(words, near) + (0.25 if same else 0.0)
        scored.append((score, Snippet(e.label or e.uri, e.line, text, words, kind="edit",
                                      rank=0.0)))
    scored.sort(key=lambda item: -item[0])
    return [replace(s, rank=score) for score, s in scored[:limit]]


def render(edit: Edit, style: str = "after") -> str:
    """An edit as the prompt shows it: a comment line, then the lines around and in it as they
    are now; in "diff" style the removed lines first, as comments."""
    mark = edit.comment
    after, before = edit.after, edit.before
    # Lines the region starts or ends with unchanged are context, not change.
    most = min(len(after), len(before))
    head = 0
    while head < most and after[head] == before[head]:
        head += 1
    tail = 0
    while tail < most - head and after[-1 - tail] == before[-1 - tail]:
        tail += 1
    new = after[head : len(after) - tail]
    old = before[head : len(before) - tail]
    lines = [] if style == "plain" else [f"{mark} recent edit"]
    removed = [line for line in old if line.strip()]
    if style == "diff" and removed:
        lines = [f"{mark} recent edit, replaced:",
                 *(f"{mark} {line}" for line in removed[: MAX_SHOWN_LINES // 2]),
                 f"{mark} with:"]
    above = [*edit.above, *after[:head]][-CONTEXT_LINES:]
    below = [*after[len(after) - tail :], *edit.below][:CONTEXT_LINES]
    return "\n".join([*lines, *above, *new[:MAX_SHOWN_LINES], *below]).strip("\n")


def for_request(edits: Sequence[Edit], roots: tuple[str, ...], uri: str, text: str,
                offset: int, window_text: str = "",
                starts: Sequence[int] | None = None) -> list[Snippet]:
    """`candidates` for a request in `uri` (its text, the cursor at `offset`; `starts`: the
    text's line starts, which spare counting lines on every keystroke)."""
    workspace, _ = place(uri, roots)
    cursor_line = bisect.bisect_right(starts, offset) - 1 if starts is not None \
        else text.count("\n", 0, offset)
    cursor_text = "\n".join(text[:offset].rsplit("\n", 12)[-12:])
    return candidates(edits, uri, workspace, cursor_line, window_text, cursor_text)


@functools.lru_cache(maxsize=256)
def place(uri: str, roots: tuple[str, ...]) -> tuple[str, str]:
    """The workspace folder of `uri` among `roots` (the innermost; "" if none) and the file's
    path as the prompt names it (relative to that folder, else the file's name)."""
    path = fs_path(uri)
    if path is None:
        return "", uri.rsplit("/", 1)[-1]
    try:
        real = path.resolve()
    except OSError:
        real = path
    best: Path | None = None
    for root in roots:
        base = Path(root)
        if (real.is_relative_to(base) or path.is_relative_to(base)) and \
                (best is None or len(base.parts) > len(best.parts)):
            best = base
    if best is None:
        return "", path.name
    inside = real if real.is_relative_to(best) else path
    return str(best), inside.relative_to(best).as_posix()


def _lines(text: str, starts: Sequence[int], lo: int, hi: int) -> list[str]:
    if hi <= lo:
        return []
    end = starts[hi] - 1 if hi < len(starts) else len(text)
    return text[starts[lo] : end].split("\n")
