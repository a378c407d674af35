"""Cross-file context: snippets of other open or recently edited buffers.

Ring of chunks taken from buffers the user opens and edits (llama.vim keeps a similar ring
of yanked/opened chunks). A new chunk evicts older ones that say nearly the same thing; a
request takes the chunks most similar to the text around the cursor, up to a token cap, and
never one that repeats the local window.

The selection is sticky per document (kept in `WindowAnchor`) and only redone when the window
start moves: the snippets sit at the head of the prompt, so changing them on a keystroke
would throw away the whole KV cache.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from ghostfill.completion.tokenizer import Tokenizer

CHUNK_LINES = 32
MAX_CHUNKS = 16
EVICT_SIMILARITY = 0.9
LOCAL_DUPLICATE_SIMILARITY = 0.5
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass(frozen=True)
class Snippet:
    path: str
    start_line: int
    text: str
    words: frozenset[str]

    @property
    def key(self) -> tuple[str, int]:
        return self.path, self.start_line


def words_of(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of identifier sets: cheap, and robust to reformatting."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class SnippetStore:
    def __init__(self, max_chunks: int = MAX_CHUNKS, chunk_lines: int = CHUNK_LINES) -> None:
        self.max_chunks = max_chunks
        self.chunk_lines = chunk_lines
        self._chunks: OrderedDict[tuple[str, int], Snippet] = OrderedDict()

    def __len__(self) -> int:
        return len(self._chunks)

    def add_around(self, path: str, text: str, line: int) -> None:
        """Remember the chunk of `text` around `line` (after an edit, or on open)."""
        rows = text.split("\n")
        start = max(0, min(line - self.chunk_lines // 2, len(rows) - self.chunk_lines))
        chunk = "\n".join(rows[start : start + self.chunk_lines]).strip("\n")
        if not chunk.strip():
            return
        snippet = Snippet(path, start, chunk, words_of(chunk))
        for key, old in list(self._chunks.items()):
            overlaps = old.path == path and abs(old.start_line - start) < self.chunk_lines
            if overlaps or similarity(old.words, snippet.words) > EVICT_SIMILARITY:
                del self._chunks[key]
        self._chunks[snippet.key] = snippet
        while len(self._chunks) > self.max_chunks:
            self._chunks.popitem(last=False)

    def has_other(self, path: str) -> bool:
        return any(key[0] != path for key in self._chunks)

    def drop(self, path: str) -> None:
        for key in [k for k in self._chunks if k[0] == path]:
            del self._chunks[key]

    def select(self, current_path: str, local_text: str, cursor_text: str,
               tokenizer: Tokenizer, max_tokens: int) -> list[Snippet]:
        """Chunks of other files most like the text at the cursor, within `max_tokens`."""
        if max_tokens <= 0 or not self._chunks:
            return []
        local = words_of(local_text)
        near = words_of(cursor_text)
        ranked = sorted(
            (s for s in self._chunks.values() if s.path != current_path
             and similarity(s.words, local) < LOCAL_DUPLICATE_SIMILARITY),
            key=lambda s: similarity(s.words, near), reverse=True)
        chosen: list[Snippet] = []
        used = 0
        for snippet in ranked:
            if similarity(snippet.words, near) == 0:
                break
            cost = len(tokenizer.encode(snippet.text)) + 16  # header and separators
            if used + cost > max_tokens:
                continue
            chosen.append(snippet)
            used += cost
        return chosen
