"""Tree-sitter layer: language ids, incremental documents, boundaries, scopes, cursor rules."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tree_sitter_language_pack import get_language

from ghostfill.completion.boundaries import boundary_lines
from ghostfill.completion.languages import LANGUAGE_TABLES, language_for
from ghostfill.completion.parsing import error_count, parse_tree
from ghostfill.completion.scopes import CursorScope, cursor_scope, enclosing_scopes
from ghostfill.completion.syntax import SyntaxDocument

CURSOR = "█"


def at_cursor(source: str, grammar: str | None) -> tuple[SyntaxDocument, int]:
    offset = source.index(CURSOR)
    return SyntaxDocument(source.replace(CURSOR, ""), grammar), offset


# ------------------------------------------------------------------------------ language_for


@pytest.mark.parametrize(
    ("language_id", "path", "grammar"),
    [
        ("python", None, "python"),
        ("javascriptreact", None, "javascript"),
        ("typescript", None, "typescript"),
        ("typescriptreact", None, "tsx"),
        ("java", None, "java"),
        ("c", None, "c"),
        ("cpp", None, "cpp"),
        ("csharp", None, "csharp"),
        ("rust", None, "rust"),
        ("go", None, "go"),
        ("lua", None, "lua"),
        ("ruby", None, "ruby"),
        ("php", None, "php"),
        ("Python", None, "python"),
        ("kotlin", None, "kotlin"),
        (None, "/src/app/main.rs", "rust"),
        (None, "file:///home/u/proj/widget.tsx", "tsx"),
        (None, "file:///home/u/proj/lib.H?x=1", "c"),
        ("plaintext", "notes.txt", None),
        ("plaintext", "script.py", "python"),
        (None, None, None),
        ("no-such-language", None, None),
        ("typescript", "file.py", "typescript"),
        ("cobol", "payroll.cob", None),  # its parser hangs: treated as plain text
    ],
)
def test_language_for(language_id: str | None, path: str | None, grammar: str | None) -> None:
    assert language_for(language_id, path) == grammar


@pytest.mark.parametrize("grammar", sorted(LANGUAGE_TABLES))
def test_node_type_tables_name_real_node_types(grammar: str) -> None:
    """A typo in a table would silently drop boundaries or scopes; check every name."""
    language = get_language(grammar)  # type: ignore[arg-type]
    table = LANGUAGE_TABLES[grammar]
    names = table.containers | table.scopes | table.wrappers
    unknown = {n for n in names if language.id_for_node_kind(n, True) is None}
    assert not unknown


# -------------------------------------------------------------------------- SyntaxDocument


def test_document_without_grammar_keeps_text_only() -> None:
    doc = SyntaxDocument("a\nb", None)
    doc.edit(1, 1, "x")
    assert doc.text == "ax\nb"
    assert doc.tree is None
    assert boundary_lines(doc) == [0, 1]
    assert enclosing_scopes(doc, 1) == []


def test_unknown_grammar_is_treated_as_plain_text() -> None:
    doc = SyntaxDocument("x", "no-such-grammar")
    assert doc.grammar is None and doc.tree is None


def test_edit_rejects_ranges_outside_the_text() -> None:
    doc = SyntaxDocument("abc", "python")
    with pytest.raises(ValueError):
        doc.edit(2, 5, "")


_EDIT_TEXT = st.lists(
    st.sampled_from(
        [
            "x",
            " ",
            "\n",
            "    ",
            "(",
            ")",
            ":",
            "{",
            "}",
            '"',
            "é",
            "→",
            "😀",
            "def f():\n    pass\n",
            "if x:\n",
            "#",
        ]
    ),
    max_size=4,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    grammar=st.sampled_from(["python", "javascript", "rust", "go"]),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 6), _EDIT_TEXT), max_size=12),
)
def test_incremental_edits_match_a_fresh_parse(
    grammar: str, edits: list[tuple[float, int, str]]
) -> None:
    source = {
        "python": "import os\n\nclass A:\n    def f(self, é):\n        return 'ü'\n",
        "javascript": "function f(a) {\n  return `→${a}`;\n}\n",
        "rust": 'fn main() {\n    let s = "é";\n}\n',
        "go": "package main\n\nfunc main() {\n\tx := 1\n}\n",
    }[grammar]
    doc = SyntaxDocument(source, grammar)
    boundary_lines(doc)  # from here on the boundaries are updated edit by edit
    text = source
    for where, length, new_text in edits:
        start = int(where * len(text))
        end = min(len(text), start + length)
        doc.edit(start, end, new_text)
        text = text[:start] + new_text + text[end:]
        assert doc.text == text
        fresh = SyntaxDocument(text, grammar)
        assert doc.tree is not None and fresh.tree is not None
        assert str(doc.tree.root_node) == str(fresh.tree.root_node)
        assert boundary_lines(doc) == boundary_lines(fresh)


def _big_python(lines: int) -> str:
    chunk = (
        "class Shape{n}:\n"
        '    """A shape."""\n'
        "\n"
        "    def area(self, scale: float = 1.0) -> float:\n"
        "        total = 0.0\n"
        "        for side in self.sides:\n"
        "            if side > 0:\n"
        "                total += side * scale  # (not a bracket: ')'\n"
        "        return total\n"
        "\n"
    )
    body = "".join(chunk.format(n=i) for i in range(lines // 10 + 1))
    return "\n".join(body.split("\n")[:lines]) + "\n"


def test_edits_on_a_10000_line_file_are_cheap() -> None:
    doc = SyntaxDocument(_big_python(10_000), "python")
    boundary_lines(doc)
    middle = doc.text.index("total += side", len(doc.text) // 2)
    started = time.perf_counter()
    for i in range(50):
        doc.edit(middle + i, middle + i, "x\n"[i % 2])
        boundary_lines(doc)
    per_edit = (time.perf_counter() - started) / 50
    # About 1 ms here; a full reparse plus boundary query costs ~40 ms.
    assert per_edit < 0.015
    assert boundary_lines(doc) == boundary_lines(SyntaxDocument(doc.text, "python"))


# ------------------------------------------------------------------------------ boundaries

BOUNDARY_CASES = {
    "python": (
        "import os\n"  # 0
        "\n"
        "@dec\n"  # 2 decorated definition
        "class A(B):\n"
        '    """Doc."""\n'  # 4
        "    def f(self, x):\n"  # 5
        "        if x:\n"  # 6
        "            return foo(\n"  # 7
        "                x)\n"
        "        else:\n"
        "            pass\n",  # 10
        [0, 2, 4, 5, 6, 7, 10],
    ),
    "javascript": (
        "const a = 1;\n"  # 0
        "class A {\n"  # 1
        "  m(x) {\n"  # 2
        "    switch (x) {\n"  # 3
        "      case 1:\n"  # 4
        "        go();\n"  # 5
        "    }\n"
        "  }\n"
        "}\n",
        [0, 1, 2, 3, 4, 5],
    ),
    "java": (
        "class A {\n"  # 0
        "    @Override\n"  # 1 annotation starts the method
        "    public int f(int a,\n"
        "                 int b) {\n"
        "        return a;\n"  # 4
        "    }\n"
        "}\n",
        [0, 1, 4],
    ),
    "c": (
        "#include <stdio.h>\n"  # 0
        "struct S {\n"  # 1
        "    int a;\n"  # 2
        "};\n"
        "int f(int a,\n"  # 4
        "      int b)\n"
        "{\n"
        "    return a;\n"  # 7
        "}\n",
        [0, 1, 2, 4, 7],
    ),
    "cpp": (
        "namespace ns {\n"  # 0
        "template <typename T>\n"  # 1
        "class A {\n"
        "    int x;\n"  # 3
        "};\n"
        "}\n",
        [0, 1, 3],
    ),
    "csharp": (
        "namespace N\n"  # 0
        "{\n"
        "    class A\n"  # 2
        "    {\n"
        "        int F() { return 1; }\n"  # 4
        "    }\n"
        "}\n",
        [0, 2, 4],
    ),
    "rust": (
        "#[derive(Debug)]\n"  # 0
        "struct S { a: i32 }\n"  # 1
        "impl S {\n"  # 2
        "    fn f(&self) -> i32 {\n"  # 3
        "        let c = '(';\n"  # 4
        "        self.a\n"  # 5
        "    }\n"
        "}\n",
        [0, 1, 2, 3, 4, 5],
    ),
    "go": (
        "package main\n"  # 0
        "func f(a int) int {\n"  # 1
        "\tswitch a {\n"  # 2
        "\tcase 1:\n"  # 3
        "\t\treturn 2\n"  # 4
        "\t}\n"
        "\treturn a\n"  # 6
        "}\n",
        [0, 1, 2, 3, 4, 6],
    ),
    "typescript": (
        "interface I {\n"  # 0
        "  a: number;\n"  # 1
        "}\n"
        "export function f<T>(x: T): T {\n"  # 3
        "  return x;\n"  # 4
        "}\n",
        [0, 1, 3, 4],
    ),
}


@pytest.mark.parametrize("grammar", sorted(BOUNDARY_CASES))
def test_boundary_lines(grammar: str) -> None:
    source, expected = BOUNDARY_CASES[grammar]
    assert boundary_lines(SyntaxDocument(source, grammar)) == expected


def test_boundary_lines_for_a_grammar_without_table() -> None:
    source = "local x = 1\nfunction f()\n  return x\nend\nprint(f())\n"
    assert boundary_lines(SyntaxDocument(source, "lua")) == [0, 1, 2, 4]


@pytest.mark.parametrize("grammar", ["haskell", "fortran", "cmake", "ruby", "php", "bash"])
def test_grammars_without_table_work_generically(grammar: str) -> None:
    """Some node types ending in `block`/`body` cannot have children; the query skips them."""
    doc = SyntaxDocument("x = 1\nfoo(bar)\n{\n  y\n}\n", grammar)
    assert boundary_lines(doc)[0] == 0
    doc.edit(0, 0, "z\n")
    assert boundary_lines(doc) == boundary_lines(SyntaxDocument(doc.text, grammar))
    cursor_scope(doc, 10)


def test_boundary_lines_are_cached_per_version() -> None:
    doc = SyntaxDocument("a = 1\nb = 2\n", "python")
    first = boundary_lines(doc)
    assert boundary_lines(doc) is first
    doc.edit(0, 0, "\n")
    assert boundary_lines(doc) == [0, 1, 2]


# ------------------------------------------------------------------------- enclosing scopes

SCOPE_CASES = [
    (
        "python",
        "import os\n\n@dec\nclass A(\n    B,\n):\n    def f(self):\n        x = 1\n        █\n",
        [(2, 5), (6, 6)],
    ),
    ("python", "class A:\n    def f(self):\n        x = 1\n    █\n", [(0, 0)]),
    ("python", "class A:\n    def f(self):█\n", [(0, 0), (1, 1)]),
    ("python", "def f(█):\n    pass\n", []),
    ("javascript", "class A {\n  m(a) {\n    █\n  }\n}\n", [(0, 0), (1, 1)]),
    ("javascript", "function f() {}\n█", []),
    (
        "java",
        "@Ann\npublic class A {\n    @Override\n    int f()\n    {\n        █\n",
        [(0, 1), (2, 4)],
    ),
    ("c", "static int f(int a,\n             int b)\n{\n    █\n}\n", [(0, 2)]),
    (
        "cpp",
        "namespace ns {\ntemplate <typename T>\nclass A {\n"
        "    int f() {\n        █\n    }\n};\n}\n",
        [(0, 0), (1, 2), (3, 3)],
    ),
    ("csharp", "namespace N\n{\n    class A\n    {\n        █\n    }\n}\n", [(0, 1), (2, 3)]),
    ("rust", "impl S {\n    pub fn f(&self) -> i32 {\n        █\n    }\n}\n", [(0, 0), (1, 1)]),
    ("go", "type S struct {\n\t█\n}\n", [(0, 0)]),
    ("go", "func (s *S) F(a int) int {\n\treturn █\n}\n", [(0, 0)]),
    (
        "typescript",
        "export class C {\n  get y(): number {\n    return █\n  }\n}\n",
        [(0, 0), (1, 1)],
    ),
]


@pytest.mark.parametrize(("grammar", "source", "expected"), SCOPE_CASES)
def test_enclosing_scopes(grammar: str, source: str, expected: list[tuple[int, int]]) -> None:
    doc, offset = at_cursor(source, grammar)
    assert enclosing_scopes(doc, offset) == expected


# ------------------------------------------------------------------------------ error count


def test_error_count() -> None:
    assert error_count("def f():\n    return 1\n", "python") == 0
    assert error_count("def f(:\n    return 1\n", "python") >= 1
    assert error_count("int main() { return 0; }", "c") == 0
    assert error_count("int main() { return 0; ", "c") == 1  # MISSING "}"
    assert parse_tree("x = 1", "python").root_node.type == "module"


# ----------------------------------------------------------------------------- cursor scope

CURSOR_CASES = [
    # (grammar, source, block_indent, multiline, reason)
    ("python", "def f(x):\n    return foo(█)\n", 4, False, "mid-line"),
    ("python", "def f(x):\n    return █x + 1\n", 4, False, "text after cursor"),
    ("python", "def f(x):\n    y = 1\n    █\n", 4, True, "blank line"),
    ("python", "class A:\n    def f(self):█\n", 8, True, "block opener"),
    ("python", "x = {'a':█\n", 0, False, "mid-line"),
    ("python", 'def f():\n    """Doc."""█\n\n\ndef g():\n    pass\n', 4, True, "empty body"),
    ("python", "def f():\n    s = 'ab█c'\n", 4, False, "text after cursor"),
    ("python", "def f():\n    s = 'ab█'\n", 4, False, "in string or comment"),
    ("python", "def f():\n    return g(█\n", 4, False, "mid-line"),
    ("javascript", "function f() {█}\n", 1, True, "block opener"),
    ("javascript", "function f() {\n  if (x) {\n█\n}\n", 4, True, "blank line"),
    ("javascript", "function f() {\n  foo(█);\n}\n", 2, False, "mid-line"),
    ("go", "func f() {\n\t// todo█\n}\n", 4, True, "empty body"),
    ("rust", "fn f() {\n    let v = vec![█];\n}\n", 4, False, "mid-line"),
    ("java", "class A {\n    void f() {\n        █\n    }\n}\n", 8, True, "blank line"),
    (None, "notes\n  █\n", 2, True, "blank line"),
    (None, "notes █ more\n", 0, False, "text after cursor"),
]


@pytest.mark.parametrize(("grammar", "source", "indent", "multiline", "reason"), CURSOR_CASES)
def test_cursor_scope(
    grammar: str | None, source: str, indent: int, multiline: bool, reason: str
) -> None:
    doc, offset = at_cursor(source, grammar)
    assert cursor_scope(doc, offset) == CursorScope(indent, multiline, reason)
