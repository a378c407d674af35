"""Budgeted reparsing: a request never waits long for tree-sitter, and the tree catches up.

Edits do not reparse; a request reparses within `context.parse_budget_ms`, a halted parse is
resumed by the next one, and the server finishes it when typing pauses. Whatever the budget did
on the way, the final tree and boundary lines must equal those of a fresh parse.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghostfill.completion.boundaries import _syntax_boundaries, boundary_lines
from ghostfill.completion.scopes import cursor_scope
from ghostfill.completion.syntax import SyntaxDocument
from tests.sync_client import SyncClient
from tests.test_syntax import _EDIT_TEXT

SOURCES = {
    "python": "import os\n\nclass A:\n    def f(self, é):\n        return 'ü'\n\n",
    "javascript": "function f(a) {\n  return `→${a}`;\n}\n",
    "go": "package main\n\nfunc main() {\n\tx := 1\n}\n",
}


def _expensive_python() -> tuple[str, int]:
    """A long class and an offset where an unclosed bracket swallows all that follows (its
    reparse takes tens of milliseconds on the development machine, about 1 ms for most edits)."""
    method = ("    def f{i}(self, x):\n        '''Doc.'''\n"
              "        return [x,\n                {i}]\n\n")
    body = "class C:\n" + "".join(method.format(i=i) for i in range(1500))
    at = body.index("    def f700(self, x):\n") + len("    def f700(self, x):\n")
    return body, at


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    grammar=st.sampled_from(sorted(SOURCES)),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 6), _EDIT_TEXT,
                             st.sampled_from([0.0, 0.05, None])), min_size=1, max_size=10),
)
def test_budgeted_parses_end_in_the_fresh_tree(grammar: str, edits: list) -> None:
    source = SOURCES[grammar] * 200  # long enough for a zero budget to halt
    doc = SyntaxDocument(source, grammar)
    boundary_lines(doc)
    text = source
    for where, length, new_text, budget in edits:
        start = int(where * len(text))
        end = min(len(text), start + length)
        doc.edit(start, end, new_text)
        text = text[:start] + new_text + text[end:]
        done = doc.refresh(budget)
        assert done == doc.fresh
        if budget is None:
            assert done
        # Stale or not, the questions a request asks are answered without an error.
        rows = boundary_lines(doc)
        assert rows == sorted(set(rows)) and rows[0] == 0
        cursor_scope(doc, start)
    assert doc.refresh()
    _same_as_a_fresh_parse(doc)


def _same_as_a_fresh_parse(doc: SyntaxDocument) -> None:
    """The tree and boundaries of `doc` after budgets, halts and resumes are those of a fresh
    parse. Where the text has syntax errors tree-sitter's error recovery may read it another
    way after a halted parse is resumed (a few percent of such halts), so there the tree
    must still cover the text and the boundary bookkeeping must match its own tree."""
    fresh = SyntaxDocument(doc.text, doc.grammar)
    assert doc.tree is not None and fresh.tree is not None
    root = doc.tree.root_node
    assert root.end_byte == len(doc.source) and root.has_error == fresh.tree.root_node.has_error
    assert boundary_lines(doc) == _syntax_boundaries(doc.tree, doc.grammar)
    if not fresh.tree.root_node.has_error:
        assert str(root) == str(fresh.tree.root_node)
        assert boundary_lines(doc) == boundary_lines(fresh)


def test_a_halted_parse_keeps_positions_and_is_resumed() -> None:
    text, at = _expensive_python()
    doc = SyntaxDocument(text, "python")
    boundary_lines(doc)
    typed = "        result = compute("
    for i, ch in enumerate(typed):
        doc.edit(at + i, at + i, ch)
    assert doc.refresh(0.0) is False  # nothing can be parsed in no time
    assert not doc.fresh
    stale = doc.tree  # no retry at this version: the edited tree, positions already shifted
    assert stale is not None and stale.root_node.end_byte == len(doc.source)
    last = text.index("def f1499(self, x):")
    node = stale.root_node.descendant_for_byte_range(last + len(typed), last + len(typed) + 3)
    assert node is not None and doc.source[node.start_byte : node.end_byte] == b"def"
    # Small slices add up: the halted parse is resumed, not restarted (restarted, it would
    # never fit in one slice).
    slices = 1
    while not doc.refresh(1.0):
        slices += 1
        assert slices < 100_000
    assert slices > 1
    assert doc.fresh
    _same_as_a_fresh_parse(doc)


def test_the_server_finishes_the_parse_when_typing_pauses() -> None:
    text, at = _expensive_python()
    line = text[:at].count("\n")
    client = SyncClient({"server": {"debounceMs": 0, "warmOnOpen": False}})
    try:
        uri = "file:///budget.py"
        client.open(uri, text)
        for i, ch in enumerate("        y = ("):
            client.change(uri, i + 2, (line, i), (line, i), ch)
        time.sleep(1.0)
        answer = client.request("ghostfill/document", {"textDocument": {"uri": uri}})
        assert answer.text.splitlines()[line].startswith("        y = (        '''Doc")
        assert answer.parsed is True
    finally:
        client.stop()


def _slow_to_parse() -> str:
    """Comment lines after an indented block: tree-sitter-python's time grows with the square
    of their number (about 1.7 s for 100 KB on the development machine)."""
    return "def f():\n    if x:\n        pass\n" + "# a comment line, one of many\n" * 3400


def test_a_first_parse_past_its_budget_goes_on_later() -> None:
    text = _slow_to_parse()
    doc = SyntaxDocument(text, "python", budget_ms=20.0)
    assert not doc.fresh and doc.refresh(20.0) is False
    # No tree yet: the request path falls back to line boundaries instead of waiting.
    assert boundary_lines(doc)[:3] == [0, 1, 2]
    cursor_scope(doc, 10)
    doc.edit(0, 0, "import os\n")
    twin = doc.fork()
    twin.edit(0, 0, "# twin\n")
    assert doc.refresh() and twin.refresh()
    for d in (doc, twin):
        assert not d.tree.root_node.has_error  # valid Python: the trees must be equal
        _same_as_a_fresh_parse(d)


def test_the_server_answers_while_a_slow_file_is_parsed() -> None:
    client = SyncClient({"server": {"debounceMs": 0, "warmOnOpen": False}})
    try:
        uri = "file:///slow.py"
        client.open(uri, _slow_to_parse())
        first = client.request("ghostfill/document", {"textDocument": {"uri": uri}})
        assert first.parsed is False  # answered between two slices of the parse
        deadline = time.monotonic() + 120
        while not client.request("ghostfill/document", {"textDocument": {"uri": uri}}).parsed:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        client.stop()
