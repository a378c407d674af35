"""What the latency budget could not wait for reaches the screen without another keystroke.

A request whose budget runs out before the model's first token gets an empty answer; the server
finishes it in the background and sends `ghostfill/suggestionReady` to a client that declared
`experimental.ghostfillSuggestionReady`, which then asks again and is answered from the cache.
A 1 ms budget makes the first answer empty on any machine, however fast.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import SERVE
from tests.lsp_helpers import inline, open_doc, stats

pytestmark = pytest.mark.slow

PY = "file:///tmp/ghostfill-ready/shapes.py"
SOURCE = '''import math


def area(radius: float) -> float:
    """Area of a circle."""
    return math.pi * radius ** 2


def circumference(radius: float) -> float:
    """Circumference of a circle."""
    return '''
LINE, COL = SOURCE.count("\n"), len(SOURCE.rsplit("\n", 1)[1])


async def start(client: LanguageClient, declare: bool) -> list[Any]:
    ready: list[Any] = []

    @client.feature("ghostfill/suggestionReady")
    def on_ready(params: Any) -> None:
        ready.append(params)

    await client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            experimental={"ghostfillSuggestionReady": True} if declare else None),
        initialization_options={"server": {"debounceMs": 0, "warmOnOpen": False},
                                "completion": {"latencyBudgetMs": 1}}))
    return ready


async def wait_ready(ready: list[Any], timeout_s: float = 120) -> None:
    for _ in range(int(timeout_s * 10)):
        if ready:
            return
        await asyncio.sleep(0.1)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_an_answer_the_budget_could_not_wait_for_is_announced_and_served(
        client: LanguageClient):
    ready = await start(client, declare=True)
    open_doc(client, PY, SOURCE)
    first = await inline(client, PY, LINE, COL, invoked=False)
    assert first == []  # 1 ms: nothing could be generated in time
    await wait_ready(ready)
    assert ready, "no ghostfill/suggestionReady after the background finished"
    note = ready[0]
    assert (note.textDocument.uri, note.textDocument.version) == (PY, 1)
    assert (note.position.line, note.position.character) == (LINE, COL)
    # What the client does on the notification: ask again, answered from the cache.
    again = await inline(client, PY, LINE, COL, invoked=False)
    assert again and again[0].insert_text.strip()
    s = await stats(client)
    assert s.cache.hits >= 1 and s.suggestions.late >= 1 and s.suggestions.ready_sent >= 1
    # The editor's log says why the first answer was empty.
    logs = [m.message for m in client.log_messages]
    assert any("budget ran out before the first token" in m for m in logs), logs


async def test_a_client_that_did_not_declare_it_gets_no_notification(client: LanguageClient):
    ready = await start(client, declare=False)
    open_doc(client, PY, SOURCE)
    assert await inline(client, PY, LINE, COL, invoked=False) == []
    for _ in range(600):  # the background answer is cached even so
        if (await stats(client)).suggestions.late:
            break
        await asyncio.sleep(0.1)
    assert (await stats(client)).suggestions.late == 1
    await asyncio.sleep(0.5)
    assert ready == []


def selected_params(line: int, col: int, start: int, text: str) -> types.InlineCompletionParams:
    """VS Code's request while its word list is open: the selected item replaces the word
    from `start` to the cursor."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=PY),
        position=types.Position(line=line, character=col),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic,
            selected_completion_info=types.SelectedCompletionInfo(
                range=types.Range(start=types.Position(line=line, character=start),
                                  end=types.Position(line=line, character=col)),
                text=text)))


async def test_with_the_word_list_open_the_late_answer_extends_the_selected_item(
        client: LanguageClient):
    ready = await start(client, declare=True)
    # The user typed "ma" after "return "; the word list selected "math".
    typed = SOURCE + "ma"
    open_doc(client, PY, typed)
    params = selected_params(LINE, COL + 2, COL, "math")
    first = await client.text_document_inline_completion_async(params)
    assert first is not None and not first.items  # 1 ms: nothing in time
    await wait_ready(ready)
    assert ready, "no ghostfill/suggestionReady for a request with a selected item"
    note = ready[0]
    # The notification points at the cursor, not at the end of the selected item.
    assert (note.position.line, note.position.character) == (LINE, COL + 2)
    again = await client.text_document_inline_completion_async(params)
    assert again is not None and again.items, "the late answer was not served"
    item = again.items[0]
    # What VS Code shows while its list is open: the selected item, then the model's rest,
    # over the same range.
    assert item.insert_text.startswith("math") and len(item.insert_text) > len("math")
    assert item.range == params.context.selected_completion_info.range
    s = await stats(client)
    assert s.cache.hits >= 1 and s.suggestions.late >= 1
