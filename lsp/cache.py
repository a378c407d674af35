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
    #: Further suggestions for the same place (an invoked request's `completion.choices`),
    #: distinct from `text` and from each other, the editor cycling among them.
    alternatives: tuple[str, ...] = ()
    #: How many suggestions were asked for when these were computed: an invoked request that
    #: wants more than an automatic one found runs the model, one that wants no more than
    #: were searched for is answered here (even when fewer were found).
    choices: int = 1

    @property
    def texts(self) -> tuple[str, ...]:
        """Every suggestion held, the first (greedy) one first."""
        return (self.text, *self.alternatives)

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
            prefetched: bool = False, alternatives: tuple[str, ...] = (),
            choices: int = 1) -> None:
        if not self.enabled:
            return
        key = cache_key(prefix, suffix, multiline)
        self._entries[key] = Suggestion(text, multiline, key[0], key[1], prefetched=prefetched,
                                        alternatives=alternatives, choices=choices)

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
        rests = self.type_through_all(prefix, suffix, shown)
        return rests[0] if rests else None

    def type_through_all(self, prefix: str, suffix: str,
                         shown: Suggestion | None) -> list[str]:
        """`type_through` for each suggestion `shown` holds (`Suggestion.texts`, in order):
        the rests of those the typed text is a beginning of. The editor may be showing any
        of them (the user cycled), so typing into the second one keeps it too."""
        if shown is None or not self.enabled:
            return []
        if not suffix.startswith(shown.suffix_head[: KEY_SUFFIX_CHARS // 4]):
            return []
        if (shown.choices > 1 and not shown.partial
                and suffix[:KEY_SUFFIX_CHARS] == shown.suffix_head
                and prefix[-KEY_PREFIX_CHARS:] == shown.prefix_tail):
            # Several asked again where they are shown (VS Code asks again to show the next
            # one): all of them, though what was typed into is in no cache entry of this
            # place. (A single suggestion is looked up in the cache as before.)
            return list(shown.texts)
        rests: list[str] = []
        for text in shown.texts:
            rest = self._typed_into(prefix, shown.prefix_tail, text)
            if rest is not None and rest not in rests:
                rests.append(rest)
        return rests

    @staticmethod
    def _typed_into(prefix: str, prefix_tail: str, text: str) -> str | None:
        for typed in range(1, len(text)):
            if not prefix.endswith(text[:typed]):
                continue
            before = prefix[: len(prefix) - typed]
            if before.endswith(prefix_tail[-KEY_PREFIX_CHARS // 4 :]):
                rest = text[typed:]
                return rest if rest.strip() else None
        return None
