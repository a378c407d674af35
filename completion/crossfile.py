"""Cross-file context: snippets of other open or recently edited buffers.

Ring of chunks taken from buffers the user opens and edits (llama.vim keeps a similar ring
of yanked/opened chunks). A new chunk evicts older ones that say nearly the same thing; a
request takes the chunks most similar to the text around the cursor, up to a token cap, and
never one that repeats the local window.

Definitions of the names the buffer imports (`definitions.py`) compete for the same token cap
(`select_snippets`): every definition's signature first, then whole texts and ring chunks in
the room left. A definition whose name is used near the cursor ranks first, since the model is
about to call it; then definitions imported but not used yet (nothing in the buffer shows how
they are called); then ring chunks and definitions used elsewhere, by similarity to the text at
the cursor.

The selection is sticky per document (kept in `WindowAnchor`) and only redone when the window
start moves: the snippets sit at the head of the prompt, so changing them on a keystroke
would throw away the whole KV cache.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from ghostfill.completion.tokenizer import Tokenizer

CHUNK_LINES = 32
MAX_CHUNKS = 16
EVICT_SIMILARITY = 0.9
LOCAL_DUPLICATE_SIMILARITY = 0.5
#: Tokens a snippet's path line and separators cost; a definition merged into a snippet of
#: the same file costs only the blank line between them.
HEADER_TOKENS = 16
MERGED_TOKENS = 2
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


@dataclass(frozen=True)
class Snippet:
    path: str
    start_line: int
    text: str
    words: frozenset[str]
    #: For the definition of an imported name: how the buffer refers to it (`parse`,
    #: `utils.parse`); empty for a chunk of a buffer.
    name: str = ""
    #: For a definition: whether the buffer mentions the name outside its import.
    used: bool = False
    #: "edit" for a recent edit (`edits.py`: its text is rendered already), "" otherwise.
    kind: str = ""
    #: For an edit: its score (higher first).
    rank: float = 0.0
    #: For a definition: its signature alone, shown instead of `text` when that does not fit.
    brief: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return self.path, self.start_line


def words_of(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text))


def mention_pattern(name: str) -> re.Pattern[str]:
    """Mentions of `name` (possibly dotted) as a whole identifier, not as another object's
    attribute (`x.name` does not mention `name`)."""
    return re.compile(r"(?<![\w.$])" + re.escape(name) + r"(?![\w$])")


def last_mention(text: str, name: str) -> int:
    """Offset of the last mention of `name` in `text`, -1 if none."""
    last = -1
    for match in mention_pattern(name).finditer(text):
        last = match.start()
    return last


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

    def chunks(self) -> list[Snippet]:
        return list(self._chunks.values())

    def drop(self, path: str) -> None:
        for key in [k for k in self._chunks if k[0] == path]:
            del self._chunks[key]

    def select(self, current_path: str, local_text: str, cursor_text: str,
               tokenizer: Tokenizer, max_tokens: int,
               definitions: Sequence[Snippet] = ()) -> list[Snippet]:
        """Chunks of other files most like the text at the cursor, within `max_tokens`."""
        return select_snippets(self._chunks.values(), definitions, current_path, local_text,
                               cursor_text, tokenizer, max_tokens)


def select_snippets(chunks: Iterable[Snippet], definitions: Sequence[Snippet],
                    current_path: str, local_text: str, cursor_text: str,
                    tokenizer: Tokenizer, max_tokens: int, *,
                    window_text: str | None = None,
                    edits: Sequence[Snippet] = ()) -> list[Snippet]:
    """Ring chunks, imported definitions and recent edits for the prompt, within `max_tokens`.

    Never a chunk of the current file or one much like the local window; never a definition
    whose signature line is already in the window (`window_text`, default `local_text`): the
    model sees it there. Definitions of one file are merged into one snippet (one path line).
    Recent edits (`edits.candidates`, already filtered and scored) rank first, the best first,
    and are placed last, nearest the code, the best last.

    Two passes (#18, tuned on the repo bench's tune packages): first every definition's
    signature alone (`Snippet.brief`), in rank order, so that the name the code is about to
    use is there even in a file that imports dozens; then, in rank order again, whole texts
    (a docstring, a class outline) in place of signatures, and ring chunks, while room is left.
    A definition imported but not used yet ranks right after those used at the cursor: the
    buffer shows how every other imported name is called, not that one.
    """
    if max_tokens <= 0:
        return []
    local = words_of(local_text)
    near = words_of(cursor_text)
    window = local_text if window_text is None else window_text
    ranked: list[tuple[tuple[int, float], Snippet]] = []
    seen: set[tuple[str, int]] = set()
    for snippet in edits:
        ranked.append(((-1, -snippet.rank), snippet))
    for snippet in definitions:
        signature = _signature_line(snippet.text)
        if snippet.key in seen or (signature and signature in window):
            continue
        seen.add(snippet.key)
        at = last_mention(cursor_text, snippet.name) if snippet.name else -1
        if at >= 0:
            rank: tuple[int, float] = (0, -at)  # the nearest mention first
        else:
            rank = (2 if snippet.used else 1, -similarity(snippet.words, near))
        ranked.append((rank, snippet))
    for snippet in chunks:
        if snippet.path == current_path or similarity(snippet.words, local) >= \
                LOCAL_DUPLICATE_SIMILARITY:
            continue
        score = similarity(snippet.words, near)
        if score > 0:
            ranked.append(((2, -score), snippet))
    ranked.sort(key=lambda item: item[0])  # stable: a definition wins a tie
    order = [snippet for _, snippet in ranked]
    chosen: list[Snippet] = []
    used = 0
    definition_paths: set[str] = set()

    def overhead(snippet: Snippet) -> int:
        merged = bool(snippet.name) and snippet.path in definition_paths
        return MERGED_TOKENS if merged else HEADER_TOKENS

    def take(snippet: Snippet, spent: int) -> None:
        nonlocal used
        chosen.append(snippet)
        used += spent
        if snippet.name:
            definition_paths.add(snippet.path)

    # Pass 1: recent edits whole, definitions by their signatures. `briefs`: where each
    # signature was put and its tokens, for pass 2 to swap in the whole text.
    briefs: dict[tuple[str, int], tuple[int, int]] = {}
    for snippet in order:
        if snippet.kind == "edit":
            if any(c.kind == "edit" and c.text == snippet.text for c in chosen):
                continue
            text = snippet.text
        elif snippet.name and snippet.brief:
            text = snippet.brief
        else:
            continue
        tokens = len(tokenizer.encode(text))
        spent = tokens + overhead(snippet)
        if used + spent <= max_tokens:
            if snippet.kind != "edit":
                briefs[snippet.key] = (len(chosen), tokens)
            take(replace(snippet, text=text), spent)
    # Pass 2: whole definitions in place of their signatures, then what else fits.
    for snippet in order:
        if snippet.kind == "edit":
            continue
        if snippet.name and snippet.key in briefs:
            at, brief_tokens = briefs[snippet.key]
            extra = len(tokenizer.encode(snippet.text)) - brief_tokens
            if used + extra <= max_tokens:
                chosen[at] = snippet
                used += extra
            continue
        signature = _signature_line(snippet.text) if snippet.name else ""
        if signature and any(signature in c.text for c in chosen if not c.name):
            continue  # a chosen chunk already shows it
        spent = len(tokenizer.encode(snippet.text)) + overhead(snippet)
        if used + spent <= max_tokens:
            take(snippet, spent)
    others = _merge_definitions([s for s in chosen if s.kind != "edit"])
    return others + [s for s in reversed(chosen) if s.kind == "edit"]


def _signature_line(text: str) -> str:
    """The first line that is not a decorator or a comment: `def f(x):`, `class A:`."""
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith(("@", "#", "//", "/*", "*")):
            return stripped
    return ""


def _merge_definitions(chosen: list[Snippet]) -> list[Snippet]:
    """One snippet per file for definitions (in file order), placed where the file's first
    chosen definition ranked; chunks stay as they are."""
    by_path: dict[str, list[Snippet]] = {}
    for snippet in chosen:
        if snippet.name:
            by_path.setdefault(snippet.path, []).append(snippet)
    merged: list[Snippet] = []
    for snippet in chosen:
        if not snippet.name:
            merged.append(snippet)
            continue
        group = by_path.pop(snippet.path, None)
        if group is None:
            continue  # merged into the file's first one
        if len(group) == 1:
            merged.append(snippet)
            continue
        group.sort(key=lambda s: s.start_line)
        text = group[0].text
        for before, after in pairwise(group):
            briefs = before.text == before.brief and after.text == after.brief
            text += ("\n" if briefs else "\n\n") + after.text
        merged.append(replace(group[0], text=text,
                              words=frozenset().union(*(s.words for s in group)),
                              used=any(s.used for s in group)))
    return merged
