"""A synchronous facade over a real pygls client talking to `ghostfill serve` over stdio.

Hypothesis drives tests synchronously; the LSP client is asynchronous. The client's event loop
runs in a background thread and each call waits for its result.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import JsonRPCRequestMessage


class SyncClient:
    def __init__(self, settings: dict[str, Any] | None = None,
                 command: list[str] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.messages: list[types.ShowMessageParams] = []
        self.client = LanguageClient("ghostfill-tests", "1")

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log(params: types.LogMessageParams) -> None:
            pass

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: Any) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def progress(params: Any) -> None:
            pass

        cmd = command or [sys.executable, "-m", "ghostfill", "serve"]
        self.call(lambda: self.client.start_io(*cmd))
        self.stderr = bytearray()
        self._drain = asyncio.run_coroutine_threadsafe(self._read_stderr(), self._loop)
        self.call(lambda: self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options=settings or {})))
        self.notify(self.client.initialized, types.InitializedParams())
        self.server = self.client._server

    async def _read_stderr(self) -> None:
        """Keep the server's stderr drained, as an editor does (a full pipe blocks a writer)."""
        stream = self.client._server.stderr
        while stream is not None and (chunk := await stream.read(65536)):
            self.stderr += chunk[-65536:]
            del self.stderr[:-65536]

    def call(self, make: Any, timeout: float = 300) -> Any:
        """Run `make()` (which returns an awaitable) on the client's loop and wait for it."""
        async def wait() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(wait(), self._loop).result(timeout)

    def notify(self, fn: Any, *args: Any) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def request(self, method: str, params: Any, timeout: float = 300) -> Any:
        return self.call(lambda: self.client.protocol.send_request_async(method, params),
                         timeout)

    def raw_request(self, method: str, params: Any, timeout: float = 60) -> Any:
        """Send `params` exactly as given (any JSON), bypassing the client's typed
        serialization; returns the result or raises the server's JSON-RPC error."""
        protocol = self.client.protocol
        msg_id = str(uuid.uuid4())

        async def send() -> Any:
            future: Future[Any] = Future()
            protocol._request_futures[msg_id] = future
            protocol._send_data(JsonRPCRequestMessage(id=msg_id, method=method, params=params,
                                                      jsonrpc="2.0"))
            return await asyncio.wrap_future(future)

        return self.call(send, timeout)

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.notify(self.client.text_document_did_open, types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1,
                                                 text=text)))

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int],
               text: str) -> None:
        self.notify(self.client.text_document_did_change, types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=start[0], character=start[1]),
                                  end=types.Position(line=end[0], character=end[1])),
                text=text)]))

    def close_doc(self, uri: str) -> None:
        self.notify(self.client.text_document_did_close, types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def text(self, uri: str) -> str:
        return self.request("ghostfill/document", {"textDocument": {"uri": uri}}).text

    def inline(self, uri: str, line: int, character: int, invoked: bool = False) -> Any:
        kind = (types.InlineCompletionTriggerKind.Invoked if invoked
                else types.InlineCompletionTriggerKind.Automatic)
        return self.call(lambda: self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(trigger_kind=kind))))

    def alive(self) -> bool:
        return self.server is not None and self.server.returncode is None

    def stop(self) -> None:
        try:
            self.call(lambda: self.client.shutdown_async(None), timeout=30)
            self.notify(self.client.exit, None)
            self.call(self.client.stop, timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
