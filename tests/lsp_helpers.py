"""Small helpers for driving the real server with pytest-lsp."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.protocol import JsonRPCRequestMessage
from pytest_lsp import LanguageClient


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python",
             version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version,
                                             text=text)))


def change(client: LanguageClient, uri: str, version: int, start: tuple[int, int],
           end: tuple[int, int], text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=start[0], character=start[1]),
                              end=types.Position(line=end[0], character=end[1])),
            text=text)]))


def inline_params(uri: str, line: int, character: int, invoked: bool = True
                  ) -> types.InlineCompletionParams:
    kind = (types.InlineCompletionTriggerKind.Invoked if invoked
            else types.InlineCompletionTriggerKind.Automatic)
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind))


async def inline(client: LanguageClient, uri: str, line: int, character: int,
                 invoked: bool = True) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(
        inline_params(uri, line, character, invoked))
    if result is None:
        return []
    return list(result.items if isinstance(result, types.InlineCompletionList) else result)


async def request(client: LanguageClient, method: str, params: Any) -> Any:
    """Send params as given (a plain dict), bypassing the client's typed serialization, so
    malformed params reach the server exactly as written."""
    protocol = client.protocol
    msg_id = str(uuid.uuid4())
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    concurrent: Future[Any] = Future()
    protocol._request_futures[msg_id] = concurrent
    concurrent.add_done_callback(
        lambda f: future.get_loop().call_soon_threadsafe(_copy_result, f, future))
    protocol._send_data(JsonRPCRequestMessage(id=msg_id, method=method, params=params,
                                              jsonrpc="2.0"))
    return await future


def _copy_result(source: Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


async def server_text(client: LanguageClient, uri: str) -> str:
    result = await request(client, "ghostfill/document", {"textDocument": {"uri": uri}})
    return result.text


async def stats(client: LanguageClient) -> Any:
    return await request(client, "ghostfill/stats", None)


def focus(client: LanguageClient, uri: str, line: int | None = None,
          character: int = 0, active: bool = True) -> None:
    """`textDocument/didFocus` as ghostfill's editor plugins send it (the cursor, and whether
    the document is in front)."""
    params: dict[str, Any] = {"textDocument": {"uri": uri}, "active": active}
    if line is not None:
        params["position"] = {"line": line, "character": character}
    client.protocol.notify("textDocument/didFocus", params)
