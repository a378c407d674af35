"""The vertical slice: a real LSP client over stdio gets ghost text from the real model."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import EXAMPLES, SERVE

URI = "file:///tmp/ghostfill-slice/stats.py"


async def _open(client: LanguageClient, text: str, uri: str = URI) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)
        )
    )


def _request(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(
        types.InitializeParams(capabilities=types.ClientCapabilities())
    )
    lsp_client.init_result = result  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_from_the_default_model(client: LanguageClient):
    caps = client.init_result.capabilities  # type: ignore[attr-defined]
    assert caps.inline_completion_provider is not None
    text = (EXAMPLES / "stats.py").read_text()
    await _open(client, text)
    lines = text.split("\n")
    line = next(i for i, s in enumerate(lines) if '"""Population standard deviation."""' in s) + 1
    result = await client.text_document_inline_completion_async(_request(URI, line, 4))
    assert result is not None
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    assert items, "the model produced no suggestion"
    insert = items[0].insert_text
    assert isinstance(insert, str) and insert.strip()
    assert items[0].range.start == types.Position(line=line, character=4)


async def test_out_of_range_position_is_invalid_params_and_server_keeps_serving(
    client: LanguageClient,
):
    text = "def add(a, b):\n    \n"
    await _open(client, text, uri="file:///tmp/ghostfill-slice/add.py")
    with pytest.raises(JsonRpcException) as info:
        await client.text_document_inline_completion_async(
            _request("file:///tmp/ghostfill-slice/add.py", 40, 0)
        )
    assert info.value.code == -32602  # InvalidParams
    with pytest.raises(JsonRpcException) as info:
        await client.text_document_inline_completion_async(
            _request("file:///tmp/ghostfill-slice/add.py", 0, 99)
        )
    assert info.value.code == -32602
    result = await client.text_document_inline_completion_async(
        _request("file:///tmp/ghostfill-slice/add.py", 1, 4)
    )
    assert result is not None
    assert result.items and result.items[0].insert_text.strip()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVE))
async def broken_client(lsp_client: LanguageClient, tmp_path_factory):
    bad = tmp_path_factory.mktemp("models") / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"model": {"name": str(bad)}},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_corrupt_model_shows_a_message_and_the_server_stays_up(
    broken_client: LanguageClient,
):
    await _open(broken_client, "x = 1\n")
    result = await broken_client.text_document_inline_completion_async(_request(URI, 1, 0))
    assert result is None or not result.items
    errors = [m for m in broken_client.messages if m.type == types.MessageType.Error]
    assert errors, "no window/showMessage error for the corrupt model"
    assert "broken.gguf" in errors[0].message
    assert "Traceback" not in errors[0].message
    # Still serving: a second request is answered, not hung.
    again = await broken_client.text_document_inline_completion_async(_request(URI, 0, 0))
    assert again is None or not again.items
