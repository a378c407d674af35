"""Suggestion cache: exact hits, type-through, and entries prefetched ahead of the user.

One cache (cachetools LRU) keyed by the text around the cursor. Type-through: while the user
types characters that match the suggestion on screen, the rest of it is served from here
without calling the model (llama.vim and Tabby do the same; ours checks the suffix too).
"""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import LRUCache

#: How much text on each side of the cursor identifies a completion context. The prompt window
#: is larger, but two positions that agree on this much context almost never differ in answer,
#: and hashing 300 KB per keystroke would not be cheap.
KEY_PREFIX_CHARS = 4096
KEY_SUFFIX_CHARS = 1024


@dataclass(frozen=True)
class Suggestion:
    text: str
    multiline: bool
    #: Context the suggestion was computed for (tails/heads of the document at the cursor).
    prefix_tail: str
    suffix_head: str
    #: The beginning of a line cut short by the deadline; its rest is being generated.
    partial: bool = False
    #: Computed ahead of the user (what follows accepting the suggestion on screen), for the
    #: statistics of how often that pays.
    prefetched: bool = False

    def ends_at(self, prefix: str, suffix: str) -> bool:
        """True if accepting this suggestion leaves the cursor between `prefix` and `suffix`."""
        return (suffix[:KEY_SUFFIX_CHARS] == self.suffix_head
                and (self.prefix_tail + self.text)[-KEY_PREFIX_CHARS:]
                == prefix[-KEY_PREFIX_CHARS:])


def cache_key(prefix: str, suffix: str, multiline: bool) -> tuple[str, str, bool]:
    return prefix[-KEY_PREFIX_CHARS:], suffix[:KEY_SUFFIX_CHARS], multiline


class SuggestionCache:
    def __init__(self, maxsize: int = 256) -> None:
        self._entries: LRUCache[tuple[str, str, bool], Suggestion] = LRUCache(
            maxsize=max(1, maxsize)
        )
        self.enabled = maxsize > 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def put(self, prefix: str, suffix: str, multiline: bool, text: str, *,
            prefetched: bool = False) -> None:
        if not self.enabled:
            return
        key = cache_key(prefix, suffix, multiline)
        self._entries[key] = Suggestion(text, multiline, key[0], key[1], prefetched=prefetched)

    def get(self, prefix: str, suffix: str, multiline: bool) -> Suggestion | None:
        if not self.enabled:
            return None
        return self._entries.get(cache_key(prefix, suffix, multiline))

    def type_through(self, prefix: str, suffix: str,
                     shown: Suggestion | None) -> str | None:
        """The rest of `shown` if the user has typed a prefix of it since it was shown.

        The single/multi-line decision plays no part: typing into a block suggestion makes
        the cursor line non-empty, which flips that decision, yet the rest still applies (so
        the server checks this before it parses anything)."""
        if shown is None or not self.enabled:
            return None
        if not suffix.startswith(shown.suffix_head[: KEY_SUFFIX_CHARS // 4]):
            return None
        for typed in range(1, len(shown.text)):
            if not prefix.endswith(shown.text[:typed]):
                continue
            before = prefix[: len(prefix) - typed]
            if before.endswith(shown.prefix_tail[-KEY_PREFIX_CHARS // 4 :]):
                rest = shown.text[typed:]
                return rest if rest.strip() else None
        return None
