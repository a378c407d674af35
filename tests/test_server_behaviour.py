"""The server's own behaviour — type-through, supersession, staleness, cancellation — against a
scripted engine whose answers and timing each test sets (tests/scripted_server.py), so that
nothing here depends on a real model's speed or choices. Real server process, real LSP client
over stdio; the end-to-end tests with the real model are in test_lsp_server.py and others.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCRequestMessage
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import vocab
from tests.lsp_helpers import change, inline, inline_params, open_doc, server_text, stats

HERE = Path(__file__).resolve().parent
SCRIPT = Path(tempfile.mkdtemp(prefix="ghostfill-script-")) / "script.json"
SERVE_SCRIPTED = [sys.executable, str(HERE / "scripted_server.py")]
URI = "file:///tmp/ghostfill-scripted/stats.py"
SOURCE = "def mean(values):\n    "


def script(answer: str, token_ms: float = 0, hold: Path | None = None) -> None:
    SCRIPT.write_text(json.dumps({"answer": answer, "token_ms": token_ms,
                                  "hold": str(hold) if hold else None}))


def engine_log() -> list[dict[str, Any]]:
    log = Path(f"{SCRIPT}.log")
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def model_requests() -> int:
    return sum(1 for entry in engine_log() if "prompt_tail" in entry)


SCRIPTED = ClientServerConfig(server_command=SERVE_SCRIPTED,
                              server_env={**os.environ, "GHOSTFILL_SCRIPT": str(SCRIPT)})
#: No debounce, warm-up or prefetch in the way; budgets far beyond any scripted answer. The
#: scripted backend lives in the server's process ("inprocess": no engine process).
OPTIONS = {"server": {"debounceMs": 0, "warmOnOpen": False, "prefetch": False,
                      "engine": "inprocess"},
           "completion": {"latencyBudgetMs": 10_000, "invokedBudgetMs": 10_000}}


async def start(client: LanguageClient, options: dict[str, Any] = OPTIONS,
                client_info: types.ClientInfo | None = None,
                first: dict[str, Any] | None = None) -> None:
    """Initialize a scripted server with an empty log and script `first` (default: none)."""
    vocab("starcoder")  # skips when the vocabulary is not here
    SCRIPT.write_text(json.dumps(first or {"answer": ""}))
    Path(f"{SCRIPT}.log").unlink(missing_ok=True)
    await client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), client_info=client_info,
        initialization_options=options))


@pytest_lsp.fixture(config=SCRIPTED)
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


async def test_type_through_serves_the_rest_without_the_engine(client: LanguageClient):
    script("return sum(values) / len(values)")
    open_doc(client, URI, SOURCE)
    items = await inline(client, URI, 1, 4, invoked=False)
    assert [i.insert_text for i in items] == ["return sum(values) / len(values)"]
    asked = model_requests()
    version = 1
    for typed, ch in enumerate("return", start=1):
        version += 1
        change(client, URI, version, (1, 3 + typed), (1, 3 + typed), ch)
        items = await inline(client, URI, 1, 4 + typed, invoked=False)
        assert [i.insert_text for i in items] == ["return sum(values) / len(values)"[typed:]]
    assert model_requests() == asked  # every keystroke served without the engine
    assert (await stats(client)).cache.type_through == 6


async def test_a_burst_of_keystrokes_answers_only_the_latest(client: LanguageClient):
    script("0", token_ms=30)
    open_doc(client, URI, SOURCE)
    word = "total = "
    pending = []
    for i, ch in enumerate(word):  # as an editor sends them: each edit, then its request
        change(client, URI, i + 2, (1, 4 + i), (1, 4 + i), ch)
        pending.append(_send(client, "textDocument/inlineCompletion",
                             _plain(client, inline_params(URI, 1, 5 + i, invoked=False)))[1])
    results = await asyncio.gather(*pending)
    answered = [i for i, r in enumerate(results) if r is not None and r.items]
    assert answered == [len(word) - 1]  # only the request for the final text
    assert results[-1].items[0].insertText == "0"
    assert await server_text(client, URI) == SOURCE + word
    # Superseded requests were dropped before the engine, or stopped in it.
    s = await stats(client)
    assert s.model_calls <= 3, s


async def test_an_edit_makes_the_running_answer_stale(client: LanguageClient, tmp_path: Path):
    hold = tmp_path / "go"
    script("return 0", hold=hold)
    open_doc(client, URI, SOURCE)
    running = asyncio.ensure_future(inline(client, URI, 1, 4, invoked=False))
    while model_requests() == 0:  # the engine has the request (and holds it)
        await asyncio.sleep(0.01)
    change(client, URI, 2, (1, 4), (1, 4), "r")
    assert await server_text(client, URI) == SOURCE + "r"
    hold.touch()
    assert await running == []  # an answer for the old text is never shown
    s = await stats(client)
    assert s.cancelled + s.stale >= 1


async def test_cancel_request_stops_the_engine_within_a_token(client: LanguageClient,
                                                               tmp_path: Path):
    script("x" * 64, hold=tmp_path / "never")
    open_doc(client, URI, SOURCE)
    msg_id, answer = _send(client, "textDocument/inlineCompletion",
                           _plain(client, inline_params(URI, 1, 4, invoked=True)))
    while model_requests() == 0:
        await asyncio.sleep(0.01)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    try:
        result = await asyncio.wait_for(answer, timeout=30)
    except JsonRpcException as e:  # RequestCancelled
        assert e.code == -32800, e
    else:
        assert not result or not result.items
    for _ in range(3000):  # the generation, held before its first token, ends
        if any("end" in entry for entry in engine_log()):
            break
        await asyncio.sleep(0.01)
    assert [e for e in engine_log() if "end" in e] == [{"end": "cancelled", "tokens": 0}]
    s = await stats(client)
    assert s.cancelled >= 1
    # The engine is free again: the next request is served.
    script("return 1")
    items = await asyncio.wait_for(inline(client, URI, 1, 4, invoked=True), timeout=30)
    assert [i.insert_text for i in items] == ["return 1"]


def _plain(client: LanguageClient, params: Any) -> Any:
    return json.loads(json.dumps(client.protocol._converter.unstructure(params)))


def _send(client: LanguageClient, method: str, params: Any) -> tuple[str, asyncio.Future[Any]]:
    """A request with an id the test knows (to cancel it)."""
    protocol = client.protocol
    msg_id = str(uuid.uuid4())
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    concurrent: Future[Any] = Future()
    protocol._request_futures[msg_id] = concurrent

    def copy(done: Future[Any]) -> None:
        if future.done():
            return
        if done.exception() is not None:
            future.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            future.set_result(done.result())

    concurrent.add_done_callback(lambda f: future.get_loop().call_soon_threadsafe(copy, f))
    protocol._send_data(JsonRPCRequestMessage(id=msg_id, method=method, params=params,
                                              jsonrpc="2.0"))
    return msg_id, future


@pytest_lsp.fixture(config=SCRIPTED)
async def neovim_client(lsp_client: LanguageClient):
    """Neovim 0.12's built-in client: says who it is, not the ghostfill notification."""
    await start(lsp_client, client_info=types.ClientInfo(name="Neovim", version="0.12.0"))
    yield
    await lsp_client.shutdown_session()


MID_LINE = "def scale(y):\n    x = y + 1\n"


async def test_mid_line_the_insertion_is_exact(client: LanguageClient):
    script("2 * ")
    open_doc(client, URI, MID_LINE)
    items = await inline(client, URI, 1, 8, invoked=True)
    assert [(i.insert_text, i.range) for i in items] == [
        ("2 * ", types.Range(start=types.Position(line=1, character=8),
                             end=types.Position(line=1, character=8)))]


async def test_neovims_own_client_gets_the_line_through_its_end(neovim_client: LanguageClient):
    # Its ghost text is drawn over the range: an empty range mid-line would cover "y + 1".
    script("2 * ")
    open_doc(neovim_client, URI, MID_LINE)
    items = await inline(neovim_client, URI, 1, 8, invoked=True)
    assert [(i.insert_text, i.range) for i in items] == [
        ("2 * y + 1", types.Range(start=types.Position(line=1, character=8),
                                  end=types.Position(line=1, character=13)))]


@pytest_lsp.fixture(config=SCRIPTED)
async def loading_client(lsp_client: LanguageClient):
    """A server whose model loads only when the test says so."""
    release = SCRIPT.with_name("loaded")
    release.unlink(missing_ok=True)
    await start(lsp_client, {"server": {"debounceMs": 0, "warmOnOpen": True,
                                        "engine": "inprocess"}},
                first={"answer": "return 0", "hold_load": str(release)})
    yield release
    await lsp_client.shutdown_session()


async def test_documents_opened_during_the_load_are_warmed_after_it(
        loading_client: LanguageClient):
    release = SCRIPT.with_name("loaded")
    open_doc(loading_client, URI, SOURCE)
    assert (await stats(loading_client)).state == "loading"
    release.touch()
    # Two warm-ups: the load's own first decode (the crash guard's), then the document's.
    for _ in range(3000):
        if len([e for e in engine_log() if "warm" in e]) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len([e for e in engine_log() if "warm" in e]) == 2, "the document was not warmed"
    # A request waiting for the load gets the whole budget after it (here: any answer).
    items = await inline(loading_client, URI, 1, 4, invoked=False)
    assert [i.insert_text for i in items] == ["return 0"]


@pytest_lsp.fixture(config=SCRIPTED)
async def warming_client(lsp_client: LanguageClient):
    await start(lsp_client, {"server": {"debounceMs": 0, "warmOnOpen": True, "prefetch": False,
                                        "engine": "inprocess"},
                             "completion": {"latencyBudgetMs": 10_000}})
    yield
    await lsp_client.shutdown_session()


async def test_typing_in_one_file_stops_the_warm_up_of_another_and_resumes_it_after(
        warming_client: LanguageClient, tmp_path: Path):
    client = warming_client
    hold = tmp_path / "warmed"
    SCRIPT.write_text(json.dumps({"answer": "return 0", "warm_hold": str(hold)}))
    other = "file:///tmp/ghostfill-scripted/other.py"
    open_doc(client, other, "import os\n\n\ndef main():\n    pass\n")

    def warms(document: str, key: str = "warm") -> list[dict[str, Any]]:
        return [e for e in engine_log() if key in e and e.get("document", "").endswith(document)]

    for _ in range(3000):  # the other file's warm-up holds the model
        if warms("other.py"):
            break
        await asyncio.sleep(0.01)
    assert warms("other.py")
    open_doc(client, URI, SOURCE)
    # The keystroke in this file is answered although the other warm-up would hold forever.
    items = await asyncio.wait_for(inline(client, URI, 1, 4, invoked=False), 30)
    assert [i.insert_text for i in items] == ["return 0"]
    assert [e["warm_end"] for e in warms("other.py", "warm_end")] == ["cancelled"]
    # Once requests pause, the warm-up is owed and resumed.
    hold.touch()
    for _ in range(3000):
        if len(warms("other.py", "warm_end")) >= 2:
            break
        await asyncio.sleep(0.01)
    assert [e["warm_end"] for e in warms("other.py", "warm_end")] == ["cancelled", "done"]
