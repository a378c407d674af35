"""From a request for ghost text to the text to show.

Order of business, cheapest first: type-through of the suggestion on screen, an exact cache hit
(including one prefetched while the user read the last suggestion), then — after the debounce,
and only if no newer request has arrived — the model. After a suggestion is shown, the
completion that would follow its acceptance is computed in the background.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from ghostfill.backends.base import CancelToken
from ghostfill.completion.crossfile import CHUNK_LINES, SnippetStore
from ghostfill.completion.definitions import DefinitionIndex
from ghostfill.completion.syntax import cursor_scope
from ghostfill.lsp.cache import Suggestion, SuggestionCache, cache_key
from ghostfill.lsp.documents import OpenDocument
from ghostfill.lsp.stats import Stats


@dataclass
class _Partial:
    prepared: Any
    tokens: list[int]
    prefix: str
    suffix: str
    text: str  # as shown


@dataclass
class Answer:
    text: str
    source: str  # model | cache | type_through | prefetch | none
    multiline: bool
    #: A line cut short by the deadline (see `prefetch_after`).
    partial: bool = False
    #: Why a model answer is empty or cut, in words for the editor's log ("" otherwise).
    why: str = ""


class CompletionService:
    """Per-server state for suggestions: in-flight requests, cache, last shown suggestion."""

    def __init__(self, run_model: Callable[..., Awaitable[Any]], stats: Stats,
                 cache: SuggestionCache) -> None:
        self._run_model = run_model
        self.snippets = SnippetStore()
        #: Imported definitions from the workspace; the server sets its roots at initialize.
        #: Without roots it finds nothing.
        self.definitions = DefinitionIndex()
        self._snippet_line: dict[str, int] = {}
        self.stats = stats
        self.cache = cache
        self._inflight: dict[str, CancelToken] = {}
        #: Prefetches survive edits (their cache key validates them) but not a new request.
        self._prefetching: dict[str, CancelToken] = {}
        self._shown: dict[str, Suggestion] = {}
        self._prefetched: set[tuple[str, str, bool]] = set()
        self._prefetch_target: dict[str, tuple[str, str]] = {}
        #: The last partial answer per document, with what `engine.resume` needs.
        self._partials: dict[str, _Partial] = {}
        #: Where each document was last asked for a suggestion: (version, offset).
        self._asked: dict[str, tuple[int, int]] = {}
        #: Called with (uri, version, offset) when a suggestion the budget could not wait for
        #: is ready there (a cut line finished, a window read to the end): the server tells
        #: the client, which asks again and is answered at once.
        self.on_ready: Callable[[str, int, int], None] | None = None
        #: Background work running on the event loop (prefetches, late answers), kept
        #: referenced so that it is not collected before it ends.
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- supersession ---------------------------------------------------------------------
    def supersede(self, uri: str, reason: str) -> CancelToken:
        """A new request for `uri` cancels the one before it (and any prefetch)."""
        for running in (self._inflight, self._prefetching):
            previous = running.pop(uri, None)
            if previous is not None:
                previous.cancel(reason)
        token = CancelToken()
        self._inflight[uri] = token
        return token

    def background(self, uri: str, reason: str) -> CancelToken:
        """A token for low-priority work (warm-up, prefetch): replaced by the next such job,
        cancelled by any request, never cancelling one itself."""
        previous = self._prefetching.pop(uri, None)
        if previous is not None:
            previous.cancel(reason)
        token = self._prefetching[uri] = CancelToken()
        return token

    def cancel(self, uri: str, reason: str) -> None:
        token = self._inflight.pop(uri, None)
        if token is not None:
            token.cancel(reason)

    def forget(self, uri: str) -> None:
        self.cancel(uri, "closed")
        token = self._prefetching.pop(uri, None)
        if token is not None:
            token.cancel("closed")
        self._shown.pop(uri, None)
        self._partials.pop(uri, None)
        self._snippet_line.pop(uri, None)
        self._asked.pop(uri, None)

    def sizes(self) -> dict[str, int]:
        """Entries held per document and per request (`ghostfill/stats`, `held`)."""
        return {"cache": len(self.cache), "shown": len(self._shown),
                "inflight": len(self._inflight), "prefetching": len(self._prefetching),
                "prefetched": len(self._prefetched), "partials": len(self._partials),
                "snippets": len(self.snippets), "snippet_lines": len(self._snippet_line),
                "asked": len(self._asked), "background_tasks": len(self._tasks)}

    def _done(self, uri: str, token: CancelToken) -> None:
        for running in (self._inflight, self._prefetching):
            if running.get(uri) is token:
                del running[uri]

    # -- the request path -----------------------------------------------------------------
    async def suggest(self, engine: Any, doc: OpenDocument, offset: int, *, invoked: bool,
                      created: float, debounce_s: float, budget_s: float,
                      text: str | None = None) -> Answer:
        """`text` overrides the document text (selected completion item applied)."""
        self.stats.add(requests=1)
        if text is None:
            self._asked[doc.uri] = (doc.version, offset)
        source_text = doc.text if text is None else text
        syntax = doc.syntax if text is None else None
        prefix, suffix = source_text[:offset], source_text[offset:]
        if text is None:
            # Type-through first: most keystrokes end here, before any parsing.
            shown = self._shown.get(doc.uri)
            rest = self.cache.type_through(prefix, suffix, shown)
            if rest is not None and shown is not None:
                self.stats.add(type_through=1)
                return self._shown_now(doc.uri, prefix, suffix, shown.multiline, rest,
                                       "type_through", created, partial=shown.partial)
            doc.syntax.refresh(engine.config.context.parse_budget_ms)
        scope = cursor_scope(doc.syntax, offset) if text is None else None
        multiline = engine.multiline_at(scope) if scope is not None else None

        if multiline is not None:
            hit = self.cache.get(prefix, suffix, multiline)
            if hit is not None:
                key = cache_key(prefix, suffix, multiline)
                prefetched = key in self._prefetched
                self.stats.add(cache_hits=1, prefetch_hits=int(prefetched))
                return self._shown_now(doc.uri, prefix, suffix, multiline, hit,
                                       "prefetch" if prefetched else "cache", created)

        cancel = self.supersede(doc.uri, "superseded")
        try:
            if debounce_s > 0 and not invoked:
                await asyncio.sleep(debounce_s)
                if cancel.cancelled:
                    self.stats.add(cancelled=1)
                    return Answer("", "none", bool(multiline))
            version = doc.version
            prepared = engine.prepare(source_text, offset, language_id=doc.language_id,
                                      path=doc.path, syntax=syntax,
                                      anchor=doc.anchor if text is None else None,
                                      starts=doc.starts if text is None else None,
                                      multiline=multiline, snippets=self.snippets,
                                      definitions=self.definitions)
            self.stats.add(misses=1)
            result = await self._run_model(engine.run, prepared, cancel=cancel, created=created,
                                           deadline=created + budget_s)
        finally:
            self._done(doc.uri, cancel)
        timings = result.timings
        if result.stop_reason != "cancelled" or timings.get("evaluated_tokens", 0):
            self.stats.add(model_calls=1)  # it reached the model (not dropped while queued)
        self.stats.add(tokens_evaluated=int(timings.get("evaluated_tokens", 0)),
                       tokens_reused=int(timings.get("reused_tokens", 0)))
        if cancel.cancelled or result.stop_reason == "cancelled":
            self.stats.add(cancelled=1)
            return Answer("", "none", result.multiline)
        if doc.version != version:
            self.stats.add(stale=1)
            return Answer("", "none", result.multiline)
        if result.stop_reason == "error":
            self.stats.add(errors=1)
        if not result.text:
            late = result.stop_reason == "deadline" and text is None
            if late:
                # The budget ran out before the model said anything (a window to read after
                # a jump or a file switch): finish in the background, then tell the client.
                self._finish_late(engine, doc, offset, prepared, prefix, suffix)
            return Answer("", "none", result.multiline, why=_why_empty(result, budget_s, late))
        if result.partial:
            self.stats.add(partial=1)  # not cached: its continuation replaces it soon
            if result.tokens:  # a local model: resume from the exact tokens
                self._partials[doc.uri] = _Partial(prepared, result.tokens, prefix, suffix,
                                                   result.text)
        else:
            self.cache.put(prefix, suffix, result.multiline, result.text)
        answer = self._shown_now(doc.uri, prefix, suffix, result.multiline, result.text,
                                 "model", created, partial=result.partial)
        if result.partial:
            answer.why = (f"cut at the {budget_s * 1000:.0f} ms budget after "
                          f"{result.text!r}; the rest of the line follows in the background")
        return answer

    def _shown_now(self, uri: str, prefix: str, suffix: str, multiline: bool, text: str,
                   source: str, created: float, partial: bool = False) -> Answer:
        key = cache_key(prefix, suffix, multiline)
        self._shown[uri] = Suggestion(text, multiline, key[0], key[1], partial)
        self.stats.add(shown=1)
        self.stats.latency((time.monotonic() - created) * 1000)
        return Answer(text, source, multiline, partial)

    # -- cross-file snippets ---------------------------------------------------------------
    def edited(self, doc: OpenDocument, line: int) -> None:
        """Remember the chunk around an edit once the user has moved to another region."""
        last = self._snippet_line.get(doc.uri)
        if last is None or abs(line - last) >= CHUNK_LINES // 2:
            self._snippet_line[doc.uri] = line
            self.snippets.add_around(doc.uri, doc.text, line)

    # -- prefetch -------------------------------------------------------------------------
    async def prefetch_after(self, engine: Any, doc: OpenDocument, offset: int, text: str,
                             budget_s: float, *, partial: bool = False,
                             multiline: bool | None = None) -> None:
        """Compute the suggestion that follows accepting `text` at `offset` (background).

        For a `partial` answer (a line cut short by the deadline) this is the rest of that
        line: when it arrives and the partial suggestion is still the one on screen, the two
        are joined, so the next keystroke (type-through) shows the whole line. Runs once per
        target: type-through answers ask for the same target again and must not restart it.
        """
        if not text or not self.cache.enabled:
            return
        accepted = doc.text[:offset] + text + doc.text[offset:]
        cursor = offset + len(text)
        prefix, suffix = accepted[:cursor], accepted[cursor:]
        target = cache_key(prefix, suffix, False)[:2]
        if doc.uri in self._prefetching and self._prefetch_target.get(doc.uri) == target:
            return  # already on it
        for ml in (multiline,) if multiline is not None else (False, True):
            hit = self.cache.get(prefix, suffix, ml)
            if hit is not None:
                if partial:
                    self._join_partial(doc.uri, prefix, suffix, hit)
                return
        cancel = self.background(doc.uri, "prefetch replaced")
        self._prefetch_target[doc.uri] = target
        state = self._partials.get(doc.uri) if partial else None
        if state is not None and not (state.prefix + state.text).endswith(prefix[-256:]):
            state = None
        try:
            if state is not None:
                await self._finish_partial(engine, doc.uri, state, cancel, budget_s)
                return
            anchor = replace(doc.anchor)
            # What-if copy of the tree: an incremental parse, not a full one on the loop.
            syntax = doc.syntax.fork()
            syntax.edit(offset, offset, text)
            syntax.refresh(engine.config.context.parse_budget_ms)
            prepared = engine.prepare(accepted, cursor, language_id=doc.language_id,
                                      path=doc.path, syntax=syntax, anchor=anchor,
                                      snippets=self.snippets, definitions=self.definitions,
                                      multiline=multiline if partial else None)
            result = await self._run_model(engine.run, prepared, cancel=cancel,
                                           created=time.monotonic(),
                                           deadline=time.monotonic() + budget_s)
        finally:
            self._done(doc.uri, cancel)
            if self._prefetch_target.get(doc.uri) == target:
                del self._prefetch_target[doc.uri]
        # No version check: the cache key (the accepted text) is what makes the entry valid.
        if result.text and not cancel.cancelled and result.stop_reason != "cancelled":
            if not result.partial:
                self.cache.put(prefix, suffix, result.multiline, result.text)
                self._prefetched.add(cache_key(prefix, suffix, result.multiline))
            if partial:
                self._join_partial(doc.uri, prefix, suffix, result.text, result.partial)
            if len(self._prefetched) > 4 * 256:
                self._prefetched.clear()

    async def _finish_partial(self, engine: Any, uri: str, state: _Partial,
                              cancel: CancelToken, budget_s: float) -> None:
        """The rest of a partial line, from the very tokens it was cut from."""
        result = await self._run_model(engine.resume, state.prepared, state.tokens,
                                       cancel=cancel, created=time.monotonic(),
                                       deadline=time.monotonic() + budget_s)
        if cancel.cancelled or result.stop_reason == "cancelled" or result.partial:
            return
        if self._partials.get(uri) is state:
            del self._partials[uri]
        if not result.text.startswith(state.text) or result.text == state.text:
            return  # the filters judged the whole line otherwise: keep what is shown
        full = result.text
        self.cache.put(state.prefix, state.suffix, result.multiline, full)
        self._join_partial(uri, state.prefix + state.text, state.suffix,
                           full[len(state.text):])

    def _join_partial(self, uri: str, prefix: str, suffix: str, rest: str,
                      still_partial: bool = False) -> None:
        """Extend the partial suggestion on screen (if it still is) by the rest of its line."""
        shown = self._shown.get(uri)
        if shown is None or not shown.partial or not shown.ends_at(prefix, suffix):
            return
        if not shown.multiline:
            rest = rest.split("\n", 1)[0] if not rest.startswith("\n") else ""
        if not rest:
            return
        full = shown.text + rest
        self._shown[uri] = replace(shown, text=full, partial=still_partial)
        if not still_partial:
            self.cache.put(shown.prefix_tail, shown.suffix_head, shown.multiline, full)
        self.stats.add(partial_joined=1)
        if not still_partial:
            self._ready(uri)

    def _ready(self, uri: str, at: tuple[int, int] | None = None) -> None:
        """Tell the client, if the document is still where it was last asked (or at `at`)."""
        asked = self._asked.get(uri)
        if self.on_ready is not None and asked is not None and (at is None or asked == at):
            self.on_ready(uri, *asked)

    def _finish_late(self, engine: Any, doc: OpenDocument, offset: int, prepared: Any,
                     prefix: str, suffix: str) -> None:
        cancel = self.background(doc.uri, "late answer replaced")
        at = (doc.version, offset)
        invoked_budget = engine.config.completion.invoked_budget_ms / 1000

        async def finish() -> None:
            try:
                result = await self._run_model(engine.run, prepared, cancel=cancel,
                                               created=time.monotonic(),
                                               deadline=time.monotonic() + invoked_budget)
            finally:
                self._done(doc.uri, cancel)
            if cancel.cancelled or not result.text or result.partial:
                return
            self.cache.put(prefix, suffix, result.multiline, result.text)
            self.stats.add(late=1)
            self._ready(doc.uri, at)

        self.spawn(finish())

    def spawn(self, coro: Any) -> None:
        """Run `coro` in the background on the event loop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _why_empty(result: Any, budget_s: float, late: bool) -> str:
    if late:
        return (f"the {budget_s * 1000:.0f} ms budget ran out before the first token "
                f"({result.timings.get('evaluated_tokens', 0)} prompt tokens read); "
                "finishing in the background")
    if result.stop_reason == "error":
        return "the backend failed (see the message shown)"
    if result.raw.strip():
        return f"the filters removed the model's answer {result.raw[:60]!r}"
    return f"the model ended the line at once ({result.stop_reason})"
