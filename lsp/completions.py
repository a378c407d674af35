"""From a request for ghost text to the text to show.

Order of business, cheapest first: type-through of the suggestion on screen, an exact cache hit
(including one prefetched while the user read the last suggestion), then — after the debounce,
and only if no newer request has arrived — the model. After a suggestion is shown, the
completion that would follow its acceptance is computed in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ghostfill.backends.base import CancelToken
from ghostfill.completion.crossfile import CHUNK_LINES, SnippetStore
from ghostfill.completion.definitions import DefinitionIndex
from ghostfill.completion.edits import EditHistory, place
from ghostfill.completion.languages import comment_prefix
from ghostfill.completion.scopes import cursor_scope
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.lsp.cache import Suggestion, SuggestionCache, cache_key
from ghostfill.lsp.reading import ReadingSpeed, fits_short, to_read
from ghostfill.lsp.session import DocumentSession, PartialLine
from ghostfill.lsp.stats import Stats

if TYPE_CHECKING:
    from ghostfill.engine import CompletionEngine, CompletionResult, Prepared

T = TypeVar("T")


log = logging.getLogger("ghostfill")

@dataclass
class Answer:
    text: str
    source: str  # model | cache | type_through | prefetch | none
    multiline: bool
    #: A line cut short by the deadline (see `prefetch_after`).
    partial: bool = False
    #: Why a model answer is empty or cut, in words for the editor's log ("" otherwise).
    why: str = ""
    #: Further suggestions held for this place (`completion.choices`), distinct from `text`;
    #: the server decides how many of them a request gets.
    alternatives: tuple[str, ...] = ()


class CompletionService:
    """Suggestions for document sessions: cache, type-through, the model, background work.

    Per-document state lives in each `DocumentSession`; what is shared between documents (the
    cache, cross-file snippets, the definition index, the worker that prepares requests) lives
    here.
    """

    def __init__(self, run_model: Callable[..., Awaitable[Any]], stats: Stats,
                 cache: SuggestionCache) -> None:
        self._run_model = run_model
        self.snippets = SnippetStore()
        #: Imported definitions from the workspace; the server sets its roots at initialize.
        #: Without roots it finds nothing.
        self.definitions = DefinitionIndex()
        #: The user's recent edits, per workspace folder (`record_edit`).
        self.history = EditHistory()
        self.stats = stats
        self.cache = cache
        #: Called with (uri, version, offset) when a suggestion the budget could not wait for
        #: is ready there (a cut line finished, a window read to the end): the server tells
        #: the client, which asks again and is answered at once.
        self.on_ready: Callable[[str, int, int], None] | None = None
        #: Called with a session whose keystroke was served from the short window: its full
        #: window is owed a reading in the background (the server schedules warm-ups).
        self.on_short: Callable[[DocumentSession], None] | None = None
        #: This machine's prompt reading speed (`lsp.reading`).
        self.speed = ReadingSpeed()
        #: Background work running on the event loop (prefetches, late answers), kept
        #: referenced so that it is not collected before it ends.
        self._tasks: set[asyncio.Future[Any]] = set()
        #: Parsing and definition lookups (which read files) run here, never on the event
        #: loop: one worker, since the definition index and the documents' parsers are not
        #: shared between threads.
        self._prepare_pool = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="ghostfill-prepare")

    @property
    def sources(self) -> ContextSources:
        return ContextSources(self.snippets, self.definitions, self.history,
                              self.history.view())

    async def off_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the prepare worker."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prepare_pool, lambda: fn(*args, **kwargs))

    async def prepare(self, engine: CompletionEngine, source: CompletionInput,
                      multiline: bool | None = None, *, short: bool = False) -> Prepared:
        prepared = await self.off_loop(engine.prepare, source, self.sources,
                                       multiline=multiline, short=short)
        self.stats.add(prompts=1,
                       edits_shown=sum(s.kind == "edit" for s in prepared.snippets))
        return prepared

    async def prepare_typing(self, engine: CompletionEngine, session: DocumentSession,
                             source: CompletionInput, multiline: bool,
                             budget_s: float) -> Prepared:
        """The window for a keystroke: the full one, unless reading what its slot lacks
        would not fit `budget_s` and the short window needs less (`lsp.reading`)."""
        prepared = await self.prepare(engine, source, multiline)
        if prepared.slot is None or fits_short(engine, prepared) \
                or not engine.backend.resumable:  # remote engines: no slots known here
            return prepared
        held, readable = session.held.get(prepared.slot), self.speed.readable(budget_s * 1000)
        missing = to_read(held, prepared.prompt.tokens)
        if missing <= readable:  # most keystrokes: a few new tokens after what is held
            return prepared
        # Past this point the window moved or is not read: what a shifting cache keeps counts.
        shift = bool(engine.backend.options().get("kv_shift"))
        if shift:
            missing = to_read(held, prepared.prompt.tokens, shift=True)
            if missing <= readable:
                return prepared
        short = await self.prepare(engine, source, multiline, short=True)
        short_missing = to_read(session.held.get(short.slot or ""), short.prompt.tokens,
                                shift=shift)
        log.debug("%s: full window %d of %d tokens to read, %d readable in the budget; "
                  "short window %d", session.uri, missing, len(prepared.prompt.tokens),
                  readable, short_missing)
        if short_missing >= missing:
            return prepared
        self.stats.add(short_windows=1)
        if self.on_short is not None:
            self.on_short(session)
        return short

    def _noted(self, session: DocumentSession, prepared: Prepared,
               result: CompletionResult, interactive: bool = True) -> None:
        """What a run read into its slot, and (interactive runs) how fast."""
        timings = result.timings
        evaluated = int(timings.get("evaluated_tokens", 0))
        read = int(timings.get("reused_tokens", 0)) + evaluated
        if read:
            session.note_read(prepared, read)
        if interactive:
            self.speed.note(evaluated, float(timings.get("prompt_ms", 0.0)))

    async def _multiline(self, engine: CompletionEngine, source: CompletionInput) -> bool:
        """The single/multi-line decision (part of the cache key) from the syntax at the
        cursor; a tree that needs parsing is parsed off the loop, within the parse budget."""
        budget_ms = engine.config.context.parse_budget_ms
        if not source.syntax.fresh:
            await self.off_loop(source.syntax.refresh, budget_ms)
        return bool(engine.multiline_at(cursor_scope(source.syntax, source.offset)))

    # -- the request path -----------------------------------------------------------------
    async def suggest(self, engine: CompletionEngine, session: DocumentSession, offset: int, *,
                      invoked: bool, created: float, debounce_s: float, budget_s: float,
                      edit: tuple[int, int, str] | None = None,
                      cursor: int | None = None, arrived_at: int | None = None,
                      choices: int = 1) -> Answer:
        """The suggestion at `offset`; with `edit`, at `offset` of the text after that edit
        (a completion item applied). `cursor`: where the client's cursor is in the document
        (default `offset`), which is where `ghostfill/suggestionReady` points. `arrived_at`: the
        server's edit count when the request arrived (`lsp.protocol.ARRIVED_AT`). `choices`:
        how many distinct suggestions to look for (an invoked request); what is held for the
        place (typed through, cached) answers when it was searched for as many."""
        self.stats.add(requests=1)
        doc = session.doc
        if session.stale_for(arrived_at):
            # Edited since the client asked (the request waited for the model to load, or
            # behind other messages): its position is of an older text, and the client
            # asks again after that edit.
            self.stats.add(stale=1)
            return Answer("", "none", False)
        version = doc.version
        session.asked = (doc.version, offset if cursor is None else cursor)
        if edit is None:
            prefix, suffix = doc.text[:offset], doc.text[offset:]
        else:
            start, end, new_text = edit
            edited = doc.text[:start] + new_text + doc.text[end:]
            prefix, suffix = edited[:offset], edited[offset:]
        # Type-through first: most keystrokes end here, before any parsing.
        shown = session.shown
        rests = self.cache.type_through_all(prefix, suffix, shown)
        if rests and shown is not None and choices <= shown.choices:
            self.stats.add(type_through=1)
            return self._shown_now(session, prefix, suffix, shown.multiline, rests[0],
                                   "type_through", created, partial=shown.partial,
                                   alternatives=tuple(rests[1:]), choices=shown.choices)
        source = session.snapshot(offset, edit)
        multiline = await self._multiline(engine, source)
        if doc.version != version or session.stale_for(arrived_at):
            session.adopt(source)
            self.stats.add(stale=1)
            return Answer("", "none", multiline)
        hit = self.cache.get(prefix, suffix, multiline)
        # An invoked request that wants more suggestions than were looked for here (the entry
        # came from typing, or was prefetched) runs the model.
        if hit is not None and choices <= hit.choices:
            session.adopt(source)
            self.stats.add(cache_hits=1, prefetch_hits=int(hit.prefetched))
            return self._shown_now(session, prefix, suffix, multiline, hit.text,
                                   "prefetch" if hit.prefetched else "cache", created,
                                   alternatives=hit.alternatives, choices=hit.choices)

        cancel = session.supersede("superseded")
        try:
            if debounce_s > 0 and not invoked:
                await asyncio.sleep(debounce_s)
                if cancel.cancelled:
                    session.adopt(source)
                    self.stats.add(cancelled=1)
                    return Answer("", "none", multiline)
            if invoked or choices > 1:  # the user asked and waits: the whole window
                prepared = await self.prepare(engine, source, multiline)
            else:
                prepared = await self.prepare_typing(engine, session, source, multiline,
                                                     budget_s)
            session.adopt(source)  # once: the worker is done with the snapshot
            if cancel.cancelled:
                self.stats.add(cancelled=1)
                return Answer("", "none", multiline)
            self.stats.add(misses=1)
            if choices > 1:
                results = await self._run_model(engine.run_choices, prepared, choices,
                                                cancel=cancel, created=created,
                                                deadline=created + budget_s)
            else:
                results = [await self._run_model(engine.run, prepared, cancel=cancel,
                                                 created=created, deadline=created + budget_s)]
        except asyncio.CancelledError:
            # $/cancelRequest: the model thread goes on unless its token says stop.
            cancel.cancel("$/cancelRequest")
            self.stats.add(cancelled=1)
            raise
        finally:
            session.done(cancel)
        result = results[0]
        self._noted(session, prepared, result)
        alternatives = tuple(r.text for r in results[1:])
        timings = result.timings
        if result.stop_reason != "cancelled" or timings.get("evaluated_tokens", 0):
            self.stats.add(model_calls=1)  # it reached the model (not dropped while queued)
        check = result.extra.get("suffix_check")
        if isinstance(check, dict):
            self.stats.add(suffix_checks=1, suffix_changed=int(check.get("chosen", 0) != 0))
        rank = result.extra.get("block_rank")
        if isinstance(rank, dict):
            self.stats.add(blocks_ranked=1, blocks_reordered=int(rank.get("chosen", 0) != 0))
        for each in results:
            self.stats.add(tokens_evaluated=int(each.timings.get("evaluated_tokens", 0)),
                           tokens_reused=int(each.timings.get("reused_tokens", 0)))
        if cancel.cancelled or result.stop_reason == "cancelled":
            self.stats.add(cancelled=1)
            return Answer("", "none", result.multiline)
        if doc.version != version:
            self.stats.add(stale=1)
            return Answer("", "none", result.multiline)
        if result.stop_reason == "error":
            self.stats.add(errors=1)
        if not result.text:
            late = result.stop_reason == "deadline"
            if late:
                # The budget ran out before the model said anything (a window to read after
                # a jump or a file switch): finish in the background, then tell the client.
                self._finish_late(engine, session, prepared, prefix, suffix)
            return Answer("", "none", result.multiline, why=_why_empty(result, budget_s, late))
        if result.partial:
            self.stats.add(partial=1)  # not cached: its continuation replaces it soon
            if result.tokens:  # a local model: resume from the exact tokens
                session.partial = PartialLine(prepared, result.tokens, prefix, suffix,
                                              result.text)
        else:
            self.cache.put(prefix, suffix, result.multiline, result.text,
                           alternatives=alternatives, choices=choices)
        answer = self._shown_now(session, prefix, suffix, result.multiline, result.text,
                                 "model", created, partial=result.partial,
                                 alternatives=alternatives, choices=choices)
        if result.partial:
            answer.why = (f"cut at the {budget_s * 1000:.0f} ms budget after "
                          f"{result.text!r}; the rest of the line follows in the background")
        return answer

    def _shown_now(self, session: DocumentSession, prefix: str, suffix: str, multiline: bool,
                   text: str, source: str, created: float, partial: bool = False,
                   alternatives: tuple[str, ...] = (), choices: int = 1) -> Answer:
        key = cache_key(prefix, suffix, multiline)
        session.shown = Suggestion(text, multiline, key[0], key[1], partial,
                                   alternatives=alternatives, choices=choices)
        self.stats.add(shown=1)
        self.stats.latency((time.monotonic() - created) * 1000)
        return Answer(text, source, multiline, partial, alternatives=alternatives)

    @staticmethod
    def withheld(session: DocumentSession, kept: list[str]) -> None:
        """Only `kept` of the answer reached the editor (the others were left out after it,
        e.g. a suggestion the user just typed over at that place): the shown suggestion is
        what the editor shows, so typing never continues one it never saw."""
        shown = session.shown
        if shown is None:
            return
        session.shown = replace(shown, text=kept[0], alternatives=tuple(kept[1:])) \
            if kept else None

    # -- cross-file snippets ---------------------------------------------------------------
    def edited(self, session: DocumentSession, line: int) -> None:
        """Remember the chunk around an edit once the user has moved to another region."""
        last = session.snippet_line
        if last is None or abs(line - last) >= CHUNK_LINES // 2:
            session.snippet_line = line
            self.snippets.add_around(session.uri, session.doc.text, line)

    def record_edit(self, session: DocumentSession, start: int, end: int, new_text: str) -> None:
        """An edit the document is about to apply (code-point offsets), for the history."""
        doc = session.doc
        workspace, label = place(doc.uri, tuple(str(r) for r in self.definitions.roots))
        self.history.record(doc.uri, doc.text, doc.starts, start, end, new_text,
                            workspace=workspace, label=label,
                            comment=comment_prefix(doc.syntax_grammar))

    def forget(self, session: DocumentSession) -> None:
        """The document closed: its session's work stops (its snippets stay, as context for
        the files still open)."""
        session.close()

    # -- prefetch -------------------------------------------------------------------------
    async def prefetch_after(self, engine: CompletionEngine, session: DocumentSession,
                             edit: tuple[int, int, str], cursor: int, budget_s: float, *,
                             partial: bool = False, multiline: bool | None = None) -> None:
        """Compute the suggestion that follows accepting a suggestion (background): `edit`
        is its acceptance (start, end, text) in the document, `cursor` where it leaves the
        cursor.

        For a `partial` answer (a line cut short by the deadline) this is the rest of that
        line: when it arrives and the partial suggestion is still the one on screen, the two
        are joined, so the next keystroke (type-through) shows the whole line. Runs once per
        target: type-through answers ask for the same target again and must not restart it.
        """
        if not edit[2] or not self.cache.enabled:
            return
        doc = session.doc
        start, end, new_text = edit
        accepted = doc.text[:start] + new_text + doc.text[end:]
        prefix, suffix = accepted[:cursor], accepted[cursor:]
        target = cache_key(prefix, suffix, False)[:2]
        if session.background is not None and session.prefetch_target == target:
            return  # already on it
        for ml in (multiline,) if multiline is not None else (False, True):
            hit = self.cache.get(prefix, suffix, ml)
            if hit is not None:
                if partial:
                    self._join_partial(session, prefix, suffix, hit.text)
                return
        cancel = session.start_background("prefetch replaced")
        session.prefetch_target = target
        state = session.partial if partial else None
        if state is not None and not (state.prefix + state.text).endswith(prefix[-256:]):
            state = None
        try:
            if state is not None:
                await self._finish_partial(engine, session, state, cancel, budget_s)
                return
            source = session.snapshot(cursor, edit)
            prepared = await self.prepare(engine, source, multiline if partial else None)
            if cancel.cancelled:
                return
            result = await self._run_model(engine.run, prepared, cancel=cancel,
                                           created=time.monotonic(),
                                           deadline=time.monotonic() + budget_s,
                                           background=True)
        finally:
            session.done(cancel)
            if session.prefetch_target == target:
                session.prefetch_target = None
        self._noted(session, prepared, result, interactive=False)
        # No version check: the cache key (the accepted text) is what makes the entry valid.
        if result.text and not cancel.cancelled and result.stop_reason != "cancelled":
            if not result.partial:
                self.cache.put(prefix, suffix, result.multiline, result.text, prefetched=True)
            if partial:
                self._join_partial(session, prefix, suffix, result.text, result.partial)

    async def _finish_partial(self, engine: CompletionEngine, session: DocumentSession,
                              state: PartialLine, cancel: CancelToken, budget_s: float) -> None:
        """The rest of a partial line, from the very tokens it was cut from."""
        result = await self._run_model(engine.resume, state.prepared, state.tokens,
                                       cancel=cancel, created=time.monotonic(),
                                       deadline=time.monotonic() + budget_s, background=True)
        if cancel.cancelled or result.stop_reason == "cancelled" or result.partial:
            return
        if session.partial is state:
            session.partial = None
        if not result.text.startswith(state.text) or result.text == state.text:
            return  # the filters judged the whole line otherwise: keep what is shown
        full = result.text
        self.cache.put(state.prefix, state.suffix, result.multiline, full)
        self._join_partial(session, state.prefix + state.text, state.suffix,
                           full[len(state.text):])

    def _join_partial(self, session: DocumentSession, prefix: str, suffix: str, rest: str,
                      still_partial: bool = False) -> None:
        """Extend the partial suggestion on screen (if it still is) by the rest of its line."""
        shown = session.shown
        if shown is None or not shown.partial or not shown.ends_at(prefix, suffix):
            return
        if not shown.multiline:
            rest = rest.split("\n", 1)[0] if not rest.startswith("\n") else ""
        if not rest:
            return
        full = shown.text + rest
        session.shown = replace(shown, text=full, partial=still_partial)
        if not still_partial:
            self.cache.put(shown.prefix_tail, shown.suffix_head, shown.multiline, full)
        self.stats.add(partial_joined=1)
        if not still_partial:
            self._ready(session)

    def _ready(self, session: DocumentSession, at: tuple[int, int] | None = None) -> None:
        """Tell the client, if the document is still where it was last asked (or at `at`)."""
        asked = session.asked
        if self.on_ready is not None and asked is not None and (at is None or asked == at):
            self.on_ready(session.uri, *asked)

    def _finish_late(self, engine: CompletionEngine, session: DocumentSession,
                     prepared: Prepared, prefix: str, suffix: str) -> None:
        cancel = session.start_background("late answer replaced")
        at = session.asked
        invoked_budget = engine.config.completion.invoked_budget_ms / 1000

        async def finish() -> None:
            try:
                result = await self._run_model(engine.run, prepared, cancel=cancel,
                                               created=time.monotonic(),
                                               deadline=time.monotonic() + invoked_budget,
                                               background=True)
            finally:
                session.done(cancel)
            self._noted(session, prepared, result, interactive=False)
            if cancel.cancelled or not result.text or result.partial:
                return
            self.cache.put(prefix, suffix, result.multiline, result.text)
            self.stats.add(late=1)
            self._ready(session, at)

        self.spawn(finish())

    def sizes(self) -> dict[str, int]:
        """What the service holds across documents (`ghostfill/stats`, `held`)."""
        return {"cache": len(self.cache), "snippets": len(self.snippets),
                "edits": len(self.history),
                "background_tasks": len(self._tasks)}

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` in the background on the event loop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def close(self) -> None:
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Background work that failed is a bug: it is logged, not lost with its task."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background work failed", exc_info=task.exception())


def _why_empty(result: CompletionResult, budget_s: float, late: bool) -> str:
    if late:
        return (f"the {budget_s * 1000:.0f} ms budget ran out before the first token "
                f"({result.timings.get('evaluated_tokens', 0)} prompt tokens read); "
                "finishing in the background")
    if result.stop_reason == "error":
        return "the backend failed (see the message shown)"
    if result.raw.strip():
        return f"the filters removed the model's answer {result.raw[:60]!r}"
    return f"the model ended the line at once ({result.stop_reason})"
