"""The completion pipeline: document + cursor -> window -> template -> backend -> filters.

The CLI, the language server and the evaluation harness all go through `CompletionEngine`, so
what is measured is what the editor gets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ghostfill.backends.base import (
    Backend,
    CancelToken,
    Generation,
    GenerationRequest,
    PromptParts,
)
from ghostfill.completion import suffix_check
from ghostfill.completion.boundaries import boundary_lines
from ghostfill.completion.context import Window, WindowAnchor, build_window, make_budget
from ghostfill.completion.crossfile import Snippet, select_snippets
from ghostfill.completion.filters.splice import adds_errors
from ghostfill.completion.headers import Head, head_for
from ghostfill.completion.languages import comment_prefix
from ghostfill.completion.postprocess import FilterContext, postprocess
from ghostfill.completion.scopes import CursorScope, cursor_scope
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.completion.stopping import LineStopper
from ghostfill.completion.tokenizer import decode
from ghostfill.config import Config
from ghostfill.errors import BackendError, InvalidPosition
from ghostfill.fim import FimTemplate, Prompt, render_prompt, select_template
from ghostfill.fim.render import after_cursor_header, overhead_tokens

log = logging.getLogger("ghostfill.engine")
#: Stop reasons of an answer the model ended itself (not cut by a deadline, cancel or error).
FINISHED = ("stop_rule", "stop_token", "max_tokens")

#: Filters skipped for a line cut short by the deadline: they judge finished statements.
PARTIAL_LINE_SKIPS = frozenset({"syntax_validity", "dangling_block"})


def suffix_block_text(suffix: str, max_lines: int = 0) -> str:
    """The suffix block of a prefix-only prompt: the suffix window from its first line that
    holds code (blank lines right after the cursor say nothing), at most `max_lines` lines
    (0: all), ending with one line break; empty when there is no code after the cursor."""
    lines = suffix.rstrip().split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if max_lines > 0:
        lines = lines[:max_lines]
    text = "\n".join(lines).rstrip()
    return text + "\n" if text.strip() else ""


@dataclass
class Prepared:
    """Everything decided before the model runs (also what `ghostfill prompt` shows)."""

    window: Window
    prompt: Prompt
    stopper: LineStopper
    filters: FilterContext
    grammar: str | None
    head: Head
    #: Cross-file chunks in the prompt, and the document's path (for engines that take parts).
    snippets: list[Snippet] = field(default_factory=list)
    path: str = ""
    #: A short window (`context.short_window_tokens`): read while the full one is not.
    short: bool = False

    @property
    def slot(self) -> str | None:
        """The backend's cache slot: the document's, the short window its own (the two
        prompts share no prefix, and each must survive the other's reads)."""
        if not self.path:
            return None
        return f"{self.path}#short-window" if self.short else self.path


@dataclass(frozen=True)
class EngineInfo:
    """What an engine runs (`CompletionEngine.describe`)."""

    backend: str
    model: str
    template: str
    #: How the backend runs the model (`Backend.options`: llama.cpp threads, buffer types…).
    options: dict[str, object]


@dataclass
class CompletionResult:
    text: str
    raw: str
    stop_reason: str
    timings: dict[str, float]
    prompt_tokens: dict[str, int]
    model: str
    template: str
    multiline: bool
    extra: dict[str, object] = field(default_factory=dict)
    #: Cut by the deadline inside a line: the beginning of a suggestion, to be continued.
    partial: bool = False
    #: Every token generated (past the deadline cut too), to resume exactly (`resume`).
    tokens: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "raw": self.raw,
            "stop_reason": self.stop_reason,
            "multiline": self.multiline,
            "model": self.model,
            "template": self.template,
            "prompt_tokens": self.prompt_tokens,
            "timings": self.timings,
            **self.extra,
        }


class CompletionEngine:
    def __init__(self, config: Config, backend: Backend) -> None:
        self.config = config
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.template: FimTemplate = select_template(self.tokenizer, config.model.template)
        order = config.model.fim_order
        if order == "auto":
            # SPM keeps the changed tokens at the tail of the prompt (KV reuse), where trained.
            order = "spm" if "spm" in self.template.orders else self.template.orders[0]
        self.order = order if order in self.template.orders else self.template.orders[0]
        self.overhead = overhead_tokens(self.template, self.tokenizer)
        #: Names the token ids this engine's prompts are made of (see `WindowAnchor`).
        self.vocabulary = f"{backend.name}:{backend.model_name}:{self.tokenizer.name}"

    @classmethod
    def load(cls, config: Config,
             on_progress: Callable[[float], None] | None = None,
             on_event: Callable[[str, str], None] | None = None) -> CompletionEngine:
        """The engine for `config`; `on_progress` hears how far the model's load is (0..1),
        `on_event` what happens to an engine process (see `create_backend`)."""
        from ghostfill.backends.factory import create_backend

        backend = create_backend(config, on_progress, on_event)
        # Learn what a server offers (context size, slots) now; a server that is not up yet is
        # no reason to fail here: generation reports it, once, when it is needed.
        try:
            backend.probe()
        except BackendError as e:
            log.info("%s", e)
        return cls(config, backend)

    @property
    def context_length(self) -> int:
        configured = self.config.model.context_length
        if configured is None:
            return self.backend.context_length
        return min(configured, self.backend.context_length)

    def with_config(self, config: Config) -> CompletionEngine:
        """Same backend, new settings (model changes need a new engine)."""
        return CompletionEngine(config, self.backend)

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def describe(self) -> EngineInfo:
        """What runs here, for logs, `ghostfill/stats` and `ghostfill doctor`."""
        return EngineInfo(backend=self.backend.name, model=self.backend.model_name,
                          template=self.template.name, options=self.backend.options())

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        """Prefill `tokens` (a prompt, or the start of one) into the backend's cache ahead of
        a request, in `document`'s cache slot; returns the tokens evaluated (0 for remote
        backends)."""
        return self.backend.warm(tokens, cancel, document)

    def close(self) -> None:
        """Release the model; the engine is not used afterwards."""
        self.backend.close()

    @property
    def short_window(self) -> int | None:
        """Tokens of the short window, None when there is none (off, or not shorter)."""
        tokens = self.config.context.short_window_tokens
        return tokens if 0 < tokens < self.context_length else None

    def prepare(self, source: CompletionInput, sources: ContextSources | None = None, *,
                multiline: bool | None = None, short: bool = False) -> Prepared:
        """Window, prompt, stop rules and filters for one request (on a worker thread in the
        server: it may parse and read definitions from disk). `short`: in the short window
        (`short_window`), with the short window's own anchor; cross-file context shrinks
        with it."""
        text, offset = source.text, source.offset
        if not 0 <= offset <= len(text):
            raise InvalidPosition(f"offset {offset} is outside the document (0..{len(text)})")
        grammar, syntax, anchor, starts = (source.grammar, source.syntax, source.anchor,
                                           source.starts)
        context_length = self.context_length
        short_tokens = self.short_window if short else None
        if short_tokens is not None:
            context_length = short_tokens
            if anchor.short is None:
                anchor.short = WindowAnchor()
            anchor = anchor.short
        snippets = sources.snippets if sources is not None else None
        definitions = sources.definitions if sources is not None else None
        syntax.refresh(self.config.context.parse_budget_ms)
        anchor.for_vocabulary(self.vocabulary)
        cc, ctx = self.config.completion, self.config.context
        path = source.path
        use_cross = ctx.cross_file and snippets is not None and snippets.has_other(path)
        # Definitions of imported names come from the workspace, not from other open buffers:
        # they apply even when this is the only one open.
        use_defs = (ctx.cross_file and ctx.import_definitions and definitions is not None
                    and definitions.applies(grammar, text))
        # The user's recent edits in this workspace folder (`completion/edits.py`), never the
        # one the cursor is in: cross-file context too (its budget, its reserve). Edits in
        # other files since the context was decided decide it again (typing here does not).
        use_edits = ctx.cross_file and ctx.recent_edits and sources is not None \
            and bool(sources.edits_for(path, text, offset, starts=starts))
        # -1: decided with recent edits off (switching them on or off decides again).
        edits_seen = (sources.edits_stamp(path) if sources is not None else 0) \
            if ctx.recent_edits else -1
        use_cross = use_cross or use_edits
        head_reserve = min(128, context_length // 16)
        cross_tokens = ctx.cross_file_tokens * context_length // self.context_length
        # In PSM order the suffix sits between the typed text and the answer: each keystroke
        # re-evaluates all of it, so it is kept short (bench/fim_order.py measures this).
        psm = self.template.is_fim and self.order == "psm"
        comment = comment_prefix(grammar)
        # A model without FIM tokens may see the suffix as a block before the prefix (#18): its
        # tokens come out of the same budget, at most 1 - prefix_share of it, and its size
        # must not follow the prefix's (the block would change on every keystroke).
        block = not self.template.is_fim and cc.suffix_layout == "before-prefix" \
            and ctx.suffix_block_tokens > 0
        max_suffix = ctx.max_suffix_tokens
        if psm:
            max_suffix = min(ctx.max_suffix_tokens, ctx.psm_suffix_tokens)
        elif block:
            max_suffix = ctx.suffix_block_tokens
        budget = make_budget(
            context_length,
            cc.max_tokens,
            self.overhead,
            prefix_share=ctx.prefix_share,
            max_suffix_tokens=max_suffix,
            suffix_takes_unused=not psm and not block,
            suffix_used=self.template.is_fim or block,
            reserved=head_reserve + (cross_tokens if use_cross or use_defs else 0)
            + (self._block_headers(path, comment) if block else 0),
        )
        boundaries = boundary_lines(syntax) if syntax.tree is not None else None
        window = build_window(text, offset, self.tokenizer, budget, boundaries=boundaries,
                              anchor=anchor, starts=starts)
        if anchor.decided_for != window.prefix_start or anchor.head is None \
                or anchor.edits_seen != edits_seen:
            # Decided once per window start: changing them on a keystroke would invalidate the
            # KV cache from the head of the prompt on.
            head = head_for(syntax, text, starts, window.prefix_start)
            if len(self.tokenizer.encode(head.text)) > head_reserve:
                head = Head("", ())
            anchor.head = head
            anchor.snippets = []
            if use_cross or use_defs:
                cursor_line = text[: offset].rsplit("\n", 12)
                found: list[Snippet] = []
                if use_defs and definitions is not None:
                    found = [d.snippet() for d in definitions.lookup(text, grammar, path)]
                chunks = snippets.chunks() if use_cross and snippets is not None else []
                window_text = window.prefix + window.suffix
                edits = sources.edits_for(path, text, offset, window_text, starts) \
                    if use_edits and sources is not None else []
                anchor.snippets = select_snippets(
                    chunks, found, path, window.prefix[-4000:], "\n".join(cursor_line[-12:]),
                    self.tokenizer, cross_tokens,
                    window_text=window_text, edits=edits)
            anchor.decided_for = window.prefix_start
            anchor.edits_seen = edits_seen
        head = anchor.head if anchor.head is not None else Head("", ())
        head_ids = self.tokenizer.encode(head.text) if head.text else []
        suffix_block = suffix_block_text(window.suffix, ctx.suffix_block_lines) if block else ""
        while True:
            prompt = render_prompt(
                self.template,
                self.tokenizer,
                head.text + window.prefix,
                window.suffix,
                order=self.order,
                context_files=[(s.path, s.text) for s in anchor.snippets],
                path=path,
                comment=comment,
                prefix_ids=head_ids + window.prefix_ids,
                suffix_ids=window.suffix_ids,
                suffix_block=suffix_block,
            )
            # The block's tokens were counted apart from the text around them; the prompt as
            # rendered must leave the answer its room, exactly (a line less until it does).
            if not suffix_block or \
                    len(prompt.tokens) <= context_length - cc.max_tokens:
                break
            suffix_block = suffix_block_text(suffix_block.rstrip("\n").rpartition("\n")[0], 0)
        scope = cursor_scope(syntax, offset)
        if multiline is None:
            multiline = self.multiline_at(scope)
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        line_prefix = text[line_start:offset]
        line_rest = text[offset : line_end if line_end >= 0 else len(text)]
        # In the leading whitespace of a line that holds code, the answer is whole lines
        # inserted before that line, which is then the suffix's next line (issue #18).
        before_code = not line_prefix.strip() and bool(line_rest.strip())
        next_line = line_prefix + line_rest if before_code else ""
        if line_end >= 0 and not before_code:
            for candidate in text[line_end + 1 : line_end + 2000].split("\n"):
                if candidate.strip():
                    next_line = candidate
                    break
        stopper = LineStopper(
            multiline=multiline,
            block_indent=scope.block_indent,
            cursor_line_prefix=line_prefix,
            next_line=next_line,
            cursor_line_rest=line_rest,
            before_code=before_code,
        )
        filters = FilterContext(
            prefix=text[:offset],
            suffix=text[offset:],
            grammar=grammar,
            multiline=multiline,
            block_indent=scope.block_indent,
            before_code=before_code,
        )
        return Prepared(window, prompt, stopper, filters, grammar, head,
                        snippets=list(anchor.snippets), path=path,
                        short=short_tokens is not None)

    def _block_headers(self, path: str, comment: str | None) -> int:
        """Tokens of the two path comments around a suffix block (see `render_prompt`)."""
        mark = comment or "//"
        return (len(self.tokenizer.encode(after_cursor_header(path, comment)))
                + len(self.tokenizer.encode(f"\n{mark} {path}\n" if path else "\n")))

    def multiline_at(self, scope: CursorScope) -> bool:
        """Configuration first ("always"/"never"), else what the syntax at the cursor says."""
        return {"always": True, "never": False}.get(self.config.completion.multiline,
                                                     scope.multiline)

    def run(
        self,
        prepared: Prepared,
        *,
        cancel: CancelToken | None = None,
        deadline: float | None = None,
        created: float | None = None,
        disabled_filters: frozenset[str] = frozenset(),
        background: bool = False,
    ) -> CompletionResult:
        """One answer; `background`: nobody waits for it now (`GenerationRequest.background`)."""
        return self._generate(prepared, [], cancel=cancel, deadline=deadline, created=created,
                              disabled_filters=disabled_filters, background=background)

    def run_choices(
        self,
        prepared: Prepared,
        choices: int,
        *,
        cancel: CancelToken | None = None,
        deadline: float | None = None,
        created: float | None = None,
        disabled_filters: frozenset[str] = frozenset(),
    ) -> list[CompletionResult]:
        """Up to `choices` distinct suggestions: `run`'s answer first, then the model's next
        choices, each with the first tokens of every answer so far banned (as for a rejected
        answer, `completion.alternatives`).

        For an invoked request, where the user asked and can cycle: greedy decoding has one
        answer per prompt, and banning its first word is the cheapest way to another that
        the model still rates (same prompt, its KV cache reused). Each alternative passes the
        filters and differs from those before it in its final text; one cut by the deadline
        or the cancel token is dropped, and the search ends there. A partial first answer (a
        line cut by the deadline) gets none: the budget is spent. Only on backends that honour
        `banned_first`; others give the one answer.
        """
        created = created if created is not None else time.monotonic()
        if deadline is None:
            deadline = created + self.config.completion.latency_budget_ms / 1000.0
        banned: set[int] = set()
        first = self._generate(prepared, [], cancel=cancel, deadline=deadline, created=created,
                               disabled_filters=disabled_filters, banned=banned)
        if self.config.completion.suffix_check == "invoked":
            first = self.suffix_checked(prepared, first, cancel=cancel, deadline=deadline,
                                        created=created, disabled_filters=disabled_filters)
        results = [first]
        weigh = self._weighs_blocks(prepared)
        wanted = max(choices, self.config.completion.block_candidates) if weigh else choices
        if wanted <= 1 or not first.text or first.partial or not self.backend.resumable:
            return results
        seen = {first.text}
        token = self._first_word_token(first.tokens)
        if token is None:
            return results
        banned.add(token)
        # Each try bans one more first token; tries whose answer the filters drop or that
        # repeat an earlier one count too, so the search is bounded.
        tries = wanted - 1 + self.config.completion.alternatives
        for _ in range(tries):
            if len(results) >= wanted or time.monotonic() >= deadline \
                    or (cancel is not None and cancel.cancelled):
                break
            result = self._attempt(prepared, [], "", prepared.stopper, frozenset(banned),
                                   cancel=cancel, deadline=deadline, created=created,
                                   disabled_filters=disabled_filters)
            token = self._first_word_token(result.tokens)
            if token is None or token in banned \
                    or result.stop_reason not in FINISHED:
                break
            banned.add(token)
            if result.text and result.text not in seen:
                seen.add(result.text)
                result.extra["choice"] = len(results) + 1
                results.append(result)
        if weigh:
            results = self.ranked_blocks(prepared, results, cancel=cancel, deadline=deadline)
        return results[:choices]

    def _weighs_blocks(self, prepared: Prepared) -> bool:
        """Whether an invoked answer here is one of several blocks ordered by the code below
        (`completion.blockCandidates`): a prefix-only template (a FIM model sees the suffix),
        a block request, the suffix check on, a backend that can generate alternatives.
        With nothing below (the end of a file) the order is the blocks' own probability,
        which greedy decoding, choosing one token at a time, does not maximise either."""
        completion = self.config.completion
        return (not self.template.is_fim and prepared.stopper.multiline
                and completion.suffix_check == "invoked" and completion.block_candidates > 1
                and self.backend.resumable)

    def ranked_blocks(self, prepared: Prepared, results: list[CompletionResult], *,
                      cancel: CancelToken | None, deadline: float) -> list[CompletionResult]:
        """`results` in the order of log P(answer + next lines | prompt), the first when
        tied (`suffix_check.scored_text`); as they came when the deadline has passed or the
        backend cannot score. A block is read whole: the model's own probability of a long
        wrong block is part of what is weighed, so length is no advantage. A block that adds
        parse errors to the file (a `try:` whose `except` never comes) goes after those that
        do not, however probable: the filters keep such a block when no shorter cut is valid,
        which is right for the model's one answer but not for putting it first."""
        if len(results) < 2 or time.monotonic() >= deadline:
            return results
        after = prepared.filters.suffix
        cap = self.config.completion.max_tokens + suffix_check.MAX_SCORED_TOKENS
        continuations = [self.tokenizer.encode(suffix_check.scored_text(r.text, after))[:cap]
                         for r in results]
        scores = self.backend.score(prepared.prompt.tokens, continuations,
                                    document=prepared.slot, cancel=cancel)
        if scores is None or len(scores) != len(results):
            return results
        filters = prepared.filters
        broken = [adds_errors(r.text, filters.prefix, filters.suffix, filters.grammar,
                              filters.before_code) for r in results]
        order = sorted(range(len(results)), key=lambda i: (broken[i], -scores[i], i))
        ranked = [results[i] for i in order]
        ranked[0] = replace(ranked[0], extra={
            **ranked[0].extra,
            "block_rank": {"candidates": len(results), "chosen": order[0]}})
        return ranked

    def suffix_checked(
        self,
        prepared: Prepared,
        first: CompletionResult,
        *,
        cancel: CancelToken | None = None,
        deadline: float,
        created: float,
        disabled_filters: frozenset[str] = frozenset(),
    ) -> CompletionResult:
        """`first`, or a line binding a name the code below needs, whichever makes the next
        lines more probable (`completion/suffix_check.py`). Only for a prefix-only template
        (a FIM model sees the suffix), a cursor at the start of a line, a whole answer, and
        a backend that can score; each candidate is generated from its lead like a resumed
        answer (its text passes the same stop rules and filters)."""
        # Candidates are generated from their leads' ids (resumable backends); the others
        # (remote engines) cannot score either, so nothing is generated for nothing.
        if (self.template.is_fim or not self.backend.resumable or first.partial
                or first.stop_reason not in FINISHED):
            return first
        # The whole document: a prefix-only window has no suffix, and a name defined above
        # the window is not missing.
        before, after = prepared.filters.prefix, prepared.filters.suffix
        if not suffix_check.at_line_start(before):
            return first
        needed = suffix_check.needed_names(before, after, prepared.grammar)
        needed = needed[: suffix_check.MAX_NAMES]
        indent = suffix_check.lead_indent(first.text, before, after)
        leads = suffix_check.candidate_leads(needed, first.text, before, after,
                                             prepared.grammar, indent)
        if not leads:
            return first  # nothing missing, or the answer already binds the names used below
        candidates = [first]
        for lead in leads:
            if time.monotonic() >= deadline or (cancel is not None and cancel.cancelled):
                break
            ids = self.tokenizer.encode(indent + lead)
            result = self._generate(prepared, ids, cancel=cancel, deadline=deadline,
                                    created=created, disabled_filters=disabled_filters)
            if (result.text and not result.partial and result.stop_reason in FINISHED
                    and all(result.text != c.text for c in candidates)):
                candidates.append(result)
        if len(candidates) == 1:
            return first
        # A block answer goes on with the model's own lines, which the code below may
        # repeat: what competes is each candidate's first line before the next lines.
        multiline = prepared.stopper.multiline
        shown = [suffix_check.first_line(c.text) if multiline else c.text for c in candidates]
        continuations = [self.tokenizer.encode(suffix_check.scored_text(text, after))[
            : suffix_check.MAX_SCORED_TOKENS] for text in shown]
        scores = self.backend.score(prepared.prompt.tokens, continuations,
                                    document=prepared.slot, cancel=cancel)
        if scores is None or len(scores) != len(candidates):
            return first
        best = max(range(len(candidates)), key=scores.__getitem__)
        chosen = candidates[best]
        if best and multiline and suffix_check.body_below(shown[best], after):
            # A block header whose body is the code below: the header alone, or the model's
            # own body would come before that one.
            text = postprocess(shown[best], prepared.filters, disabled_filters)
            if not text:
                return first
            chosen = replace(chosen, text=text, extra=dict(chosen.extra))
        chosen.extra["suffix_check"] = {"needed": needed, "candidates": len(candidates),
                                        "chosen": best}
        return chosen

    def _first_word_token(self, tokens: list[int]) -> int | None:
        """The first generated id that is not whitespace: the one a retry bans."""
        return next((t for t in tokens if self.tokenizer.decode_bytes([t]).strip()), None)

    def resume(
        self,
        prepared: Prepared,
        tokens: list[int],
        *,
        cancel: CancelToken | None = None,
        deadline: float | None = None,
        created: float | None = None,
        background: bool = False,
    ) -> CompletionResult:
        """Continue a generation that the deadline cut, from the exact tokens it produced.

        The prompt is the old prompt plus those tokens (all but the last already in the KV
        cache), so greedy decoding goes on exactly as if never interrupted: the result is the
        whole suggestion at the original position, as `run` without a deadline would give.
        Re-tokenizing the text shown instead would change the token boundaries at the cut
        and with them the model's choices. Only for `resumable` backends (whose results
        carry `tokens`); for others the service continues from the text.
        """
        return self._generate(prepared, tokens, cancel=cancel, deadline=deadline,
                              created=created, background=background)

    def _generate(
        self,
        prepared: Prepared,
        resumed: list[int],
        *,
        cancel: CancelToken | None,
        deadline: float | None,
        created: float | None,
        disabled_filters: frozenset[str] = frozenset(),
        banned: set[int] | None = None,
        background: bool = False,
    ) -> CompletionResult:
        """One answer, retried with rejected first tokens banned; `banned` (if given) is
        filled with the ids banned, so that `run_choices` does not try them again."""
        created = created if created is not None else time.monotonic()
        if deadline is None:
            deadline = created + self.config.completion.latency_budget_ms / 1000.0
        head = decode(self.tokenizer, resumed) if resumed else ""
        stopper = replace(prepared.stopper, generated=head) if head else prepared.stopper
        # When the filters throw an answer away (a block header nothing can fill, a line that
        # only repeats the suffix…), the model's next choice may be the right one: try again
        # with the rejected answers' first non-whitespace tokens banned, while time remains.
        # Only on backends that honour `banned_first` (token prompts).
        retries = self.config.completion.alternatives \
            if self.backend.resumable and not resumed else 0
        banned = banned if banned is not None else set()
        attempts = 0
        while True:
            attempts += 1
            result = self._attempt(prepared, resumed, head, stopper, frozenset(banned),
                                   cancel=cancel, deadline=deadline, created=created,
                                   disabled_filters=disabled_filters, background=background)
            first = self._first_word_token(result.tokens[len(resumed):])
            if (result.text or attempts > retries or first is None
                    or result.stop_reason not in FINISHED
                    or time.monotonic() >= deadline):
                result.extra["attempts"] = attempts
                return result
            banned.add(first)

    def _attempt(
        self,
        prepared: Prepared,
        resumed: list[int],
        head: str,
        stopper: LineStopper,
        banned: frozenset[int],
        *,
        cancel: CancelToken | None,
        deadline: float,
        created: float,
        disabled_filters: frozenset[str],
        background: bool = False,
    ) -> CompletionResult:
        request = GenerationRequest(
            self._backend_prompt(prepared, resumed, head),
            max_tokens=max(1, self.config.completion.max_tokens - len(resumed)),
            stop_ids=prepared.prompt.stop_ids,
            stop_strings=prepared.prompt.template.control_tokens,
            stopper=stopper,
            deadline=deadline,
            cancel=cancel or CancelToken(),
            created=created,
            temperature=self.config.completion.temperature,
            min_indent=prepared.stopper.block_indent if prepared.stopper.multiline else None,
            banned_first=banned,
            background=background,
        )
        generation: Generation = self.backend.generate(request)
        text = head + generation.text
        partial = generation.stop_reason == "deadline" and bool(text.strip()) and (
            not prepared.stopper.multiline or "\n" not in text.strip("\n"))
        if partial:
            # Half a line is not valid code yet: the filters that judge whole statements
            # would throw it away. The rest of the line is generated next (`resume`).
            disabled_filters = disabled_filters | PARTIAL_LINE_SKIPS
        if generation.stop_reason not in ("cancelled",):
            text = postprocess(text, prepared.filters, disabled_filters)
        else:
            text = ""
        return CompletionResult(
            text=text,
            raw=head + generation.text,
            stop_reason=generation.stop_reason,
            timings=generation.timings.to_dict(),
            prompt_tokens=prepared.prompt.counts(),
            model=self.backend.model_name,
            template=self.template.name,
            multiline=prepared.stopper.multiline,
            partial=partial and bool(text),
            tokens=resumed + list(generation.tokens) if self.backend.resumable else [],
        )

    @staticmethod
    def _backend_prompt(prepared: Prepared, resumed: list[int], head: str) -> PromptParts:
        """The prompt as a backend takes it: rendered (ids, text) and in parts. `resumed` and
        `head` are the ids and text a resumed generation already produced."""
        # The typed part of the cursor line goes apart, as llama.vim sends it: an engine that
        # tokenizes it on its own keeps the tokens before it the same while the line is typed.
        typed_from = prepared.window.prefix.rfind("\n") + 1
        return PromptParts(
            tokens=prepared.prompt.tokens + resumed,
            text=prepared.prompt.display(),
            context=tuple((s.path, s.text) for s in prepared.snippets),
            prefix=prepared.head.text + prepared.window.prefix[:typed_from],
            middle=prepared.window.prefix[typed_from:] + head,
            suffix=prepared.window.suffix,
            document=prepared.slot,
        )

    def complete(self, source: CompletionInput, sources: ContextSources | None = None, *,
                 multiline: bool | None = None, cancel: CancelToken | None = None,
                 deadline: float | None = None, created: float | None = None,
                 disabled_filters: frozenset[str] = frozenset()) -> CompletionResult:
        """Prepare and run in one call (CLI, benchmarks, tests)."""
        prepared = self.prepare(source, sources, multiline=multiline)
        return self.run(prepared, cancel=cancel, deadline=deadline, created=created,
                        disabled_filters=disabled_filters)
