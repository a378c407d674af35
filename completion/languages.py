"""What ghostfill knows about each language: grammar names and the node types that shape code.

`language_for` maps an LSP languageId or a file extension to a grammar of
tree-sitter-language-pack 0.13.0, which bundles its grammars (1.x downloads them at run time,
which fails offline). `LANGUAGE_TABLES` gives the supported languages the node types the
boundary and scope rules need; any other grammar in the pack still works through a generic rule
(see `_LanguageTable`). Also here: each language's line-comment prefix and import statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import get_args

from tree_sitter import Language
from tree_sitter_language_pack import SupportedLanguage, get_language

__all__ = [
    "BODY_TYPES",
    "COMMENT_PREFIXES",
    "IMPORT_NODES",
    "LANGUAGE_TABLES",
    "PY_BLOCK_KEYWORDS",
    "TEXT_NODE_MARKERS",
    "WRAPPERS",
    "comment_prefix",
    "grammar_language",
    "language_for",
    "loadable",
    "table_for",
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
        if grammar and loadable(grammar):
            return grammar
    if path:
        name = path.split("?", 1)[0].split("#", 1)[0]
        grammar = _EXTENSIONS.get(PurePosixPath(name).suffix.lower())
        if grammar and loadable(grammar):
            return grammar
    return None


# Grammars of the pack that must not be used: cobol's parser never returns on ordinary text
# (checked against every bundled grammar with a few short files).
_UNSAFE_GRAMMARS = frozenset({"cobol"})


@cache
def loadable(grammar: str) -> bool:
    """Whether the pack has `grammar` and it is safe to parse with."""
    if grammar in _UNSAFE_GRAMMARS:
        return False
    try:
        # The pack types grammar names as a Literal; ours are plain strings, known at run time.
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
BODY_TYPES = _words(
    "block statement_block class_body compound_statement declaration_list field_declaration_list"
    " interface_body enum_body constructor_body"
)

# Node types whose inside is not code: no completion inside them is multi-line.
TEXT_NODE_MARKERS = ("string", "comment", "heredoc", "template_string", "char_literal")

# Python statements that open a block with `:` (used when the tree cannot tell, mid-edit).
PY_BLOCK_KEYWORDS = _words(
    "def class if elif else for while with try except finally async match case"
)

#: Node types that put lines in front of a scope's header, in any language.
WRAPPERS = frozenset().union(*(table.wrappers for table in LANGUAGE_TABLES.values()))


@cache
def grammar_language(grammar: str) -> Language:
    # The pack types grammar names as a Literal; ours are plain strings, known at run time.
    return get_language(grammar)  # type: ignore[arg-type]


def table_for(grammar: str) -> _LanguageTable:
    table = LANGUAGE_TABLES.get(grammar)
    return table if table is not None else _generic_table(grammar)


@cache
def _generic_table(grammar: str) -> _LanguageTable:
    language = grammar_language(grammar)
    containers = set()
    for kind_id in range(language.node_kind_count):
        name = language.node_kind_for_id(kind_id)
        if name and language.node_kind_is_named(kind_id) and name.endswith(("block", "body")):
            containers.add(name)
    return _LanguageTable(frozenset(containers))


# ------------------------------------------------------------------ comments and imports

#: Line-comment prefix per grammar (None: the language has none); others use `//`.
COMMENT_PREFIXES: dict[str, str | None] = {
    "python": "#", "ruby": "#", "bash": "#", "perl": "#", "r": "#", "yaml": "#", "toml": "#",
    "elixir": "#", "julia": "#", "nim": "#", "powershell": "#", "make": "#", "cmake": "#",
    "lua": "--", "sql": "--", "haskell": "--", "elm": "--",
    "html": None, "xml": None, "markdown": None, "json": None, "css": None,
}

#: Node types of top-level import (and package) statements per grammar.
IMPORT_NODES: dict[str, tuple[str, ...]] = {
    "python": ("import_statement", "import_from_statement", "future_import_statement"),
    "javascript": ("import_statement",),
    "typescript": ("import_statement",),
    "tsx": ("import_statement",),
    "java": ("import_declaration", "package_declaration"),
    "go": ("import_declaration", "package_clause"),
    "rust": ("use_declaration",),
    "c": ("preproc_include",),
    "cpp": ("preproc_include", "using_declaration"),
    "csharp": ("using_directive",),
    "kotlin": ("import_header", "package_header"),
    "scala": ("import_declaration",),
    "php": ("namespace_use_declaration",),
}


def comment_prefix(grammar: str | None) -> str | None:
    if grammar is None:
        return None
    return COMMENT_PREFIXES.get(grammar, "//")
