"""The language server: thin handlers that call the engine and return LSP types.

Requests run the model on one worker thread (one model instance per process); a newer request
for a document cancels the older one, and `$/cancelRequest` reaches the backend through the
request's CancelToken, so the model stops within a token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from ghostfill import __version__
from ghostfill.backends.base import CancelToken
from ghostfill.config import Config
from ghostfill.errors import GhostfillError, InvalidPosition
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.positions import UTF8, UTF16, UTF32

log = logging.getLogger("ghostfill")

_ENCODINGS = {
    types.PositionEncodingKind.Utf8: UTF8,
    types.PositionEncodingKind.Utf16: UTF16,
    types.PositionEncodingKind.Utf32: UTF32,
}


class GhostfillServer(LanguageServer):
    def __init__(self, config: Config | None = None) -> None:
        super().__init__("ghostfill", __version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.config = config or Config()
        self.documents: dict[str, OpenDocument] = {}
        self.engine: Any = None
        self.load_error: GhostfillError | None = None
        self._engine_ready = threading.Event()
        self._model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ghostfill-model")
        self._inflight: dict[str, CancelToken] = {}
        self._reported_error = False

    # -- helpers ----------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        try:
            enc = self.workspace.position_encoding
        except RuntimeError:
            enc = None
        return _ENCODINGS.get(enc, UTF16) if enc else UTF16

    def document(self, uri: str) -> OpenDocument:
        doc = self.documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open")
        return doc

    def show_error(self, message: str) -> None:
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=f"ghostfill: {message}")
        )

    def log(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log,
                                                       message=message))

    def start_loading(self) -> None:
        threading.Thread(target=self._load, name="ghostfill-load", daemon=True).start()

    def _load(self) -> None:
        from ghostfill.engine import CompletionEngine

        token = "ghostfill/load"
        started = time.monotonic()
        try:
            self.work_done_progress.create(token).result(timeout=5)
            self.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(title="ghostfill",
                                            message=f"loading {self.config.model.name}"),
            )
            progress = True
        except Exception:  # client without progress support
            progress = False
        try:
            self.engine = CompletionEngine.load(self.config)
            self.log(f"ghostfill: loaded {self.engine.backend.model_name} "
                     f"({self.engine.template.name}) in {time.monotonic() - started:.1f}s")
        except GhostfillError as e:
            self.load_error = e
            self.show_error(str(e))
        except Exception as e:  # a bug, but the server must stay up
            log.exception("model load failed")
            self.load_error = GhostfillError(f"loading the model failed: {e}")
            self.show_error(str(self.load_error))
        finally:
            self._engine_ready.set()
            if progress:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="ready"))

    async def wait_engine(self) -> Any:
        if not self._engine_ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self._engine_ready.wait)
        return self.engine

    async def run_model(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_pool, lambda: fn(*args, **kwargs))


server = GhostfillServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: GhostfillServer, params: types.InitializeParams) -> None:
    options = params.initialization_options
    if options:
        try:
            ls.config = ls.config.updated(options)
        except GhostfillError as e:
            ls.show_error(f"{e}; using defaults")


@server.feature(types.INITIALIZED)
def on_initialized(ls: GhostfillServer, params: types.InitializedParams) -> None:
    ls.start_loading()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: GhostfillServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.documents[item.uri] = OpenDocument.open(item.uri, item.language_id, item.version,
                                               item.text)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: GhostfillServer, params: types.DidChangeTextDocumentParams) -> None:
    doc = ls.documents.get(params.text_document.uri)
    if doc is None:
        return
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            try:
                start = doc.offset_at(r.start.line, r.start.character, ls.encoding)
                end = doc.offset_at(r.end.line, r.end.character, ls.encoding)
            except InvalidPosition as e:
                ls.show_error(f"edit outside {doc.uri} ({e}); resync the document")
                return
            doc.edit(min(start, end), max(start, end), change.text)
        else:
            doc.replace_all(change.text, params.text_document.version)
    doc.version = params.text_document.version
    token = ls._inflight.pop(doc.uri, None)
    if token is not None:
        token.cancel("document changed")


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: GhostfillServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.pop(params.text_document.uri, None)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: GhostfillServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    created = time.monotonic()
    doc = ls.document(params.text_document.uri)
    try:
        offset = doc.offset_at(params.position.line, params.position.character, ls.encoding)
    except InvalidPosition as e:
        raise JsonRpcInvalidParams(str(e)) from e
    if doc.language_id in ls.config.completion.disabled_languages:
        return None
    engine = await ls.wait_engine()
    if engine is None:
        if not ls._reported_error and ls.load_error is not None:
            ls._reported_error = True
        return None
    version = doc.version
    cancel = CancelToken()
    previous = ls._inflight.get(doc.uri)
    if previous is not None:
        previous.cancel("superseded")
    ls._inflight[doc.uri] = cancel
    try:
        prepared = engine.prepare(doc.text, offset, language_id=doc.language_id, path=doc.path,
                                  syntax=doc.syntax, anchor=doc.anchor, starts=doc.starts)
        invoked = (params.context is not None and params.context.trigger_kind
                   == types.InlineCompletionTriggerKind.Invoked)
        cc = ls.config.completion
        budget_ms = cc.invoked_budget_ms if invoked else cc.latency_budget_ms
        result = await ls.run_model(engine.run, prepared, cancel=cancel, created=created,
                                    deadline=created + budget_ms / 1000)
    except asyncio.CancelledError:
        cancel.cancel("$/cancelRequest")
        raise
    except GhostfillError as e:
        ls.show_error(str(e))
        return None
    finally:
        if ls._inflight.get(doc.uri) is cancel:
            del ls._inflight[doc.uri]
    if cancel.cancelled or doc.version != version or not result.text:
        return types.InlineCompletionList(items=[])
    position = params.position
    item = types.InlineCompletionItem(
        insert_text=result.text,
        range=types.Range(start=position, end=position),
    )
    return types.InlineCompletionList(items=[item])


def serve(config: Config, *, tcp_port: int | None = None, host: str = "127.0.0.1") -> None:
    logging.basicConfig(level=os.environ.get("GHOSTFILL_LOG", "WARNING"), stream=sys.stderr)
    server.config = config
    if tcp_port is not None:
        server.start_tcp(host, tcp_port)
        return
    # The protocol owns the real stdout; anything a C library prints goes to stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    server.start_io(sys.stdin.buffer, protocol_out)
