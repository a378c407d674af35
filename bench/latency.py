"""Typing replay: keystroke -> ghost text latency, through the LSP or the engine alone.

Real source files that exist on every machine (the Python standard library, found at run
time) are edited as a person would: the rest of a line is erased and typed back one character
at a time. After each keystroke the client sends didChange and an automatic
inlineCompletion request and waits for the answer; the time between the two is the latency a
user sees. `--mode engine` runs the same replay against `CompletionEngine` without the
protocol, so the server's own overhead is the difference.

    python -m ghostfill.bench.latency --files 3 --lines 4 --out bench/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.lsp.protocol import plain

DEFAULT_FILES = ("json/decoder.py", "textwrap.py", "argparse.py", "configparser.py",
                 "difflib.py", "tokenize.py", "calendar.py", "shlex.py")


@dataclass
class Keystroke:
    file: str
    line: int
    column: int
    latency_ms: float
    shown: bool
    source: str = ""
    first_token_ms: float | None = None
    evaluated_tokens: int | None = None
    reused_tokens: int | None = None


@dataclass
class Replay:
    label: str
    mode: str
    config: dict[str, Any]
    keystrokes: list[Keystroke] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = [k.latency_ms for k in self.keystrokes]
        shown = [k.latency_ms for k in self.keystrokes if k.shown]
        out: dict[str, Any] = {
            "label": self.label,
            "mode": self.mode,
            "keystrokes": len(lat),
            "shown": len(shown),
            "p50_ms": round(pct(lat, 50), 1),
            "p95_ms": round(pct(lat, 95), 1),
            "shown_p50_ms": round(pct(shown, 50), 1),
            "shown_p95_ms": round(pct(shown, 95), 1),
        }
        evaluated = [k.evaluated_tokens for k in self.keystrokes if k.evaluated_tokens is not None]
        if evaluated:
            out["evaluated_tokens_mean"] = round(statistics.mean(evaluated), 1)
            out["evaluated_tokens_p50"] = pct([float(e) for e in evaluated], 50)
        first = [k.first_token_ms for k in self.keystrokes if k.first_token_ms]
        if first:
            out["first_token_p50_ms"] = round(pct(first, 50), 1)
            out["first_token_p95_ms"] = round(pct(first, 95), 1)
        sources: dict[str, int] = {}
        for k in self.keystrokes:
            sources[k.source] = sources.get(k.source, 0) + 1
        out["sources"] = sources
        server = self.config.get("server_stats")
        if isinstance(server, dict):
            shown = server.get("suggestions", {})
            # Lines cut by the deadline, and how many were finished in the background.
            out["partial"] = shown.get("partial", 0)
            out["partial_joined"] = shown.get("partial_joined", 0)
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Span:
    path: Path
    line: int  # 0-based
    column: int  # where the erased text starts
    erased: str


def pick_spans(files: int, lines: int, seed: int, min_line: int = 200) -> list[Span]:
    """Lines deep in real files (the window is full), erased after their indentation."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rng = random.Random(seed)
    spans: list[Span] = []
    for name in DEFAULT_FILES[:files]:
        path = stdlib / name
        if not path.is_file():
            continue
        text = path.read_text()
        rows = text.split("\n")
        candidates = [i for i, row in enumerate(rows) if i >= min_line and 12 <= len(row.strip())
                      <= 60 and not row.strip().startswith(("#", '"', "'")) and row.startswith(" ")]
        for i in sorted(rng.sample(candidates, min(lines, len(candidates)))):
            column = len(rows[i]) - len(rows[i].lstrip())
            spans.append(Span(path, i, column, rows[i][column:]))
    return spans


def erase(text: str, span: Span) -> str:
    rows = text.split("\n")
    rows[span.line] = rows[span.line][: span.column]
    return "\n".join(rows)


# -- engine mode ------------------------------------------------------------------------
def replay_engine(spans: list[Span], settings: dict[str, Any], label: str) -> Replay:
    from ghostfill.completion.context import WindowAnchor
    from ghostfill.completion.snapshot import CompletionInput
    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine

    config = Config().updated(settings)
    engine = CompletionEngine.load(config)
    replay = Replay(label, "engine", settings)
    started = time.monotonic()
    for span in spans:
        base = erase(span.path.read_text(), span)
        anchor = WindowAnchor()
        rows = base.split("\n")
        offset = sum(len(r) + 1 for r in rows[: span.line]) + span.column
        # The cold window (opening the file) is not part of typing, as in the LSP replay.
        engine.complete(CompletionInput.of_text(base, offset, path=str(span.path),
                                                anchor=anchor),
                        deadline=time.monotonic() + 60)
        for typed in range(1, len(span.erased) + 1):
            text = base[:offset] + span.erased[:typed] + base[offset:]
            created = time.monotonic()
            result = engine.complete(CompletionInput.of_text(text, offset + typed,
                                                             path=str(span.path), anchor=anchor),
                                     created=created)
            replay.keystrokes.append(Keystroke(
                span.path.name, span.line, span.column + typed,
                (time.monotonic() - created) * 1000, bool(result.text), "model",
                result.timings.get("first_token_ms"), _count(result.timings, "evaluated_tokens"),
                _count(result.timings, "reused_tokens")))
    replay.wall_s = time.monotonic() - started
    engine.close()
    return replay


def _count(timings: dict[str, float], key: str) -> int | None:
    """A token count from the engine's timings (held as numbers next to the times)."""
    value = timings.get(key)
    return None if value is None else int(value)


# -- LSP mode ---------------------------------------------------------------------------
async def replay_lsp(spans: list[Span], settings: dict[str, Any], label: str,
                     pause_s: float) -> Replay:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    client = LanguageClient("ghostfill-bench", "1")
    await client.start_io(sys.executable, "-m", "ghostfill", "serve")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), initialization_options=settings))
    client.initialized(types.InitializedParams())
    replay = Replay(label, "lsp", settings)
    started = time.monotonic()
    for n, span in enumerate(spans):
        uri = f"file://{span.path}#{n}"
        text = erase(span.path.read_text(), span)
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        version = 1
        # First request (cold window, invoked) is not part of the typing replay.
        await client.text_document_inline_completion_async(_params(types, uri, span.line,
                                                                   span.column, invoked=True))
        for typed, ch in enumerate(span.erased):
            version += 1
            col = span.column + typed
            created = time.monotonic()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=types.Position(line=span.line, character=col),
                                      end=types.Position(line=span.line, character=col)),
                    text=ch)]))
            result = await client.text_document_inline_completion_async(
                _params(types, uri, span.line, col + 1, invoked=False))
            latency = (time.monotonic() - created) * 1000
            items = (list(result.items) if isinstance(result, types.InlineCompletionList)
                     else list(result or []))
            command = items[0].command if items else None
            # The server names the answer's source in the command's one argument.
            source = (str(command.arguments[0]) if command is not None and command.arguments
                      else "none")
            replay.keystrokes.append(Keystroke(span.path.name, span.line, col + 1, latency,
                                               bool(items), source))
            if pause_s:
                await asyncio.sleep(pause_s)
        client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))
    replay.wall_s = time.monotonic() - started
    stats = await client.protocol.send_request_async("ghostfill/stats", None)
    replay.config = {**settings, "server_stats": plain(stats)}
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return replay


def _params(types: Any, uri: str, line: int, col: int, invoked: bool) -> Any:
    kind = (types.InlineCompletionTriggerKind.Invoked if invoked
            else types.InlineCompletionTriggerKind.Automatic)
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=col),
        context=types.InlineCompletionContext(trigger_kind=kind))


ABLATIONS: dict[str, dict[str, Any]] = {
    "ghostfill": {},
    # Without KV reuse every request re-reads the window (seconds): under the default budget
    # nothing would ever be shown, so this one waits for its answers.
    "no-kv-reuse": {"model": {"kvReuse": False}, "completion": {"latencyBudgetMs": 20000}},
    # Whole lines only: the budget never cuts a line, as before partial lines existed.
    "whole-lines": {"completion": {"latencyBudgetMs": 5000}},
    "no-type-through-prefetch": {"server": {"cacheSize": 0, "prefetch": False}},
    "prompt-lookup": {"model": {"speculative": "prompt-lookup"}},
    # Typing always waits for the full window (no short one while it is read).
    "no-short-window": {"context": {"shortWindowTokens": 0}},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--lines", type=int, default=3, help="erased lines per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["lsp", "engine", "both"], default="both")
    parser.add_argument("--configs", default="ghostfill,no-kv-reuse",
                        help=f"comma list of {', '.join(ABLATIONS)}")
    parser.add_argument("--pause-ms", type=float, default=0,
                        help="think time after each answer before the next keystroke")
    parser.add_argument("--budget-ms", type=int, default=None,
                        help="completion.latencyBudgetMs (default: the product default)")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    spans = pick_spans(args.files, args.lines, args.seed)
    # 32 tokens at most, as in the llama-server comparison (issue #4); debounce off because
    # the replay sends one request per keystroke anyway.
    base: dict[str, Any] = {"server": {"debounceMs": 0}, "completion": {"maxTokens": 32}}
    if args.budget_ms is not None:
        base["completion"]["latencyBudgetMs"] = args.budget_ms
    replays: list[Replay] = []
    for name in args.configs.split(","):
        settings = _merge(base, ABLATIONS[name])
        if args.mode in ("engine", "both"):
            replays.append(replay_engine(spans, settings, name))
            print(json.dumps(replays[-1].summary()), flush=True)
        if args.mode in ("lsp", "both"):
            replays.append(asyncio.run(replay_lsp(spans, settings, name, args.pause_ms / 1000)))
            print(json.dumps(replays[-1].summary()), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "command": "python -m ghostfill.bench.latency " + " ".join(argv or sys.argv[1:]),
        "spans": [{"file": s.path.name, "line": s.line + 1, "text": s.erased} for s in spans],
        "summaries": [r.summary() for r in replays],
        "replays": [asdict(r) for r in replays],
    }
    json_path = out / f"latency-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=1))
    plot(replays, out / f"latency-{stamp}.png")
    print(f"wrote {json_path}")
    return 0


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in a.items()}
    for k, v in b.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def plot(replays: list[Replay], path: Path, *,
         title: str = "ghostfill typing replay (embedded model, 2048-token window)",
         targets_ms: tuple[float, ...] = (80, 180), with_mode: bool = True) -> None:
    """CDF of keystroke latency per replay, with the targets as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in replays:
        values = sorted(k.latency_ms for k in r.keystrokes)
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        ax.plot(values, ys, label=f"{r.label} ({r.mode})" if with_mode else r.label)
    ax.set_xscale("log")
    ax.set_xlabel("keystroke → suggestion (ms, log scale)")
    ax.set_ylabel("share of keystrokes")
    for target, style in zip(targets_ms, (":", "--"), strict=False):
        ax.axvline(target, color="grey", linestyle=style, linewidth=1)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
