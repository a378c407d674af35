"""Definitions of the names a buffer imports, read from files of the workspace.

A completion after `total = parse_invoice(` is much better when the model has seen
`def parse_invoice(data: bytes, *, strict: bool = False) -> Invoice:`; the ring of open
buffers (`crossfile.py`) only has it when the user happened to open that file. This module reads
the buffer's import statements, resolves those that name files of the workspace, and returns a
compact text for each imported name: a function's signature and docstring, a class's header with
its public method signatures, a constant's assignment. `crossfile.select_snippets` decides which
of them fit the prompt.

Cheap by construction, because it runs on the request path (once per window start):

- only top-level definitions, found with tree-sitter; no type inference, no interpreter;
- each file's summary is cached by (path, mtime, size), so asking again costs one `stat`;
- files over `max_file_bytes` are skipped unread;
- a resolved path must lie inside one of the workspace roots after symlinks are followed, so
  neither `from ....x import y` nor a link can make the server read outside the project;
- nothing here touches the network.

Supported: Python (`import a.b`, `import a.b as m`, `from a.b import X, Y as Z`, relative
`from .m import X`; modules under a root or under `root/src`; one or two hops through a package
`__init__.py` that re-exports a name) and JavaScript/TypeScript relative imports
(`import {X} from './m'`, default and namespace imports; `./m` → m.ts/.tsx/.js/.jsx/index.*).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from cachetools import LRUCache
from tree_sitter import Node, Tree

from ghostfill.completion.crossfile import Snippet, mention_pattern, words_of
from ghostfill.completion.languages import language_for
from ghostfill.completion.parsing import Deadline, parse_tree, parse_until, thread_parser

__all__ = ["Definition", "DefinitionIndex", "ImportedName", "fs_path", "imports_of"]

#: Larger files are generated code or data; reading and parsing them is not cheap.
MAX_FILE_BYTES = 1_000_000
#: Lines of one definition's text (a class outline is cut here, with a marker line).
MAX_DEFINITION_LINES = 24
#: A definition this short is shown whole: its body says more than an elision would.
WHOLE_DEFINITION_LINES = 8
#: Lines of a docstring or doc comment kept in front of or under a signature.
MAX_DOC_LINES = 6
#: Definitions returned for one buffer (bounds the work on a file with hundreds of imports).
MAX_DEFINITIONS = 32
#: Attributes looked up per module import (`m.a`, `m.b`, …), the most used first.
MAX_ATTRIBUTES = 8
#: Hops through modules that import and re-export a name (`pkg/__init__.py`).
MAX_HOPS = 2
#: Summaries of files kept (each is a few kilobytes at most).
CACHE_FILES = 512
#: Parse time allowed for one file. Size alone does not bound it: tree-sitter-python takes
#: seconds on a few hundred kilobytes of comment lines after an indented block (quadratic in
#: its scanner), and a lookup runs on the request path. A file that needs longer is skipped.
PARSE_BUDGET_S = 0.25
#: Time for one lookup to read and parse files; imports left after it are not resolved this
#: time (the cache keeps what was parsed, so the next window start goes further).
LOOKUP_BUDGET_S = 0.5

PYTHON = "python"
JS_GRAMMARS = frozenset({"javascript", "typescript", "tsx"})
GRAMMARS = JS_GRAMMARS | {PYTHON}
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs")
_JS_EMITTED = (".js", ".jsx", ".mjs", ".cjs")
# Python statements whose blocks may hold imports (`try: import x` / `if TYPE_CHECKING:`), and
# the error node a region cut inside a `try:` can leave.
_PY_IMPORT_BLOCKS = frozenset({"if_statement", "try_statement", "else_clause", "elif_clause",
                               "except_clause", "finally_clause", "block", "ERROR"})


@dataclass(frozen=True)
class ImportedName:
    """One name an import statement binds.

    `local` is how the importing code refers to it: `Z` for `from m import Y as Z`, `m` for
    `import a.b as m`, `a.b` for `import a.b`. `name` is the symbol inside the module (`default`
    for a JavaScript default import), or None when the import binds the module itself; its uses
    then look like `local.attr`. `level` counts the leading dots of a relative Python import.
    """

    local: str
    module: str
    name: str | None
    level: int = 0


@dataclass(frozen=True)
class Definition:
    """The compact text of one imported name's definition."""

    #: How the buffer refers to it: `parse`, `Z`, `utils.parse`.
    name: str
    #: The file it was read from (resolved, inside a workspace root).
    path: Path
    #: `path` relative to its workspace root, in POSIX form: what the prompt shows.
    label: str
    #: 0-based line of the definition in `path`.
    line: int
    text: str
    #: Mentions of `name` in the buffer outside import statements.
    uses: int
    #: The signature alone (`def f(x: int) -> str: ...`, `class A(B): ...`): what the prompt
    #: shows of a definition when its whole `text` does not fit.
    brief: str = ""

    def snippet(self) -> Snippet:
        return Snippet(self.label, self.line, self.text, words_of(self.text), name=self.name,
                       used=self.uses > 0, brief=self.brief)


@dataclass(frozen=True)
class _Summary:
    """What one file offers to importers: its top-level definitions, and the names it binds by
    importing them (followed when a name is re-exported rather than defined)."""

    #: name → (0-based line, compact text, signature alone)
    definitions: dict[str, tuple[int, str, str]]
    imports: dict[str, ImportedName]


def fs_path(path: str | None) -> Path | None:
    """File-system path of a document path or `file:` URI; None for other URI schemes
    (`untitled:`, `vscode-notebook-cell:`), which have no directory to resolve imports from."""
    if not path:
        return None
    if path.startswith("file:"):
        parsed = urlparse(path)
        if parsed.netloc and parsed.netloc != "localhost":
            return None  # a UNC share: not read from here
        return Path(url2pathname(unquote(parsed.path)))
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", path) and not re.match(r"^[A-Za-z]:[\\/]", path):
        return None  # another scheme (a Windows drive letter is not one)
    return Path(path)


class DefinitionIndex:
    """Finds the definitions of a buffer's imported names under the workspace roots.

    Thread-safe: the language server asks from its event loop and from the model thread (warm-up).
    With no roots it finds nothing (`applies` is False).
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]] = (), *,
                 max_file_bytes: int = MAX_FILE_BYTES, max_lines: int = MAX_DEFINITION_LINES,
                 cache_size: int = CACHE_FILES) -> None:
        self.max_file_bytes = max_file_bytes
        self.max_lines = max(4, max_lines)
        self._roots: tuple[Path, ...] = ()
        # path -> (mtime_ns, size, summary): a changed stamp is a miss, so an edit on disk is
        # seen at the next lookup without any watcher.
        self._cache: LRUCache[str, tuple[int, int, _Summary]] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()
        #: Files read and parsed so far (cache misses); for tests and statistics.
        self.parsed = 0
        self._regions: LRUCache[tuple[str, str], tuple[list[ImportedName],
                                                       list[tuple[int, int]]]] = LRUCache(64)
        self.set_roots(roots)

    @property
    def roots(self) -> tuple[Path, ...]:
        return self._roots

    def set_roots(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        """Replace the workspace roots (existing directories only, symlinks resolved)."""
        resolved: list[Path] = []
        for root in roots:
            try:
                path = Path(root).resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if path.is_dir() and path not in resolved:
                resolved.append(path)
        self._roots = tuple(resolved)

    def applies(self, grammar: str | None, text: str) -> bool:
        """Whether a lookup could find anything: a root, a supported language, an import.
        Cheap enough for every keystroke (the engine reserves prompt room on it)."""
        return bool(self._roots) and grammar in GRAMMARS and "import" in text

    # -- lookup ------------------------------------------------------------------------------
    def lookup(self, text: str, grammar: str | None, path: str | None = None
               ) -> list[Definition]:
        """Definitions of the names `text` imports, in import order (at most MAX_DEFINITIONS).

        `path` (a path or `file:` URI) anchors relative imports. Definitions from the buffer's
        own file are left out.
        """
        if not self.applies(grammar, text) or grammar is None:
            return []
        importer = fs_path(path)
        if importer is not None:
            importer = Path(os.path.abspath(importer))
        source = text.encode("utf-8", "surrogatepass")
        imports, spans = self._buffer_imports(text, grammar)
        code = _blank_spans(source, spans).decode("utf-8", "replace")
        found: dict[tuple[Path, int], Definition] = {}
        own = _real(importer)
        deadline = Deadline(LOOKUP_BUDGET_S * 1000)
        for imported in imports:
            for name, file, line, body, brief in self._definitions_of(imported, grammar,
                                                                        importer, code, deadline):
                if file == own:
                    continue
                uses = _count_uses(code, name)
                known = found.get((file, line))
                if known is not None:
                    # Imported twice (`import m` and `from m import f`): keep the spelling the
                    # buffer uses most, the one worth ranking by.
                    if uses > known.uses:
                        found[(file, line)] = Definition(name, file, known.label, line, body, uses,
                                                         brief)
                    continue
                if len(found) >= MAX_DEFINITIONS:
                    break
                found[(file, line)] = Definition(name, file, self._label(file), line, body, uses,
                                                 brief)
        return list(found.values())

    def _buffer_imports(self, text: str, grammar: str
                        ) -> tuple[list[ImportedName], list[tuple[int, int]]]:
        """The buffer's imports, from a parse of only the part of it that holds them.

        The document's own syntax tree is not relied on (it follows edits incrementally and
        need not be fully parsed when a request comes), and a fresh parse of a whole large
        buffer would cost tens of milliseconds on the request path. The import region is
        usually a few dozen lines, and the same region (the user types below it) is answered
        from a small cache.
        """
        region = _import_region(text, grammar)
        key = (grammar, region)
        with self._lock:
            cached = self._regions.get(key)
        if cached is not None:
            return cached
        source = region.encode("utf-8", "surrogatepass")
        tree = _parse_within(source, grammar, PARSE_BUDGET_S)
        result = _buffer_import_nodes(tree.root_node, grammar, source) if tree else ([], [])
        with self._lock:
            self._regions[key] = result
        return result

    def _definitions_of(self, imported: ImportedName, grammar: str, importer: Path | None,
                        code: str, deadline: Deadline
                        ) -> Iterator[tuple[str, Path, int, str, str]]:
        python = grammar == PYTHON
        module = (self._python_module(imported.module, imported.level, importer) if python
                  else self._js_module(imported.module, importer))
        if imported.name is not None:
            hit = self._find(module, imported.name, deadline) if module is not None else None
            if hit is not None:
                yield (imported.local, *hit)
                return
            if not python:
                return
            # `from pkg import utils`: the name is a submodule; its uses are `utils.x`.
            dotted = f"{imported.module}.{imported.name}" if imported.module else imported.name
            module = self._python_module(dotted, imported.level, importer)
        if module is None:
            return
        for attr in _attribute_uses(code, imported.local):
            hit = self._find(module, attr, deadline)
            if hit is not None:
                yield (f"{imported.local}.{attr}", *hit)

    def _find(self, file: Path, name: str, deadline: Deadline, hops: int = MAX_HOPS
              ) -> tuple[Path, int, str, str] | None:
        """`name`'s definition in `file`, following re-exports up to `hops` modules away."""
        summary = self.summary(file, deadline)
        if summary is None:
            return None
        if name in summary.definitions:
            line, body, brief = summary.definitions[name]
            return file, line, body, brief
        via = summary.imports.get(name)
        if via is None or via.name is None or hops <= 0:
            return None
        python = language_for(None, file.name) == PYTHON
        target = (self._python_module(via.module, via.level, file) if python
                  else self._js_module(via.module, file))
        if target is None or target == file:
            return None
        return self._find(target, via.name, deadline, hops - 1)

    # -- files ---------------------------------------------------------------------------------
    def summary(self, file: Path, deadline: Deadline | None = None) -> _Summary | None:
        """The cached summary of `file` (a resolved path inside a root), re-read when its
        mtime or size changed; None for unreadable, unsupported or too large files, and when
        it would have to be read after `deadline`."""
        grammar = language_for(None, file.name)
        if grammar not in GRAMMARS:
            return None
        try:
            stat = file.stat()
        except OSError:
            return None
        if stat.st_size > self.max_file_bytes:
            return None
        key = str(file)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        if deadline is not None and deadline.passed():
            return None  # this lookup has spent its time; not cached, tried again next time
        try:
            with file.open("rb") as f:
                source = f.read(self.max_file_bytes + 1)
        except OSError:
            return None
        if len(source) > self.max_file_bytes:
            return None  # grew since the stat
        summary = _summarize(source, grammar, self.max_lines)
        with self._lock:
            self.parsed += 1
            self._cache[key] = (stat.st_mtime_ns, stat.st_size, summary)
        return summary

    def _inside(self, candidate: Path) -> Path | None:
        """`candidate` resolved (symlinks followed) if it is a file under a root, else None."""
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_file():
            return None
        if any(resolved.is_relative_to(root) for root in self._roots):
            return resolved
        return None

    def _label(self, file: Path) -> str:
        for root in self._roots:
            if file.is_relative_to(root):
                return file.relative_to(root).as_posix()
        return file.name

    def _python_module(self, module: str, level: int, importer: Path | None) -> Path | None:
        """The file of a Python module: `a.b` → `a/b.py` or `a/b/__init__.py` under a root (or
        `root/src`); with `level` dots, relative to the importing file's package."""
        parts = [part for part in module.split(".") if part]
        if level:
            if importer is None:
                return None
            base = importer.parent
            for _ in range(level - 1):
                base = base.parent
            bases = [base]
        else:
            if not parts:
                return None
            bases = [base for root in self._roots for base in (root, root / "src")]
        for base in bases:
            target = base.joinpath(*parts)
            candidates = [target / "__init__.py"]
            if parts:
                candidates.insert(0, target.parent / f"{parts[-1]}.py")
            for candidate in candidates:
                found = self._inside(candidate)
                if found is not None:
                    return found
        return None

    def _js_module(self, specifier: str, importer: Path | None) -> Path | None:
        """The file of a relative JavaScript/TypeScript import; bare specifiers (packages)
        are not looked up (node_modules is not the workspace's code)."""
        if importer is None or not (specifier.startswith(("./", "../"))
                                    or specifier in (".", "..")):
            return None
        target = importer.parent / specifier
        candidates: list[Path] = []
        if target.suffix in _JS_EXTENSIONS:
            candidates.append(target)
        if target.suffix in _JS_EMITTED:
            # TypeScript's ESM style names the emitted file: './m.js' is m.ts on disk.
            candidates += [target.with_suffix(".ts"), target.with_suffix(".tsx")]
        candidates += [Path(f"{target}{ext}") for ext in _JS_EXTENSIONS]
        candidates += [target / f"index{ext}" for ext in _JS_EXTENSIONS]
        for candidate in candidates:
            found = self._inside(candidate)
            if found is not None:
                return found
        return None


def _real(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


# ----------------------------------------------------------------------------- the buffer


def imports_of(text: str, grammar: str) -> list[ImportedName]:
    """The names `text` imports (Python, JavaScript, TypeScript; [] for other grammars)."""
    if grammar not in GRAMMARS:
        return []
    source = text.encode("utf-8", "surrogatepass")
    return _buffer_import_nodes(parse_tree(text, grammar).root_node, grammar, source)[0]


_IMPORT_LINE = {
    # `from the …` in a docstring is not one: a `from` line names a module, then `import`.
    PYTHON: re.compile(r"^[ \t]*(?:import[ \t]+[\w.]|from[ \t]+[\w.]+[ \t]+import\b)",
                       re.MULTILINE),
    "js": re.compile(r"^[ \t]*(?:import\b|from[ \t]*['\"])", re.MULTILINE),
}
# A line starting a new top-level statement ends the import region (`except`/`else` of a
# `try: import x` do not; nor do closing brackets of a multi-line import).
_REGION_END = re.compile(r"^(?!(?:except|else|elif|finally|import|from)\b)[A-Za-z_@$]",
                         re.MULTILINE)


def _import_region(text: str, grammar: str) -> str:
    """The start of `text` through its last import statement (imports sit at the top)."""
    pattern = _IMPORT_LINE[PYTHON if grammar == PYTHON else "js"]
    last = None
    for match in pattern.finditer(text):
        last = match
    if last is None:
        return ""
    line_end = text.find("\n", last.end())
    if line_end < 0:
        return text
    end = _REGION_END.search(text, line_end + 1)
    return text[: end.start()] if end is not None else text


def _buffer_import_nodes(root: Node, grammar: str, source: bytes
                         ) -> tuple[list[ImportedName], list[tuple[int, int]]]:
    """Imported names and the byte spans of the statements that import them."""
    names: list[ImportedName] = []
    spans: list[tuple[int, int]] = []
    if grammar == PYTHON:
        stack = list(reversed(root.named_children))
        while stack:
            node = stack.pop()
            if node.type in ("import_statement", "import_from_statement"):
                names += _python_imports(node, source)
                spans.append((node.start_byte, node.end_byte))
            elif node.type in _PY_IMPORT_BLOCKS:
                stack += reversed(node.named_children)
    else:
        for node in root.named_children:
            if node.type == "import_statement":
                names += _js_imports(node, source)
                spans.append((node.start_byte, node.end_byte))
    return names, spans


def _python_imports(node: Node, source: bytes) -> list[ImportedName]:
    found: list[ImportedName] = []
    module, level = "", 0
    if node.type == "import_from_statement":
        where = node.child_by_field_name("module_name")
        if where is None:
            return []
        if where.type == "relative_import":
            for child in where.named_children:
                if child.type == "import_prefix":
                    level = _text(source, child).count(".")
                elif child.type == "dotted_name":
                    module = _text(source, child)
        else:
            module = _text(source, where)
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            name_node, alias = child.child_by_field_name("name"), child.child_by_field_name("alias")
            if name_node is None or alias is None:
                continue
            name, local = _text(source, name_node), _text(source, alias)
        else:
            name = local = _text(source, child)
        if node.type == "import_statement":
            found.append(ImportedName(local, name, None))
        elif "." not in name:
            found.append(ImportedName(local, module, name, level))
    return found


def _js_imports(node: Node, source: bytes) -> list[ImportedName]:
    where = node.child_by_field_name("source")
    if where is None:
        return []
    module = _text(source, where)[1:-1]
    found: list[ImportedName] = []
    for clause in (c for c in node.named_children if c.type == "import_clause"):
        for child in clause.named_children:
            if child.type == "identifier":
                found.append(ImportedName(_text(source, child), module, "default"))
            elif child.type == "namespace_import":
                ident = next((c for c in child.named_children if c.type == "identifier"), None)
                if ident is not None:
                    found.append(ImportedName(_text(source, ident), module, None))
            elif child.type == "named_imports":
                for spec in child.named_children:
                    if spec.type != "import_specifier":
                        continue
                    name_node = spec.child_by_field_name("name")
                    alias = spec.child_by_field_name("alias")
                    if name_node is None:
                        continue
                    name = _text(source, name_node)
                    local = _text(source, alias) if alias is not None else name
                    found.append(ImportedName(local, module, name))
    return found


def _blank_spans(source: bytes, spans: list[tuple[int, int]]) -> bytes:
    """`source` without the import statements, so an import does not count as a use."""
    if not spans:
        return source
    pieces, last = [], 0
    for start, end in sorted(spans):
        pieces.append(source[last:start])
        last = max(last, end)
    pieces.append(source[last:])
    return b"\n".join(pieces)


def _count_uses(code: str, name: str) -> int:
    return len(mention_pattern(name).findall(code))


def _attribute_uses(code: str, module_local: str) -> list[str]:
    """Attributes used as `module_local.attr`, the most used first (at most MAX_ATTRIBUTES)."""
    pattern = re.compile(r"(?<![\w.$])" + re.escape(module_local) + r"\.([A-Za-z_$][\w$]*)")
    counts: dict[str, int] = {}
    for match in pattern.finditer(code):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    ranked = sorted(counts, key=lambda attr: -counts[attr])  # stable: first use breaks ties
    return ranked[:MAX_ATTRIBUTES]


# --------------------------------------------------------------------------- summaries


def _summarize(source: bytes, grammar: str, max_lines: int) -> _Summary:
    """The file's definitions; an empty summary when it cannot be parsed within
    PARSE_BUDGET_S (cached like any other, so a slow file costs that time once)."""
    # Decoded and encoded again so invalid UTF-8 cannot shift byte offsets.
    source = source.decode("utf-8", "replace").encode("utf-8", "surrogatepass")
    tree = _parse_within(source, grammar, PARSE_BUDGET_S)
    if tree is None:
        return _Summary({}, {})
    root = tree.root_node
    if grammar == PYTHON:
        return _python_summary(root, source, max_lines)
    return _js_summary(root, source, max_lines)


def _parse_within(source: bytes, grammar: str, budget_s: float) -> Tree | None:
    """Parse `source` with the thread's parser, or None past `budget_s` (not resumed)."""
    return parse_until(thread_parser(grammar), source, None, Deadline(budget_s * 1000),
                       chunk=1 << 16, resumable=False)


def _text(source: bytes, node: Node) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace")


def _line_indent(source: bytes, byte: int) -> str:
    """Whitespace before `byte` on its line (the indentation of a node starting there)."""
    line_start = source.rfind(b"\n", 0, byte) + 1
    lead = source[line_start:byte].decode("utf-8", "replace")
    return lead if not lead.strip() else ""


def _from(source: bytes, start: Node, end_byte: int) -> str:
    """Text from `start` to `end_byte`, with the first line's indentation put back."""
    return _line_indent(source, start.start_byte) + source[start.start_byte : end_byte].decode(
        "utf-8", "replace").rstrip()


def _first_line(text: str, marker: str) -> str:
    """The first line, and `marker` after it when more followed."""
    first, more, _ = text.partition("\n")
    return f"{first} {marker}" if more else first


def _cap(text: str, max_lines: int, marker: str) -> str:
    """At most `max_lines` lines: the first ones, a marker line, and the last (a closing
    bracket, usually)."""
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    kept = lines[: max_lines - 2]
    following = lines[max_lines - 2]
    indent = following[: len(following) - len(following.lstrip())]
    return "\n".join([*kept, f"{indent}{marker}", lines[-1]])


def _private(name: str) -> bool:
    """`_helper` and `#field` are implementation details; dunder methods are not."""
    if name.startswith("#"):
        return True
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# Python -------------------------------------------------------------------------------------


def _unwrap(node: Node) -> Node:
    """Older grammars wrap statements in `expression_statement`; newer ones do not."""
    if node.type == "expression_statement" and node.named_child_count == 1:
        return node.named_children[0]
    return node


def _python_summary(root: Node, source: bytes, max_lines: int) -> _Summary:
    definitions: dict[str, tuple[int, str, str]] = {}
    imports: dict[str, ImportedName] = {}
    for node in root.named_children:
        inner = _unwrap(node)
        if inner.type == "decorated_definition":
            inner = inner.child_by_field_name("definition") or inner
        if inner.type in ("function_definition", "class_definition"):
            name = inner.child_by_field_name("name")
            if name is not None:
                definitions[_text(source, name)] = (
                    node.start_point.row, _python_definition(node, inner, source, max_lines),
                    _python_header(inner, inner, source) + " ...")
        elif inner.type == "assignment":
            left = inner.child_by_field_name("left")
            if left is not None and left.type == "identifier":
                whole = _from(source, node, node.end_byte)
                definitions[_text(source, left)] = (node.start_point.row, _cap(whole, 4, "..."),
                                                    _first_line(whole, "..."))
        elif inner.type in ("import_statement", "import_from_statement"):
            for imported in _python_imports(inner, source):
                imports[imported.local] = imported
    return _Summary(definitions, imports)


def _python_definition(outer: Node, node: Node, source: bytes, max_lines: int) -> str:
    whole = _from(source, outer, outer.end_byte)
    if whole.count("\n") < WHOLE_DEFINITION_LINES:
        return whole
    if node.type == "function_definition":
        return _python_function(outer, node, source)
    return _python_class(outer, node, source, max_lines)


def _python_header(outer: Node, node: Node, source: bytes) -> str:
    """Decorators and the `def …:` / `class …:` line(s), up to the colon."""
    body = node.child_by_field_name("body")
    end = node.end_byte
    for child in node.children:
        if body is not None and child.start_byte >= body.start_byte:
            break
        if child.type == ":":
            end = child.end_byte
    return _from(source, outer, end)


def _python_docstring(body: Node | None, source: bytes, max_lines: int) -> str | None:
    if body is None or not body.named_children:
        return None
    first = _unwrap(body.named_children[0])
    if first.type != "string":
        return None
    doc = _from(source, first, first.end_byte)
    lines = doc.split("\n")
    if len(lines) <= max_lines:
        return doc
    quote = '"""' if '"""' in lines[0] else "'''" if "'''" in lines[0] else ""
    indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
    return "\n".join([*lines[: max_lines - 1], f"{indent}{quote}"])


def _python_function(outer: Node, node: Node, source: bytes) -> str:
    body = node.child_by_field_name("body")
    parts = [_python_header(outer, node, source)]
    doc = _python_docstring(body, source, MAX_DOC_LINES)
    if doc is not None:
        parts.append(doc)
    indent = _line_indent(source, body.start_byte) if body is not None else ""
    parts.append(f"{indent or '    '}...")
    return "\n".join(parts)


def _python_class(outer: Node, node: Node, source: bytes, max_lines: int) -> str:
    """Header, docstring, public fields and method signatures: what a caller needs."""
    body = node.child_by_field_name("body")
    lines = _python_header(outer, node, source).split("\n")
    indent = _line_indent(source, body.start_byte) if body is not None else ""
    indent = indent or _line_indent(source, outer.start_byte) + "    "
    doc = _python_docstring(body, source, 3)
    if doc is not None:
        lines += doc.split("\n")
    members = 0
    for member in body.named_children if body is not None else []:
        inner = _unwrap(member)
        if inner.type == "decorated_definition":
            inner = inner.child_by_field_name("definition") or inner
        if inner.type in ("function_definition", "class_definition"):
            name = inner.child_by_field_name("name")
            if name is None or _private(_text(source, name)):
                continue
            entry = _python_header(member, inner, source) + " ..."
        elif inner.type == "assignment":
            left = inner.child_by_field_name("left")
            if left is None or _private(_text(source, left)):
                continue
            entry = _from(source, member, member.end_byte).split("\n")[0]
        else:
            continue
        entry_lines = entry.split("\n")
        if len(lines) + len(entry_lines) > max_lines - 1:
            lines.append(f"{indent}# ...")
            break
        lines += entry_lines
        members += 1
    if not members:
        lines.append(f"{indent}...")
    return "\n".join(lines)


# JavaScript / TypeScript --------------------------------------------------------------------

_JS_FUNCTIONS = frozenset({"function_declaration", "generator_function_declaration",
                           "function_expression", "function", "arrow_function",
                           "generator_function"})
_JS_CLASSES = frozenset({"class_declaration", "abstract_class_declaration", "class"})
_JS_TYPES = frozenset({"interface_declaration", "type_alias_declaration", "enum_declaration"})
_JS_VARIABLES = frozenset({"lexical_declaration", "variable_declaration"})
_JS_METHODS = frozenset({"method_definition", "abstract_method_signature", "method_signature"})
_JS_FIELDS = frozenset({"public_field_definition", "field_definition", "property_signature"})


def _js_summary(root: Node, source: bytes, max_lines: int) -> _Summary:
    definitions: dict[str, tuple[int, str, str]] = {}
    imports: dict[str, ImportedName] = {}
    aliases: list[tuple[str, str]] = []  # `export { a as b }`: b names a
    for node in root.named_children:
        if node.type == "import_statement":
            for imported in _js_imports(node, source):
                imports[imported.local] = imported
            continue
        declaration, default = node, False
        if node.type == "export_statement":
            default = any(child.type == "default" for child in node.children)
            clause = next((c for c in node.named_children if c.type == "export_clause"), None)
            origin = node.child_by_field_name("source")
            if clause is not None:
                for name, alias in _export_specifiers(clause, source):
                    if origin is not None:  # export { a as b } from './m'
                        imports[alias] = ImportedName(alias, _text(source, origin)[1:-1], name)
                    else:
                        aliases.append((name, alias))
                continue
            found = (node.child_by_field_name("declaration")
                     or node.child_by_field_name("value"))
            if found is None:
                continue
            if found.type == "identifier":  # export default name;
                aliases.append((_text(source, found), "default"))
                continue
            declaration = found
        doc = _js_doc_comment(node, source)
        for name, body, brief in _js_declaration(node, declaration, source, max_lines):
            entry = (node.start_point.row, doc + body, brief)
            if name:
                definitions[name] = entry
            if default:
                definitions["default"] = entry
    for name, alias in aliases:
        if name in definitions:
            definitions[alias] = definitions[name]
        elif name in imports:
            imports[alias] = imports[name]
    return _Summary(definitions, imports)


def _export_specifiers(clause: Node, source: bytes) -> Iterator[tuple[str, str]]:
    for spec in clause.named_children:
        if spec.type != "export_specifier":
            continue
        name_node, alias = spec.child_by_field_name("name"), spec.child_by_field_name("alias")
        if name_node is not None:
            name = _text(source, name_node)
            yield name, _text(source, alias) if alias is not None else name


def _js_doc_comment(node: Node, source: bytes) -> str:
    """A `/** … */` comment right above the definition (capped), with its newline."""
    previous = node.prev_named_sibling
    if (previous is None or previous.type != "comment"
            or previous.end_point.row < node.start_point.row - 1):
        return ""
    text = _text(source, previous)
    if not text.startswith("/**"):
        return ""
    lines = text.split("\n")
    if len(lines) > MAX_DOC_LINES:
        lines = [*lines[: MAX_DOC_LINES - 1], " */"]
    return "\n".join(lines) + "\n"


def _js_declaration(outer: Node, node: Node, source: bytes, max_lines: int
                    ) -> Iterator[tuple[str, str, str]]:
    """(name, compact text, signature alone) of each name a top-level declaration binds."""
    whole = _from(source, outer, outer.end_byte)
    short = whole.count("\n") < WHOLE_DEFINITION_LINES
    name_node = node.child_by_field_name("name")
    name = _text(source, name_node) if name_node is not None else ""
    if node.type in _JS_FUNCTIONS:
        signature = _js_signature(outer, node, source)
        yield name, whole if short else signature, signature
    elif node.type in _JS_CLASSES:
        members = node.child_by_field_name("body")
        header = _from(source, outer, members.start_byte) + " { ... }" if members is not None \
            else _first_line(whole, "// ...")
        yield name, whole if short else _js_class(outer, node, source, max_lines), header
    elif node.type in _JS_TYPES:
        yield name, _cap(whole, max_lines, "// ..."), _first_line(whole, "// ...")
    elif node.type in _JS_VARIABLES:
        for declarator in node.named_children:
            if declarator.type != "variable_declarator":
                continue
            target = declarator.child_by_field_name("name")
            if target is None or target.type != "identifier":
                continue
            value = declarator.child_by_field_name("value")
            if value is not None and value.type in _JS_FUNCTIONS:
                signature = _js_signature(outer, value, source)
                body = whole if short else signature
            else:
                body, signature = _cap(whole, 4, "// ..."), _first_line(whole, "// ...")
            yield _text(source, target), body, signature


def _js_signature(outer: Node, node: Node, source: bytes) -> str:
    """Everything up to the body, then `{ ... }`: the signature with its types."""
    body = node.child_by_field_name("body")
    if body is None:
        return _from(source, outer, node.end_byte)
    elided = "{ ... }" if body.type == "statement_block" else "..."
    return f"{_from(source, outer, body.start_byte)} {elided}"


def _js_class(outer: Node, node: Node, source: bytes, max_lines: int) -> str:
    body = node.child_by_field_name("body")
    if body is None:
        return _cap(_from(source, outer, outer.end_byte), max_lines, "// ...")
    lines = f"{_from(source, outer, body.start_byte)} {{".split("\n")
    closing = _line_indent(source, outer.start_byte) + "}"
    for member in body.named_children:
        if member.type not in _JS_METHODS and member.type not in _JS_FIELDS:
            continue
        name = member.child_by_field_name("name")
        modifiers = {_text(source, c) for c in member.children
                     if c.type == "accessibility_modifier"}
        if name is None or _private(_text(source, name)) or "private" in modifiers:
            continue
        if member.type in _JS_METHODS:
            entry = _js_signature(member, member, source)
        else:
            entry = _from(source, member, member.end_byte).split("\n")[0].rstrip(";") + ";"
        entry_lines = entry.split("\n")
        if len(lines) + len(entry_lines) > max_lines - 2:
            lines.append(_line_indent(source, member.start_byte) + "// ...")
            break
        lines += entry_lines
    return "\n".join([*lines, closing])
