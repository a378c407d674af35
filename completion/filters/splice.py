"""The completion spliced into a bounded window of its document, and what tree-sitter says
about it.

Filters that need syntax (bracket balance, block ends, parse errors) must not parse the whole
buffer per request: a 10,000-line file costs tens of milliseconds. They parse a window instead:
up to `HEAD_LINES` lines before the cursor's line, starting at the least indented statement-like
line so the lexer starts outside strings and brackets (a window that starts inside a docstring
turns everything after it into errors, and error recovery is slow), and up to `TAIL_LINES`
lines after it. Parses are memoised by text, so filters asking about the same splice share one.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache, lru_cache

from tree_sitter import Query, QueryCursor, Tree
from tree_sitter_language_pack import get_language

from ghostfill.completion.filters.layout import cursor_line_prefix
from ghostfill.completion.parsing import count_errors, parse_tree

HEAD_LINES = 60  # at most this many lines before the cursor's line
MIN_HEAD_LINES = 12  # the window starts at least this far back (when the prefix has the lines)
TAIL_LINES = 30  # lines after the cursor's line

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}
# Tokens that open a `}` inside strings: JS template `${`, Ruby `#{`.
_BRACKET_TOKENS = {"(": "(", ")": ")", "[": "[", "]": "]", "{": "{", "}": "}", "${": "{", "#{": "{"}


@dataclass(frozen=True)
class Splice:
    """`head + completion + tail`: the completion in its surrounding window.

    `head` ends with the text before the cursor on its line, `tail` starts with the text after
    the cursor; `line_start` is where the cursor's line starts in `text`. `before_code`: the
    completion is inserted as whole lines before the code on the cursor's line (see
    `layout.is_before_code`), so a line break and the cursor's indentation stand between it
    and `tail` (`joint`), as the editor's buffer has them once the suggestion is accepted.
    """

    head: str
    completion: str
    tail: str
    before_code: bool = False

    @property
    def text(self) -> str:
        return self.around(self.completion)

    def around(self, completion: str) -> str:
        """The window with `completion` in place of this splice's completion."""
        return self.head + completion + self.joint(completion) + self.tail

    def joint(self, completion: str) -> str:
        if not self.before_code or not completion:
            return ""
        lead = "" if completion.endswith("\n") else "\n"
        return lead + cursor_line_prefix(self.head)

    @property
    def start(self) -> int:
        """Offset of the completion in `text`."""
        return len(self.head)

    @property
    def end(self) -> int:
        return len(self.head) + len(self.completion)

    @property
    def line_start(self) -> int:
        return len(self.head) - len(cursor_line_prefix(self.head))


def make_splice(prefix: str, suffix: str, completion: str, before_code: bool = False) -> Splice:
    return Splice(_window_head(prefix), completion, _window_tail(suffix), before_code)


def _window_head(prefix: str) -> str:
    """The end of `prefix`, from the least indented statement-like line between MIN_HEAD_LINES
    and HEAD_LINES lines back (the nearest of equals), so that the lexer starts outside
    strings and brackets as often as a guess allows; a line with an odd number of triple
    quotes after it is inside a docstring and skipped."""
    cursor_line = prefix.rfind("\n") + 1
    starts = [cursor_line]
    position = cursor_line
    for _ in range(HEAD_LINES):
        if position == 0:
            break
        position = prefix.rfind("\n", 0, position - 1) + 1
        starts.append(position)
    if len(starts) <= MIN_HEAD_LINES:
        return prefix
    best: int | None = None
    best_indent = 0
    for start in starts[MIN_HEAD_LINES:]:
        indent = _statement_indent(prefix, start)
        if indent is None or (best is not None and indent >= best_indent):
            continue
        if _inside_triple_quotes(prefix, start, cursor_line):
            continue
        best, best_indent = start, indent
        if indent == 0:
            break
    return prefix[best if best is not None else starts[-1] :]


def _statement_indent(text: str, start: int) -> int | None:
    """Indentation of the line at `start` if it starts like a statement (a word, a decorator, a
    preprocessor line), else None (blank, closer, quote, comment continuation, `>>>`)."""
    end = text.find("\n", start)
    line = text[start : end if end >= 0 else len(text)]
    stripped = line.lstrip(" \t")
    if not stripped or not (stripped[0].isalpha() or stripped[0] in "_@#$"):
        return None
    return len(line) - len(stripped)


def _inside_triple_quotes(text: str, start: int, end: int) -> bool:
    between = text[start:end]
    return between.count('"""') % 2 == 1 or between.count("'''") % 2 == 1


def _window_tail(suffix: str) -> str:
    position = 0
    for _ in range(TAIL_LINES + 1):
        position = suffix.find("\n", position)
        if position < 0:
            return suffix
        position += 1
    return suffix[:position]


# ------------------------------------------------------------------------------- parsing


@lru_cache(maxsize=32)
def parse(text: str, grammar: str) -> Tree:
    return parse_tree(text, grammar)


@cache
def _bracket_query(grammar: str) -> Query:
    # The pack types grammar names as a Literal; ours are plain strings, known at run time.
    language = get_language(grammar)  # type: ignore[arg-type]
    tokens = [t for t in _BRACKET_TOKENS if language.id_for_node_kind(t, False) is not None]
    quoted = " ".join('"' + t + '"' for t in tokens)
    return Query(language, f"[{quoted}] @bracket")


def bracket_tokens(
    text: str, grammar: str | None, start: int = 0, end: int | None = None
) -> list[tuple[int, str]]:
    """Brackets that are code (not inside strings or comments) in `text[start:end]`, as
    (offset, bracket) pairs in order. `${` and `#{` count as `{`.

    With a grammar, tree-sitter's lexer decides what is code; without one, a small scanner
    skips quoted strings on each line.
    """
    end = len(text) if end is None else end
    if grammar is None:
        return _scan_brackets(text, start, end)
    encoded = text.encode("utf-8", "surrogatepass")
    ascii_text = len(encoded) == len(text)
    cursor = QueryCursor(_bracket_query(grammar))
    if ascii_text:
        cursor.set_byte_range(start, end)
    found = [
        (node.start_byte, _BRACKET_TOKENS[node.type])
        for nodes in cursor.captures(parse(text, grammar).root_node).values()
        for node in nodes
        if not node.is_missing
    ]
    found.sort()
    if not ascii_text:
        found = _to_char_offsets(text, found)
    return [(i, kind) for i, kind in found if start <= i < end]


def _to_char_offsets(text: str, found: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Byte offsets (sorted) → code-point offsets, in one pass over the text."""
    converted: list[tuple[int, str]] = []
    byte = 0
    index = 0
    for char_index, ch in enumerate(text):
        while index < len(found) and found[index][0] <= byte:
            converted.append((char_index, found[index][1]))
            index += 1
        if index == len(found):
            break
        byte += len(ch.encode("utf-8", "surrogatepass"))
    return converted


def _scan_brackets(text: str, start: int, end: int) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    quote = ""
    for i in range(start, end):
        ch = text[i]
        if quote:
            if ch == quote or ch == "\n":
                quote = ""
            elif ch == "\\":
                continue
        elif ch in "\"'`":
            quote = ch
        elif ch in OPENERS or ch in CLOSERS:
            found.append((i, ch))
    return found


def unmatched_closers(tokens: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Closers in `tokens` that close nothing opened within `tokens` (or close the wrong
    kind), in order."""
    stack: list[str] = []
    loose: list[tuple[int, str]] = []
    for offset, kind in tokens:
        if kind in OPENERS:
            stack.append(kind)
        elif stack and stack[-1] == CLOSERS[kind]:
            stack.pop()
        else:
            loose.append((offset, kind))
    return loose


def open_depth(tokens: list[tuple[int, str]]) -> int:
    """Openers left open at the end of `tokens`; closers of earlier openers are ignored."""
    depth = 0
    for _, kind in tokens:
        if kind in OPENERS:
            depth += 1
        elif depth:
            depth -= 1
    return depth


def imbalance(tokens: list[tuple[int, str]]) -> int:
    """Closers with nothing to close plus closers of the wrong kind. Openers left open are not
    counted: the window may end before the block they open does."""
    stack: list[str] = []
    bad = 0
    for _, kind in tokens:
        if kind in OPENERS:
            stack.append(kind)
            continue
        opener = CLOSERS[kind]
        if stack and stack[-1] == opener:
            stack.pop()
        elif opener in stack:
            # Recover like a parser: the openers above it were never closed.
            while stack.pop() != opener:
                bad += 1
        else:
            bad += 1
    return bad


def first_error_offset(text: str, grammar: str, start: int) -> int | None:
    """Offset (code points) of the first ERROR or MISSING node that starts at or after
    `start`, if any."""
    encoded = text.encode("utf-8", "surrogatepass")
    start_byte = len(text[:start].encode("utf-8", "surrogatepass"))
    root = parse(text, grammar).root_node
    best: int | None = None
    stack = [root] if root.has_error else []
    while stack:
        node = stack.pop()
        is_error = node.is_error or node.is_missing
        if is_error and node.start_byte >= start_byte and (best is None or node.start_byte < best):
            best = node.start_byte
        stack.extend(child for child in node.children if child.has_error)
    if best is None:
        return None
    return len(encoded[:best].decode("utf-8", "surrogatepass"))


def errors(text: str, grammar: str) -> int:
    """ERROR and MISSING nodes in the parse of `text`."""
    return count_errors(parse(text, grammar).root_node)


def adds_errors(completion: str, prefix: str, suffix: str, grammar: str | None,
                before_code: bool = False) -> bool:
    """Whether `completion` breaks the code it is inserted into: for Python, the whole
    document compiled by CPython's parser when it parses without the completion (tree-sitter's
    grammar is more tolerant: it takes a `try:` with no `except` after it); otherwise, or when
    the document is broken already (mid-edit), more ERROR/MISSING nodes in the completion's
    window than without it. Without a grammar nothing can be said: False."""
    if grammar is None or not completion.strip():
        return False
    if grammar == "python" and _python_parses(prefix + suffix):
        return not _python_parses(Splice(prefix, completion, suffix, before_code).text)
    splice = make_splice(prefix, suffix, completion, before_code)
    return errors(splice.text, grammar) > errors(splice.head + splice.tail, grammar)


def _python_parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte in the text
        return False
    return True
