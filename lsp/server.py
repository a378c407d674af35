"""The language server: thin handlers that call the engine and return LSP types.

Requests run the model on one worker thread (one model instance per process). A newer request
for a document cancels the older one, an edit cancels requests whose answer would be stale, and
`$/cancelRequest` reaches the backend through the request's CancelToken, so the model stops
within a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import hmac
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from lsprotocol.converters import get_converter
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer

from ghostfill import __version__
from ghostfill.backends.factory import is_remote
from ghostfill.completion.definitions import fs_path
from ghostfill.config import Config
from ghostfill.crash_guard import CrashGuard, safe_config
from ghostfill.errors import BackendUnavailable, GhostfillError, InvalidPosition
from ghostfill.lsp import warmups
from ghostfill.lsp.cache import SuggestionCache
from ghostfill.lsp.completions import Answer, CompletionService
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.feedback import Feedback
from ghostfill.lsp.messages import (
    ACCEPTED_COMMAND,
    DID_FOCUS,
    DID_PARTIALLY_ACCEPT_COMPLETION,
    DID_SHOW_COMPLETION,
    DOCUMENT_METHOD,
    FIM_COMMAND,
    FIM_METHOD,
    STATS_METHOD,
    SUGGESTION_READY,
    DidFocusParams,
    DidPartiallyAcceptCompletionParams,
    DidShowCompletionParams,
    DocumentParams,
    FimParams,
    SuggestionReadyParams,
)
from ghostfill.lsp.positions import UTF8, UTF16, UTF32
from ghostfill.lsp.protocol import ARRIVED_AT, GhostfillProtocol, plain
from ghostfill.lsp.reading import fits_short, to_read
from ghostfill.lsp.session import DocumentSession
from ghostfill.lsp.stats import Stats
from ghostfill.usage import UsageWriter, usage_path

if TYPE_CHECKING:  # the engine (and the model libraries behind it) loads on its thread
    from ghostfill.engine import CompletionEngine

log = logging.getLogger("ghostfill")

_ENCODINGS: dict[str, str] = {
    types.PositionEncodingKind.Utf8: UTF8,
    types.PositionEncodingKind.Utf16: UTF16,
    types.PositionEncodingKind.Utf32: UTF32,
}
CONVERTER = get_converter()
#: Pause in typing after which a stale syntax tree is parsed in full (in slices).
IDLE_REPARSE_S = 0.25
IDLE_REPARSE_SLICE_MS = 50.0
#: Pause in requests after which warm-ups given up for them are resumed.
REWARM_AFTER_S = 1.0
#: Pause in typing after which the full window of a document typed in from its short window
#: is read (a pause between words: the next keystroke stops it, and what it read stays).
FULL_WINDOW_AFTER_S = 0.3
#: Threads that hand work to the model: for requests someone waits for, and for background
#: work (warm-ups, late answers, prefetches). Apart, so that a keystroke's request reaches the
#: backend while background work runs there, and the backend lets it go first (llama.cpp:
#: `LlamaCppBackend._step_aside`; an engine process: the same, over there); with one pool,
#: background jobs of a few documents could hold every thread and the keystroke wait for one.
MODEL_WORKERS = 2
BACKGROUND_WORKERS = 4
#: Characters that may follow the cursor and still be replaced by a suggestion that ends in
#: them (auto-closed brackets and quotes).
CLOSING = frozenset(")]}>\"'`;, \t")


class GhostfillServer(LanguageServer):
    def __init__(self, config: Config | None = None) -> None:
        super().__init__("ghostfill", __version__, protocol_cls=GhostfillProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.config = config or Config()
        #: One session per open document: its text and tree, its requests, its suggestion.
        self.sessions: dict[str, DocumentSession] = {}
        #: Edits received (all documents): orders requests against edits (`ARRIVED_AT`).
        self.edit_count = 0
        #: One-line suggestions replace the rest of their line (see `_replace_end`).
        self.ranges_to_line_end = False
        self.engine: CompletionEngine | None = None
        self.load_error: GhostfillError | None = None
        self.state = "loading"
        self._engine_ready = threading.Event()
        self._model_pool = ThreadPoolExecutor(max_workers=MODEL_WORKERS,
                                              thread_name_prefix="ghostfill-model")
        self._background_pool = ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS,
                                                   thread_name_prefix="ghostfill-background")
        self.crash_guard = CrashGuard()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The prefix-only FIM warning is shown once per server (then only in the answers).
        self.fim_warned = False
        self.stats = Stats()
        #: What the user did with the suggestions: counted here and in the local usage file.
        self.feedback = Feedback(UsageWriter())
        #: Required from TCP clients as initializationOptions.authToken (None: no check).
        self.auth_token: str | None = None
        #: The timer that resumes owed warm-ups (`yield_warmups`).
        self._rewarm: asyncio.TimerHandle | None = None
        self.service = CompletionService(self.run_model, self.stats,
                                         SuggestionCache(self.config.server.cache_size))
        self.service.on_short = self.owe_full_window

    # -- helpers ----------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        try:
            enc = self.workspace.position_encoding
        except RuntimeError:
            enc = None
        return _ENCODINGS.get(enc, UTF16) if enc else UTF16

    def session(self, uri: str) -> DocumentSession:
        session = self.sessions.get(uri)
        if session is None:
            raise JsonRpcInvalidParams(f"document {uri} is not open")
        return session

    def offset(self, doc: OpenDocument, position: types.Position) -> int:
        try:
            return doc.offset_at(position.line, position.character, self.encoding)
        except InvalidPosition as e:
            raise JsonRpcInvalidParams(str(e)) from e

    def position(self, doc: OpenDocument, offset: int) -> types.Position:
        line, character = doc.position_at(offset, self.encoding)
        return types.Position(line=line, character=character)

    def show_error(self, message: str) -> None:
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=f"ghostfill: {message}")
        )

    def log(self, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=types.MessageType.Log,
                                                       message=message))

    # -- model lifecycle --------------------------------------------------------------
    def start_loading(self) -> None:
        self._engine_ready.clear()
        self.state = "loading"
        # The load runs on its own thread; what it starts afterwards (warm-ups) belongs to
        # the event loop.
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, name="ghostfill-load", daemon=True).start()

    def _load(self) -> None:
        from ghostfill.engine import CompletionEngine

        token = f"ghostfill/load/{time.monotonic_ns()}"
        started = time.monotonic()
        try:
            self.work_done_progress.create(token).result(timeout=5)
            self.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(title="ghostfill", percentage=0,
                                            message=f"loading {self.config.model.name}"),
            )
            progress = True
        except Exception:  # a client without progress support
            progress = False
        reported = [-1]

        def on_progress(fraction: float) -> None:
            percent = int(fraction * 100)
            if percent < reported[0]:  # a download came first (`resolve`); the load restarts
                reported[0] = -1
            if progress and percent >= reported[0] + 5:  # llama.cpp calls per tensor
                reported[0] = percent
                self.work_done_progress.report(token, types.WorkDoneProgressReport(
                    message=f"loading {self.config.model.name}", percentage=percent))

        try:
            if self.config.server.engine == "inprocess" and not is_remote(self.config):
                # An engine process keeps its own crash markers (`engine_service`).
                self._recover_from_crash()
            engine = self._load_guarded(CompletionEngine, on_progress)
            old, self.engine = self.engine, engine
            if old is not None:
                self._model_pool.submit(old.close)
            self.load_error, self.state = None, "ready"
            self.service.cache.clear()
            info = engine.describe()
            options = info.options
            self.log(f"ghostfill: loaded {info.model} ({info.template}) "
                     f"in {time.monotonic() - started:.1f}s; options: {options}")
        except GhostfillError as e:
            self.load_error, self.state = e, "error"
            self.show_error(str(e))
        except Exception as e:  # a bug, but the server must stay up
            log.exception("model load failed")
            self.load_error, self.state = GhostfillError(f"loading the model failed: {e}"), "error"
            self.show_error(str(self.load_error))
        finally:
            self._engine_ready.set()
            if progress:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=self.state))
        if self.engine is not None and self.config.server.warm_on_open and self._loop:
            self._loop.call_soon_threadsafe(self._warm_open_documents)

    def _warm_open_documents(self) -> None:
        for session in list(self.sessions.values()):
            self.warm(session)

    def _recover_from_crash(self) -> None:
        """A server that died in native code (see `CrashGuard`) is reported once, and this
        one loads with extra buffer types off unless the user chose them explicitly."""
        crashes = self.crash_guard.crashed()
        if not crashes:
            return
        self.config, message = safe_config(self.config, crashes)
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning,
                                                         message=f"ghostfill: {message}"))

    def _load_guarded(self, engine_cls: type[CompletionEngine],
                      on_progress: Callable[[float], None] | None = None) -> CompletionEngine:
        """Load and decode a few tokens with a crash marker armed, so that a native crash in
        either is known to the next server (the first decode is where llama.cpp's AMX kernel
        faults)."""
        mc = self.config.model
        if is_remote(self.config) or self.config.server.engine != "inprocess":
            # No native model code in this process: an engine process or a server runs it.
            return engine_cls.load(self.config, on_progress, self.engine_event)
        guard = self.crash_guard
        guard.arm("loading the model", {"model": mc.name, "options": {
            "extra_buffer_types": "auto" if mc.extra_buffer_types is None
            else mc.extra_buffer_types}})
        engine = engine_cls.load(self.config, on_progress)
        options = engine.describe().options
        log.info("llama.cpp options: %s", options)
        guard.arm("decoding its first tokens", {"model": engine.model_name,
                                                 "options": options})
        engine.warm(engine.tokenizer.encode("def main():\n    return 0\n"))
        guard.disarm()
        return engine

    def engine_event(self, kind: str, message: str) -> None:
        """What the engine process's supervisor tells the user (from its threads): one warning
        per incident, the way back only in the log, where the documents are warmed again."""
        loop = self._loop
        if loop is None:
            return
        loop.call_soon_threadsafe(self._on_engine_event, kind, message)

    def _on_engine_event(self, kind: str, message: str) -> None:
        self.stats.add(**{f"engine_{kind}": 1})
        if kind == "restored":
            self.log(f"ghostfill: {message}")
            self.service.cache.clear()
            if self.config.server.warm_on_open:
                self._warm_open_documents()
            return
        level = types.MessageType.Error if kind == "failing" else types.MessageType.Warning
        log.warning("%s", message)
        self.window_show_message(types.ShowMessageParams(type=level,
                                                         message=f"ghostfill: {message}"))

    def suggestion_ready(self, uri: str, version: int, offset: int) -> None:
        """`ghostfill/suggestionReady`: what the latency budget could not wait for is ready
        where the client last asked; a client that declared
        `experimental.ghostfillSuggestionReady` asks again and is answered from the cache.
        (LSP 3.18 has no refresh request for inline completion.)"""
        session = self.sessions.get(uri)
        if session is None or session.doc.version != version:
            return
        position = self.position(session.doc, offset)
        self.stats.add(ready_sent=1)
        self.protocol.notify(SUGGESTION_READY, SuggestionReadyParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=version), position))

    @property
    def engine_ready(self) -> bool:
        return self._engine_ready.is_set()

    async def wait_engine(self) -> CompletionEngine | None:
        if not self._engine_ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self._engine_ready.wait)
        return self.engine

    async def run_model(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on a model thread; `background=True` among the kwargs (a
        request nobody waits for) takes a thread of the background pool."""
        loop = asyncio.get_running_loop()
        pool = self._background_pool if kwargs.get("background") else self._model_pool
        return await loop.run_in_executor(pool, lambda: fn(*args, **kwargs))

    async def run_background(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` (a warm-up) on a thread of the background pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._background_pool, lambda: fn(*args))

    def warm(self, session: DocumentSession) -> None:
        """Owe `session` a warm-up: its window read into its cache slot before the first
        keystroke there. `lsp.warmups` decides the order (the document the user is in
        first) and the position (its last known cursor)."""
        session.warm_owed = True
        # Read first, for a document the user is not in: its short window, while the full
        # windows of others wait (`lsp.warmups`).
        session.short_owed = self.engine is not None and self.engine.short_window is not None
        self._next_warmup()

    def owe_full_window(self, session: DocumentSession) -> None:
        """A keystroke in `session` was served from the short window: its full window is
        read from the next pause in typing on (`FULL_WINDOW_AFTER_S`; the document in front
        goes first), a slice at a time, until a keystroke stops it (what was read stays)."""
        session.warm_owed = True
        self._rewarm_after(FULL_WINDOW_AFTER_S)

    def _rewarm_after(self, delay_s: float | None) -> None:
        """Resume owed warm-ups after `delay_s` without requests (None: not now), replacing
        the pause counted so far."""
        if self._rewarm is not None:
            self._rewarm.cancel()
            self._rewarm = None
        if delay_s is not None and self._loop is not None:
            self._rewarm = self._loop.call_later(delay_s, self._warm_owed)

    def _next_warmup(self) -> None:
        """Start the next owed warm-up, unless one runs or typing holds them back
        (`yield_warmups`): one at a time, since the model reads one thing at a time and a
        window read in full is worth more than two read in part."""
        if self.engine is None or self._rewarm is not None:
            return
        if any(s.warming is not None for s in self.sessions.values()):
            return
        chosen = warmups.next_to_warm(self.sessions.values())
        if chosen is not None:
            self._start_warm(*chosen)

    def _start_warm(self, session: DocumentSession, short: bool = False) -> None:
        """Prefill the document's window into its cache slot.

        Cancelled by a request in this document, and given up for a request in any other
        (`yield_warmups`) or for the document the user moves to (`focused`): the user
        typing now comes before a file they may visit later. What was read stays in the
        slot, and the backend lets keystrokes go first between its batches.
        """
        engine = self.engine
        assert engine is not None
        cancel = session.start_background("warm replaced")
        session.warming, session.warming_short = cancel, short
        if short:
            session.short_owed = False
        else:
            session.warm_owed = False
        source = session.snapshot(warmups.warm_offset(session))

        async def job() -> None:
            try:
                prepared = await self.service.prepare(engine, source)
                if short and fits_short(engine, prepared):
                    # The whole window is no longer than a short one: read it, once (if it
                    # gives way, it is owed as the short window it also is: `gave_way`).
                    session.warm_owed = False
                elif short:
                    prepared = await self.service.prepare(engine, source, short=True)
                session.adopt(source)
                if not cancel.cancelled:
                    tokens = prepared.prompt.tokens[:-1]
                    missing = to_read(session.held.get(prepared.slot or ""), tokens)
                    asked, started = self.stats.requests, time.monotonic()
                    evaluated = await self.run_background(engine.warm, tokens, cancel,
                                                          prepared.slot)
                    session.note_read(prepared, len(tokens) - max(0, missing - evaluated))
                    if self.stats.requests == asked and not cancel.cancelled:
                        # Nobody typed meanwhile: no step aside is in the time.
                        self.service.speed.note(evaluated,
                                                (time.monotonic() - started) * 1000)
                    if not cancel.cancelled:
                        self.stats.add(warmed=1, warmed_short=int(prepared.short))
                        if not prepared.short:
                            session.short_owed = False  # the full window is read
            except GhostfillError as e:
                log.debug("warm-up skipped: %s", e)
            finally:
                if session.warming is cancel:
                    session.warming = None
                session.done(cancel)
                self._next_warmup()

        self.background(job())

    def focused(self, session: DocumentSession, offset: int | None, active: bool) -> None:
        """`textDocument/didFocus`: remember where the cursor is; the document the user
        moved to is read first (another one's warm-up gives way, owed), one whose cursor
        was only hinted waits its turn."""
        warmups.noted(session, offset, active=active)
        self.stats.add(focused=1)
        if active:
            for other in self.sessions.values():
                token = other.warming
                if other is not session and token is not None and not token.cancelled:
                    token.cancel("another document in front")
                    warmups.gave_way(other)
        if self.config.server.warm_on_open:
            self.warm(session)

    def yield_warmups(self, typing: DocumentSession, offset: int | None = None) -> None:
        """A request in `typing` (at `offset`) stops the other documents' warm-ups (they are
        owed, and resumed `REWARM_AFTER_S` after the last request); its own is no longer
        needed: the request reads its window."""
        if offset is not None:
            typing.cursor = offset
        typing.warm_owed = typing.short_owed = False
        for session in self.sessions.values():
            token = session.warming
            if session is not typing and token is not None and not token.cancelled:
                token.cancel("a request in another document")
                warmups.gave_way(session)
        owed = any(s.warm_owed or s.short_owed for s in self.sessions.values())
        self._rewarm_after(REWARM_AFTER_S if owed else None)

    def _warm_owed(self) -> None:
        self._rewarm = None
        self._next_warmup()

    def reparse_when_idle(self, session: DocumentSession) -> None:
        """Finish the syntax tree once typing pauses, so the next request finds it parsed.

        Edits do not reparse (see `SyntaxDocument`); a request reparses within a budget. Doing
        the whole parse here, after a pause, keeps both the keystroke and the request cheap.
        """
        if session.reparse is not None:
            session.reparse.cancel()
            session.reparse = None
        if not session.doc.syntax.fresh:
            loop = asyncio.get_running_loop()
            session.reparse = loop.call_later(IDLE_REPARSE_S, self._reparse_now, session)

    def _reparse_now(self, session: DocumentSession) -> None:
        session.reparse = None
        if self.sessions.get(session.uri) is not session:
            return
        # In slices, so that a file tree-sitter needs seconds for never blocks the server: a
        # request or an edit in between is served at the next turn of the loop.
        if not session.doc.syntax.refresh(IDLE_REPARSE_SLICE_MS):
            loop = asyncio.get_running_loop()
            session.reparse = loop.call_later(0.005, self._reparse_now, session)

    def apply_config(self, values: Any) -> None:
        try:
            new = self.config.updated(values)
        except GhostfillError as e:
            self.show_error(f"{e}; keeping the previous configuration")
            return
        old, self.config = self.config, new
        self.service.cache.enabled = new.server.cache_size > 0
        if new.model != old.model or new.remote != old.remote:
            self.start_loading()
        elif self.engine is not None and new != old:
            self.engine = self.engine.with_config(new)
            self.service.cache.clear()

    def drop_connection(self) -> None:
        writer = self.protocol.writer
        close = getattr(writer, "close", None)
        if close is not None:
            close()

    def background(self, coro: Any) -> None:
        """Run a coroutine after the response (the service keeps it referenced)."""
        self.service.spawn(coro)

    def budget_s(self, invoked: bool) -> float:
        cc = self.config.completion
        return (cc.invoked_budget_ms if invoked else cc.latency_budget_ms) / 1000

    def update_roots(self) -> None:
        """Give the definition index the workspace roots the client named.

        Only the roots: with none (a single file opened without a folder), imported definitions
        stay off rather than falling back on the document's directory, since reading whatever
        directory a file happens to sit in (home, Downloads, /tmp) would be surprising.
        """
        try:
            workspace = self.workspace
        except RuntimeError:  # not initialized
            return
        folders = [folder.uri for folder in workspace.folders.values()]
        self.service.definitions.set_roots(workspace_roots(workspace.root_uri, folders))


def workspace_roots(root_uri: str | None, folder_uris: list[str]) -> list[str]:
    """File-system paths of the workspace folders (rootUri when the client sent no folders);
    other URI schemes (a remote workspace) have nothing to read here."""
    roots: list[str] = []
    for uri in folder_uris or ([root_uri] if root_uri else []):
        path = fs_path(uri) if uri.startswith("file:") else None
        if path is not None and str(path) not in roots:
            roots.append(str(path))
    return roots


server = GhostfillServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: GhostfillServer, params: types.InitializeParams) -> None:
    options = params.initialization_options
    if isinstance(options, dict):
        options = dict(options)
        offered = options.pop("authToken", None)
    else:
        offered = None
    if ls.auth_token is not None and not hmac.compare_digest(str(offered or ""),
                                                             ls.auth_token):
        # A TCP port on localhost is reachable by every local user: require the token.
        asyncio.get_running_loop().call_later(0.2, ls.drop_connection)
        raise JsonRpcInvalidRequest("ghostfill: wrong or missing authToken")
    if options:
        try:
            ls.config = ls.config.updated(options)
        except GhostfillError as e:
            ls.show_error(f"{e}; using defaults")
    ls.service.cache = SuggestionCache(ls.config.server.cache_size)
    experimental = params.capabilities.experimental
    ours = isinstance(experimental, dict) and bool(experimental.get("ghostfillSuggestionReady"))
    if ours:
        ls.service.on_ready = ls.suggestion_ready
    # Neovim's own inline completion (not the ghostfill plugin, which declares the
    # notification above and draws insertions itself) overlays a ranged item on the text it
    # replaces; its maintainers expect servers to return the text through the line's end
    # (neovim/neovim#33972). VS Code and the plugin get the exact insertion.
    client = params.client_info.name if params.client_info else ""
    ls.ranges_to_line_end = client == "Neovim" and not ours
    ls.update_roots()


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_workspace_folders(ls: GhostfillServer,
                                 params: types.DidChangeWorkspaceFoldersParams) -> None:
    # pygls has already applied the change to `ls.workspace.folders`.
    ls.update_roots()


@server.feature(types.INITIALIZED)
def on_initialized(ls: GhostfillServer, params: types.InitializedParams) -> None:
    ls.start_loading()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: GhostfillServer,
                             params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if isinstance(settings, dict) and "ghostfill" in settings:
        settings = settings["ghostfill"]
    if settings:
        ls.apply_config(settings)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: GhostfillServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    previous = ls.sessions.pop(item.uri, None)
    if previous is not None:  # opened twice without a close: the newer text wins
        previous.close()
    session = DocumentSession(OpenDocument.open(item.uri, item.language_id, item.version,
                                                item.text))
    ls.sessions[item.uri] = session
    warmups.opened(session)
    ls.service.edited(session, 0)
    ls.reparse_when_idle(session)
    if ls.config.server.warm_on_open:
        ls.warm(session)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: GhostfillServer, params: types.DidChangeTextDocumentParams) -> None:
    session = ls.sessions.get(params.text_document.uri)
    if session is None:
        return
    doc = session.doc
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            r = change.range
            try:
                start = doc.offset_at(r.start.line, r.start.character, ls.encoding)
                end = doc.offset_at(r.end.line, r.end.character, ls.encoding)
            except InvalidPosition as e:
                ls.show_error(f"edit outside {doc.uri} ({e}); the document will be resynced "
                              "when it is reopened")
                return
            ls.feedback.edited(doc, min(start, end), max(start, end), change.text)
            ls.service.record_edit(session, min(start, end), max(start, end), change.text)
            session.edit(min(start, end), max(start, end), change.text)
            ls.service.edited(session, r.start.line)
        else:
            ls.feedback.forget(doc.uri)
            ls.service.history.forget(doc.uri)
            session.replace_all(change.text, params.text_document.version)
    doc.version = params.text_document.version
    ls.edit_count += 1
    session.edited_at = ls.edit_count
    session.cancel("document changed")
    ls.reparse_when_idle(session)


@server.feature(types.SHUTDOWN)
def shutdown(ls: GhostfillServer, *args: Any) -> None:
    """Cancel what runs for the documents (answers, late answers, warm-ups): the exit that
    follows must not wait for a model thread to finish a long answer."""
    for session in ls.sessions.values():
        session.close()


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: GhostfillServer, params: types.DidCloseTextDocumentParams) -> None:
    session = ls.sessions.pop(params.text_document.uri, None)
    ls.feedback.forget(params.text_document.uri)
    if session is not None:
        ls.service.forget(session)


def _replace_end(doc: OpenDocument, offset: int, text: str, to_line_end: bool) -> int:
    """End of the range a suggestion replaces: the rest of the line if only closers follow
    (auto-closed brackets the suggestion ends in), or when `to_line_end` for a one-line
    suggestion (Neovim 0.12's built-in client draws a ranged item over the text it replaces:
    given an empty range mid-line, its ghost text covers the code after the cursor; given the
    rest of the line, it shows the line as accepting makes it)."""
    line_end = doc.text.find("\n", offset)
    line_end = len(doc.text) if line_end < 0 else line_end
    rest = doc.text[offset:line_end].rstrip("\r")
    if rest and (all(ch in CLOSING for ch in rest) or (to_line_end and "\n" not in text)):
        return offset + len(rest)
    return offset


def _where(doc: OpenDocument, position: types.Position) -> str:
    name = doc.uri.rsplit("/", 1)[-1]
    return f"{name}:{position.line + 1}:{position.character + 1}"


@dataclass
class _Asked:
    """A suggestion request as the handlers share it."""

    session: DocumentSession
    offset: int
    #: The selected completion item applied first (VS Code's word list): (start, end, text).
    edit: tuple[int, int, str] | None
    answer: Answer


async def _suggest(ls: GhostfillServer, uri: str, position: types.Position, invoked: bool,
                   selected: types.SelectedCompletionInfo | None = None,
                   choices: int = 1) -> _Asked | None:
    """The suggestion at `position` (None: none wanted here, or no model); `choices`: how many
    distinct ones to look for (`CompletionService.suggest`)."""
    created = time.monotonic()
    session = ls.session(uri)
    doc = session.doc
    cursor = ls.offset(doc, position)
    if doc.language_id in ls.config.completion.disabled_languages:
        return None
    loading = not ls.engine_ready
    engine = await ls.wait_engine()
    if engine is None:
        return None
    ls.yield_warmups(session, cursor)
    if loading:  # the budget is for the model's work, not for waiting on its load
        created = time.monotonic()
    offset, edit = cursor, None
    if selected is not None:
        # Complete as if the selected popup item were already inserted; the ghost text then
        # starts with it, as LSP 3.18 asks (VS Code shows nothing else while its list is
        # open). A snapshot of that text: cache, late answers and resumed lines work as for
        # the plain request.
        start = ls.offset(doc, selected.range.start)
        end = max(start, ls.offset(doc, selected.range.end))
        edit = (start, end, selected.text)
        offset = start + len(selected.text)
    try:
        answer = await ls.service.suggest(
            engine, session, offset, invoked=invoked, created=created,
            debounce_s=ls.config.server.debounce_ms / 1000, budget_s=ls.budget_s(invoked),
            edit=edit, cursor=cursor, arrived_at=ARRIVED_AT.get(), choices=choices)
    except BackendUnavailable as e:  # the engine is being restarted; the user was told once
        ls.log(f"ghostfill: {_where(doc, position)}: {e}")
        return None
    except GhostfillError as e:
        ls.show_error(str(e))
        return None
    if answer.why:
        # Visible in the editor's server log at its default level: why nothing (or half a
        # line) came, which is otherwise a mystery to the user.
        ls.log(f"ghostfill: {_where(doc, position)}: {answer.why}")
    if answer.text and ls.config.server.prefetch:
        # What follows accepting it, in the background (cancelled by the next request that
        # needs the model): it may take the explicit-request budget.
        start, end, lead = edit if edit is not None else (cursor, cursor, "")
        accept = (start, end, lead + answer.text)
        ls.background(ls.service.prefetch_after(
            engine, session, accept, start + len(accept[2]), ls.budget_s(True),
            partial=answer.partial, multiline=answer.multiline))
    return _Asked(session, offset, edit, answer)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: GhostfillServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList | None:
    context = params.context
    invoked = (context is not None
               and context.trigger_kind == types.InlineCompletionTriggerKind.Invoked)
    selected = context.selected_completion_info if context is not None else None
    # Several suggestions only when asked for (the invoked trigger: VS Code's "show next
    # inline suggestion" asks so): each costs a generation. Neovim's own client only ever
    # asks with the automatic trigger; it gets whatever is held for the place (cycled with
    # vim.lsp.inline_completion.select), never more work.
    most = ls.config.completion.choices
    choices = most if invoked else 1
    shown = most if invoked or ls.ranges_to_line_end else 1
    asked = await _suggest(ls, params.text_document.uri, params.position, invoked, selected,
                           choices)
    if asked is None:
        return None
    answer, doc = asked.answer, asked.session.doc
    if not answer.text:
        return types.InlineCompletionList(items=[])
    items: list[types.InlineCompletionItem] = []
    texts: list[str] = []
    inserts: set[str] = set()
    for text in (answer.text, *answer.alternatives):
        if len(items) >= shown:
            break
        if selected is not None and asked.edit is not None:
            replace_range = selected.range
            insert = asked.edit[2] + text
        else:
            end = _replace_end(doc, asked.offset, text, ls.ranges_to_line_end)
            insert = text + doc.text[asked.offset:end]
            replace_range = types.Range(start=params.position, end=ls.position(doc, end))
        if insert in inserts:  # distinct as the editor inserts them
            continue
        inserts.add(insert)
        texts.append(text)
        items.append(types.InlineCompletionItem(
            insert_text=insert,
            range=replace_range,
            command=types.Command(title="ghostfill: accepted", command=ACCEPTED_COMMAND,
                                  arguments=[answer.source]),
        ))
    # Ids for the feedback notifications; a suggestion the user just typed over stays out.
    kept = ls.feedback.offer(doc, items, params.position, lambda p: ls.offset(doc, p))
    if len(kept) < len(items):
        ls.service.withheld(asked.session, [text for item, text in zip(items, texts, strict=True)
                                            if any(item is k for k in kept)])
    return types.InlineCompletionList(items=kept)


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[".", "(", " "]))
async def completion(ls: GhostfillServer,
                     params: types.CompletionParams) -> types.CompletionList | None:
    """Fallback for clients without inline completion: one clearly labelled item."""
    invoked = (params.context is None
               or params.context.trigger_kind == types.CompletionTriggerKind.Invoked)
    asked = await _suggest(ls, params.text_document.uri, params.position, invoked)
    if asked is None:
        return None
    answer, doc, offset = asked.answer, asked.session.doc, asked.offset
    if not answer.text:
        return types.CompletionList(is_incomplete=True, items=[])
    first = answer.text.strip().split("\n")[0]
    label = first if len(first) <= 60 else first[:57] + "..."
    item = types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Snippet,
        detail="ghostfill (AI completion)",
        documentation=answer.text,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=params.position, end=params.position),
                                 new_text=answer.text),
        filter_text=doc.text[doc.text.rfind("\n", 0, offset) + 1 : offset].lstrip() + first,
        sort_text="~ghostfill",
    )
    return types.CompletionList(is_incomplete=True, items=[item])


async def _fim(ls: GhostfillServer, uri: str, hole: types.Range) -> dict[str, Any]:
    """Fill the hole at a position or a selected range; returns {text, range}."""
    session = ls.session(uri)
    doc = session.doc
    created = time.monotonic()
    start, end = ls.offset(doc, hole.start), ls.offset(doc, hole.end)
    if end < start:
        raise JsonRpcInvalidParams("range end before its start")
    engine = await ls.wait_engine()
    if engine is None:
        raise JsonRpcInvalidParams(f"no model: {ls.load_error}")
    multiline = True if "\n" in doc.text[start:end] else None
    cancel = session.supersede("fim")
    # The document with the hole cut out, parsed off the loop within the parse budget.
    source = session.snapshot(start, (start, end, ""))
    try:
        prepared = await ls.service.prepare(engine, source, multiline)
        result = await ls.run_model(engine.run, prepared, cancel=cancel, created=created,
                                    deadline=created + ls.budget_s(True))
    except asyncio.CancelledError:
        cancel.cancel("$/cancelRequest")
        raise
    except GhostfillError as e:
        ls.show_error(str(e))
        raise JsonRpcInvalidParams(str(e)) from e
    finally:
        session.done(cancel)
    answer = {"text": result.text, "range": CONVERTER.unstructure(hole),
              "stop_reason": result.stop_reason}
    if engine.template.suffix_token is None and doc.text[end:].strip():
        # A prefix-only model fills a hole without seeing what follows it: say so, or the
        # user takes a confident rewrite of a selection for one that read the whole file.
        answer["warning"] = (
            f"{engine.model_name} has no fill-in-the-middle tokens: it saw only the "
            f"code before the {'selection' if end > start else 'cursor'}, not the code after "
            "it; a FIM model (model.name, e.g. a StarCoder or Qwen2.5-Coder GGUF) sees both")
        if not ls.fim_warned:
            ls.fim_warned = True
            ls.window_show_message(types.ShowMessageParams(
                type=types.MessageType.Warning, message=f"ghostfill: {answer['warning']}"))
    return answer


def _hole(params: FimParams) -> types.Range:
    try:
        return params.hole
    except ValueError as e:
        raise JsonRpcInvalidParams(str(e)) from e


@server.feature(FIM_METHOD)
async def fim_request(ls: GhostfillServer, params: FimParams) -> dict[str, Any]:
    return await _fim(ls, params.text_document.uri, _hole(params))


def _fim_arguments(args: tuple[Any, ...]) -> FimParams:
    """`ghostfill.fim` takes [uri, position | range] (as workspace/executeCommand's untyped
    arguments: decoded here with the protocol's converter)."""
    nested = len(args) == 1 and isinstance(args[0], list | tuple)
    arguments = list(args[0]) if nested else list(args)
    if len(arguments) < 2:
        raise JsonRpcInvalidParams("ghostfill.fim takes [uri, position | range]")
    uri, where = arguments[0], plain(arguments[1])
    kind = "range" if isinstance(where, dict) and "start" in where else "position"
    try:
        return CONVERTER.structure({"textDocument": {"uri": uri}, kind: where}, FimParams)
    except Exception as e:
        raise JsonRpcInvalidParams(f"ghostfill.fim takes [uri, position | range], not "
                                   f"{arguments[:2]!r}") from e


@server.command(FIM_COMMAND)
async def fim_command(ls: GhostfillServer, *args: Any) -> dict[str, Any]:
    params = _fim_arguments(args)
    hole = _hole(params)
    uri = params.text_document.uri
    result = await _fim(ls, uri, hole)
    workspace = ls.client_capabilities.workspace
    if result["text"] and workspace is not None and workspace.apply_edit:
        edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(range=hole,
                                                                 new_text=result["text"])]})
        try:
            applied = await asyncio.wait_for(ls.workspace_apply_edit_async(
                types.ApplyWorkspaceEditParams(edit=edit, label="ghostfill: fill in the middle")),
                timeout=30)
            result["applied"] = bool(applied and applied.applied)
        except (TimeoutError, Exception) as e:  # the client may refuse or never answer
            log.warning("workspace/applyEdit failed: %s", e)
            result["applied"] = False
    return result


@server.command(ACCEPTED_COMMAND)
def accepted_command(ls: GhostfillServer, *args: Any) -> None:
    ls.stats.add(accepted=1)
    nested = len(args) == 1 and isinstance(args[0], list | tuple)
    ls.feedback.accepted(plain(list(args[0]) if nested else list(args)))


@server.feature(DID_FOCUS)
def did_focus(ls: GhostfillServer, params: DidFocusParams) -> None:
    session = ls.sessions.get(params.text_document.uri)
    if session is None:
        return  # not open here (Copilot's clients send it for any buffer)
    offset = None
    if params.position is not None:
        try:
            offset = ls.offset(session.doc, params.position)
        except JsonRpcInvalidParams as e:  # a notification has no answer to carry it
            log.warning("textDocument/didFocus: %s", e)
    ls.focused(session, offset, params.active)


@server.feature(DID_SHOW_COMPLETION)
def did_show_completion(ls: GhostfillServer, params: DidShowCompletionParams) -> None:
    ls.feedback.shown(plain(params.item))


@server.feature(DID_PARTIALLY_ACCEPT_COMPLETION)
def did_partially_accept_completion(ls: GhostfillServer,
                                    params: DidPartiallyAcceptCompletionParams) -> None:
    ls.feedback.partially_accepted(plain(params.item), params.accepted_length)


@server.feature(DOCUMENT_METHOD)
def document_request(ls: GhostfillServer, params: DocumentParams) -> dict[str, Any]:
    """The server's copy of a document: lets clients and tests check that sync is exact."""
    doc = ls.session(params.text_document.uri).doc
    return {"uri": doc.uri, "version": doc.version, "text": doc.text,
            "languageId": doc.language_id, "parsed": doc.syntax.fresh}


@server.feature(STATS_METHOD)
def stats_request(ls: GhostfillServer, params: Any = None) -> dict[str, Any]:
    engine = ls.engine
    described = engine.describe() if engine else None
    info: dict[str, Any] = {
        "model": described.model if described else ls.config.model.name,
        "template": described.template if described else None,
        "backend": described.backend if described else ls.config.model.backend,
        "state": ls.state,
        "error": str(ls.load_error) if ls.load_error else None,
        "position_encoding": ls.encoding,
        #: How the model runs here (llama.cpp: threads, extra buffer types and why).
        "options": described.options if described else {},
    }
    info.update(ls.stats.snapshot())
    # Shown, accepted, kept per language since this server started; all-time totals, of
    # every server, are in the local file (`ghostfill stats`).
    info["feedback"] = {**ls.feedback.snapshot(), "file": str(usage_path())}
    # What the server keeps between requests; every count must stay bounded however long
    # the session (tests/test_soak.py, bench/soak.py; issue #21).
    sessions = list(ls.sessions.values())

    def count(has: Any) -> int:
        return sum(1 for session in sessions if has(session))

    info["held"] = {"documents": len(sessions),
                    "pending_messages": len(ls.protocol._request_futures),
                    "reparse_timers": count(lambda x: x.reparse is not None),
                    "inflight": count(lambda x: x.inflight is not None),
                    "prefetching": count(lambda x: x.background is not None),
                    "shown": count(lambda x: x.shown is not None),
                    "partials": count(lambda x: x.partial is not None),
                    "snippet_lines": count(lambda x: x.snippet_line is not None),
                    **ls.service.sizes()}
    return info


def _disarm_on_sigterm(guard: CrashGuard) -> None:
    """An editor that stops the server with SIGTERM during the load is no crash."""
    def handler(signum: int, frame: Any) -> None:
        guard.disarm()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    with contextlib.suppress(ValueError):  # not the main thread (tests serving in-process)
        signal.signal(signal.SIGTERM, handler)


def serve(config: Config, *, tcp_port: int | None = None, host: str = "127.0.0.1",
          token: str | None = None) -> None:
    level = os.environ.get("GHOSTFILL_LOG", "WARNING")
    logging.basicConfig(level=level, stream=sys.stderr)
    # A native crash (llama.cpp, torch) still leaves the Python stack in the editor's server
    # log; the crash guard tells the next server start what was running.
    faulthandler.enable()
    _disarm_on_sigterm(server.crash_guard)
    if level != "DEBUG":
        # pygls logs a traceback at ERROR for every undecodable message; we answer those with
        # InvalidParams instead. A client that floods bad input must not flood the editor's
        # log, nor fill a stderr pipe nobody reads (a full pipe blocks the server).
        logging.getLogger("pygls.protocol.json_rpc").setLevel(logging.CRITICAL)
        logging.getLogger("pygls.io_").setLevel(logging.CRITICAL)
    server.config = config
    server.auth_token = token
    if tcp_port is not None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: other machines can reach this server", host)
        server.start_tcp(host, tcp_port)
        return
    # The protocol owns the real stdout; anything a C library prints goes to stderr instead.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    server.start_io(sys.stdin.buffer, protocol_out)
