"""Running tree-sitter: parsers per thread, parses within a time budget, error counts.

Every parse held to a time budget runs through `parse_until` and stops at a `Deadline`: a
document's reparse (`SyntaxDocument.refresh`, resumed where the last call stopped) and the parse
of a workspace file the definition index summarizes (one-shot). Throwaway text (a completion
spliced into its surroundings) is small and parsed whole (`parse_tree`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tree_sitter import Node, Parser, Tree
from tree_sitter_language_pack import get_parser

__all__ = [
    "READ_CHUNK",
    "Deadline",
    "chunk_reader",
    "count_errors",
    "error_count",
    "parse_tree",
    "parse_until",
    "thread_parser",
]

_local = threading.local()


def thread_parser(grammar: str) -> Parser:
    """One parser per grammar and thread (parsers are not thread-safe, and cheap to keep)."""
    parsers: dict[str, Parser] = _local.__dict__.setdefault("parsers", {})
    parser = parsers.get(grammar)
    if parser is None:
        # The pack types grammar names as a Literal; ours are plain strings, known at run time.
        parser = parsers[grammar] = get_parser(grammar)  # type: ignore[arg-type]
    return parser


# ------------------------------------------------------------------------ reading the input


READ_CHUNK = 1 << 12


class _ReadBuffers(threading.local):
    def __init__(self) -> None:
        self.buffers = (bytearray(), bytearray())
        self.turn = 0


_READ_BUFFERS = _ReadBuffers()


def chunk_reader(source: bytes, chunk: int = READ_CHUNK,
                 stop: Callable[[], bool] | None = None) -> Callable[[int, object], bytearray]:
    """A read callback for `Parser.parse` that hands out `source` in chunks without leaking
    them (`stop()` true: the input ends there).

    py-tree-sitter 0.25-0.26 never drops its reference to what a read callback returns
    (`parser_read_wrapper` takes a buffer view of the object and releases the view, not the
    object), so every chunk returned stays in memory for good. With fresh `bytes` slices
    an incremental parse kept ~20 KB (it reads several chunks), and with a parse per
    request the server grew by 1-2 MB per 100 requests without end (issue #21). The chunks
    are copied into two long-lived buffers per thread instead, used in turn: the leaked
    references pile up on those two objects, which live anyway, and nothing else is kept.
    Two, because the binding may still hold a view of the previous chunk while it asks for
    the next one (a bytearray whose buffer is exported cannot be resized); tree-sitter
    needs a chunk only until the next read. `tests/test_memory.py` checks that parses keep no chunk.
    """
    view = memoryview(source)

    def read(byte: int, _point: object) -> bytearray:
        local = _READ_BUFFERS  # looked up per call: the tree keeps this callback
        local.turn ^= 1
        buffer = local.buffers[local.turn]
        buffer[:] = b"" if stop is not None and stop() else view[byte : byte + chunk]
        return buffer

    return read


# ------------------------------------------------------------------------- the time budget


class Deadline:
    """The moment a piece of work has to stop by, `budget_ms` from now (never when None)."""

    __slots__ = ("at",)

    def __init__(self, budget_ms: float | None) -> None:
        self.at = None if budget_ms is None else time.perf_counter() + budget_ms / 1000

    def passed(self) -> bool:
        return self.at is not None and time.perf_counter() > self.at

    def left_ms(self) -> float | None:
        """Milliseconds left (0 once passed); None without a deadline."""
        return None if self.at is None else max(0.0, (self.at - time.perf_counter()) * 1000)


def parse_until(parser: Parser, source: bytes, old: Tree | None, deadline: Deadline,
                chunk: int = READ_CHUNK, *, resumable: bool = True) -> Tree | None:
    """Parse `source` (incrementally against `old`, when given); None when past `deadline`.

    Tree-sitter's progress callback halts the parse at the deadline. A halted parse stays in
    `parser`: given the same input again (same `source`, `old` and `chunk`), tree-sitter
    resumes it where it stopped. With `resumable=False` the parse is one-shot: the halted
    parse is dropped (`parser.reset()`, so the parser is ready for other text), and the input
    also ends at the deadline: tree-sitter calls the progress callback only every hundred or so
    operations, and on some input each operation is slow (tree-sitter-python re-scans the
    comment lines after an indented block: 400 KB of them overshot a 50 ms budget by 0.3 s),
    while a read comes every chunk. That truncated tree is not returned either.
    """
    late = False

    def passed() -> bool:
        nonlocal late
        late = late or deadline.passed()
        return late

    def progress(_offset: int, _has_error: bool) -> bool:  # True halts the parse
        return passed()

    try:
        # Only the chunked-read form honours a progress callback; a resumed parse must see the
        # same input form as the halted one, so it is used every time.
        read = chunk_reader(source, chunk, None if resumable else passed)
        if old is None:
            tree = parser.parse(read, progress_callback=progress)
        else:
            tree = parser.parse(read, old, progress_callback=progress)
    except ValueError:  # halted by the progress callback
        if not resumable:
            parser.reset()
        return None
    return None if late and not resumable else tree


# ------------------------------------------------------------------------------ error count


def parse_tree(text: str, grammar: str) -> Tree:
    """Parse `text` from scratch (for throwaway text such as a completion spliced in)."""
    return thread_parser(grammar).parse(text.encode("utf-8", "surrogatepass"))


def error_count(text: str, grammar: str) -> int:
    """Number of ERROR and MISSING nodes in the parse of `text`."""
    return count_errors(parse_tree(text, grammar).root_node)


def count_errors(root: Node) -> int:
    """ERROR and MISSING nodes under `root`; subtrees without errors are skipped."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        stack.extend(child for child in node.children if child.has_error)
    return count
