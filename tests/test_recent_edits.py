"""Recent edits as context (issue #18): the history (`completion/edits.py`) and its place in
the prompt (`CompletionEngine.prepare`)."""

from __future__ import annotations

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ghostfill.completion.context import WindowAnchor, line_starts
from ghostfill.completion.edits import EditHistory, candidates, for_request, place, render
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from tests.conftest import vocab
from tests.lsp_helpers import change, inline, open_doc, server_text, stats
from tests.test_server_behaviour import OPTIONS, SCRIPTED, engine_log, script, start

MODELS = '''class Invoice:
    def __init__(self, number, lines):
        self.number = number
        self.lines = lines


def total(invoice):
    return sum(line.amount for line in invoice.lines)
'''


class Doc:
    """A text fed to a history as an editor's didChange would be."""

    def __init__(self, history: EditHistory, uri: str, text: str, **kw: object) -> None:
        self.history, self.uri, self.text, self.kw = history, uri, text, kw
        self.now = 0.0

    def change(self, start: int, end: int, new: str, *, at: float | None = None) -> None:
        self.now = self.now + 1 if at is None else at
        self.history.record(self.uri, self.text, line_starts(self.text), start, end, new,
                            now=self.now, **self.kw)  # type: ignore[arg-type]
        self.text = self.text[:start] + new + self.text[end:]

    def type(self, at: int, chars: str) -> None:
        for i, ch in enumerate(chars):
            self.change(at + i, at + i, ch)


def test_keystrokes_at_one_place_coalesce_into_one_edit_with_its_lines_before_and_after():
    h = EditHistory()
    doc = Doc(h, "file:///w/models.py", MODELS)
    at = MODELS.index("lines):")
    doc.type(at, "currency, ")
    [edit] = h.view(now=doc.now)
    assert edit.before == ("    def __init__(self, number, lines):",)
    assert edit.after == ("    def __init__(self, number, currency, lines):",)
    assert edit.line == 1 and edit.above == ("class Invoice:",)
    # A new line typed right below joins the same edit.
    end = doc.text.index("\n", at) + 1 + len("        self.number = number\n")
    doc.type(end, "        self.currency = currency\n")
    assert len(h) == 2  # the new line is 2 lines below the signature: a place of its own
    doc.change(doc.text.index("number,"), doc.text.index("number,"), "")  # a no-op: ignored
    assert len(h) == 2
    # Backspacing the whole insertion undoes the edit: it is no change to show.
    sig = doc.text.index("currency, ")
    doc.change(sig, sig + len("currency, "), "")
    assert [e.changed for e in h.view(now=doc.now)] == [False, True]


def test_edits_elsewhere_move_with_the_lines_above_them_and_a_full_sync_forgets_them():
    h = EditHistory()
    doc = Doc(h, "file:///w/models.py", MODELS)
    at = MODELS.index("sum(")
    doc.change(at, at + 3, "math.fsum")
    assert h.view(now=doc.now)[0].line == 7
    doc.change(0, 0, "import math\n\n\n\n")  # four lines above, far from the edit
    lines = {e.after[0]: e.line for e in h.view(now=doc.now)}
    assert lines["    return math.fsum(line.amount for line in invoice.lines)"] == 11
    assert doc.text.split("\n")[11].startswith("    return math.fsum(")
    h.forget(doc.uri)
    assert len(h) == 0


def test_the_history_is_bounded_in_count_per_workspace_and_in_age():
    h = EditHistory(max_edits=3, max_age_s=100)
    a = Doc(h, "file:///a/x.py", "\n" * 200, workspace="/a")
    b = Doc(h, "file:///b/y.py", "\n" * 200, workspace="/b")
    for i in range(6):
        a.change(i * 10, i * 10, f"a{i} = {i}", at=float(i))
    b.change(0, 0, "b = 1", at=6.0)
    view = h.view(now=6.0)
    assert [e.after[0] for e in view if e.workspace == "/a"] == ["a5 = 5", "a4 = 4", "a3 = 3"]
    assert [e.after[0] for e in view if e.workspace == "/b"] == ["b = 1"]
    assert [e.after[0] for e in h.view(now=104.5)] == ["b = 1", "a5 = 5"]


def test_never_the_edit_the_cursor_is_in_nor_another_workspace_and_the_cursor_ranks():
    h = EditHistory()
    models = Doc(h, "file:///w/models.py", MODELS, workspace="/w", label="models.py")
    at = models.text.index("lines):")
    models.type(at, "currency, ")
    app_text = ("from models import Invoice\n\n\ndef make(n):\n    return Invoice(n, [])\n"
                + "\n" * 10 + "def other():\n    pass\n")
    app = Doc(h, "file:///w/app.py", app_text, workspace="/w", label="app.py")
    at = app.text.index("[])")
    app.type(at, "'EUR', ")
    other = Doc(h, "file:///v/z.py", "x = 1\n", workspace="/v")
    other.change(0, 0, "y = 2\n")
    view = h.view(now=100)
    cursor_line = app.text.count("\n", 0, at)
    found = candidates(view, app.uri, "/w", cursor_line, "", "return Invoice(n, 'EUR', [])")
    # The cursor's own edit (app.py) is not offered; the other workspace's never is.
    assert [s.path for s in found] == ["models.py"]
    assert found[0].kind == "edit"
    assert found[0].text == ("# recent edit\nclass Invoice:\n"
                             "    def __init__(self, number, currency, lines):\n"
                             "        self.number = number\n        self.lines = lines")
    # Elsewhere in app.py (far from that edit), app.py's edit is offered, first (the same file,
    # the newest), unless the window already shows its new lines.
    far = app.text.count("\n", 0, app.text.index("pass"))
    ranked = candidates(h.view(now=100), app.uri, "/w", far, "", "")
    assert [s.path for s in ranked][:2] == ["app.py", "models.py"]
    for style in ("after", "plain"):
        assert [s.path for s in candidates(h.view(now=100), app.uri, "/w", far, app.text, "",
                                           style=style)] == ["models.py"]
    # The diff style keeps it: the window does not show what the edit replaced.
    assert [s.path for s in candidates(h.view(now=100), app.uri, "/w", far, app.text, "",
                                       style="diff")][:1] == ["app.py"]


def test_diff_style_shows_the_removed_lines_as_comments():
    h = EditHistory()
    doc = Doc(h, "file:///w/models.py", MODELS)
    at = MODELS.index("sum(")
    doc.change(at, at + 3, "math.fsum")
    shown = render(h.view(now=doc.now)[0], "diff")
    assert shown.startswith("# recent edit, replaced:\n"
                            "#     return sum(line.amount for line in invoice.lines)\n"
                            "# with:\n")
    assert "    return math.fsum(line.amount" in shown
    # "plain": the lines alone, under the file's path comment the prompt gives every snippet.
    assert render(h.view(now=doc.now)[0], "plain") == (
        "def total(invoice):\n    return math.fsum(line.amount for line in invoice.lines)")


def test_place_names_a_file_by_its_innermost_workspace_folder(tmp_path):
    inner = tmp_path / "repo" / "pkg"
    inner.mkdir(parents=True)
    roots = (str(tmp_path / "repo"), str(inner))
    assert place((inner / "m.py").as_uri(), roots) == (str(inner), "m.py")
    assert place((tmp_path / "x.py").as_uri(), roots) == ("", "x.py")
    assert place("untitled:Untitled-1", roots) == ("", "untitled:Untitled-1")


def test_an_edit_in_another_file_reaches_the_prompt_within_the_budget_and_the_switch(
        gemma_backend):
    """Through `CompletionEngine.prepare`: another file's edit is in the prompt, counted in the
    cross-file budget; `context.recentEdits: false` (the default) leaves it out; an edit
    elsewhere decides the sticky context again, typing at the cursor does not."""
    h = EditHistory()
    models = Doc(h, "file:///w/models.py", MODELS, label="models.py")
    at = models.text.index("lines):")
    models.type(at, "currency, ")
    text = "from models import Invoice\n\n\ndef make(n):\n    return Invoice(n, "
    path = "file:///w/app.py"

    def prepare(config: Config, anchor: WindowAnchor, body: str = text) -> str:
        engine = CompletionEngine(config, gemma_backend)
        sources = ContextSources(history=h, edits=h.view(now=models.now))
        prepared = engine.prepare(CompletionInput.of_text(body, len(body), path=path,
                                                          anchor=anchor), sources)
        assert prepared.prompt.counts()["total"] + config.completion.max_tokens \
            <= engine.context_length
        return prepared.prompt.display()

    on = Config().updated({"context": {"crossFileTokens": 64, "recentEdits": True}})
    anchor = WindowAnchor()
    shown = prepare(on, anchor)
    assert "# models.py\n# recent edit\n" in shown
    assert "def __init__(self, number, currency, lines):" in shown
    # Within the budget: with room for less than the edit, it is left out.
    assert "recent edit" not in prepare(on.updated({"context": {"crossFileTokens": 16}}),
                                        WindowAnchor())
    off = on.updated({"context": {"recentEdits": False}})
    assert "recent edit" not in prepare(off, WindowAnchor())
    assert "recent edit" not in prepare(Config(), WindowAnchor())  # off by default
    # Typing here keeps the decision; a new edit in models.py makes a new one.
    assert "self.currency" not in prepare(on, anchor, text + "'E")
    end = models.text.index("self.lines = lines") + len("self.lines = lines")
    models.type(end, "\n        self.currency = currency")
    assert "self.currency = currency" in prepare(on, anchor, text + "'EU")
    assert for_request(h.view(now=models.now), (), path, text, len(text))


# -- through the real server over stdio ---------------------------------------------------------
MODELS_URI = "file:///tmp/ghostfill-edits/models.py"
APP_URI = "file:///tmp/ghostfill-edits/app.py"
APP = "from models import Invoice\n\n\ndef make(n):\n    return Invoice(n, "


@pytest_lsp.fixture(config=SCRIPTED)
async def scripted(lsp_client: LanguageClient):
    await start(lsp_client, {**OPTIONS, "context": {"crossFileTokens": 128,
                                                     "recentEdits": True}})
    yield
    await lsp_client.shutdown_session()


def last_context() -> list[list[str]]:
    return [entry for entry in engine_log() if "prompt_tail" in entry][-1]["context"]


async def test_an_edit_in_another_open_file_reaches_the_model_within_budget_until_switched_off(
        scripted: LanguageClient):
    from ghostfill.completion.tokenizer import LlamaCppTokenizer

    client = scripted
    script("'EUR', [])")
    open_doc(client, MODELS_URI, MODELS)
    open_doc(client, APP_URI, APP)
    # Typed in models.py, a keystroke at a time: one edit.
    for i, ch in enumerate("currency, "):
        change(client, MODELS_URI, i + 2, (1, 31 + i), (1, 31 + i), ch)
    assert (await server_text(client, MODELS_URI)).split("\n")[1] == \
        "    def __init__(self, number, currency, lines):"
    await inline(client, APP_URI, 4, len("    return Invoice(n, "))
    edits = [text for path, text in last_context() if "recent edit" in text]
    assert len(edits) == 1 and "def __init__(self, number, currency, lines):" in edits[0]
    tokenizer = LlamaCppTokenizer.from_gguf(str(vocab("starcoder")))
    assert sum(len(tokenizer.encode(text)) for _, text in last_context()) <= 128
    assert (await stats(client)).held.edits == 1
    # Switched off: the next request's context has no edit.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"ghostfill": {"context": {"recentEdits": False}}}))
    asked = len([entry for entry in engine_log() if "prompt_tail" in entry])
    change(client, APP_URI, 2, (4, 22), (4, 22), "n")  # not the suggestion typed through
    await inline(client, APP_URI, 4, len("    return Invoice(n, n"))
    assert len([entry for entry in engine_log() if "prompt_tail" in entry]) > asked
    assert not [text for _, text in last_context() if "recent edit" in text]


def test_a_large_paste_is_not_grown_keystroke_by_keystroke():
    h = EditHistory()
    doc = Doc(h, "file:///w/big.py", "x = 1\n")
    doc.change(0, 0, "".join(f"v{i} = {i}\n" for i in range(500)))
    assert len(h.view(now=doc.now)[0].after) == 501
    doc.type(len("v0 = 0"), "0")  # inside the pasted region: it is forgotten, this one kept
    [edit] = h.view(now=doc.now)
    assert edit.after == ("v0 = 00",) and edit.before == ("v0 = 0",)
