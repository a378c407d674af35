"""Acceptance feedback: which suggestions the user saw, took in full or in part, or typed over.

Every inline completion item the server returns carries an id, the last argument of its
`ghostfill.accepted` command (Copilot's language server puts its own id in the same command's
arguments; clients that speak its protocol echo the whole item back). Three messages come back
with the item:

- `textDocument/didShowCompletion` {item}: the editor displayed it;
- `textDocument/didPartiallyAcceptCompletion` {item, acceptedLength}: the user took its first
  `acceptedLength` characters (UTF-16 code units of its insertText, as in VS Code; the total so
  far, not the latest part);
- `workspace/executeCommand ghostfill.accepted`: the user took all of it.

Counted per language (the document's languageId), for this server (`ghostfill/stats`) and in
the local file (`ghostfill.usage`): suggestions shown, accepted in full, partly accepted,
rejected (`lsp.rejections`), and characters shown and kept. A suggestion's characters are kept
up to the furthest point accepted in it; when the editor asks again while the user types
through a suggestion, the shorter rest it gets is the same suggestion (`_continues`), so it is
neither counted twice nor its typed characters lost.

Clients that never send didShowCompletion get the same counts and rejection memory, less
exactly: there the first item of an answer counts as shown when it is returned. VS Code is one:
its hooks for shown and partly accepted items (`handleDidShowCompletionItem`,
`handleDidPartiallyAcceptCompletionItem`) are proposed API, which VS Code calls only for
extensions allowed proposed API, never for one installed from the Marketplace.
"""

from __future__ import annotations

import itertools
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types

from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.messages import ACCEPTED_COMMAND
from ghostfill.lsp.rejections import Place, Rejections
from ghostfill.usage import COUNTERS, UsageWriter

#: Items remembered for the notifications that refer to them.
MAX_ITEMS = 512


@dataclass
class _Suggestion:
    """One suggestion as the user sees it, across the items that showed it."""

    language: str
    length: int  # characters (code points) of its first item's insertText
    shown: bool = False
    kept: int = 0
    accepted: bool = False
    partial: bool = False


@dataclass
class _Item:
    id: str
    uri: str
    place: Place
    offset: int
    text: str
    suggestion: _Suggestion
    #: Characters of the suggestion before this item's text (typed through before it came).
    consumed: int = 0


def utf16_to_chars(text: str, units: int) -> int:
    """Code points of `text` that fill its first `units` UTF-16 code units."""
    count = 0
    for ch in text:
        units -= 2 if ord(ch) > 0xFFFF else 1
        if units < 0:
            break
        count += 1
    return count


def item_id(item: Any) -> str | None:
    """The id in an item echoed back by a client (a dict), or in a command's arguments."""
    if isinstance(item, dict):
        command = item.get("command")
        arguments = command.get("arguments") if isinstance(command, dict) else None
    else:
        arguments = item
    if isinstance(arguments, list | tuple):
        for value in reversed(arguments):
            if isinstance(value, str) and value.startswith(Feedback.PREFIX):
                return value
    return None


@dataclass
class Tally:
    """Counts per language since this server started."""

    languages: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, language: str, **counts: int) -> None:
        kept = self.languages.setdefault(language, dict.fromkeys(COUNTERS, 0))
        for name, value in counts.items():
            kept[name] += value


class Feedback:
    #: Ids start with this (one random part per server process, then a counter).
    PREFIX = "gf:"

    def __init__(self, writer: UsageWriter | None = None,
                 rejections: Rejections | None = None) -> None:
        self.writer = writer
        self.rejections = rejections or Rejections()
        self.tally = Tally()
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._last: dict[str, list[_Item]] = {}  # per document: the items last returned
        self._ids = (f"{self.PREFIX}{secrets.token_hex(3)}.{n}" for n in itertools.count(1))
        #: Whether the client sends didShowCompletion (then only that puts an item on screen).
        self.client_reports_shown = False

    def snapshot(self) -> dict[str, Any]:
        languages = {name: dict(counts) for name, counts in self.tally.languages.items()}
        return {"languages": languages, "rejections_held": len(self.rejections),
                "items_held": len(self._items)}

    # -- items out ---------------------------------------------------------------------
    def offer(self, doc: OpenDocument, items: list[types.InlineCompletionItem],
              cursor: types.Position, offset_of: Callable[[types.Position], int],
              ) -> list[types.InlineCompletionItem]:
        """The items to return, each with its id; those the user just rejected at their place
        are left out."""
        kept: list[types.InlineCompletionItem] = []
        entries: list[_Item] = []
        for item in items:
            text = item.insert_text if isinstance(item.insert_text, str) \
                else item.insert_text.value
            start = item.range.start if item.range is not None else cursor
            offset = offset_of(start)
            line_start = doc.text.rfind("\n", 0, offset) + 1
            place = Place(doc.uri, start.line, doc.text[line_start:offset])
            if self.rejections.rejected(place, text):
                continue
            entry = self._register(doc, place, offset, text, self._last.get(doc.uri, []))
            command = item.command or types.Command(title="ghostfill: accepted",
                                                    command=ACCEPTED_COMMAND)
            command.arguments = [*(command.arguments or []), entry.id]
            item.command = command
            kept.append(item)
            entries.append(entry)
        self._last[doc.uri] = entries
        if entries and not self.client_reports_shown:
            first = entries[0]
            self._mark_shown(first.suggestion)
            self.rejections.watch(first.place, first.offset, first.text)
        return kept

    def _register(self, doc: OpenDocument, place: Place, offset: int, text: str,
                  previous: list[_Item]) -> _Item:
        """A new item; the same suggestion as one of the `previous` answer's items if it is
        that item again, or its rest after the user typed its beginning."""
        for before in previous:
            consumed = _continues(doc, before, offset, text)
            if consumed is not None:
                entry = _Item(next(self._ids), doc.uri, place, offset, text, before.suggestion,
                              before.consumed + consumed)
                break
        else:
            entry = _Item(next(self._ids), doc.uri, place, offset, text,
                          _Suggestion(doc.language_id, len(text)))
        self._items[entry.id] = entry
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)
        return entry

    # -- what the client says ------------------------------------------------------------
    def shown(self, item: Any) -> None:
        self.client_reports_shown = True
        entry = self._items.get(item_id(item) or "")
        if entry is None:
            return
        self._mark_shown(entry.suggestion)
        self.rejections.watch(entry.place, entry.offset, entry.text)

    def partially_accepted(self, item: Any, accepted_length: int) -> None:
        entry = self._items.get(item_id(item) or "")
        if entry is None or accepted_length <= 0:
            return
        s = entry.suggestion
        self._mark_shown(s)
        if not s.partial:
            s.partial = True
            self._count(s.language, partial=1)
        self._keep(s, entry.consumed + utf16_to_chars(entry.text, accepted_length))

    def accepted(self, arguments: Any) -> None:
        entry = self._items.get(item_id(arguments) or "")
        if entry is None:
            return
        s = entry.suggestion
        self._mark_shown(s)
        if not s.accepted:
            s.accepted = True
            self._count(s.language, accepted=1)
        self._keep(s, entry.consumed + len(entry.text))

    def edited(self, doc: OpenDocument, start: int, end: int, new_text: str) -> None:
        """An edit of `doc` (offsets before it): judges the suggestion watched there."""
        if self.rejections.edited(doc.uri, start, end, new_text):
            self._count(doc.language_id, rejected=1)

    def forget(self, uri: str) -> None:
        self.rejections.forget(uri)
        self._last.pop(uri, None)

    # -- counting ------------------------------------------------------------------------
    def _mark_shown(self, s: _Suggestion) -> None:
        if not s.shown:
            s.shown = True
            self._count(s.language, shown=1, chars_shown=s.length)

    def _keep(self, s: _Suggestion, upto: int) -> None:
        upto = min(upto, s.length)
        if upto > s.kept:
            self._count(s.language, chars_kept=upto - s.kept)
            s.kept = upto

    def _count(self, language: str, **counts: int) -> None:
        self.tally.add(language, **counts)
        if self.writer is not None:
            self.writer.note(language, **counts)


def _continues(doc: OpenDocument, previous: _Item, offset: int, text: str) -> int | None:
    """How far into `previous` an item at `offset` with `text` starts, if it is the rest of
    `previous` after the user typed its beginning, or `previous` again (0); None: another
    suggestion."""
    typed = offset - previous.offset
    if typed < 0 or typed >= len(previous.text) or previous.text[typed:] != text:
        return None
    if doc.text[previous.offset:offset] != previous.text[:typed]:
        return None
    return typed
