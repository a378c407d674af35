"""Soak: thousands of keystrokes and completion requests over stdio, with the real model.

A real `ghostfill serve` process behind a real LSP client, editing real files the way a person
types, only faster: every `--interval-ms` an edit (characters, accented letters, CJK, emoji,
line breaks, deletions, joined lines) at the cursor of the active document, or, for
`--jump-share` of them, at a random place of a random line; then an automatic inline
completion at the edit; `--cancel-share` of them are cancelled with
`$/cancelRequest` right after sending, at most `--max-inflight` are waiting at a time, and
after `--pause-share` of the keystrokes the typist stops for `--pause-ms` (long enough for
the model to answer; at 30 ms a keystroke every request is superseded before). Several
documents are open (the standard library's `typing.py`, `functools.py`, `argparse.py` by
default); the active one changes now and then, and now and then one is closed and reopened.

Engines:
- default: the real default model in the server's process (llama.cpp, what users run);
- `--engine remote`: the server with `model.backend = "openai"` against llama-cpp-python's
  own server (`python -m llama_cpp.server`, the same embedded model) in a second process;
  the resident memory of both processes is sampled;
- `--standin`: a fast stand-in serving engine (`bench/standin_engine.py`) for protocol-only
  soaks. Its answers are derived from the prompt, so a stale answer (one computed for an
  older version of the document) is detected; with a model only the shape of the answers
  is checked.

Reported (JSON, and a plot of resident memory against requests): counts of answered, empty,
cancelled and failed requests, the resident set size (VmRSS) of each process every
`--sample-every` requests, its growth after warm-up and over the second half of the run, and
the slope of a line fitted to the second half.

    python -m ghostfill.bench.soak --requests 10000 --out bench/results
    python -m ghostfill.bench.soak --requests 10000 --engine remote
    python -m ghostfill.bench.soak --requests 10000 --standin

`--server NAME=DIR` (repeatable) soaks the ghostfill found in DIR (on the server's PYTHONPATH)
instead of the installed one, one after the other in the same run: before/after comparisons
on the same machine in the same hour. `scripts/stage_revision.sh` stages a revision so.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sys
import sysconfig
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.bench.standin_engine import StandinEngine, answer_for
from ghostfill.lsp.protocol import plain

#: What gets typed: ASCII code, accented letters, CJK, emoji (astral: surrogate pairs in
#: UTF-16), and line breaks.
TYPED = ("abcdefghijklmnopqrstuvwxyz_ ().,:=+-'\"[]{}0123456789" * 3
         + "éèüñçø" + "中文字" + "😀🚀𝄞")
STDLIB_FILES = ("typing.py", "functools.py", "argparse.py")
CANCELLED = -32800
#: Characters after the cursor that a suggestion replaces (as `CLOSING` in lsp/server.py).
CLOSING = frozenset(")]}>\"'`;, \t")


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def default_files() -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return [stdlib / name for name in STDLIB_FILES if (stdlib / name).is_file()]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Doc:
    uri: str
    text: str
    version: int = 1
    starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]

    def line_of(self, offset: int) -> int:
        import bisect

        return bisect.bisect_right(self.starts, offset) - 1

    def position(self, offset: int) -> tuple[int, int]:
        """LSP position (UTF-16 columns) of a code-point offset."""
        line = self.line_of(offset)
        return line, utf16_len(self.text[self.starts[line] : offset])

    def edit(self, start: int, end: int, new: str) -> tuple[tuple[int, int], tuple[int, int]]:
        """Apply an edit; returns the LSP start and end positions it had."""
        before = self.position(start), self.position(end)
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.reindex()
        return before


def random_edit(doc: Doc, rng: random.Random, at: int | None = None) -> tuple[int, int, str]:
    """(start, end, new text) in code points: typing at the cursor `at`, or (None) at a
    random place of a random line."""
    if at is not None and at <= len(doc.text):
        roll = rng.random()
        if roll < 0.75:
            return at, at, rng.choice(TYPED)
        if roll < 0.85:  # a line break, indented like the line
            line_start = doc.starts[doc.line_of(at)]
            text = doc.text[line_start:at]
            return at, at, "\n" + text[: len(text) - len(text.lstrip())]
        if at > 0:  # backspace (at a line start it joins two lines)
            return at - 1, at, ""
        return at, at, rng.choice(TYPED)
    line = rng.randrange(len(doc.starts))
    line_start = doc.starts[line]
    line_end = doc.starts[line + 1] - 1 if line + 1 < len(doc.starts) else len(doc.text)
    col = line_start + rng.randint(0, line_end - line_start)
    roll = rng.random()
    if roll < 0.55:
        return col, col, rng.choice(TYPED)
    if roll < 0.70:  # a line break, indented like the line
        text = doc.text[line_start:line_end]
        return col, col, "\n" + text[: len(text) - len(text.lstrip())]
    if roll < 0.95:  # delete a character or a word on the line
        if col >= line_end:
            col = max(line_start, col - 1)
        return col, min(line_end, col + rng.choice((1, 1, 1, 4))), ""
    if line_end < len(doc.text):  # join with the next line
        return line_end, line_end + 1, ""
    return col, col, rng.choice(TYPED)


def core(answer: str, rest: str) -> str:
    """The answer without what the server adds: the closers after the cursor it replaces
    (`_replace_end` in lsp/server.py) and surrounding whitespace."""
    if rest and all(ch in CLOSING for ch in rest) and answer.endswith(rest):
        answer = answer[: len(answer) - len(rest)]
    return answer.strip()


def fit_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def soak(requests: int = 2000, *, engine: str = "local", cancel_share: float = 0.3,
               max_inflight: int = 4, interval_ms: float = 30.0, seed: int = 0,
               sample_every: int = 100, warmup: int | None = None,
               files: list[Path] | None = None, server_path: str | None = None,
               switch_every: int = 200, reopen_every: int = 1000,
               engine_url: str | None = None, engine_pid: int | None = None,
               pause_share: float = 0.05, pause_ms: float = 300.0,
               jump_share: float = 0.05, budget_ms: float | None = None) -> dict[str, Any]:
    """One soak run; `engine` is "local" (model in the server), "remote" (the server talks
    to `engine_url`, whose process `engine_pid` is sampled too) or "standin"."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    rng = random.Random(seed)
    warmup = min(1000, requests // 10) if warmup is None else warmup
    standin = StandinEngine() if engine == "standin" else None
    if standin is not None:
        standin.__enter__()
        engine_url = standin.url
    env = dict(os.environ)
    if server_path:
        env["PYTHONPATH"] = server_path + os.pathsep + env.get("PYTHONPATH", "")
    options: dict[str, Any]
    if engine == "local":
        options = {}  # the defaults a user gets: default model, debounce, prefetch, warm-up
    elif engine == "remote":
        options = {"model": {"backend": "openai", "template": "prefix-only"},
                   "remote": {"endpoint": engine_url},
                   "completion": {"latencyBudgetMs": 1000}}
    else:
        options = {"model": {"backend": "openai", "template": "prefix-only"},
                   "remote": {"endpoint": engine_url},
                   "server": {"debounceMs": 0, "prefetch": False, "cacheSize": 64},
                   "completion": {"maxTokens": 16, "latencyBudgetMs": 2000}}
    if budget_ms is not None:
        options.setdefault("completion", {})["latencyBudgetMs"] = budget_ms
    client = LanguageClient("ghostfill-soak", "1")
    # From the staged folder when there is one: `-m` puts the working directory first on
    # the path, and a checkout's own ghostfill/ would win over PYTHONPATH.
    await client.start_io(sys.executable, "-m", "ghostfill", "serve", env=env,
                          cwd=server_path or None)
    server = client._server
    if server is None:  # start_io sets it
        raise RuntimeError("the language server did not start")
    pid = server.pid
    pids = {"server": pid, **({"engine": engine_pid} if engine_pid else {})}
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), initialization_options=options))
    client.initialized(types.InitializedParams())

    paths = files if files is not None else default_files()
    sources = {f"file://{p}": p.read_text(encoding="utf-8") for p in paths}
    docs: dict[str, Doc] = {}

    def open_doc(uri: str) -> None:
        docs[uri] = Doc(uri, sources[uri])
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=sources[uri])))

    for uri in sources:
        open_doc(uri)
    # The model loads in the background; the first request waits for it.
    active = next(iter(docs))
    counts = {"requests": 0, "answered": 0, "empty": 0, "cancelled": 0, "stale": 0,
              "invalid_params": 0, "errors": 0, "edits": 0, "switches": 0, "reopened": 0}
    error_samples: list[str] = []
    mismatches: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    inflight: set[asyncio.Future[Any]] = set()
    shown: dict[str, tuple[str, str]] = {}  # uri -> (prefix, answer) of the last fresh answer
    cursors: dict[str, int] = {}  # where the typist is in each document

    async def sample(i: int) -> None:
        row: dict[str, Any] = {"request": i, "elapsed_s": round(time.monotonic() - started, 2)}
        for name, p in pids.items():
            status = proc_status(p)
            row[f"{name}_rss_kb"] = status["VmRSS"]
            row[f"{name}_threads"] = status["Threads"]
        # What the server holds between requests (servers before issue #21 do not say).
        stats = plain(await client.protocol.send_request_async("ghostfill/stats", None))
        row["held"] = stats.get("held")
        samples.append(row)

    def judge(i: int, uri: str, prefix: str, rest: str, future: asyncio.Future[Any]) -> None:
        try:
            result = future.result()
        except Exception as e:
            code = getattr(e, "code", None)
            if code == CANCELLED:
                counts["cancelled"] += 1
            elif code == -32602:
                counts["invalid_params"] += 1
            else:
                counts["errors"] += 1
                if len(error_samples) < 10:
                    error_samples.append(f"{type(e).__name__}: {e}")
            return
        items = list(result.items) if result is not None else []
        if not items:
            counts["empty"] += 1
            return
        counts["answered"] += 1
        if standin is None:
            return
        # The stand-in's answer carries the prompt's tail (the text before the cursor): an
        # answer computed for another version of the document would carry another tail.
        got = core(items[0].insert_text, rest)
        expected = answer_for(prefix).strip()
        last_prefix, last = shown.get(uri, ("", ""))
        typed = prefix[len(last_prefix):] if prefix.startswith(last_prefix) else None
        through = typed is not None and last.startswith(typed.lstrip()) and \
            got == last[len(typed.lstrip()):].strip()  # the rest of the one on screen
        if got == expected or expected.startswith(got):  # the filters may cut the end
            shown[uri] = (prefix, got)
        elif not through:
            counts["stale"] += 1
            if len(mismatches) < 20:
                mismatches.append({"request": i, "expected": expected, "got": got})

    started = time.monotonic()
    await sample(0)
    next_at = time.monotonic()
    for i in range(1, requests + 1):
        if rng.random() < 1 / max(1, switch_every) and len(docs) > 1:
            active = rng.choice([u for u in docs if u != active])
            counts["switches"] += 1
        if rng.random() < 1 / max(1, reopen_every):
            uri = rng.choice(list(docs))
            client.text_document_did_close(types.DidCloseTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=uri)))
            shown.pop(uri, None)
            cursors.pop(uri, None)
            open_doc(uri)
            counts["reopened"] += 1
        doc = docs[active]
        jump = rng.random() < jump_share or active not in cursors
        start, end, new = random_edit(doc, rng, None if jump else cursors[active])
        (sl, sc), (el, ec) = doc.edit(start, end, new)
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=doc.uri,
                                                                version=doc.version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=sl, character=sc),
                                  end=types.Position(line=el, character=ec)), text=new)]))
        counts["edits"] += 1
        cursor = cursors[active] = start + len(new)
        line, character = doc.position(cursor)
        msg_id = str(uuid.uuid4())
        future = client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=doc.uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic)),
            msg_id=msg_id)
        counts["requests"] += 1
        if rng.random() < cancel_share:
            client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
        task = asyncio.ensure_future(asyncio.wait_for(future, 120))
        prefix = doc.text[:cursor]
        line_end = doc.text.find("\n", cursor)
        rest = doc.text[cursor : len(doc.text) if line_end < 0 else line_end].rstrip("\r")
        task.add_done_callback(functools.partial(judge, i, doc.uri, prefix, rest))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        if len(inflight) >= max_inflight:
            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        if i % sample_every == 0 or i == warmup:
            await sample(i)
        next_at += interval_ms / 1000
        if rng.random() < pause_share:  # reading the suggestion: the model gets to answer
            next_at += pause_ms / 1000
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    if inflight:
        await asyncio.wait(inflight)
    if samples[-1]["request"] != requests:
        await sample(requests)
    stats = await client.protocol.send_request_async("ghostfill/stats", None)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    if standin is not None:
        standin.__exit__(None, None, None)
    report: dict[str, Any] = {
        "engine": {"local": "the real default model in the server process (llama.cpp)",
                   "remote": "the real default model in llama_cpp.server (second process)",
                   "standin": "stand-in serving engine (bench/standin_engine.py), not a model",
                   }[engine],
        "model": plain(stats).get("model"),
        "files": [str(p) for p in paths],
        "settings": {"requests": requests, "cancel_share": cancel_share,
                     "max_inflight": max_inflight, "interval_ms": interval_ms, "seed": seed,
                     "pause_share": pause_share, "pause_ms": pause_ms,
                     "jump_share": jump_share, "budget_ms": budget_ms,
                     "warmup": warmup, "sample_every": sample_every, "server_path": server_path},
        "counts": counts,
        "error_samples": error_samples,
        "mismatches": mismatches,
        "wall_s": round(time.monotonic() - started, 1),
        "server_stats": plain(stats),
        "memory": {name: memory_summary(samples, f"{name}_rss_kb", warmup, requests)
                   for name in pids},
        "held_final": samples[-1].get("held"),
        "held_max": {key: max((s["held"] or {}).get(key, 0) for s in samples)
                     for key in (samples[-1].get("held") or {})},
        "threads": {name: {"after_warmup": at(samples, warmup)[f"{name}_threads"],
                           "final": samples[-1][f"{name}_threads"],
                           "max": max(s[f"{name}_threads"] for s in samples)}
                    for name in pids},
        "samples": samples,
    }
    return report


def at(samples: list[dict[str, Any]], request: int) -> dict[str, Any]:
    """The first sample taken at or after `request`."""
    return next((s for s in samples if s["request"] >= request), samples[-1])


def memory_summary(samples: list[dict[str, Any]], key: str, warmup: int,
                   requests: int) -> dict[str, float]:
    mb = 1024
    warm, half, last = at(samples, warmup), at(samples, requests // 2), samples[-1]
    second = [s for s in samples if s["request"] >= requests // 2]
    return {
        "start_mb": round(samples[0][key] / mb, 1),
        "after_warmup_mb": round(warm[key] / mb, 1),
        "half_mb": round(half[key] / mb, 1),
        "final_mb": round(last[key] / mb, 1),
        "peak_mb": round(max(s[key] for s in samples) / mb, 1),
        "growth_after_warmup_mb": round((last[key] - warm[key]) / mb, 1),
        "growth_second_half_mb": round((last[key] - half[key]) / mb, 1),
        "slope_second_half_mb_per_1000": round(
            fit_slope([s["request"] for s in second], [s[key] / mb for s in second]) * 1000, 2),
    }


def plot(runs: dict[str, dict[str, Any]], path: Path) -> Path:
    """Resident memory against requests, one line per process and run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    styles = {"server": "-", "engine": "--"}
    for n, (name, report) in enumerate(runs.items()):
        color = f"C{n}"
        for proc in report["memory"]:
            xs = [s["request"] for s in report["samples"]]
            ys = [s[f"{proc}_rss_kb"] / 1024 for s in report["samples"]]
            m = report["memory"][proc]
            label = (f"{name}: {proc} (+{m['growth_after_warmup_mb']} MB after warm-up, "
                     f"+{m['growth_second_half_mb']} MB 2nd half)")
            ax.plot(xs, ys, styles.get(proc, ":"), color=color, label=label, linewidth=1.6)
    first = next(iter(runs.values()))
    ax.axvline(first["settings"]["warmup"], color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("requests")
    ax.set_ylabel("resident memory (MB)")
    s = first["settings"]
    ax.set_title(f"Soak — {first['engine']}\n{s['requests']:,} requests, an edit every "
                 f"{s['interval_ms']:g} ms, {100 * s['cancel_share']:.0f} % cancelled, "
                 f"≤ {s['max_inflight']} in flight", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def stop_engine(proc: Any) -> None:
    """End the engine process (uvicorn may take its time over a graceful shutdown)."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--engine", choices=["local", "remote"], default="local",
                        help="model in the server (default) or in llama_cpp.server")
    parser.add_argument("--engine-arg", action="append", default=[], dest="engine_args",
                        metavar="ARG", help="an argument for llama_cpp.server (repeatable), "
                        "e.g. --engine-arg=--logits_all --engine-arg=false")
    parser.add_argument("--standin", action="store_true",
                        help="a fast stand-in serving engine instead of a model "
                             "(protocol-only soak)")
    parser.add_argument("--cancel-share", type=float, default=0.3)
    parser.add_argument("--max-inflight", type=int, default=4)
    parser.add_argument("--interval-ms", type=float, default=30.0,
                        help="time between keystrokes (default 30)")
    parser.add_argument("--pause-share", type=float, default=0.05,
                        help="share of keystrokes followed by a pause (default 0.05)")
    parser.add_argument("--pause-ms", type=float, default=300.0,
                        help="length of such a pause (default 300 ms)")
    parser.add_argument("--jump-share", type=float, default=0.05,
                        help="share of keystrokes at a random line instead of the cursor "
                             "(default 0.05; 1 types at random lines only)")
    parser.add_argument("--budget-ms", type=float,
                        help="completion.latencyBudgetMs (default: the server's, 150; "
                             "1000 with --engine remote)")
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--warmup", type=int, help="requests before the baseline "
                        "(default: a tenth of the run, at most 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", action="append", type=Path, dest="files",
                        help="a file to open and edit (repeatable; default: typing.py, "
                             "functools.py, argparse.py from the standard library)")
    parser.add_argument("--server", action="append", default=[], metavar="NAME=DIR",
                        help="soak the ghostfill staged in DIR (see scripts/stage_revision.sh); "
                             "repeatable, runs one after the other")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    engine = "standin" if args.standin else args.engine
    variants = [tuple(v.split("=", 1)) for v in args.server] or [("installed", None)]
    runs: dict[str, dict[str, Any]] = {}
    proc = None
    url = None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m ghostfill.bench.soak " + " ".join(argv if argv is not None
                                                            else sys.argv[1:])
    stem = out / f"soak-{engine}-{time.strftime('%Y%m%d-%H%M%S')}"
    for name, path in variants:
        engine_pid = None
        if engine == "remote":
            from ghostfill.bench.remote_load import start_engine
            from ghostfill.models import resolve

            # A fresh engine per variant: each run measures its own engine process.
            proc, url = start_engine(resolve("gemma3-270m").path, out / "soak-engine.log",
                                     tuple(args.engine_args))
            engine_pid = proc.pid
        try:
            runs[name] = asyncio.run(soak(
                args.requests, engine=engine, cancel_share=args.cancel_share,
                max_inflight=args.max_inflight, interval_ms=args.interval_ms, seed=args.seed,
                sample_every=args.sample_every, warmup=args.warmup, files=args.files,
                server_path=path, engine_url=url, engine_pid=engine_pid,
                pause_share=args.pause_share, pause_ms=args.pause_ms,
                jump_share=args.jump_share, budget_ms=args.budget_ms))
        finally:
            if proc is not None:
                stop_engine(proc)
                proc = None
        # Written after every run: a later one that fails keeps the earlier ones.
        stem.with_suffix(".json").write_text(json.dumps({"command": command, "runs": runs},
                                                        indent=1))
    png = plot(runs, stem.with_suffix(".png"))
    for name, report in runs.items():
        brief = {k: v for k, v in report.items() if k not in ("samples", "server_stats")}
        print(json.dumps({"run": name, **brief}, indent=1))
    print(f"wrote {stem.with_suffix('.json')} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
