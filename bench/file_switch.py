"""File-switch replay: several files open, typing round-robin across them (issue #17).

As a user works: real files are opened at the start (an editor restoring its session), the
user reads for a while (the settle pause), then types a few characters in one file, switches
to the next, and so on, round after round. In each file the cursor sits on a real statement
line in the middle of the file, whose text after the indentation is erased and typed back one
character at a time, so the truth is known. Every keystroke is didChange then an automatic
`textDocument/inlineCompletion` through the real `ghostfill serve` over stdio (a pygls
client, as in the typing replay, `bench/latency.py`), at the same pace as that replay (the
next keystroke `--pause-ms` after the answer).

Server configurations (`--modes`, passed as initializationOptions `server.engine`) run back
to back in one process run, each followed by the single-file typing replay
(`latency.replay_lsp`) on the first file with the same settings: the reference the
file-switch figures should not fall behind. A shared engine outlives its server for
`server.engineIdleS`, so a later run in that mode may find it loaded (that is the mode's
point; the settle's `model_ready_s` shows it).

    python -m ghostfill.bench.file_switch --modes inprocess,shared --out bench/results
    ghostfill bench file-switch --files textwrap.py,shlex.py --rounds 2 --chars 6
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.bench.latency import DEFAULT_FILES, Replay, Span, _merge, _params, erase, pct
from ghostfill.lsp.protocol import plain

#: The issue's goals: the first keystroke after a switch, and the share of keystrokes shown.
SWITCH_P95_TARGET_MS = 250.0
SHOWN_SHARE_TARGET = 0.75
#: Default files: from the typing replay's list, those of 300-1500 lines.
DEFAULT_LINES = (300, 1500)


@dataclass
class Keystroke:
    file: str
    round: int  # 0-based
    index: int  # within the visit, 0-based: 0 is the first keystroke after the switch
    at_s: float  # when it was typed, from the replay's first keystroke
    latency_ms: float  # didChange sent -> inlineCompletion answered
    shown: bool  # a non-empty item came back
    matched: bool  # its first line is a prefix of the rest of the line (the truth)
    source: str  # the server's answer source (model, type_through, cache, ...), or "none"
    text: str  # the suggestion (empty when none)
    rest: str  # what the user types next on this line


@dataclass
class Run:
    """One file-switch replay against one server configuration."""

    mode: str
    repeat: int
    settings: dict[str, Any]
    settle: dict[str, Any] = field(default_factory=dict)
    keystrokes: list[Keystroke] = field(default_factory=list)
    wall_s: float = 0.0
    server_stats: dict[str, Any] = field(default_factory=dict)
    #: The server's window/logMessage lines during the typing (why nothing, or half a line,
    #: came), with when they came (seconds from the first keystroke).
    messages: list[tuple[float, str]] = field(default_factory=list)


def visits(keystrokes: list[Keystroke]) -> list[list[Keystroke]]:
    """The keystrokes grouped by visit (a file's stretch of typing), in replay order."""
    out: list[list[Keystroke]] = []
    for k in keystrokes:
        if k.index == 0 or not out:
            out.append([])
        out[-1].append(k)
    return out


def summarize(run: Run) -> dict[str, Any]:
    """The figures of one run, from its keystrokes alone. A switch is every visit but the
    replay's first (that one follows the settle pause); a return is a visit of round 2 on,
    to a file already typed in."""
    ks = run.keystrokes
    lat = [k.latency_ms for k in ks]
    groups = visits(ks)
    switches = groups[1:]
    first = [g[0].latency_ms for g in switches]
    returns = [g[0].latency_ms for g in switches if g[0].round > 0]
    # Time from the switch (its first keystroke sent) to the first suggestion shown in the
    # visit, and which keystroke of the visit that was (1-based); None: none in the visit.
    to_first: list[float] = []
    nth: list[int] = []
    without = 0
    for g in switches:
        hit = next((k for k in g if k.shown), None)
        if hit is None:
            without += 1
            continue
        to_first.append((hit.at_s - g[0].at_s) * 1000 + hit.latency_ms)
        nth.append(hit.index + 1)
    shown = sum(k.shown for k in ks)
    matched = sum(k.matched for k in ks)
    sources: dict[str, int] = {}
    for k in ks:
        sources[k.source] = sources.get(k.source, 0) + 1
    return {
        "kind": "file-switch",
        "mode": run.mode,
        "repeat": run.repeat,
        "keystrokes": len(ks),
        "shown": shown,
        "shown_share": round(shown / len(ks), 3) if ks else 0.0,
        "matched": matched,
        "matched_share": round(matched / len(ks), 3) if ks else 0.0,
        "p50_ms": round(pct(lat, 50), 1),
        "p95_ms": round(pct(lat, 95), 1),
        "switches": len(switches),
        "switch_first_p50_ms": _p(first, 50),
        "switch_first_p95_ms": _p(first, 95),
        "switch_first_shown": sum(g[0].shown for g in switches),
        "return_first_p50_ms": _p(returns, 50),
        "return_first_p95_ms": _p(returns, 95),
        "after_settle_ms": round(groups[0][0].latency_ms, 1) if groups else None,
        "switch_to_suggestion_p50_ms": _p(to_first, 50),
        "switch_to_suggestion_p95_ms": _p(to_first, 95),
        "switch_to_suggestion_keystroke_mean": (round(sum(nth) / len(nth), 2) if nth
                                                else None),
        "switches_without_suggestion": without,
        "sources": sources,
        "settle_s": run.settle.get("settle_s"),
        "warm_done": run.settle.get("warm_done"),
        "wall_s": round(run.wall_s, 1),
        # Keystrokes served from the short window, and short windows warmed (`ghostfill/stats`).
        "short_windows": run.server_stats.get("context", {}).get("short_windows"),
        "warmed_short": run.server_stats.get("warm_ups", {}).get("short"),
    }


def _p(values: list[float], q: float) -> float | None:
    """A percentile, rounded; None without values (no switch, no return)."""
    return round(pct(values, q), 1) if values else None


def goals(summary: dict[str, Any], typing: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's goals for one run; "no worse than" the typing replay of the same mode."""
    switch_p95 = summary["switch_first_p95_ms"]
    out: dict[str, Any] = {
        "switch_first_p95_le_250ms": (None if switch_p95 is None
                                      else switch_p95 <= SWITCH_P95_TARGET_MS),
        "shown_share_ge_75pct": summary["shown_share"] >= SHOWN_SHARE_TARGET,
    }
    if typing and typing.get("keystrokes"):
        share = typing["shown"] / typing["keystrokes"]
        out["typing"] = {"p50_ms": typing["p50_ms"], "p95_ms": typing["p95_ms"],
                         "shown_share": round(share, 3)}
        out["p50_no_worse"] = summary["p50_ms"] <= typing["p50_ms"]
        out["p95_no_worse"] = summary["p95_ms"] <= typing["p95_ms"]
        out["shown_no_worse"] = summary["shown_share"] >= share
    return out


# -- where the cursors go -------------------------------------------------------------------
def default_files(count: int = 3) -> list[Path]:
    """The first `count` files of the typing replay's list with 300-1500 lines."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for name in DEFAULT_FILES:
        path = stdlib / name
        if path.is_file():
            rows = path.read_text().count("\n") + 1
            if DEFAULT_LINES[0] <= rows <= DEFAULT_LINES[1]:
                found.append(path)
    return found[:count]


def resolve_file(name: str) -> Path:
    """A path as given, else relative to the running interpreter's standard library."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / name
    if stdlib.is_file():
        return stdlib
    raise SystemExit(f"no such file: {name} (neither a path nor in {stdlib.parent})")


def statement_lines(path: Path, length: int) -> list[Span]:
    """Single-line statements inside a block (indented, not a docstring) whose text after the
    indentation has more than `length` characters (the replay must not finish the line), at
    most 72; nearest the middle of the file first."""
    text = path.read_text()
    rows = text.split("\n")
    lines = set()
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.stmt) or node.lineno != node.end_lineno:
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a bare constant
        row = rows[node.lineno - 1]
        body = row.strip()
        if (row.startswith((" ", "\t")) and length < len(body) <= 72
                and node.col_offset == len(row) - len(row.lstrip())
                and not body.endswith((";", "\\")) and "#" not in body):
            lines.add(node.lineno - 1)
    middle = len(rows) // 2
    spans = []
    for i in sorted(lines, key=lambda i: (abs(i - middle), i)):
        column = len(rows[i]) - len(rows[i].lstrip())
        spans.append(Span(path, i, column, rows[i][column:]))
    return spans


def pick_cursors(paths: list[Path], length: int) -> list[Span]:
    spans = []
    for path in paths:
        found = statement_lines(path, length)
        if not found:
            raise SystemExit(f"{path}: no statement line longer than {length} characters")
        spans.append(found[0])
    return spans


def _matched(text: str, rest: str) -> bool:
    """The suggestion agrees with what the user goes on to type: its first line is a prefix
    of the rest of the line (and the whole rest when the suggestion goes on to more lines)."""
    if not text:
        return False
    line = text.split("\n", 1)[0]
    if "\n" in text:
        return line == rest
    return rest.startswith(line)


# -- the replay ------------------------------------------------------------------------------
def focus(client: Any, uri: str, span: Span, column: int, *, active: bool) -> None:
    """`textDocument/didFocus` as ghostfill's editor plugins send it: where the cursor is,
    and whether the document is in front (Neovim: BufEnter for the current buffer, and a
    restored buffer's last position for the others; VS Code: the active editor)."""
    client.protocol.notify("textDocument/didFocus", {
        "textDocument": {"uri": uri}, "active": active,
        "position": {"line": span.line, "character": column}})


async def replay(spans: list[Span], settings: dict[str, Any], mode: str, *, chars: int,
                 rounds: int, pause_s: float, settle_s: float, repeat: int = 0,
                 focused: bool = True) -> Run:
    """`focused`: the client reports cursors (`textDocument/didFocus`), as ghostfill's
    plugins do; False: a client that says nothing of them (any other LSP client)."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("ghostfill-bench", "1")
    run = Run(mode, repeat, settings)
    started = time.monotonic()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(params: types.LogMessageParams) -> None:
        run.messages.append((round(time.monotonic() - started, 3), params.message))

    # A runtime folder of its own: a shared engine outlives its server, and the next run
    # would find the windows read into its slots by this one.
    runtime = Path(tempfile.mkdtemp(prefix="gf-bench-rt-", dir="/tmp"))
    await client.start_io(sys.executable, "-m", "ghostfill", "serve",
                          env={**os.environ, "GHOSTFILL_RUNTIME_DIR": str(runtime)})
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), initialization_options=settings))
    client.initialized(types.InitializedParams())
    uris = [f"file://{span.path}" for span in spans]
    versions = [1] * len(spans)
    # An editor restoring its session: every file open at once, the cursors on their lines.
    for uri, span in zip(uris, spans, strict=True):
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=erase(span.path.read_text(), span))))
    if focused:  # the restored buffers' cursors, in buffer order; the first file in front
        for uri, span in zip(uris, spans, strict=True):
            focus(client, uri, span, span.column, active=False)
        focus(client, uris[0], spans[0], spans[0].column, active=True)
    run.settle = await settle(client, settle_s)
    run.settle["messages"] = [m for _, m in run.messages]  # the load's
    run.messages.clear()
    started = time.monotonic()
    for rnd in range(rounds):
        for n, (uri, span) in enumerate(zip(uris, spans, strict=True)):
            for index in range(chars):
                typed = rnd * chars + index
                col = span.column + typed
                versions[n] += 1
                sent = time.monotonic()
                if focused and index == 0 and (rnd or n):  # the switch: BufEnter
                    focus(client, uri, span, col, active=True)
                client.text_document_did_change(types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri,
                                                                        version=versions[n]),
                    content_changes=[types.TextDocumentContentChangePartial(
                        range=types.Range(start=types.Position(line=span.line, character=col),
                                          end=types.Position(line=span.line, character=col)),
                        text=span.erased[typed])]))
                result = await client.text_document_inline_completion_async(
                    _params(types, uri, span.line, col + 1, invoked=False))
                latency = (time.monotonic() - sent) * 1000
                items = (list(result.items) if isinstance(result, types.InlineCompletionList)
                         else list(result or []))
                text = str(items[0].insert_text) if items else ""
                command = items[0].command if items else None
                source = (str(command.arguments[0]) if command is not None and command.arguments
                          else "none")
                rest = span.erased[typed + 1:]
                run.keystrokes.append(Keystroke(
                    span.path.name, rnd, index, round(sent - started, 4), latency, bool(text),
                    _matched(text, rest), source, text, rest))
                if pause_s:
                    await asyncio.sleep(pause_s)
    run.wall_s = time.monotonic() - started
    run.server_stats = plain(await client.protocol.send_request_async("ghostfill/stats", None))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_place import EnginePlace

    for sock in runtime.glob("engine-*.sock"):
        engine_control.stop(EnginePlace(runtime, sock.stem), timeout=10.0)
    shutil.rmtree(runtime, ignore_errors=True)
    return run


async def settle(client: Any, settle_s: float, poll_s: float = 0.25) -> dict[str, Any]:
    """The user reads for `settle_s` after the files opened. `ghostfill/stats` is polled
    meanwhile: when the model was ready, and when no warm-up (or other background job) was
    left, seen twice in a row."""
    started = time.monotonic()
    ready_s: float | None = None
    idle_since: float | None = None
    warm_done_s: float | None = None
    stats: dict[str, Any] = {}
    while True:
        now = time.monotonic() - started
        stats = plain(await client.protocol.send_request_async("ghostfill/stats", None))
        held = stats.get("held", {})
        if ready_s is None and stats.get("state") != "loading":
            ready_s = now
        idle = (stats.get("state") != "loading" and not held.get("prefetching")
                and not held.get("background_tasks") and not held.get("inflight"))
        if not idle:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif warm_done_s is None:
            warm_done_s = idle_since
        left = settle_s - (time.monotonic() - started)
        if left <= 0:
            break
        await asyncio.sleep(min(poll_s, left))
    return {"settle_s": settle_s, "model_ready_s": _r(ready_s), "state": stats.get("state"),
            "error": stats.get("error"), "warm_done": warm_done_s is not None,
            "warm_done_s": _r(warm_done_s),
            "held": stats.get("held", {}), "tokens": stats.get("tokens", {})}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def typing_replay(spans: list[Span], settings: dict[str, Any], mode: str,
                        pause_s: float) -> Replay:
    """The single-file typing replay (`bench/latency.py`, LSP mode) with these settings."""
    from ghostfill.bench.latency import replay_lsp

    return await replay_lsp(spans, settings, f"typing-{mode}", pause_s)


# -- what a short window costs ----------------------------------------------------------
def window_quality(spans: list[Span], chars: int, rounds: int, windows: list[int],
                   base: dict[str, Any]) -> dict[str, Any]:
    """At every keystroke position of the replay, the suggestion from the full window and
    from each short window (`context.shortWindowTokens`), with no deadline: what a short
    window shows, against the truth and against the full window, apart from timing (which
    decides in the replay which keystrokes reach the model at all). The model in process,
    each window in its own slot, read once per file."""
    from ghostfill.backends.factory import create_backend
    from ghostfill.completion.snapshot import CompletionInput
    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine

    config = Config().updated(_merge(base, {"server": {"engine": "inprocess"}}))
    backend = create_backend(config)
    variants: dict[str, list[dict[str, Any]]] = {}
    try:
        for window in [0, *windows]:
            engine = CompletionEngine(
                config.updated({"context": {"shortWindowTokens": window}}), backend)
            name = "full" if not window else f"short {window}"
            rows = variants.setdefault(name, [])
            for span in spans:
                text = erase(span.path.read_text(), span)
                lines = text.split("\n")
                offset = sum(len(x) + 1 for x in lines[: span.line]) + span.column
                for typed in range(1, chars * rounds + 1):
                    now_text = text[:offset] + span.erased[:typed] + text[offset:]
                    source = CompletionInput.of_text(now_text, offset + typed,
                                                     language_id="python",
                                                     path=str(span.path))
                    prepared = engine.prepare(source, short=bool(window))
                    started = time.monotonic()
                    result = engine.run(prepared, deadline=started + 120, created=started)
                    rest = span.erased[typed:]
                    rows.append({"file": span.path.name, "typed": typed,
                                 "prompt_tokens": len(prepared.prompt.tokens),
                                 "short": prepared.short, "text": result.text, "rest": rest,
                                 "matched": _matched(result.text, rest)})
    finally:
        backend.close()
    full = variants["full"]
    summary = {}
    for name, rows in variants.items():
        summary[name] = {
            "keystrokes": len(rows), "shown": sum(bool(r["text"]) for r in rows),
            "matched": sum(r["matched"] for r in rows),
            "same_as_full": sum(r["text"] == f["text"] for r, f in zip(rows, full, strict=True)),
            "matched_only_here": sum(r["matched"] and not f["matched"]
                                     for r, f in zip(rows, full, strict=True)),
            "matched_only_full": sum(f["matched"] and not r["matched"]
                                     for r, f in zip(rows, full, strict=True)),
            "prompt_tokens_mean": round(sum(r["prompt_tokens"] for r in rows) / len(rows), 1),
            "line_similarity_mean": round(sum(line_similarity(r["text"], r["rest"])
                                              for r in rows) / len(rows), 3),
        }
    return {"summary": summary, "rows": variants}


def line_similarity(text: str, rest: str) -> float:
    """How close the suggestion's first line is to what the user types next on the line
    (difflib's ratio, 0..1): a softer measure than `matched`."""
    import difflib

    return difflib.SequenceMatcher(None, text.split("\n", 1)[0], rest).ratio()


# -- report ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", default="",
                        help="comma list of files (paths, or relative to the standard "
                             "library); default: three of 300-1500 lines from the stdlib")
    parser.add_argument("--chars", type=int, default=8, help="characters typed per visit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="inprocess,shared",
                        help="comma list of server.engine values, run back to back")
    parser.add_argument("--focus", choices=("on", "off", "both"), default="on",
                        help="whether the client reports cursors with textDocument/didFocus "
                             "as ghostfill's plugins do (off: as any other LSP client)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="repeat the sequence of modes (interleaved: a b a b)")
    parser.add_argument("--settle-s", type=float, default=15.0,
                        help="pause after opening the files, before the first keystroke")
    parser.add_argument("--pause-ms", type=float, default=0,
                        help="think time after each answer (the typing replay's, default 0)")
    parser.add_argument("--typing-lines", type=int, default=2,
                        help="lines of the first file for the single-file typing replay run "
                             "after each mode (0: none)")
    parser.add_argument("--budget-ms", type=int, default=None,
                        help="completion.latencyBudgetMs (default: the product default)")
    parser.add_argument("--model", default=None, help="model.name (default: the product's)")
    parser.add_argument("--context-length", type=int, default=None,
                        help="model.contextLength (default: the model's)")
    parser.add_argument("--short-windows", default="",
                        help="comma list of context.shortWindowTokens values, each run after "
                             "the other for every mode (0: off; default: the product's)")
    parser.add_argument("--window-quality", action="store_true",
                        help="instead of the replay: at each keystroke position, the full "
                             "window's suggestion against each short window's of "
                             "--short-windows (model in process, no deadline)")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--no-plot", action="store_false", dest="plot")
    args = parser.parse_args(argv)
    if args.chars < 1 or args.rounds < 1:
        parser.error("--chars and --rounds must be at least 1")
    paths = ([resolve_file(f) for f in args.files.split(",") if f] if args.files
             else default_files())
    spans = pick_cursors(paths, args.chars * args.rounds)
    # The first file's cursor line first, then the next lines as long nearest the middle.
    typing_spans = statement_lines(paths[0], args.chars * args.rounds)[: args.typing_lines]
    # As the typing replay: 32 tokens at most, no debounce (one request per keystroke anyway).
    base: dict[str, Any] = {"server": {"debounceMs": 0}, "completion": {"maxTokens": 32}}
    if args.budget_ms is not None:
        base["completion"]["latencyBudgetMs"] = args.budget_ms
    if args.model:
        base["model"] = {"name": args.model}
    if args.context_length:
        base.setdefault("model", {})["contextLength"] = args.context_length
    shorts: list[int | None] = [int(v) for v in args.short_windows.split(",") if v] or [None]
    if args.window_quality:
        from ghostfill.bench.results import write_results

        windows = [s for s in shorts if s]
        payload = {"issue": 17, "what": "suggestions at the file-switch replay's keystroke "
                   "positions: the full window against short windows, no deadline",
                   "files": [{"file": s.path.name, "line": s.line + 1, "text": s.erased}
                             for s in spans],
                   **window_quality(spans, args.chars, args.rounds, windows, base)}
        print(json.dumps(payload["summary"], indent=1), flush=True)
        write_results(args.out, "file-switch-quality", "file_switch", argv, payload,
                      (lambda path: plot_quality(payload, path)) if args.plot else None)
        return 0
    modes = [(m, short) for m in args.modes.split(",") if m for short in shorts]
    load_start = os.getloadavg()
    runs: list[Run] = []
    typing: list[Replay] = []
    summaries: list[dict[str, Any]] = []
    focus_runs = {"on": (True,), "off": (False,), "both": (True, False)}[args.focus]
    for repeat in range(args.repeats):
        for engine_mode, short in modes:
            settings = _merge(base, {"server": {"engine": engine_mode}})
            mode = engine_mode
            if short is not None:
                settings = _merge(settings, {"context": {"shortWindowTokens": short}})
                mode = f"{engine_mode}, short window {short or 'off'}"
            reference = None
            for focused in focus_runs:
                label = mode if focused else f"{mode}, no didFocus"
                run = asyncio.run(replay(spans, settings, label, chars=args.chars,
                                         rounds=args.rounds, pause_s=args.pause_ms / 1000,
                                         settle_s=args.settle_s, repeat=repeat,
                                         focused=focused))
                runs.append(run)
                summary = summarize(run)
                summary["focus"] = focused
                first_of_mode = typing_spans and reference is None
                if first_of_mode:
                    typing.append(asyncio.run(typing_replay(typing_spans, settings, mode,
                                                            args.pause_ms / 1000)))
                    reference = {**typing[-1].summary(), "kind": "typing", "mode": mode,
                                 "repeat": repeat}
                summary["goals"] = goals(summary, reference)
                summaries.append(summary)
                print(json.dumps({k: v for k, v in summary.items() if k != "sources"}),
                      flush=True)
                if first_of_mode and reference is not None:
                    summaries.append(reference)  # the mode's reference, after its first run
                    print(json.dumps(reference), flush=True)
    payload = report(args, spans, typing_spans, runs, typing, summaries, load_start)
    from ghostfill.bench.results import write_results

    write_results(args.out, "file-switch", "file_switch", argv, payload,
                  (lambda path: plot_report(payload, path)) if args.plot else None)
    return 0


def report(args: argparse.Namespace, spans: list[Span], typing_spans: list[Span],
           runs: list[Run], typing: list[Replay], summaries: list[dict[str, Any]],
           load_start: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "issue": 17,
        "what": "file-switch replay through `ghostfill serve` (stdio): files opened at once, "
                f"settle {args.settle_s:g} s, {args.chars} characters typed per visit, "
                f"round-robin, {args.rounds} rounds; latency from didChange to the answer",
        "files": [{"file": s.path.name, "path": str(s.path),
                   "lines": s.path.read_text().count("\n") + 1, "line": s.line + 1,
                   "column": s.column, "text": s.erased} for s in spans],
        "typing_spans": [{"file": s.path.name, "line": s.line + 1, "text": s.erased}
                         for s in typing_spans],
        "chars_per_visit": args.chars,
        "rounds": args.rounds,
        "settle_s": args.settle_s,
        "pause_ms": args.pause_ms,
        "modes": [m for m in args.modes.split(",") if m],
        "short_windows": args.short_windows,
        "focus": args.focus,
        "targets": {"switch_first_p95_ms": SWITCH_P95_TARGET_MS,
                    "shown_share": SHOWN_SHARE_TARGET},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(load_start),
                    "loadavg_end": list(os.getloadavg())},
        "summaries": summaries,
        "runs": [asdict(r) for r in runs],
        "typing": [asdict(r) for r in typing],
    }


# -- plot ------------------------------------------------------------------------------------
def plot_report(data: dict[str, Any], path: Path) -> None:
    """Latency per keystroke in replay order (log scale; filled: a suggestion shown), the
    switches marked, one line per run; below, the summary bars per run against the targets.
    Drawn from the result JSON alone, so an old run can be re-plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data["runs"]
    fig = plt.figure(figsize=(11, 8), dpi=110)
    grid = fig.add_gridspec(2, 2, height_ratios=(1.3, 1), width_ratios=(1.6, 1))
    ax = fig.add_subplot(grid[0, :])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        color = colors[i % len(colors)]
        ks = run["keystrokes"]
        xs = list(range(1, len(ks) + 1))
        ys = [max(k["latency_ms"], 0.1) for k in ks]
        repeated = len(runs) > len({r["mode"] for r in runs})
        label = run["mode"] + (f" #{run['repeat'] + 1}" if repeated else "")
        ax.plot(xs, ys, color=color, linewidth=1, alpha=0.8, label=label)
        ax.scatter([x for x, k in zip(xs, ks, strict=True) if k["shown"]],
                   [y for y, k in zip(ys, ks, strict=True) if k["shown"]], color=color, s=18,
                   zorder=3)
        ax.scatter([x for x, k in zip(xs, ks, strict=True) if not k["shown"]],
                   [y for y, k in zip(ys, ks, strict=True) if not k["shown"]], s=18,
                   facecolors="none", edgecolors=color, zorder=3)
    if runs:
        for x, k in enumerate(runs[0]["keystrokes"], start=1):
            if k["index"] == 0:
                ax.axvline(x - 0.5, color="grey", linestyle=":", linewidth=0.8)
                ax.annotate(f"{k['file']} r{k['round'] + 1}", (x - 0.4, 1.0),
                            xycoords=("data", "axes fraction"), fontsize=6, rotation=90,
                            va="top", color="grey")
    ax.axhline(SWITCH_P95_TARGET_MS, color="red", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("keystroke (dotted: switch to another file; filled: a suggestion shown)")
    ax.set_ylabel("didChange → answer (ms, log)")
    ax.set_title(f"ghostfill file-switch replay: {len(data['files'])} files, "
                 f"{data['chars_per_visit']} characters per visit, {data['rounds']} rounds, "
                 f"settle {data['settle_s']:g} s", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")

    switch = [s for s in data["summaries"] if s["kind"] == "file-switch"]
    typing = {(s["mode"], s["repeat"]): s for s in data["summaries"] if s["kind"] == "typing"}
    repeated = len(switch) > len({s["mode"] for s in switch})
    names = [s["mode"].replace(", ", "\n") + (f" #{s['repeat'] + 1}" if repeated else "")
             for s in switch]
    bars = [("all p50", "p50_ms", None), ("all p95", "p95_ms", None),
            ("switch 1st p50", "switch_first_p50_ms", None),
            ("switch 1st p95", "switch_first_p95_ms", None),
            ("typing p50", "p50_ms", "typing"), ("typing p95", "p95_ms", "typing")]
    ax = fig.add_subplot(grid[1, 0])
    width = 0.8 / len(bars)
    for j, (label, key, kind) in enumerate(bars):
        values = [(typing.get((s["mode"], s["repeat"]), {}).get(key, 0.0) if kind else s[key])
                  or 0.0 for s in switch]
        drawn = ax.bar([i + (j - (len(bars) - 1) / 2) * width for i in range(len(switch))],
                       values, width, label=label, color=colors[j % len(colors)])
        ax.bar_label(drawn, labels=[f"{v:.0f}" for v in values], fontsize=6, padding=1)
    ax.axhline(SWITCH_P95_TARGET_MS, color="red", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(switch)), names, fontsize=6)
    ax.set_ylabel("ms")
    ax.set_title("latency (red: 250 ms, the switch p95 goal)", fontsize=9)
    ax.legend(fontsize=6, ncols=2)
    ax.grid(axis="y", alpha=0.3)

    ax = fig.add_subplot(grid[1, 1])
    shares = [("file-switch shown", [100 * s["shown_share"] for s in switch]),
              ("matched the truth", [100 * s["matched_share"] for s in switch]),
              ("typing shown", [100 * typing[(s["mode"], s["repeat"])]["shown"]
                                / max(1, typing[(s["mode"], s["repeat"])]["keystrokes"])
                                if (s["mode"], s["repeat"]) in typing else 0.0
                                for s in switch])]
    width = 0.8 / len(shares)
    for j, (label, values) in enumerate(shares):
        drawn = ax.bar([i + (j - (len(shares) - 1) / 2) * width for i in range(len(switch))],
                       values, width, label=label, color=colors[(j + 6) % len(colors)])
        ax.bar_label(drawn, labels=[f"{v:.0f}" for v in values], fontsize=6, padding=1)
    ax.axhline(100 * SHOWN_SHARE_TARGET, color="red", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(switch)), names, fontsize=6)
    ax.set_ylim(0, 110)
    ax.set_ylabel("% of keystrokes")
    ax.set_title("suggestions (red: the 75 % goal)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_quality(data: dict[str, Any], path: Path) -> None:
    """Per window: suggestions whose first line starts the truth, those equal to the full
    window's, and the mean line similarity (right axis). From the result JSON alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = data["summary"]
    names = list(summary)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    width = 0.38
    xs = range(len(names))
    for j, (key, label) in enumerate((("matched", "first line matches the truth"),
                                      ("same_as_full", "same as the full window's"))):
        values = [summary[n][key] for n in names]
        bars = ax.bar([x + (j - 0.5) * width for x in xs], values, width, label=label)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(list(xs), [f"{n}\n({summary[n]['prompt_tokens_mean']:.0f} tokens)"
                             for n in names])
    ax.set_ylabel(f"of {summary[names[0]]['keystrokes']} keystroke positions")
    right = ax.twinx()
    right.plot(list(xs), [summary[n]["line_similarity_mean"] for n in names], "ko-",
               label="line similarity (right)")
    right.set_ylim(0, 1)
    right.set_ylabel("mean line similarity")
    files = ", ".join(f["file"] for f in data["files"])
    ax.set_title(f"full window vs short windows, no deadline ({files})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    right.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
