"""Insertions before code (issue #18): with the cursor at the start of a line that holds code
(or in its indentation), a suggestion is whole lines inserted before that line, ending with a
line break, so that accepting it never joins two statements.

The syntax decides where such an answer may span lines (`cursor_scope`); the stop rules and the
filters cut it at line ends (`tests/test_stopping.py`, `tests/golden/filters/before_code.txt`);
`postprocess` ends it with its line break. The last tests drive the real server with a scripted
engine (`tests/scripted_server.py`) whose answer each test chooses, and apply the item the
editor gets.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from ghostfill.completion.filters.layout import cursor_line_prefix, is_before_code, line_rest
from ghostfill.completion.postprocess import FilterContext, postprocess
from ghostfill.completion.scopes import CursorScope, cursor_scope
from ghostfill.completion.syntax import SyntaxDocument
from tests.conftest import vocab
from tests.lsp_helpers import inline, open_doc
from tests.test_filters import CASES

CURSOR = "█"


def at_cursor(source: str, grammar: str | None) -> tuple[SyntaxDocument, int]:
    offset = source.index(CURSOR)
    return SyntaxDocument(source.replace(CURSOR, ""), grammar), offset


# ----------------------------------------------------------------- where it may span lines

SCOPE_CASES = [
    # (grammar, source, block_indent, multiline, reason)
    ("python",
     "def f(values):\n    for v in values:\n        if v < 0:\n            return False\n"
     "█    return True\n", 4, False, "before code"),
    # The line above opens a block: its body starts here (empty so far, or before its first
    # statement), at the opener's depth plus one unit.
    ("python", "def f(values):\n    total = 0\n    for v in values:\n█    return total\n",
     8, True, "before code, block opener above"),
    ("python", "def clamp(x):\n    if x < 0:\n█        return 0\n    return x\n",
     8, True, "before code, block opener above"),
    ("python", 'def f():\n    """Doc."""\n█    pass\n', 4, True, "before code, empty body"),
    ("python", 'def f():\n    """Doc\n█    more doc.\n    """\n', 4, False,
     "before code, in string or comment"),
    # Anywhere in the indentation, after it too.
    ("python", "def f(x):\n    y = 1\n  █  return y\n", 4, False, "before code"),
    ("python", "def f(x):\n    y = 1\n    █return y\n", 4, False, "before code"),
    ("javascript", "function f() {\n  let t = 0;\n█  return t;\n}\n", 2, False, "before code"),
    ("go", "func f() {\n\tfor {\n█\t\tx()\n\t}\n}\n", 8, True, "before code, block opener above"),
    # Only closing brackets on the line: the rule of a blank line, as before.
    ("javascript", "function f() {\n  if (x) {\n    y();\n█  }\n}\n", 4, True, "blank line"),
]


@pytest.mark.parametrize(("grammar", "source", "indent", "multiline", "reason"), SCOPE_CASES)
def test_cursor_scope_before_code(grammar: str, source: str, indent: int, multiline: bool,
                                  reason: str) -> None:
    doc, offset = at_cursor(source, grammar)
    assert cursor_scope(doc, offset) == CursorScope(indent, multiline, reason)


def test_is_before_code() -> None:
    assert is_before_code("x = 1\n", "    return x\n")
    assert is_before_code("x = 1\n  ", "  return x\n")
    assert is_before_code("x = 1\n", "}\n")
    assert not is_before_code("x = 1\n", "\n    return x\n")  # an empty line
    assert not is_before_code("x = 1\n    y", " = 2\n")  # inside a line
    assert not is_before_code("x = 1\n    ", "   \n")  # only whitespace after the cursor


# ------------------------------------------------------------------- the answer's last line

def context(document: str, grammar: str | None = "python",
            multiline: bool = False) -> FilterContext:
    offset = document.index(CURSOR)
    text = document.replace(CURSOR, "")
    prefix, suffix = text[:offset], text[offset:]
    indent = cursor_scope(SyntaxDocument(text, grammar), offset).block_indent
    return FilterContext(prefix, suffix, grammar, multiline, indent,
                         before_code=is_before_code(prefix, suffix))


DOUBLE = "def double(x):\n    y = x * 2\n█    return y\n"


def test_a_finished_last_line_gets_its_line_break() -> None:
    # The model ended the answer (end of text) after a finished statement.
    assert postprocess("    print(y)", context(DOUBLE)) == "    print(y)\n"
    assert postprocess("    print(y)\n", context(DOUBLE)) == "    print(y)\n"
    assert postprocess("note", context("first\n█second\n", None)) == "note\n"


def test_an_unfinished_last_line_goes() -> None:
    # Cut by the token limit in the middle of a statement: a line break would not finish it.
    assert postprocess("    print(y, ", context(DOUBLE)) == ""
    ctx = context(DOUBLE, multiline=True)
    assert postprocess("    z = y + 1\n    print(z, ", ctx) == "    z = y + 1\n"


def test_the_cursors_indentation_follows_the_line_break() -> None:
    # The code after the cursor keeps the indentation it had.
    ctx = context("def double(x):\n    y = x * 2\n    █return y\n")
    assert postprocess("print(y)", ctx) == "print(y)\n    "


def test_elsewhere_nothing_is_added() -> None:
    ctx = context("def double(x):\n    y = █\n")
    assert not ctx.before_code
    assert postprocess("x * 2", ctx) == "x * 2"


BEFORE_CODE_CASES = [case for case in CASES
                     if case.filter is None and case.context().before_code]


@pytest.mark.parametrize("case", BEFORE_CODE_CASES,
                         ids=[f"{c.source}:{c.title}" for c in BEFORE_CODE_CASES])
def test_accepting_never_joins_the_line(case: Any) -> None:
    """Over the golden cases before code (five languages and plain text): the answer, spliced
    in as accepting it does, leaves the line it went before whole and on a line of its own."""
    assert len(BEFORE_CODE_CASES) >= 10
    ctx = case.context()
    out = postprocess(case.raw, ctx)
    line = cursor_line_prefix(ctx.prefix) + line_rest(ctx.suffix)
    if out:
        assert out.endswith("\n" + cursor_line_prefix(ctx.prefix))
    accepted = ctx.prefix + out + ctx.suffix
    assert line in accepted.split("\n")


# ------------------------------------------------------------------ through the real server

SCRIPT = Path(tempfile.mkdtemp(prefix="ghostfill-before-code-")) / "script.json"
SCRIPTED = ClientServerConfig(
    server_command=[sys.executable, str(Path(__file__).resolve().parent / "scripted_server.py")],
    server_env={**os.environ, "GHOSTFILL_SCRIPT": str(SCRIPT)})
OPTIONS = {"server": {"debounceMs": 0, "warmOnOpen": False, "prefetch": False},
           "completion": {"latencyBudgetMs": 10_000, "invokedBudgetMs": 10_000}}
URI = "file:///tmp/ghostfill-before-code/checks.py"
#: The issue's case: `            return False` asked for before `    return True`.
ISSUE = "def all_positive(values):\n    for v in values:\n        if v <= 0:\n    return True\n"
DOC = ("def all_positive(values):\n    for v in values:\n        if v <= 0:\n"
       "            return False\n    return True\n")


def script(answer: str) -> None:
    SCRIPT.write_text(json.dumps({"answer": answer}))


@pytest_lsp.fixture(config=SCRIPTED)
async def client(lsp_client: LanguageClient):
    vocab("starcoder")  # skips when the vocabulary is not here
    script("")
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), initialization_options=OPTIONS))
    yield
    await lsp_client.shutdown_session()


def accept(text: str, item: types.InlineCompletionItem) -> str:
    """The document after the editor applies `item` (a single-line range)."""
    assert isinstance(item.insert_text, str) and item.range is not None
    lines = text.split("\n")
    start, end = item.range.start, item.range.end
    assert start.line == end.line
    line = lines[start.line]
    lines[start.line] = line[: start.character] + item.insert_text + line[end.character :]
    return "\n".join(lines)


async def ask(client: LanguageClient, text: str, line: int,
              character: int) -> tuple[str, str]:
    open_doc(client, URI, text)
    [item] = await inline(client, URI, line, character, invoked=True)
    assert isinstance(item.insert_text, str)
    return item.insert_text, accept(text, item)


async def test_the_issues_case_inserts_a_whole_line(client: LanguageClient):
    # The model goes on into the line the answer goes before: that line ends the answer.
    script("            return False\n    return True\n")
    insert, accepted = await ask(client, ISSUE, 3, 0)
    assert insert == "            return False\n"
    assert accepted == DOC
    compile(accepted, "accepted.py", "exec")


async def test_a_line_the_model_ended_gets_its_line_break(client: LanguageClient):
    # The model stops (end of text) right after the statement, without a line break.
    script("    print(values)")
    insert, accepted = await ask(client, DOC, 4, 0)
    assert insert == "    print(values)\n"
    assert "\n    print(values)\n    return True\n" in accepted
    compile(accepted, "accepted.py", "exec")


async def test_one_line_before_a_plain_statement(client: LanguageClient):
    # Not a block: one whole line, the rest of the model's text is not shown.
    script("    print(values)\n    values.sort()\n    return True\n")
    insert, accepted = await ask(client, DOC, 4, 0)
    assert insert == "    print(values)\n"
    compile(accepted, "accepted.py", "exec")


async def test_after_the_indentation_the_line_keeps_its_own(client: LanguageClient):
    script("print(values)\n")
    insert, accepted = await ask(client, DOC, 4, 4)
    assert insert == "print(values)\n    "
    assert accepted.split("\n")[4:6] == ["    print(values)", "    return True"]
    compile(accepted, "accepted.py", "exec")
