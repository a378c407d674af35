"""Rejection memory: a suggestion the user just turned down is not offered again at that place.

A model asked twice in the same context answers the same (greedy decoding, and the suggestion
cache serves the repeat without asking it), so a suggestion the user typed over comes back the
moment they return to where it was: after a backspace, or after undoing their own text.

Precisely, for each document:

- the suggestion on screen is *watched*: where it starts (its place: the document offset, the
  line and that line's text before the place) and its text;
- the user's next edit *at the place* decides: one that inserts text there whose first character
  is the suggestion's own follows it (typing through it, accepting it in full or in part);
  one that inserts anything else *rejects* it. A suggestion dismissed (Escape) is judged the
  same way, by what is typed at its place next. Text typed exactly as the suggestion has it,
  within its first line, moves the watch on to the rest (a suggestion typed over half way is
  rejected where the user left it);
- an edit anywhere else (a backspace before the place, a line elsewhere, a full-text sync),
  a newer suggestion, or closing the document ends the watch without a verdict: the user may
  simply have moved on;
- a rejected suggestion is not offered again at the same place (same document, line and text
  before the place) for `TTL_S` seconds; other suggestions there, and this one elsewhere,
  still are.

Pure: no LSP, no clock but the one given, so the rules are unit-tested directly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: How long a rejected suggestion stays out of its place: long enough that retyping the same
#: line does not bring it back, short enough that a later visit with new code around may.
TTL_S = 300.0
#: Rejections remembered at once (oldest forgotten first).
MAX_REJECTIONS = 256


@dataclass(frozen=True)
class Place:
    """Where a suggestion starts: the same place is the same document, line and line text
    before it (an edit that changes that text makes it another place)."""

    uri: str
    line: int
    before: str


@dataclass(frozen=True)
class _Watch:
    place: Place
    offset: int
    text: str


class Rejections:
    def __init__(self, ttl_s: float = TTL_S, max_entries: int = MAX_REJECTIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._watches: dict[str, _Watch] = {}
        self._rejected: OrderedDict[tuple[Place, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rejected)

    def watch(self, place: Place, offset: int, text: str) -> None:
        """`text` is on screen at `place` (document offset `offset`): the next edit judges it."""
        if text:
            self._watches[place.uri] = _Watch(place, offset, text)

    def edited(self, uri: str, start: int, end: int, new_text: str) -> bool:
        """The document changed: text[start:end] became `new_text`. True if that rejected the
        suggestion watched there."""
        watch = self._watches.pop(uri, None)
        if watch is None or start != watch.offset or not new_text:
            return False
        if new_text[0] == watch.text[0]:
            rest = watch.text[len(new_text):]
            if watch.text.startswith(new_text) and rest and "\n" not in new_text:
                place = Place(uri, watch.place.line, watch.place.before + new_text)
                self._watches[uri] = _Watch(place, start + len(new_text), rest)
            return False
        self._remember(watch.place, watch.text)
        return True

    def rejected(self, place: Place, text: str) -> bool:
        """Whether `text` was rejected at `place` less than `ttl_s` ago."""
        key = (place, text)
        until = self._rejected.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._rejected[key]
            return False
        return True

    def forget(self, uri: str) -> None:
        """The document closed: its watch ends (its rejections expire on their own)."""
        self._watches.pop(uri, None)

    def _remember(self, place: Place, text: str) -> None:
        key = (place, text)
        self._rejected.pop(key, None)
        self._rejected[key] = self.clock() + self.ttl_s
        now = self.clock()
        while self._rejected:
            oldest_key, until = next(iter(self._rejected.items()))
            if until > now and len(self._rejected) <= self.max_entries:
                break
            del self._rejected[oldest_key]
