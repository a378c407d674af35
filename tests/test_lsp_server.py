"""The language server end to end: a real client over stdio, the real default model."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import SERVE
from tests.lsp_helpers import change, inline, inline_params, open_doc, request, server_text, stats

PY = "file:///tmp/ghostfill-server/mod.py"
SOURCE = '''import math


def area(radius: float) -> float:
    """Area of a circle."""
    return math.pi * radius ** 2


def circumference(radius: float) -> float:
    """Circumference of a circle."""
''' + "    \n"
BODY_LINE = SOURCE.split("\n").index("    ", 9)


def client_capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    general = types.GeneralClientCapabilities(position_encodings=encodings) if encodings else None
    return types.ClientCapabilities(
        general=general,
        workspace=types.WorkspaceClientCapabilities(apply_edit=True),
        window=types.WindowClientCapabilities(work_done_progress=True),
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def client(lsp_client: LanguageClient):
    lsp_client.applied_edits = []  # type: ignore[attr-defined]

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        lsp_client.applied_edits.append(params)  # type: ignore[attr-defined]
        return types.ApplyWorkspaceEditResult(applied=True)

    lsp_client.init_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(capabilities=client_capabilities(),
                               initialization_options={"server": {"debounceMs": 0}}))
    yield
    await lsp_client.shutdown_session()


async def test_completion_fallback_is_one_labelled_item(client: LanguageClient):
    open_doc(client, PY, SOURCE)
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=PY),
        position=types.Position(line=BODY_LINE, character=4)))
    assert isinstance(result, types.CompletionList)
    assert len(result.items) == 1
    item = result.items[0]
    assert item.detail and "ghostfill" in item.detail
    assert item.text_edit is not None and item.text_edit.new_text.strip()
    assert item.label.strip()


async def test_fim_request_and_command_fill_the_hole(client: LanguageClient):
    text = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
    uri = "file:///tmp/ghostfill-server/fim.py"
    open_doc(client, uri, text)
    hole = {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 16}}
    result = await request(client, "ghostfill/fim", {"textDocument": {"uri": uri}, "range": hole})
    assert result.text.strip(), result
    assert result.range.start.line == 1 and result.range.end.character == 16
    # The default model cannot see the code after the selection, and the user is told so:
    # in the answer every time, as a message once.
    assert "saw only the code before the selection" in result.warning
    warnings = [m for m in client.messages if m.type == types.MessageType.Warning]
    assert len(warnings) == 1 and "no fill-in-the-middle tokens" in warnings[0].message
    outcome = await client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="ghostfill.fim", arguments=[uri, {"line": 5, "character": 4}]))
    assert outcome is not None
    applied = client.applied_edits  # type: ignore[attr-defined]
    if outcome["text"]:
        assert applied and applied[-1].edit.changes[uri][0].new_text == outcome["text"]
    assert "cursor" in outcome["warning"]
    assert len([m for m in client.messages if m.type == types.MessageType.Warning]) == 1


async def test_malformed_params_are_invalid_params(client: LanguageClient):
    open_doc(client, PY, SOURCE)
    ctx = {"triggerKind": 1}
    for params in ({"textDocument": 5, "position": {"line": 0, "character": 0}, "context": ctx},
                   {"textDocument": {"uri": PY}, "position": {"line": "x"}, "context": ctx},
                   {"textDocument": {"uri": PY}, "position": {"line": -1, "character": 0},
                    "context": ctx},
                   {"textDocument": {"uri": PY}, "position": {"line": 0, "character": 0}}):
        with pytest.raises(JsonRpcException) as info:
            await request(client, "textDocument/inlineCompletion", params)
        assert info.value.code == -32602
    with pytest.raises(JsonRpcException) as info:
        await request(client, "ghostfill/fim", {"textDocument": {"uri": "file:///nope.py"},
                                                 "position": {"line": 0, "character": 0}})
    assert info.value.code == -32602
    with pytest.raises(JsonRpcException) as info:
        await request(client, "ghostfill/no-such-method", {})
    assert info.value.code == -32601  # MethodNotFound
    assert (await stats(client)).state in ("loading", "ready")  # still answering


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def utf8_client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(["utf-8", "utf-16"])))
    lsp_client.encoding = result.capabilities.position_encoding  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def utf16_client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities()))
    yield
    await lsp_client.shutdown_session()


async def test_emoji_and_cjk_positions_in_utf16(utf16_client: LanguageClient):
    client = utf16_client
    uri = "file:///tmp/ghostfill-server/emoji.py"
    text = 's = "😀字"  # 😀\nname = "\n'
    open_doc(client, uri, text)
    # UTF-16: 😀 is 2 units, 字 is 1. Insert after the emoji in the string (column 7).
    change(client, uri, 2, (0, 7), (0, 7), "X")
    assert await server_text(client, uri) == 's = "😀X字"  # 😀\nname = "\n'
    # Replace the trailing emoji (columns 14..16) by "ok".
    change(client, uri, 3, (0, 14), (0, 16), "ok")
    assert await server_text(client, uri) == 's = "😀X字"  # ok\nname = "\n'
    # A position inside the surrogate pair is invalid, not silently shifted.
    with pytest.raises(JsonRpcException) as info:
        await client.text_document_inline_completion_async(inline_params(uri, 0, 6))
    assert info.value.code == -32602
    items = await inline(client, uri, 1, 8)
    for item in items:
        assert item.range.start == types.Position(line=1, character=8)


async def test_utf8_is_negotiated_when_offered(utf8_client: LanguageClient):
    client = utf8_client
    assert client.encoding == types.PositionEncodingKind.Utf8  # type: ignore[attr-defined]
    uri = "file:///tmp/ghostfill-server/utf8.py"
    open_doc(client, uri, 'a = "é😀"\n')
    # UTF-8: é is 2 bytes, 😀 4. Insert after the emoji: byte column 5 + 2 + 4 = 11.
    change(client, uri, 2, (0, 11), (0, 11), "!")
    assert await server_text(client, uri) == 'a = "é😀!"\n'


async def test_backend_failure_shows_a_message_and_the_next_request_works(
    client: LanguageClient,
):
    open_doc(client, PY, SOURCE)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={
        "ghostfill": {"model": {"backend": "openai", "template": "starcoder"},
                      "remote": {"endpoint": "http://127.0.0.1:9"}}}))
    await wait_for(client, lambda s: s.backend == "openai" and s.state == "ready")
    assert await inline(client, PY, BODY_LINE, 4) == []
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert errors and "127.0.0.1:9" in errors[-1].message
    # Back to the local model: served again.
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={
        "ghostfill": {"model": {"backend": "auto", "template": "auto"}}}))
    await wait_for(client, lambda s: s.backend == "llamacpp" and s.state == "ready")
    # After `return `, where the model's answer does not hang on rounding (on the empty
    # indented line a small model may end the line at once, differently on other CPUs).
    change(client, PY, 2, (BODY_LINE, 4), (BODY_LINE, 4), "return ")
    items = await inline(client, PY, BODY_LINE, 11)
    assert items and items[0].insert_text.strip()


async def wait_for(client: LanguageClient, condition, timeout_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        if condition(await stats(client)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"server never reached the state: {await stats(client)}")


async def test_invalid_configuration_is_rejected_and_the_previous_kept(client: LanguageClient):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"ghostfill": {"completion": {"maxTokens": "lots"}}}))
    for _ in range(40):
        await asyncio.sleep(0.05)
        if client.messages:
            break
    assert any("max_tokens" in m.message for m in client.messages)
    open_doc(client, PY, SOURCE)
    assert await inline(client, PY, BODY_LINE, 4)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def inline_capable_client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities()))))
    lsp_client.init_result = result  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_the_completion_list_is_offered_only_without_inline_completion(
        inline_capable_client: LanguageClient):
    # A client with inline completion would otherwise show each suggestion twice.
    capabilities = inline_capable_client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is None


async def test_a_client_without_inline_completion_gets_the_completion_list(
        client: LanguageClient):
    capabilities = client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.completion_provider is not None


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def loading_client(lsp_client: LanguageClient):
    """A server whose engine is its own (`private`): the model is loaded for it, wherever
    the shared engine of the other tests stands."""
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(),
        initialization_options={"server": {"debounceMs": 0, "engine": "private"}}))
    yield
    await lsp_client.shutdown_session()


async def test_the_model_load_reports_its_progress_in_percent(loading_client: LanguageClient):
    client = loading_client
    # The client declared window.workDoneProgress: the load is a progress with percentages
    # (what VS Code's status bar and the Neovim plugin show while the model loads).
    await stats(client)
    for _ in range(600):
        if (await stats(client)).state != "loading":
            break
        await asyncio.sleep(0.1)
    loads = [reports for reports in client.progress_reports.values()
             if reports and isinstance(reports[0], types.WorkDoneProgressBegin)]
    assert loads, client.progress_reports
    reports = loads[0]
    percents = [r.percentage for r in reports if isinstance(r, types.WorkDoneProgressReport)]
    assert percents and percents == sorted(percents) and percents[-1] >= 90, percents
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
