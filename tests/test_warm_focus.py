"""Warm-ups where the cursor is, the document in front first (issue #17, file switches).

A prefix-only window ends at the cursor, so a window read at the end of a long file shares
nothing with a keystroke in its middle. `textDocument/didFocus` (Copilot's notification, with
ghostfill's `position` and `active`) tells the server where the cursor is; the document's
window is read there before the first keystroke. Real server over stdio; the order of
warm-ups against the scripted engine, the cache reuse against the real default model
(token counts, not times).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import SERVE
from tests.lsp_helpers import change, focus, inline, open_doc, stats
from tests.test_server_behaviour import (
    SCRIPT,
    engine_log,
    warming_client,  # noqa: F401  (the fixture: the scripted server with warm-ups on)
)

DOCS = [f"file:///tmp/ghostfill-scripted/{name}.py" for name in ("a", "b", "c")]


def warm_events() -> list[tuple[str, str]]:
    """(document name, "start" | "done" | "cancelled") in the order the engine saw them."""
    out = []
    for e in engine_log():
        name = Path(e.get("document") or "-").name
        if "warm" in e and e.get("document"):
            out.append((name, "start"))
        elif "warm_end" in e and e.get("document"):
            out.append((name, e["warm_end"]))
    return out


async def until(condition: Any, what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}: {warm_events()}")


async def test_one_warm_up_at_a_time_the_document_in_front_first(
        warming_client: LanguageClient, tmp_path: Path):  # noqa: F811
    client = warming_client
    hold = tmp_path / "go"
    SCRIPT.write_text(json.dumps({"answer": "return 0", "warm_hold": str(hold)}))
    for uri in DOCS:
        open_doc(client, uri, "import os\n\n\ndef main():\n    pass\n")
    await until(lambda: ("a.py", "start") in warm_events(), "a's warm-up")
    await asyncio.sleep(0.2)
    assert warm_events() == [("a.py", "start")]  # one at a time: b and c wait
    # The user goes to c: a's warm-up gives way (owed), c's is read first.
    focus(client, DOCS[2], 3, 4)
    await until(lambda: ("c.py", "start") in warm_events(), "c's warm-up")
    hold.touch()
    await until(lambda: warm_events().count(("b.py", "done")) == 1, "all warm-ups")
    assert warm_events() == [("a.py", "start"), ("a.py", "cancelled"),
                             ("c.py", "start"), ("c.py", "done"),
                             ("a.py", "start"), ("a.py", "done"),
                             ("b.py", "start"), ("b.py", "done")]
    assert (await stats(client)).warm_ups.focus_reports == 1


async def test_a_focus_report_for_a_closed_or_unknown_position_is_harmless(
        warming_client: LanguageClient):  # noqa: F811
    client = warming_client
    focus(client, "file:///tmp/ghostfill-scripted/never-opened.py", 0, 0)
    open_doc(client, DOCS[0], "x = 1\n")
    focus(client, DOCS[0], 99, 99)  # past the end: logged, the focus still counts
    client.protocol.notify("textDocument/didFocus", {"textDocument": {"uri": DOCS[0]},
                                                      "position": {"line": "x"}})
    SCRIPT.write_text(json.dumps({"answer": "2"}))
    items = await inline(client, DOCS[0], 0, 4, invoked=False)
    assert [i.insert_text for i in items] == ["2"]  # the server keeps serving
    assert (await stats(client)).warm_ups.focus_reports == 1


# -- the real model: the keystroke finds its window read -------------------------------------

#: A real module long enough that a window mid-file and one at its end share nothing.
LONG = Path(textwrap.__file__).read_text()
LINE = next(i for i, line in enumerate(LONG.splitlines())
            if i > 240 and line.strip().startswith("raise ValueError"))
COLUMN = len(LONG.splitlines()[LINE]) - len(LONG.splitlines()[LINE].lstrip())


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def real(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"server": {"debounceMs": 0, "prefetch": False,
                                           "engine": "inprocess"},
                                "completion": {"latencyBudgetMs": 60_000}}))
    yield
    await lsp_client.shutdown_session()


async def warmed_keystroke(client: LanguageClient, uri: str, focused: bool) -> Any:
    """Open the module with the statement line emptied after its indentation, report the
    cursor there (or not), wait until warm-ups are done, type one character: the tokens
    the keystroke read and reused."""
    lines = LONG.splitlines(keepends=True)
    lines[LINE] = lines[LINE][:COLUMN] + "\n"
    open_doc(client, uri, "".join(lines))
    if focused:
        focus(client, uri, LINE, COLUMN)
    for _ in range(6000):
        s = await stats(client)
        if s.state == "ready" and s.warm_ups.done >= 1 and not s.held.prefetching:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the warm-up did not finish")
    before = s.tokens
    change(client, uri, 2, (LINE, COLUMN), (LINE, COLUMN), "r")
    await inline(client, uri, LINE, COLUMN + 1, invoked=False)
    after = (await stats(client)).tokens
    return after.evaluated - before.evaluated, after.reused - before.reused


async def test_a_reported_cursor_is_where_the_window_is_read(real: LanguageClient):
    evaluated, reused = await warmed_keystroke(real, "file:///tmp/gf-focus/tw.py", True)
    # The window was read at the cursor: the keystroke reads its new character (and the
    # tokens after a re-tokenized line end), not the window.
    assert reused > 500 and evaluated < 20, (evaluated, reused)


async def test_without_a_cursor_the_end_is_warmed_and_a_keystroke_mid_file_reads_it_all(
        real: LanguageClient):
    evaluated, reused = await warmed_keystroke(real, "file:///tmp/gf-focus/tw.py", False)
    assert evaluated > 500, (evaluated, reused)
