"""Tree-sitter layer: one parsed buffer per open document, and the questions asked of it.

The context builder needs to know where a window may be cut (`boundary_lines`) and which
headers to keep when a body is trimmed (`enclosing_scopes`); the request path needs the
single- vs multi-line decision and the cursor's block indentation (`cursor_scope`); the
post-processing filters need to know whether a splice adds parse errors (`error_count`).

Grammars come from tree-sitter-language-pack 0.13.0, which bundles them (1.x downloads them at
run time, which fails offline). Each supported language has a small table of node types; any
other grammar in the pack still works through a generic rule (see `_LanguageTable`).

Offsets in this module's API are code-point offsets into `SyntaxDocument.text`; tree-sitter
works in UTF-8 bytes, and the conversion is done here so no caller has to think about it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any, get_args

from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, QueryError, Tree
from tree_sitter_language_pack import SupportedLanguage, get_language, get_parser

from ghostfill.completion.lines import indent_style_for, indent_width

__all__ = [
    "CursorScope",
    "SyntaxDocument",
    "boundary_lines",
    "cursor_scope",
    "enclosing_scopes",
    "error_count",
    "language_for",
    "parse_tree",
]

# --------------------------------------------------------------------------- language ids

# LSP languageId (and common aliases) → grammar name in the language pack.
_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",
    "jsx": "javascript",
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "cuda-cpp": "cuda",
    "csharp": "csharp",
    "c_sharp": "csharp",
    "rust": "rust",
    "go": "go",
    "lua": "lua",
    "ruby": "ruby",
    "php": "php",
    "shellscript": "bash",
    "sh": "bash",
    "kotlin": "kotlin",
    "swift": "swift",
    "scala": "scala",
    "html": "html",
    "css": "css",
    "scss": "scss",
    "json": "json",
    "jsonc": "json",
    "yaml": "yaml",
    "toml": "toml",
    "markdown": "markdown",
    "dockerfile": "dockerfile",
    "makefile": "make",
    "objective-c": "objc",
    "perl": "perl",
    "r": "r",
    "julia": "julia",
    "haskell": "haskell",
    "elixir": "elixir",
    "erlang": "erlang",
    "dart": "dart",
    "zig": "zig",
    "sql": "sql",
    "vue": "vue",
    "svelte": "svelte",
}

# File extension (lower case, with the dot) → grammar name.
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cu": "cuda",
    ".cs": "csharp",
    ".rs": "rust",
    ".go": "go",
    ".lua": "lua",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "bash",
    ".bash": "bash",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".html": "html",
    ".css": "css",
    ".scss": "scss",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".md": "markdown",
    ".m": "objc",
    ".pl": "perl",
    ".r": "r",
    ".jl": "julia",
    ".hs": "haskell",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".dart": "dart",
    ".zig": "zig",
    ".sql": "sql",
    ".vue": "vue",
    ".svelte": "svelte",
}

_PACK_GRAMMARS: frozenset[str] = frozenset(get_args(SupportedLanguage))


def language_for(language_id: str | None, path: str | None = None) -> str | None:
    """Grammar name for an LSP languageId, else for the file extension of `path` (a path or a
    URI); None when neither is known, so the caller treats the buffer as plain text."""
    if language_id:
        key = language_id.strip().lower()
        grammar = _LANGUAGE_IDS.get(key) or (key if key in _PACK_GRAMMARS else None)
        if grammar and _loadable(grammar):
            return grammar
    if path:
        name = path.split("?", 1)[0].split("#", 1)[0]
        grammar = _EXTENSIONS.get(PurePosixPath(name).suffix.lower())
        if grammar and _loadable(grammar):
            return grammar
    return None


# Grammars of the pack that must not be used: cobol's parser never returns on ordinary text
# (checked against every bundled grammar with a few short files).
_UNSAFE_GRAMMARS = frozenset({"cobol"})


@cache
def _loadable(grammar: str) -> bool:
    if grammar in _UNSAFE_GRAMMARS:
        return False
    try:
        get_language(grammar)  # type: ignore[arg-type]
    except Exception:  # a grammar missing from the wheel must not take the server down
        return False
    return True


# ------------------------------------------------------------------------- node-type tables


@dataclass(frozen=True)
class _LanguageTable:
    """Node types that give a language its shape.

    `containers`: nodes whose named children are statements, definitions or declarations (a
    window may start or end at any of their lines). `scopes`: definitions with a header worth
    keeping (class, function, impl, namespace). `wrappers`: nodes that put lines in front of a
    scope's header (decorators, `template <…>`), so the header starts at the wrapper.
    `opener`: text that ends a line opening a block.

    Grammars without a table use the root's named children as boundaries, plus the children of
    any node whose type ends in `block` or `body`.
    """

    containers: frozenset[str]
    scopes: frozenset[str] = frozenset()
    wrappers: frozenset[str] = frozenset()
    opener: tuple[str, ...] = ("{",)


def _words(names: str) -> frozenset[str]:
    return frozenset(names.split())


def _table(
    containers: str, scopes: str = "", wrappers: str = "", opener: tuple[str, ...] = ("{",)
) -> _LanguageTable:
    return _LanguageTable(_words(containers), _words(scopes), _words(wrappers), opener)


_JS_CONTAINERS = "program statement_block class_body switch_body switch_case switch_default"
_JS_SCOPES = (
    "class_declaration class function_declaration function_expression arrow_function"
    " generator_function_declaration generator_function method_definition"
)
_TS_CONTAINERS = _JS_CONTAINERS + " interface_body enum_body"
_TS_SCOPES = (
    _JS_SCOPES + " abstract_class_declaration interface_declaration enum_declaration"
    " internal_module module"
)
_C_CONTAINERS = (
    "translation_unit compound_statement field_declaration_list case_statement enumerator_list"
    " preproc_if preproc_ifdef preproc_else preproc_elif"
)
_C_SCOPES = "function_definition struct_specifier union_specifier enum_specifier"

LANGUAGE_TABLES: dict[str, _LanguageTable] = {
    "python": _table(
        "module block",
        "class_definition function_definition",
        "decorated_definition",
        opener=(":",),
    ),
    "javascript": _table(_JS_CONTAINERS, _JS_SCOPES, "export_statement"),
    "typescript": _table(_TS_CONTAINERS, _TS_SCOPES, "export_statement"),
    "tsx": _table(_TS_CONTAINERS, _TS_SCOPES, "export_statement"),
    "java": _table(
        "program block class_body interface_body enum_body_declarations constructor_body"
        " switch_block switch_block_statement_group annotation_type_body",
        "class_declaration interface_declaration enum_declaration record_declaration"
        " annotation_type_declaration method_declaration constructor_declaration"
        " lambda_expression",
    ),
    "c": _table(_C_CONTAINERS, _C_SCOPES),
    "cpp": _table(
        _C_CONTAINERS + " declaration_list",
        _C_SCOPES + " class_specifier namespace_definition lambda_expression",
        "template_declaration",
    ),
    "csharp": _table(
        "compilation_unit block declaration_list switch_body switch_section",
        "namespace_declaration class_declaration struct_declaration interface_declaration"
        " record_declaration enum_declaration method_declaration constructor_declaration"
        " property_declaration local_function_statement",
    ),
    "rust": _table(
        "source_file block declaration_list field_declaration_list match_block enum_variant_list",
        "function_item impl_item trait_item struct_item enum_item mod_item closure_expression",
    ),
    "go": _table(
        "source_file block statement_list field_declaration_list expression_switch_statement"
        " type_switch_statement select_statement",
        "function_declaration method_declaration func_literal type_declaration",
    ),
}

# Bodies of scopes when the grammar has no `body` field on the node.
_BODY_TYPES = _words(
    "block statement_block class_body compound_statement declaration_list field_declaration_list"
    " interface_body enum_body constructor_body"
)

# Node types whose inside is not code: no completion inside them is multi-line.
_TEXT_NODE_MARKERS = ("string", "comment", "heredoc", "template_string", "char_literal")

# Python statements that open a block with `:` (used when the tree cannot tell, mid-edit).
_PY_BLOCK_KEYWORDS = _words(
    "def class if elif else for while with try except finally async match case"
)


@cache
def _language(grammar: str) -> Language:
    return get_language(grammar)  # type: ignore[arg-type]


_local = threading.local()


def _parser(grammar: str) -> Parser:
    """One parser per grammar and thread (parsers are not thread-safe, and cheap to keep)."""
    parsers: dict[str, Parser] = _local.__dict__.setdefault("parsers", {})
    parser = parsers.get(grammar)
    if parser is None:
        parser = parsers[grammar] = get_parser(grammar)  # type: ignore[arg-type]
    return parser


def _table_for(grammar: str) -> _LanguageTable:
    table = LANGUAGE_TABLES.get(grammar)
    return table if table is not None else _generic_table(grammar)


@cache
def _generic_table(grammar: str) -> _LanguageTable:
    language = _language(grammar)
    containers = set()
    for kind_id in range(language.node_kind_count):
        name = language.node_kind_for_id(kind_id)
        if name and language.node_kind_is_named(kind_id) and name.endswith(("block", "body")):
            containers.add(name)
    return _LanguageTable(frozenset(containers))


@cache
def _boundary_query(grammar: str) -> Query | None:
    """`(container (_) @s)` for every container type the grammar knows."""
    language = _language(grammar)
    patterns = []
    for name in sorted(_table_for(grammar).containers):
        pattern = f"({name} (_) @s)"
        try:
            Query(language, pattern)  # some node types cannot have named children
        except QueryError:
            continue
        patterns.append(pattern)
    return Query(language, "\n".join(patterns)) if patterns else None


# ----------------------------------------------------------------------------- the document


class SyntaxDocument:
    """Text and tree-sitter tree of one buffer, kept in sync edit by edit.

    `edit()` patches the text and tells the tree what changed (bytes and points), but does not
    reparse: the parse happens once, when a request asks (`refresh`), so a burst of keystrokes
    between two requests costs one incremental parse, and keystrokes answered from the cache
    cost none. An incremental parse is usually about a millisecond on a 10,000-line file, but an
    edit that breaks Python's indentation structure can cost 10-20 ms (error recovery re-reads
    the rest of the file); `refresh(budget_ms)` gives up at the budget and leaves the edited
    tree in place. Its node positions are still right (tree-sitter shifts them on `Tree.edit`);
    only the structure inside the edited lines is old. The server completes the parse when the
    buffer goes idle. `version` counts edits (a give-up is remembered per version).
    """

    def __init__(self, text: str, grammar: str | None, budget_ms: float | None = None) -> None:
        """`budget_ms` bounds the first parse too: most files parse in tens of milliseconds,
        but some inputs take tree-sitter seconds (hundreds of KB of comments after an
        indented block); the parse then goes on in later `refresh` calls, and until it ends
        there is no tree (callers fall back to line boundaries)."""
        self.grammar = grammar if grammar and _loadable(grammar) else None
        self.version = 0
        self._text = text
        self._bytes = text.encode("utf-8", "surrogatepass")
        self._ascii = len(self._bytes) == len(text)
        # Own parser: a halted parse waits in it to be resumed (see `refresh`).
        self._parser = get_parser(self.grammar) if self.grammar else None  # type: ignore[arg-type]
        self._tree: Tree | None = None
        self._dirty = False  # edits since the last parse
        self._pending: _PendingParse | None = None
        self._gave_up: int | None = None  # version whose budgeted parse ran out of time
        if self._parser is not None:
            deadline = None if budget_ms is None else time.perf_counter() + budget_ms / 1000
            self._tree = self._parse(self._bytes, None, deadline)
            if self._tree is None:
                self._pending = _PendingParse(self._bytes, None, [])
                self._dirty = True
        # Boundary lines, shifted on every edit; `_dirty_rows` are the spans still to query.
        self._boundaries: list[int] | None = None
        self._dirty_rows: list[tuple[int, int]] = []

    @property
    def text(self) -> str:
        return self._text

    @property
    def source(self) -> bytes:
        """The text as UTF-8, the form tree-sitter offsets refer to."""
        return self._bytes

    @property
    def tree(self) -> Tree | None:
        """The parse tree, reparsed first if edited (unless a budgeted parse of this version
        already gave up: then the edited tree, with correct positions, is what there is)."""
        if self._dirty and self._gave_up != self.version:
            self.refresh()
        return self._tree

    @property
    def fresh(self) -> bool:
        """True when the tree describes the current text."""
        return not self._dirty

    def refresh(self, budget_ms: float | None = None) -> bool:
        """Reparse incrementally if edited; within `budget_ms` when given. True when fresh.

        A budgeted parse that runs out of time is kept, not thrown away: tree-sitter resumes
        a halted parse when given the same input again, so the next call continues parsing
        that version's text (kept in `_pending`) and then catches up with the edits made since.
        Each call thus adds progress, and a burst of expensive edits costs each request at
        most the budget. A resumed parse of text without syntax errors gives the tree an
        uninterrupted parse gives; with errors, tree-sitter's error recovery may choose
        differently after a halt (a few percent of halts in a random check while writing
        this), a different but equally valid reading of broken code
        (tests/test_parse_budget.py states both). After a budgeted call gave up,
        `tree` does not retry at that version (the caller chose the budget; the stale tree is
        the answer until the next call).
        """
        if not self._dirty or self._parser is None:
            return True
        deadline = None if budget_ms is None else time.perf_counter() + budget_ms / 1000
        pending = self._pending
        if pending is not None:
            done = self._parse(pending.source, pending.old, deadline)
            if done is None:
                return False
            self._pending = None
            changed = [(r.start_point.row, r.end_point.row)
                       for r in pending.old.changed_ranges(done)] if pending.old else []
            for kwargs, rows in pending.later:
                done.edit(**kwargs)
                changed = [_shift_span(span, rows) for span in changed]
            self._mark_changed(changed)
            self._tree = done
            if not pending.later:
                self._dirty = False
                self._gave_up = None
                return True
        old = self._tree
        if old is None:  # a fork made while the first parse was pending: start it here
            self._pending = _PendingParse(self._bytes, None, [])
            left = None if deadline is None else max(0.0, (deadline - time.perf_counter()) * 1000)
            return self.refresh(left)
        new = self._parse(self._bytes, old, deadline)
        if new is None:
            # Keep `old` untouched for the resumed parse; later edits go to a copy.
            self._pending = _PendingParse(self._bytes, old, [])
            self._tree = old.copy()
            return False
        self._mark_changed([(r.start_point.row, r.end_point.row) for r in old.changed_ranges(new)])
        self._tree = new
        self._dirty = False
        self._gave_up = None
        return True

    def _parse(self, source: bytes, old: Tree | None, deadline: float | None) -> Tree | None:
        """Parse `source` against `old`; None when halted at `deadline` (resumable)."""
        assert self._parser is not None

        def progress(_offset: int, _has_error: bool) -> bool:  # True halts the parse
            return deadline is not None and time.perf_counter() > deadline

        try:
            # Only the chunked-read form honours a progress callback; a resumed parse must
            # see the same input form as the halted one, so it is used every time.
            read = chunk_reader(source)
            if old is None:
                return self._parser.parse(read, progress_callback=progress)
            return self._parser.parse(read, old, progress_callback=progress)
        except ValueError:  # halted by the progress callback
            self._gave_up = self.version
            return None

    def _mark_changed(self, spans: list[tuple[int, int]]) -> None:
        if self._boundaries is None:
            self._dirty_rows = []  # the first `boundary_lines` queries the whole tree
        else:
            self._dirty_rows = _merge_spans(self._dirty_rows + spans)

    def byte_offset(self, offset: int) -> int:
        """UTF-8 byte offset of code-point `offset`."""
        offset = max(0, min(offset, len(self._text)))
        if self._ascii:
            return offset
        return len(self._text[:offset].encode("utf-8", "surrogatepass"))

    def point(self, offset: int, row: int | None = None) -> Point:
        """Tree-sitter point (row, byte column) of code-point `offset`; `row` if known."""
        offset = max(0, min(offset, len(self._text)))
        if row is None:
            row = self._text.count("\n", 0, offset)
        line_start = self._text.rfind("\n", 0, offset) + 1
        column = offset - line_start
        if not self._ascii:
            column = len(self._text[line_start:offset].encode("utf-8", "surrogatepass"))
        return Point(row, column)

    def edit(self, start: int, end: int, new_text: str,
             rows: tuple[int, int] | None = None) -> None:
        """Replace `text[start:end]` by `new_text`; the reparse waits for `refresh`.

        `rows` are the lines of `start` and `end` when the caller has a line table (counting
        newlines up to the edit is a tenth of a millisecond in a 10,000-line file).
        """
        if not 0 <= start <= end <= len(self._text):
            raise ValueError(f"edit range {start}..{end} outside 0..{len(self._text)}")
        start_byte, old_end_byte = self.byte_offset(start), self.byte_offset(end)
        start_point = self.point(start, rows[0] if rows else None)
        old_end_point = self.point(end, rows[1] if rows else None)
        new_bytes = new_text.encode("utf-8", "surrogatepass")
        self._text = self._text[:start] + new_text + self._text[end:]
        self._bytes = self._bytes[:start_byte] + new_bytes + self._bytes[old_end_byte:]
        self._ascii = self._ascii and len(new_bytes) == len(new_text)
        self.version += 1
        if self._parser is None:
            return
        newlines = new_text.count("\n")
        if newlines:
            tail = new_bytes[new_bytes.rfind(b"\n") + 1 :]
            new_end_point = Point(start_point.row + newlines, len(tail))
        else:
            new_end_point = Point(start_point.row, start_point.column + len(new_bytes))
        kwargs = {
            "start_byte": start_byte,
            "old_end_byte": old_end_byte,
            "new_end_byte": start_byte + len(new_bytes),
            "start_point": start_point,
            "old_end_point": old_end_point,
            "new_end_point": new_end_point,
        }
        if self._tree is not None:
            self._tree.edit(**kwargs)
        self._dirty = True
        edit = (start_point.row, old_end_point.row, new_end_point.row)
        if self._pending is not None:
            self._pending.later.append((kwargs, edit))
        if self._boundaries is not None:
            self._boundaries = _shift_rows(self._boundaries, edit)
        spans = [_shift_span(span, edit) for span in self._dirty_rows]
        self._dirty_rows = _merge_spans([*spans, (edit[0], edit[2])])

    def fork(self) -> SyntaxDocument:
        """An independent copy, for a what-if edit (the text after accepting a suggestion)
        that costs an incremental parse instead of a full one."""
        twin = object.__new__(SyntaxDocument)
        twin.__dict__.update(self.__dict__)
        twin._parser = get_parser(self.grammar) if self.grammar else None  # type: ignore[arg-type]
        twin._tree = self._tree.copy() if self._tree is not None else None
        twin._pending = None  # a halted parse lives in our parser; the twin starts its own
        # Lists are replaced, never changed in place, so the twin may share them.
        return twin

    def line_count(self) -> int:
        return self._text.count("\n") + 1


_READ_CHUNK = 1 << 12


class _ReadBuffers(threading.local):
    def __init__(self) -> None:
        self.buffers = (bytearray(), bytearray())
        self.turn = 0


_READ_BUFFERS = _ReadBuffers()


def chunk_reader(source: bytes, chunk: int = _READ_CHUNK,
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


@dataclass
class _PendingParse:
    """A parse halted at its budget: the text and old tree it needs to resume, and the edits
    made since (to replay on its result)."""

    source: bytes
    old: Tree | None  # None: the first parse
    later: list[tuple[dict[str, Any], tuple[int, int, int]]]


# ------------------------------------------------------------------------------- boundaries


def boundary_lines(doc: SyntaxDocument) -> list[int]:
    """Sorted 0-based lines where a statement, definition or declaration starts, at any depth.

    A prompt window cut at one of these lines holds whole statements. Without a grammar every
    line qualifies. The list is computed once, then shifted on every edit and re-queried only
    over the edited lines and the ranges tree-sitter reports as structurally changed (an opened
    string or bracket can reach far): on a 10,000-line file a fraction of a millisecond instead
    of a full query. While the tree is stale (a budgeted parse gave up) the edited lines have no
    boundaries yet. The list is shared, so do not modify it.
    """
    tree = doc.tree
    if tree is None or doc.grammar is None:
        return list(range(doc.line_count()))
    if doc._boundaries is None:
        rows = _syntax_boundaries(tree, doc.grammar)
        if doc.fresh:
            doc._dirty_rows = []
        else:  # the edited lines are not parsed yet: no boundaries there until they are
            rows = _without_spans(rows, doc._dirty_rows)
        doc._boundaries = rows
    elif doc._dirty_rows and doc.fresh:
        doc._boundaries = _requery(doc._boundaries, tree, doc.grammar, doc._dirty_rows)
        doc._dirty_rows = []
    return doc._boundaries


def _shift_rows(rows: list[int], edit: tuple[int, int, int]) -> list[int]:
    """Boundary rows after an edit: earlier rows stay, rows in the edit go, later rows move."""
    start_row, old_end_row, new_end_row = edit
    delta = new_end_row - old_end_row
    low = bisect.bisect_left(rows, start_row)
    high = bisect.bisect_right(rows, old_end_row)
    kept = rows[:low]
    if start_row == 0:
        kept = [0]  # the first line always starts a statement
    if delta:
        kept.extend(r + delta for r in rows[high:])
    else:
        kept.extend(rows[high:])
    return kept


def _shift_span(span: tuple[int, int], edit: tuple[int, int, int]) -> tuple[int, int]:
    start_row, old_end_row, new_end_row = edit
    delta = new_end_row - old_end_row
    low, high = span
    if high < start_row:
        return span
    if low > old_end_row:
        return low + delta, high + delta
    return min(low, start_row), max(high + delta, new_end_row)


def _merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    if len(merged) > 32:  # edits all over a buffer nobody asks about: one span is enough
        merged = [(merged[0][0], max(high for _, high in merged))]
    return merged


def _without_spans(rows: list[int], spans: list[tuple[int, int]]) -> list[int]:
    return [r for r in rows if r == 0 or not any(low <= r <= high for low, high in spans)]


def _requery(rows: list[int], tree: Tree, grammar: str, spans: list[tuple[int, int]]) -> list[int]:
    """Replace the boundaries inside `spans` by a fresh query over just those lines."""
    query = _boundary_query(grammar)
    kept = set(rows)
    for low, high in _merge_spans(spans):
        inside = rows[bisect.bisect_left(rows, low) : bisect.bisect_right(rows, high)]
        kept.difference_update(inside)
        if query is None:
            continue
        cursor = QueryCursor(query)
        cursor.set_point_range(Point(low, 0), Point(high + 1, 0))
        for nodes in cursor.captures(tree.root_node).values():
            kept.update(n.start_point.row for n in nodes if low <= n.start_point.row <= high)
        if grammar not in LANGUAGE_TABLES:
            kept.update(c.start_point.row for c in tree.root_node.named_children
                        if low <= c.start_point.row <= high)
    kept.add(0)
    return sorted(kept)


def _syntax_boundaries(tree: Tree, grammar: str) -> list[int]:
    rows = {0}
    query = _boundary_query(grammar)
    root = tree.root_node
    if query is not None:
        for nodes in QueryCursor(query).captures(root).values():
            rows.update(node.start_point.row for node in nodes)
    if grammar not in LANGUAGE_TABLES:
        rows.update(child.start_point.row for child in root.named_children)
    return sorted(rows)


# ------------------------------------------------------------------------- enclosing scopes


def enclosing_scopes(doc: SyntaxDocument, offset: int) -> list[tuple[int, int]]:
    """Header line ranges `(start_line, end_line)` of the definitions enclosing `offset`,
    outermost first.

    A header runs from the definition's first line (decorators, annotations and `template <…>`
    included) to the line holding the `:` or `{` that opens its body. A definition encloses the
    cursor when the cursor is in its body (after the opener); for Python an indented blank line
    below the last statement still belongs to the body, judged by the cursor's indentation.
    """
    return [_header_lines(node, body) for node, body in _scope_nodes(doc, offset)]


def _scope_nodes(doc: SyntaxDocument, offset: int) -> list[tuple[Node, Node]]:
    """(definition, body) pairs enclosing the cursor, outermost first."""
    if doc.tree is None or doc.grammar is None:
        return []
    table = _table_for(doc.grammar)
    if not table.scopes:
        return []
    text = doc.text
    offset = max(0, min(offset, len(text)))
    cursor_byte = doc.byte_offset(offset)
    # Anchor on the last code before the cursor: trailing blank lines belong to no node.
    anchor_byte = _code_anchor(doc, cursor_byte)
    if anchor_byte is None:
        return []
    node: Node | None = doc.tree.root_node.descendant_for_byte_range(anchor_byte, anchor_byte)
    python = doc.grammar == "python"
    cursor_indent = _cursor_indent(text, offset) if python else 0
    found: list[tuple[Node, Node]] = []
    while node is not None:
        if node.type in table.scopes:
            body = _body_of(node)
            if body is not None and _body_holds(node, body, cursor_byte, cursor_indent, python):
                found.append((node, body))
        node = node.parent
    found.reverse()
    return found


def _code_anchor(doc: SyntaxDocument, cursor_byte: int) -> int | None:
    """Byte offset of the last character of code before the cursor, skipping whitespace and
    comments (comments are "extras" that tree-sitter hangs wherever they fall, often outside
    the block they sit in)."""
    assert doc.tree is not None
    source = doc.source
    position = cursor_byte
    while True:
        position = _last_non_space(source, position)
        if position is None:
            return None
        node = doc.tree.root_node.descendant_for_byte_range(position, position)
        if node is None or "comment" not in node.type:
            return position
        position = node.start_byte


def _last_non_space(source: bytes, end: int) -> int | None:
    """Offset of the last non-whitespace byte before `end`."""
    while end > 0:
        start = max(0, end - 4096)
        stripped = source[start:end].rstrip()
        if stripped:
            return start + len(stripped) - 1
        end = start
    return None


def _cursor_indent(text: str, offset: int) -> int:
    """Indentation that decides which Python block a cursor is in."""
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    if line.strip():
        return indent_width(line)
    return indent_width(text[line_start:offset])


def _body_holds(node: Node, body: Node, cursor_byte: int, cursor_indent: int, python: bool) -> bool:
    opener_end = _opener_end_byte(body)
    if cursor_byte < opener_end:
        return False
    if python:
        # Inside by indentation, or on the header line right after `def f():`.
        return cursor_indent > node.start_point.column or cursor_byte <= body.start_byte
    last = body.children[-1] if body.children else None
    closed = last is not None and not last.is_missing and last.type == "}"
    return not closed or cursor_byte < body.end_byte


def _opener_end_byte(body: Node) -> int:
    """End of the token that opens a body: `{` for brace languages, `:` for Python."""
    first = body.children[0] if body.children else None
    if first is not None and first.type == "{":
        return first.end_byte
    colon = _header_colon(body)
    if colon is not None:
        return colon.end_byte
    return body.start_byte


def _header_colon(body: Node) -> Node | None:
    """The `:` that ends a Python header (a direct child of the definition, before the body;
    the tree may put an ERROR between them while the user types)."""
    parent = body.parent
    if parent is None:
        return None
    for child in parent.children:
        if child.start_byte >= body.start_byte and child != body:
            break
        if child.type == ":":
            return child
    return None


def _body_of(node: Node) -> Node | None:
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    # Go `type T struct {…}` and friends keep the braces a few levels down.
    frontier = list(node.children)
    for _ in range(3):
        for child in frontier:
            if child.type in _BODY_TYPES:
                return child
        frontier = [grandchild for child in frontier for grandchild in child.children]
    return None


def _header_lines(node: Node, body: Node) -> tuple[int, int]:
    start = node
    while start.parent is not None and start.parent.type in _WRAPPERS:
        start = start.parent
    first = body.children[0] if body.children else None
    colon = None if first is not None and first.type == "{" else _header_colon(body)
    if colon is not None:
        end_row = colon.end_point.row
    elif first is not None and first.type == "{":
        end_row = first.start_point.row
    else:
        end_row = body.start_point.row
    return start.start_point.row, max(end_row, start.start_point.row)


_WRAPPERS = frozenset().union(*(table.wrappers for table in LANGUAGE_TABLES.values()))


# ------------------------------------------------------------------------------ error count


def parse_tree(text: str, grammar: str) -> Tree:
    """Parse `text` from scratch (for throwaway text such as a completion spliced in)."""
    return _parser(grammar).parse(text.encode("utf-8", "surrogatepass"))


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


# ----------------------------------------------------------------------------- cursor scope


@dataclass(frozen=True)
class CursorScope:
    """What the cursor's surroundings say about the suggestion to make.

    `block_indent`: indentation width (tabs count to the next multiple of 4) of the statements
    of the block a suggestion is written into; a later line indented less ends the block.
    `multiline`: whether a suggestion may span lines. `reason` names the rule that decided
    `multiline` (for logs and tests).
    """

    block_indent: int
    multiline: bool
    reason: str = ""


# Characters that may follow the cursor on its line without making the suggestion single-line:
# auto-closed brackets and quotes, and statement terminators.
_CLOSING_REST = frozenset(")]}>;,'\"` \t")


def cursor_scope(doc: SyntaxDocument, offset: int) -> CursorScope:
    """Decide single- vs multi-line and the block indentation at `offset`.

    `multiline`, first rule that applies wins:
      1. `text after cursor`: the rest of the line holds more than closing brackets, quotes,
         `;` or `,` → False (the user is editing inside a line).
      2. `in string or comment`: the cursor is inside a string or comment → False.
      3. `blank line`: the cursor's line is blank up to the cursor → True.
      4. `block opener`: the line ends with the block opener, `{` (or `:` on a Python compound
         statement such as `def f():`) → True.
      5. `empty body`: the enclosing function's body holds nothing but a docstring, comments,
         `pass` or `...` → True (the whole body is still to be written).
      6. `mid-line` → False.

    `block_indent`: after a block opener, the opener line's indentation plus one indent unit of
    the file (1 when the file shows none yet: deeper than the opener is all that is known); on
    a blank line, the cursor's column (or, at column 0 outside Python, the previous non-blank
    line's indentation, plus a unit when that line opens a block); otherwise the indentation
    of the cursor's line.
    """
    text = doc.text
    offset = max(0, min(offset, len(text)))
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    before = text[line_start:offset]
    after = text[offset : line_end if line_end >= 0 else len(text)]
    line_indent = indent_width(before)
    opens_block = bool(before.strip()) and _opens_block(doc, before, line_start)

    if not before.strip():
        block_indent = line_indent
        if block_indent == 0 and doc.grammar != "python":
            block_indent = _indent_after_previous_line(doc, text, line_start)
    elif opens_block:
        block_indent = line_indent + _indent_unit(doc, line_start)
    else:
        block_indent = line_indent

    def scope(multiline: bool, reason: str) -> CursorScope:
        return CursorScope(block_indent=block_indent, multiline=multiline, reason=reason)

    if not set(after) <= _CLOSING_REST:
        return scope(False, "text after cursor")
    if _inside_text_node(doc, offset):
        return scope(False, "in string or comment")
    if not before.strip():
        return scope(True, "blank line")
    if opens_block:
        return scope(True, "block opener")
    if _function_body_empty(doc, offset):
        return scope(True, "empty body")
    return scope(False, "mid-line")


def _indent_unit(doc: SyntaxDocument, line_start: int) -> int:
    """Indent unit of the file, judged from the text around the cursor; 1 when unknown (then
    a block is only known to be indented deeper than its opener)."""
    text = doc.text
    sample = text[max(0, line_start - 20_000) : line_start + 20_000]
    style = indent_style_for(sample, doc.grammar)
    return style.unit if style is not None else 1


def _indent_after_previous_line(doc: SyntaxDocument, text: str, line_start: int) -> int:
    end = line_start - 1
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end]
        if line.strip():
            if _opens_block(doc, line, start):
                return indent_width(line) + _indent_unit(doc, start)
            return indent_width(line)
        end = start - 1
    return 0


def _opens_block(doc: SyntaxDocument, before: str, line_start: int) -> bool:
    """Whether `before` (a line's text from `line_start`) ends with a block opener."""
    stripped = before.rstrip()
    if doc.grammar != "python":
        opener = _table_for(doc.grammar).opener if doc.grammar else ("{",)
        return stripped.endswith(opener)
    if not stripped.endswith(":"):
        return False
    words = stripped.split(None, 1)
    if words and words[0].rstrip(":") in _PY_BLOCK_KEYWORDS:
        return True
    # A header spread over lines (`def f(\n    a,\n):`): ask the tree whose colon it is.
    if doc.tree is None:
        return False
    colon = doc.byte_offset(line_start + len(stripped) - 1)
    node = doc.tree.root_node.descendant_for_byte_range(colon, colon + 1)
    parent = node.parent if node is not None else None
    return (
        node is not None
        and node.type == ":"
        and parent is not None
        and parent.type.endswith(("_definition", "_statement", "_clause"))
    )


def _inside_text_node(doc: SyntaxDocument, offset: int) -> bool:
    if doc.tree is None:
        return False
    cursor_byte = doc.byte_offset(offset)
    node: Node | None = doc.tree.root_node.descendant_for_byte_range(cursor_byte, cursor_byte)
    while node is not None and node.parent is not None:
        if (
            any(marker in node.type for marker in _TEXT_NODE_MARKERS)
            and node.start_byte < cursor_byte < node.end_byte
        ):
            return True
        node = node.parent
    return False


def _function_body_empty(doc: SyntaxDocument, offset: int) -> bool:
    scopes = _scope_nodes(doc, offset)
    if not scopes:
        return False
    node, body = scopes[-1]
    if not any(word in node.type for word in ("func", "method", "constructor", "closure")):
        return False
    statements = list(_statements(body))
    if not all(_is_placeholder(child) for child in statements):
        return False
    # The cursor must sit after the header or a placeholder, not after code the tree could
    # not place in the body (`return foo(` mid-edit parses as an ERROR outside it).
    anchor = _code_anchor(doc, doc.byte_offset(offset))
    if anchor is None:
        return False
    return anchor < _opener_end_byte(body) or any(
        child.start_byte <= anchor < child.end_byte for child in statements
    )


def _statements(body: Node) -> Iterator[Node]:
    for child in body.named_children:
        if child.type == "statement_list":  # Go wraps a body's statements
            yield from child.named_children
        else:
            yield child


def _is_placeholder(node: Node) -> bool:
    """Docstrings, comments, `pass` and `...`: statements that do not count as a body."""
    if "comment" in node.type or node.type in ("pass_statement", "ellipsis", "string"):
        return True
    if node.type == "expression_statement" and node.named_child_count == 1:
        return _is_placeholder(node.named_children[0])
    return False
