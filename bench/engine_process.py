"""The engine process (issue #17): what a keystroke pays to cross to it, what memory several
windows take with it, and how a server comes back when it dies. Three benchmarks:

`ipc`: a typing replay at the engine level (`CompletionEngine.complete` on lines of real
files, the prompt growing one character per step, so KV reuse acts as it does while typing),
the same keystroke run through the shared engine process and through an in-process backend
of the same model, interleaved A/B (alternating which goes first; machines drift). Per request:
wall time, and the backend's own time (its `Timings`, measured where the model runs). Then a
pure round trip: a `warm` of tokens the cache already holds (0 evaluated) and a 1-token
generation, in both modes. Goal: p50 of the per-keystroke difference <= 2 ms.

`memory`: three `ghostfill serve` processes over stdio (each with a document open and one
suggestion answered) and one `ghostfill complete` run use one engine; their memory (VmRSS and,
fairer for pages the servers share, PSS from /proc/PID/smaps_rollup) against one server with
`server.engine: inprocess` doing the same. Goal: total <= 1.3x the in-process server.

`recovery`: one `ghostfill serve` with a document open; N times (SIGKILL and SIGSEGV in turn)
an invoked suggestion that generates for a while is started and the engine is killed mid-way;
measured: the request in flight is answered (empty) and never hangs, the time until the server
shows a suggestion again (goal: within the model's load time, measured in the same run, + 2 s),
the window/showMessage messages per incident (goal: exactly one), the server's RSS after each
incident (goal: no growth) and that the server lives throughout.

Every run uses a private runtime folder for its engines (GHOSTFILL_RUNTIME_DIR) and stops
every engine it started. Results: bench/results/engine-<name>-<stamp>.json and .png.

    python -m ghostfill.bench.engine_process ipc --files 3 --lines 2
    python -m ghostfill.bench.engine_process memory
    python -m ghostfill.bench.engine_process recovery --incidents 20
    python -m ghostfill.bench.engine_process all
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.backends.base import (
    Backend,
    CancelToken,
    Generation,
    GenerationRequest,
    PromptParts,
)
from ghostfill.bench.latency import Span, erase, pct, pick_spans
from ghostfill.bench.results import write_results
from ghostfill.completion.tokenizer import Tokenizer

#: The issue's goals.
IPC_P50_GOAL_MS = 2.0
MEMORY_RATIO_GOAL = 1.3
RECOVERY_MARGIN_S = 2.0

MODULE = "engine_process"


# -- shared helpers ---------------------------------------------------------------------
@contextlib.contextmanager
def private_runtime() -> Iterator[Path]:
    """A short private folder as GHOSTFILL_RUNTIME_DIR for everything started inside (this
    process's engines and those of the servers it starts, which inherit the environment);
    every engine found there is stopped at the end, and the folder removed."""
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_place import all_places, engine_alive, engine_pid

    path = Path(tempfile.mkdtemp(prefix="gf-b-", dir="/tmp"))
    before = os.environ.get("GHOSTFILL_RUNTIME_DIR")
    os.environ["GHOSTFILL_RUNTIME_DIR"] = str(path)
    try:
        yield path
    finally:
        for place in all_places():
            pid = engine_pid(place)
            if not engine_control.stop(place, timeout=10.0) and pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if engine_alive(place):
                print(f"warning: the engine at {place.socket} did not stop", file=sys.stderr)
        if before is None:
            os.environ.pop("GHOSTFILL_RUNTIME_DIR", None)
        else:
            os.environ["GHOSTFILL_RUNTIME_DIR"] = before
        shutil.rmtree(path, ignore_errors=True)


def _proc_fields(path: str) -> dict[str, int]:
    """`Name:   123 kB` lines of a /proc file, in kB ({} when it cannot be read)."""
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[name] = int(parts[0])
    except (OSError, ValueError):
        return {}
    return out


def proc_memory(pid: int) -> dict[str, Any]:
    """A process's memory in MiB: VmRSS, its anonymous and file-backed parts, and VmHWM
    (/proc/PID/status), and PSS (proportional: a page shared by N processes counts 1/N in
    each; other processes mapping the same files, such as another user of the model, lower
    it) with its anonymous and file parts (/proc/PID/smaps_rollup) where readable; None for
    what could not be read."""
    status = _proc_fields(f"/proc/{pid}/status")
    rollup = _proc_fields(f"/proc/{pid}/smaps_rollup")

    def mib(values: dict[str, int], key: str) -> float | None:
        return round(values[key] / 1024, 1) if key in values else None

    return {"pid": pid, "rss_mib": mib(status, "VmRSS"), "hwm_mib": mib(status, "VmHWM"),
            "rss_anon_mib": mib(status, "RssAnon"), "rss_file_mib": mib(status, "RssFile"),
            "rss_shmem_mib": mib(status, "RssShmem"), "pss_mib": mib(rollup, "Pss"),
            "pss_anon_mib": mib(rollup, "Pss_Anon"), "pss_file_mib": mib(rollup, "Pss_File")}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (/proc/PID/stat), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def spread(values: list[float], digits: int = 2) -> dict[str, Any]:
    """p50/p95/mean/min/max of `values` (nearest rank, as the typing replay)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(pct(values, 50), digits),
            "p95_ms": round(pct(values, 95), digits),
            "mean_ms": round(statistics.fmean(values), digits),
            "min_ms": round(min(values), digits), "max_ms": round(max(values), digits)}


def machine() -> dict[str, Any]:
    """The machine and the code a run measured: the commit, the files that differed from it
    (others' work in progress changes what a run measures) and where the backends were
    loaded from."""
    import ghostfill.backends

    here = Path(ghostfill.backends.__file__ or ".").resolve().parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True,
                                  timeout=30, check=False).stdout
        except OSError:
            return ""

    return {"cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0], "code": str(here.parent),
            "commit": git("rev-parse", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--porcelain",
                                                  "--untracked-files=no").splitlines()]}


def slope(ys: list[float]) -> float:
    """Least-squares slope of `ys` against 0, 1, 2, ... (0 with fewer than two points)."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, statistics.fmean(ys)
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum(
        (i - mx) ** 2 for i in range(n))


# -- a language server over stdio -------------------------------------------------------
class LspServer:
    """`ghostfill serve` over stdio driven synchronously, as tests/sync_client.py does (the
    pygls client's loop runs on a thread), keeping every window/showMessage and logMessage
    with the time it arrived."""

    def __init__(self, settings: dict[str, Any], *, cwd: str | None = None) -> None:
        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        self.types = types
        self.started = time.monotonic()
        self.messages: list[tuple[float, int, str]] = []
        self.logs: list[tuple[float, str]] = []
        self.stderr = bytearray()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="bench-lsp-client")
        self._thread.start()
        client = LanguageClient("ghostfill-bench", "1")

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            self.messages.append((time.monotonic(), int(params.type), params.message))

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log(params: types.LogMessageParams) -> None:
            self.logs.append((time.monotonic(), params.message))

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: Any) -> None:
            return None

        @client.feature(types.PROGRESS)
        def progress(params: Any) -> None:
            pass

        self.client = client
        self.call(lambda: client.start_io(sys.executable, "-m", "ghostfill", "serve", cwd=cwd))
        self.process = client._server
        assert self.process is not None
        self.pid: int = self.process.pid
        asyncio.run_coroutine_threadsafe(self._read_stderr(), self._loop)
        self.call(lambda: client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options=settings)))
        self._loop.call_soon_threadsafe(client.initialized, types.InitializedParams())

    async def _read_stderr(self) -> None:
        """Keep the server's stderr drained (a full pipe blocks a writer); its tail is kept."""
        stream = self.process.stderr if self.process is not None else None
        while stream is not None and (chunk := await stream.read(65536)):
            self.stderr += chunk
            del self.stderr[:-65536]

    def submit(self, make: Callable[[], Any]) -> Future[Any]:
        async def wait() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(wait(), self._loop)

    def call(self, make: Callable[[], Any], timeout: float = 300) -> Any:
        return self.submit(make).result(timeout)

    def request(self, method: str, params: Any, timeout: float = 60) -> Any:
        from ghostfill.lsp.protocol import plain

        return plain(self.call(lambda: self.client.protocol.send_request_async(method, params),
                               timeout))

    def stats(self) -> dict[str, Any]:
        return dict(self.request("ghostfill/stats", None))

    def engine_pid(self) -> int | None:
        pid = (self.stats().get("options") or {}).get("engine_pid")
        return pid if isinstance(pid, int) else None

    def open(self, uri: str, text: str, language: str = "python") -> None:
        t = self.types
        params = t.DidOpenTextDocumentParams(text_document=t.TextDocumentItem(
            uri=uri, language_id=language, version=1, text=text))
        self._loop.call_soon_threadsafe(self.client.text_document_did_open, params)

    def inline_future(self, uri: str, line: int, character: int,
                      invoked: bool = True) -> Future[Any]:
        t = self.types
        kind = (t.InlineCompletionTriggerKind.Invoked if invoked
                else t.InlineCompletionTriggerKind.Automatic)
        params = t.InlineCompletionParams(
            text_document=t.TextDocumentIdentifier(uri=uri),
            position=t.Position(line=line, character=character),
            context=t.InlineCompletionContext(trigger_kind=kind))
        return self.submit(lambda: self.client.text_document_inline_completion_async(params))

    def inline(self, uri: str, line: int, character: int, invoked: bool = True,
               timeout: float = 300) -> str:
        """The first item's text ("" when none came)."""
        return first_text(self.inline_future(uri, line, character, invoked).result(timeout))

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None and \
            os.path.exists(f"/proc/{self.pid}")

    def stop(self) -> None:
        try:
            self.call(lambda: self.client.shutdown_async(None), timeout=30)
            self._loop.call_soon_threadsafe(self.client.exit, None)
            self.call(self.client.stop, timeout=30)
        except Exception:  # a server that does not answer is killed
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def first_text(result: Any) -> str:
    """The first inline completion item's text, from a list or an InlineCompletionList."""
    items = getattr(result, "items", result) or []
    if not items:
        return ""
    text = items[0].insert_text
    return text if isinstance(text, str) else str(getattr(text, "value", ""))


def _model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model settings every process of a run gets (the same ones: the engine is shared
    by clients whose model settings are equal)."""
    out: dict[str, Any] = {"name": args.model}
    if args.context_length:
        out["contextLength"] = args.context_length
    if args.threads:
        out["threads"] = args.threads
    return out


# -- ipc --------------------------------------------------------------------------------
class Recorder:
    """A backend seen through a stopwatch: every `generate` call's wall time here and the
    backend's own time (its Timings: `total_ms - queued_ms`, the model under its lock, as
    measured where the model runs), summed per keystroke (`take`)."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self.calls = 0
        self.wall_ms = 0.0
        self.model_ms = 0.0
        self.evaluated = 0
        self.reused = 0
        self.generated = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    @property
    def context_length(self) -> int:
        return self.inner.context_length

    @property
    def resumable(self) -> bool:
        return self.inner.resumable

    def probe(self) -> dict[str, object]:
        return self.inner.probe()

    def options(self) -> dict[str, object]:
        return self.inner.options()

    def warm(self, tokens: list[int], cancel: CancelToken | None = None,
             document: str | None = None) -> int:
        return self.inner.warm(tokens, cancel, document)

    def score(self, prompt: list[int], continuations: list[list[int]], *,
              document: str | None = None,
              cancel: CancelToken | None = None) -> list[float] | None:
        return self.inner.score(prompt, continuations, document=document, cancel=cancel)

    def close(self) -> None:
        self.inner.close()

    def generate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        generation = self.inner.generate(request)
        self.wall_ms += (time.perf_counter() - started) * 1000
        t = generation.timings
        self.calls += 1
        self.model_ms += max(0.0, t.total_ms - t.queued_ms)
        self.evaluated += t.evaluated_tokens
        self.reused += t.reused_tokens
        self.generated += t.generated_tokens
        return generation

    def take(self) -> dict[str, Any]:
        out = {"calls": self.calls, "backend_wall_ms": round(self.wall_ms, 3),
               "model_ms": round(self.model_ms, 3), "evaluated_tokens": self.evaluated,
               "reused_tokens": self.reused, "generated_tokens": self.generated}
        self.calls, self.wall_ms, self.model_ms = 0, 0.0, 0.0
        self.evaluated = self.reused = self.generated = 0
        return out


MODES = ("engine", "inprocess")


def run_ipc(args: argparse.Namespace) -> dict[str, Any]:
    from ghostfill.backends.factory import create_backend
    from ghostfill.completion.context import WindowAnchor
    from ghostfill.completion.snapshot import CompletionInput
    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine

    spans = pick_spans(args.files, args.lines, args.seed)
    if not spans:
        raise SystemExit("no lines to type: the standard library's files were not found")
    settings = {"model": _model_settings(args),
                "completion": {"maxTokens": args.max_tokens}}
    engines: dict[str, CompletionEngine] = {}
    recorders: dict[str, Recorder] = {}
    load_s: dict[str, float] = {}
    keystrokes: list[dict[str, Any]] = []
    trips: dict[str, list[dict[str, Any]]] = {}
    with private_runtime():
        try:
            for mode, engine_mode in (("engine", "shared"), ("inprocess", "inprocess")):
                config = Config().updated({**settings, "server": {"engine": engine_mode}})
                started = time.monotonic()
                recorders[mode] = Recorder(create_backend(config))
                load_s[mode] = round(time.monotonic() - started, 2)
                engines[mode] = CompletionEngine(config, recorders[mode])
            n = 0
            total = sum(len(s.erased[: args.chars] if args.chars else s.erased) for s in spans)
            for span in spans:
                base = erase(span.path.read_text(), span)
                rows = base.split("\n")
                offset = sum(len(r) + 1 for r in rows[: span.line]) + span.column
                anchors = {m: WindowAnchor() for m in MODES}
                typed_line = span.erased[: args.chars] if args.chars else span.erased
                # The cold window (opening the file) is not typing: run, not measured.
                for m in MODES:
                    engines[m].complete(CompletionInput.of_text(
                        base, offset, path=str(span.path), anchor=anchors[m]),
                        deadline=time.monotonic() + 120)
                    recorders[m].take()
                for typed in range(1, len(typed_line) + 1):
                    text = base[:offset] + span.erased[:typed] + base[offset:]
                    order = MODES if n % 2 == 0 else MODES[::-1]
                    record: dict[str, Any] = {"n": n, "file": span.path.name,
                                              "line": span.line + 1, "typed": typed,
                                              "first": order[0]}
                    for m in order:
                        source = CompletionInput.of_text(text, offset + typed,
                                                         path=str(span.path),
                                                         anchor=anchors[m])
                        created = time.monotonic()
                        started = time.perf_counter()
                        # No budget cut: both modes generate the same tokens, so the
                        # difference is what the crossing costs.
                        result = engines[m].complete(source, created=created,
                                                     deadline=created + 120)
                        wall = (time.perf_counter() - started) * 1000
                        record[m] = {"wall_ms": round(wall, 3), **recorders[m].take(),
                                     "text": result.text, "stop_reason": result.stop_reason}
                    keystrokes.append(record)
                    n += 1
                    if n % 20 == 0 or n == total:
                        print(f"ipc: {n}/{total} keystrokes", file=sys.stderr, flush=True)
            trips = _round_trips(recorders, spans[0], args.roundtrips, args.pings)
            options = {m: engines[m].describe().options for m in MODES}
        finally:
            for recorder in recorders.values():
                recorder.close()
    return {
        "benchmark": "engine-ipc",
        "goal": {"p50_overhead_ms_max": IPC_P50_GOAL_MS},
        "settings": {"model": args.model, "context_length": args.context_length,
                     "threads": args.threads,
                     "max_tokens": args.max_tokens, "files": args.files,
                     "lines": args.lines, "chars": args.chars, "seed": args.seed,
                     "roundtrips": args.roundtrips, "pings": args.pings},
        "machine": machine(),
        "load_s": load_s,
        "options": {m: {k: v for k, v in o.items() if isinstance(v, str | int | float | bool)}
                    for m, o in options.items()},
        "spans": [{"file": s.path.name, "line": s.line + 1, "text": s.erased} for s in spans],
        "keystrokes": keystrokes,
        "roundtrips": trips,
        **summarize_ipc(keystrokes, trips),
    }


def _round_trips(backends: dict[str, Recorder], span: Span, rounds: int,
                 pings: int) -> dict[str, list[dict[str, Any]]]:
    """The crossing alone, interleaved as the keystrokes: `pings` times a warm of no tokens
    (the request and its answer, no model: what the crossing costs), and `rounds` times a warm
    of tokens the document's cache slot already holds (the backend evaluates the last one
    again, for its logits) and a 1-token generation of that cached prompt (whose own
    Timings separate the model's time from the crossing)."""
    tokenizer = backends["engine"].tokenizer
    ids = tokenizer.encode(span.path.read_text()[:1500])
    if tokenizer.add_bos and tokenizer.bos_id is not None:
        ids = [tokenizer.bos_id, *ids]
    document = "/ghostfill-bench/round-trip.py"
    for m in MODES:
        backends[m].warm(ids, None, document)
    out: dict[str, list[dict[str, Any]]] = {"empty": [], "warm": [], "generate1": []}
    for i in range(pings):
        order = MODES if i % 2 == 0 else MODES[::-1]
        row: dict[str, Any] = {"n": i, "first": order[0]}
        for m in order:
            started = time.perf_counter()
            backends[m].warm([], None, document)
            row[m] = {"wall_ms": round((time.perf_counter() - started) * 1000, 4)}
        out["empty"].append(row)
    for i in range(rounds):
        order = MODES if i % 2 == 0 else MODES[::-1]
        warm: dict[str, Any] = {"n": i, "first": order[0]}
        one: dict[str, Any] = {"n": i, "first": order[0]}
        for m in order:
            started = time.perf_counter()
            evaluated = backends[m].warm(ids, None, document)
            warm[m] = {"wall_ms": round((time.perf_counter() - started) * 1000, 3),
                       "evaluated_tokens": evaluated}
        for m in order:
            request = GenerationRequest(PromptParts(tokens=list(ids), document=document),
                                        max_tokens=1)
            started = time.perf_counter()
            backends[m].generate(request)
            wall = (time.perf_counter() - started) * 1000
            one[m] = {"wall_ms": round(wall, 3), **backends[m].take()}
        out["warm"].append(warm)
        out["generate1"].append(one)
    return out


def summarize_ipc(keystrokes: list[dict[str, Any]],
                  trips: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The figures, from the records alone (a run's JSON can be summarized again)."""
    per_mode: dict[str, Any] = {}
    for m in MODES:
        walls = [k[m]["wall_ms"] for k in keystrokes]
        models = [k[m]["model_ms"] for k in keystrokes]
        outside = [k[m]["wall_ms"] - k[m]["model_ms"] for k in keystrokes]
        per_mode[m] = {"wall": spread(walls), "model": spread(models),
                       "outside_model": spread(outside),
                       "evaluated_tokens_mean": round(statistics.fmean(
                           [k[m]["evaluated_tokens"] for k in keystrokes]), 1)
                       if keystrokes else None}
    diff = [k["engine"]["wall_ms"] - k["inprocess"]["wall_ms"] for k in keystrokes]
    diff_outside = [(k["engine"]["wall_ms"] - k["engine"]["model_ms"])
                    - (k["inprocess"]["wall_ms"] - k["inprocess"]["model_ms"])
                    for k in keystrokes]
    same = sum(k["engine"]["text"] == k["inprocess"]["text"] for k in keystrokes)
    trip_summary: dict[str, Any] = {}
    for kind, rows in trips.items():
        trip_summary[kind] = {
            **{m: spread([r[m]["wall_ms"] for r in rows], 3) for m in MODES},
            "diff": spread([r["engine"]["wall_ms"] - r["inprocess"]["wall_ms"] for r in rows],
                           3)}
        if rows and "model_ms" in rows[0]["engine"]:
            rest = {m: [r[m]["wall_ms"] - r[m]["model_ms"] for r in rows] for m in MODES}
            trip_summary[kind]["outside_model"] = {m: spread(rest[m], 3) for m in MODES}
            trip_summary[kind]["outside_model_diff"] = spread(
                [a - b for a, b in zip(rest["engine"], rest["inprocess"], strict=True)], 3)
    summary = {"keystrokes": len(keystrokes), **per_mode,
               "paired_diff": spread(diff), "paired_diff_outside_model": spread(diff_outside),
               "same_text_share": round(same / len(keystrokes), 3) if keystrokes else None,
               "roundtrip": trip_summary}
    p50 = summary["paired_diff"].get("p50_ms")
    p50_outside = summary["paired_diff_outside_model"].get("p50_ms")
    ping = trip_summary.get("empty", {}).get("diff", {}).get("p50_ms")
    goals = {"p50_overhead_le_2ms": p50 is not None and p50 <= IPC_P50_GOAL_MS,
             "p50_overhead_outside_model_le_2ms": p50_outside is not None
             and p50_outside <= IPC_P50_GOAL_MS,
             "p50_round_trip_le_2ms": ping is not None and ping <= IPC_P50_GOAL_MS}
    return {"summary": summary, "goals": goals}


# -- memory -----------------------------------------------------------------------------
def _doc_position(span: Span) -> tuple[str, int, int]:
    """The file with the span's line erased, and the cursor (0-based line, column)."""
    return erase(span.path.read_text(), span), span.line, span.column


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_place import EnginePlace, all_places, engine_alive
    from ghostfill.config import Config

    spans = pick_spans(args.servers + 1, 1, args.seed)
    if len(spans) < args.servers + 1:
        raise SystemExit("not enough standard library files for the documents")
    base = {"model": _model_settings(args), "completion": {"maxTokens": args.max_tokens},
            "server": {"debounceMs": 0}}
    config = Config().updated({"model": base["model"]})
    shared: dict[str, Any] = {}
    inproc: dict[str, Any] = {}
    with private_runtime() as runtime:
        place = EnginePlace.for_config(config)
        servers: list[LspServer] = []
        try:
            suggestions = []
            for i in range(args.servers):
                server = LspServer(base, cwd=str(runtime))
                servers.append(server)
                text, line, col = _doc_position(spans[i])
                uri = f"file://{spans[i].path}"
                server.open(uri, text)
                started = time.monotonic()
                answer = server.inline(uri, line, col, invoked=True)
                suggestions.append({"server": i + 1, "file": spans[i].path.name,
                                    "text": answer, "ms": round(
                                        (time.monotonic() - started) * 1000, 1)})
            shared["suggestions"] = suggestions
            shared["complete"] = _complete_run(args, spans[args.servers], runtime, place)
            time.sleep(args.settle_s)
            live = [p for p in all_places() if engine_alive(p)]
            info = engine_control.status(place)
            shared["engines"] = len(live)
            shared["engine_clients"] = len(info.get("clients") or [])
            shared["engine_served"] = info.get("served")
            processes = [{"role": f"server {i + 1}", **proc_memory(s.pid)}
                         for i, s in enumerate(servers)]
            engine_pid = info.get("pid")
            if isinstance(engine_pid, int):
                processes.append({"role": "engine", **proc_memory(engine_pid)})
            shared["processes"] = processes
        finally:
            for server in servers:
                server.stop()
            engine_control.stop(place, timeout=10.0)
        settings = {**base, "server": {**base["server"], "engine": "inprocess"}}
        server = LspServer(settings, cwd=str(runtime))
        try:
            text, line, col = _doc_position(spans[0])
            uri = f"file://{spans[0].path}"
            server.open(uri, text)
            started = time.monotonic()
            answer = server.inline(uri, line, col, invoked=True)
            inproc["suggestions"] = [{"server": 1, "file": spans[0].path.name, "text": answer,
                                      "ms": round((time.monotonic() - started) * 1000, 1)}]
            time.sleep(args.settle_s)
            inproc["processes"] = [{"role": "in-process server", **proc_memory(server.pid)}]
            inproc["engines"] = len([p for p in all_places() if engine_alive(p)])
        finally:
            server.stop()
    return {
        "benchmark": "engine-memory",
        "goal": {"ratio_max": MEMORY_RATIO_GOAL},
        "settings": {"model": args.model, "context_length": args.context_length,
                     "threads": args.threads,
                     "servers": args.servers,
                     "max_tokens": args.max_tokens, "seed": args.seed,
                     "settle_s": args.settle_s},
        "machine": machine(),
        "files": [{"file": s.path.name, "line": s.line + 1} for s in spans],
        "shared": shared,
        "inprocess": inproc,
        **summarize_memory(shared, inproc, args.servers),
    }


def _complete_run(args: argparse.Namespace, span: Span, runtime: Path,
                  place: Any) -> dict[str, Any]:
    """`ghostfill complete` on one more file, while the servers run: it must use their
    engine. Its memory is sampled while it runs (it exits, so it is not in the total); the
    engine's client count is watched meanwhile."""
    from ghostfill.backends import engine_control

    text, line, col = _doc_position(span)
    path = runtime / f"complete-{span.path.name}"
    path.write_text(text)
    served_before = engine_control.status(place).get("served")
    settings = runtime / "complete-settings.json"
    settings.write_text(json.dumps({"model": _model_settings(args)}))
    command = [sys.executable, "-m", "ghostfill", "complete", f"{path}:{line + 1}:{col + 1}",
               "--json", "--config", str(settings), "--max-tokens", str(args.max_tokens)]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=str(runtime))
    peak: dict[str, Any] = {}
    clients_max = 0
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(process.communicate(timeout=300)[0]),
                              daemon=True)
    reader.start()
    while process.poll() is None:
        sample = proc_memory(process.pid)
        if sample["hwm_mib"] is not None:
            peak = sample
        clients_max = max(clients_max, len(engine_control.status(place).get("clients") or []))
        time.sleep(0.1)
    reader.join(30)
    wall = time.monotonic() - started
    try:
        result = json.loads(out[0]) if out else {}
    except ValueError:
        result = {}
    return {"command": " ".join(command[1:]), "returncode": process.returncode,
            "wall_s": round(wall, 2), "text": result.get("text"),
            "peak_rss_mib": peak.get("hwm_mib"), "engine_clients_max": clients_max,
            "engine_served_before": served_before,
            "engine_served_after": engine_control.status(place).get("served")}


def summarize_memory(shared: dict[str, Any], inproc: dict[str, Any],
                     servers: int) -> dict[str, Any]:
    def total(processes: list[dict[str, Any]], key: str) -> float | None:
        values = [p.get(key) for p in processes]
        if not values or any(v is None for v in values):
            return None
        return round(sum(float(v) for v in values if v is not None), 1)

    out: dict[str, Any] = {"totals": {}}
    for key in ("rss_mib", "pss_mib", "rss_anon_mib"):
        a = total(shared.get("processes") or [], key)
        b = total(inproc.get("processes") or [], key)
        out["totals"][key] = {"shared": a, "inprocess": b,
                              "ratio": round(a / b, 3) if a and b else None,
                              # What the same windows cost before #17: one in-process server
                              # each (an estimate: the measured server times the count).
                              "ratio_vs_inprocess_each": round(a / (servers * b), 3)
                              if a and b else None}
    complete = shared.get("complete") or {}
    rss, pss = out["totals"]["rss_mib"]["ratio"], out["totals"]["pss_mib"]["ratio"]
    out["goals"] = {
        "one_engine": shared.get("engines") == 1 and complete.get("returncode") == 0
        and (complete.get("engine_served_after") or 0)
        > (complete.get("engine_served_before") or 0),
        "rss_ratio_le_1_3": rss is not None and rss <= MEMORY_RATIO_GOAL,
        "pss_ratio_le_1_3": pss is not None and pss <= MEMORY_RATIO_GOAL,
    }
    return out


# -- recovery ---------------------------------------------------------------------------
#: The recovery document: a one-line answer (`return`, line 4) and a long one (the list).
RECOVERY_DOC = ("import math\n\n\n"
                "def area(radius):\n"
                "    return \n\n\n"
                "def numbers():\n"
                '    """The numbers from one to one hundred."""\n'
                "    return [\n"
                "        1,\n"
                "        2,\n"
                "        3,\n"
                "        ")
QUICK = (4, 11)
LONG = (13, 8)


@dataclass
class Incident:
    n: int
    signal: str
    engine_pid: int
    #: The long request was still unanswered when the signal went (it was generating).
    in_flight_at_kill: bool = False
    #: CPU seconds the engine spent between the request and the kill.
    engine_cpu_s: float | None = None
    answered: bool = False
    answer_text: str = ""
    answer_after_kill_ms: float | None = None
    #: Kill -> a non-empty suggestion answered again (None: not within the wait).
    served_again_s: float | None = None
    #: The requests asking for a suggestion again: [sent, answered] (seconds after the kill)
    #: and 1.0 for the one shown.
    polls: list[list[float]] = field(default_factory=list)
    new_engine_pid: int | None = None
    #: The supervisor's own figure, from its "engine is back ... X.Xs after" log line, and
    #: when that line reached the client (seconds after the kill).
    restored_after_s: float | None = None
    restored_logged_s: float | None = None
    messages: list[str] = field(default_factory=list)
    server_rss_mib: float | None = None
    server_alive: bool = True


def _load_time(config: Any) -> float:
    """A cold engine start for `config` (spawn, imports, model load, first decode: what a
    restart does), measured as a server's supervisor does it; the engine is stopped after."""
    from ghostfill.backends import engine_control
    from ghostfill.backends.engine_client import EngineSupervisor
    from ghostfill.backends.engine_place import EnginePlace

    supervisor = EngineSupervisor(config, private=False)
    started = time.monotonic()
    supervisor.start()
    elapsed = time.monotonic() - started
    supervisor.close()
    engine_control.stop(EnginePlace.for_config(config), timeout=10.0)
    return round(elapsed, 2)


def run_recovery(args: argparse.Namespace) -> dict[str, Any]:
    from ghostfill.config import Config

    settings = {"model": _model_settings(args),
                "completion": {"maxTokens": args.long_tokens},
                # No suggestion cache and no prefetch: every answer counted comes from a model.
                "server": {"debounceMs": 0, "cacheSize": 0, "prefetch": False}}
    config = Config().updated({"model": settings["model"]})
    kinds = [signal.SIGKILL, signal.SIGSEGV]
    incidents: list[Incident] = []
    kills: list[float] = []
    load_samples: list[float] = []
    core = resource.getrlimit(resource.RLIMIT_CORE)
    # A SIGSEGV'd engine must not leave core files behind (its children inherit this).
    resource.setrlimit(resource.RLIMIT_CORE, (0, core[1]))
    first_serve_s = None
    alive_throughout = True
    try:
        with private_runtime() as runtime:
            load_samples.append(_load_time(config))
            server = LspServer(settings, cwd=str(runtime))
            uri = f"file://{runtime}/recovery.py"
            try:
                server.open(uri, RECOVERY_DOC)
                served, _ = _serve_again(server, uri, server.started, args.wait_s)
                first_serve_s = round(served - server.started, 2) if served else None
                for n in range(args.incidents):
                    incident, killed = _incident(server, uri, n, kinds[n % 2], args)
                    incidents.append(incident)
                    kills.append(killed)
                    alive_throughout = alive_throughout and incidents[-1].server_alive
                    print(json.dumps({k: v for k, v in asdict(incidents[-1]).items()
                                      if k not in ("answer_text", "polls")}), flush=True)
                time.sleep(args.settle_s)
                _assign_messages(server, incidents, kills)
                alive_throughout = alive_throughout and server.alive()
                stats = server.stats() if alive_throughout else {}
                stderr_tail = "" if alive_throughout else bytes(server.stderr[-4000:]).decode(
                    errors="replace")
            finally:
                server.stop()
            from ghostfill.backends import engine_control
            from ghostfill.backends.engine_place import EnginePlace

            engine_control.stop(EnginePlace.for_config(config), timeout=10.0)
            load_samples.append(_load_time(config))
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, core)
    return {
        "benchmark": "engine-recovery",
        "goal": {"served_again_within_load_plus_s": RECOVERY_MARGIN_S,
                 "messages_per_incident": 1},
        "settings": {"model": args.model, "context_length": args.context_length,
                     "threads": args.threads,
                     "incidents": args.incidents,
                     "kill_after_s": args.kill_after_s, "long_tokens": args.long_tokens,
                     "wait_s": args.wait_s},
        "machine": machine(),
        "load_s": load_samples,
        "first_serve_s": first_serve_s,
        "server_engine_stats": stats.get("engine"),
        "server_alive_throughout": alive_throughout,
        "server_stderr_tail": stderr_tail,
        "incidents": [asdict(i) for i in incidents],
        **summarize_recovery([asdict(i) for i in incidents], load_samples, alive_throughout),
    }


def _serve_again(server: LspServer, uri: str, since: float,
                 wait_s: float) -> tuple[float | None, list[list[float]]]:
    """Ask for the one-line suggestion until one comes; (when it came, and each request as
    [sent, answered] in seconds from `since`, plus 1 when it was shown)."""
    polls: list[list[float]] = []
    end = since + wait_s
    while time.monotonic() < end:
        sent = time.monotonic()
        text = server.inline(uri, *QUICK, invoked=True, timeout=max(1.0, end - time.monotonic()))
        now = time.monotonic()
        polls.append([round(sent - since, 3), round(now - since, 3), float(bool(text.strip()))])
        if text.strip():
            return now, polls
        time.sleep(0.05)
    return None, polls


def _incident(server: LspServer, uri: str, n: int, sig: signal.Signals,
              args: argparse.Namespace) -> tuple[Incident, float]:
    """One kill mid-generation and the way back; also when the signal went (monotonic)."""
    pid = None
    end = time.monotonic() + args.wait_s
    while pid is None and time.monotonic() < end:
        pid = server.engine_pid()
        if pid is None:
            time.sleep(0.1)
    if pid is None:
        raise RuntimeError("the server has no engine to kill")
    incident = Incident(n + 1, sig.name, pid)
    cpu0 = cpu_seconds(pid)
    pending = server.inline_future(uri, *LONG, invoked=True)
    time.sleep(args.kill_after_s)
    incident.in_flight_at_kill = not pending.done()
    cpu1 = cpu_seconds(pid)
    if cpu0 is not None and cpu1 is not None:
        incident.engine_cpu_s = round(cpu1 - cpu0, 3)
    killed = time.monotonic()
    os.kill(pid, sig)
    try:
        incident.answer_text = first_text(pending.result(args.hang_s))
        incident.answered = True
        incident.answer_after_kill_ms = round((time.monotonic() - killed) * 1000, 1)
    except Exception:  # a hang (or the client lost the server): recorded, not raised
        incident.answered = False
    served, incident.polls = _serve_again(server, uri, killed, args.wait_s)
    incident.served_again_s = round(served - killed, 3) if served is not None else None
    incident.new_engine_pid = server.engine_pid() if server.alive() else None
    for when, line in server.logs:
        m = re.search(r"engine is back \(pid \d+, ([\d.]+)s after", line)
        if when >= killed and m:
            incident.restored_after_s = float(m.group(1))
            incident.restored_logged_s = round(when - killed, 3)
    incident.server_rss_mib = proc_memory(server.pid)["rss_mib"]
    incident.server_alive = server.alive()
    return incident, killed


def _assign_messages(server: LspServer, incidents: list[Incident], kills: list[float]) -> None:
    """Each window/showMessage to the incident whose kill came last before it."""
    for when, _type, message in server.messages:
        owner = None
        for i, killed in enumerate(kills):
            if when >= killed:
                owner = i
        if owner is not None:
            incidents[owner].messages.append(message)


def _p50(values: list[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(pct(present, 50), 3) if present else None


def summarize_recovery(incidents: list[dict[str, Any]], load_samples: list[float],
                       alive: bool) -> dict[str, Any]:
    load = statistics.fmean(load_samples) if load_samples else None
    served = [i["served_again_s"] for i in incidents]
    limit = load + RECOVERY_MARGIN_S if load is not None else None
    within = [s is not None and limit is not None and s <= limit for s in served]
    rss = [i["server_rss_mib"] for i in incidents if i["server_rss_mib"] is not None]
    counts = [len(i["messages"]) for i in incidents]
    answered = [i for i in incidents if i["answered"]]
    summary = {
        "incidents": len(incidents),
        "by_signal": {s: sum(i["signal"] == s for i in incidents)
                      for s in sorted({i["signal"] for i in incidents})},
        "in_flight_at_kill": sum(i["in_flight_at_kill"] for i in incidents),
        "answered": len(answered),
        "answered_empty": sum(not i["answer_text"].strip() for i in answered),
        "hangs": len(incidents) - len(answered),
        "answer_after_kill_ms_max": max((i["answer_after_kill_ms"] for i in answered),
                                        default=None),
        "load_s_mean": round(load, 2) if load is not None else None,
        "limit_s": round(limit, 2) if limit is not None else None,
        "served_again_s": {"p50": _p50(served),
                           "max": max((s for s in served if s is not None), default=None),
                           "never": sum(s is None for s in served)},
        "served_again_within_limit": sum(within),
        # The two parts of the way back: kill -> the supervisor's "engine is back" (restart:
        # spawn, load, first decode) and from there to the first suggestion (the window read
        # again into a new, empty cache, behind the server's warm of the open document).
        "restored_logged_s": {"p50": _p50([i["restored_logged_s"] for i in incidents]),
                              "max": max((i["restored_logged_s"] for i in incidents
                                          if i["restored_logged_s"] is not None), default=None)},
        "restored_within_limit": sum(i["restored_logged_s"] is not None and limit is not None
                                     and i["restored_logged_s"] <= limit for i in incidents),
        "after_restore_to_suggestion_s": {"p50": _p50(
            [i["served_again_s"] - i["restored_logged_s"] for i in incidents
             if i["served_again_s"] is not None and i["restored_logged_s"] is not None])},
        "messages_per_incident": counts,
        "incidents_with_exactly_one_message": sum(c == 1 for c in counts),
        "server_rss_mib": {"first": rss[0] if rss else None, "last": rss[-1] if rss else None,
                           "slope_per_incident": round(slope(rss), 3)},
        "server_alive_throughout": alive,
    }
    goals = {
        "never_hangs_answers_empty": summary["hangs"] == 0
        and summary["answered_empty"] == len(incidents),
        "serves_again_within_load_plus_2s": bool(incidents) and all(within),
        "exactly_one_message_each": bool(incidents) and all(c == 1 for c in counts),
        # Growth: under 1 MiB per incident (allocator noise is below that).
        "rss_does_not_grow": abs(summary["server_rss_mib"]["slope_per_incident"]) < 1.0,
        "server_alive_throughout": alive,
    }
    return {"summary": summary, "goals": goals}


# -- command line -----------------------------------------------------------------------
def _plot(name: str, payload: dict[str, Any]) -> Callable[[Path], None]:
    def draw(path: Path) -> None:
        from ghostfill.bench import engine_plots

        getattr(engine_plots, f"plot_{name}")(payload, path)

    return draw


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ipc": run_ipc, "memory": run_memory, "recovery": run_recovery}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ghostfill.bench.engine_process",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=[*RUNNERS, "all"])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context-length", type=int, default=None, dest="context_length",
                        help="model.contextLength for every process (default: the model's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="model.threads for every process (default: the product's)")
    g = parser.add_argument_group("ipc")
    g.add_argument("--files", type=int, default=3, help="files typed in (default 3)")
    g.add_argument("--lines", type=int, default=2, help="lines typed per file (default 2)")
    g.add_argument("--chars", type=int, default=0,
                   help="characters typed per line (default 0: the whole line)")
    g.add_argument("--max-tokens", type=int, default=16, dest="max_tokens",
                   help="tokens per suggestion (ipc, memory; default 16)")
    g.add_argument("--roundtrips", type=int, default=100,
                   help="cached warms and 1-token generations per mode (default 100)")
    g.add_argument("--pings", type=int, default=1000,
                   help="empty round trips (a warm of no tokens) per mode (default 1000)")
    g = parser.add_argument_group("memory")
    g.add_argument("--servers", type=int, default=3, help="language servers (default 3)")
    g.add_argument("--settle-s", type=float, default=1.0, dest="settle_s",
                   help="pause before memory is read / messages counted (default 1)")
    g = parser.add_argument_group("recovery")
    g.add_argument("--incidents", type=int, default=20, help="kills (default 20)")
    g.add_argument("--kill-after-s", type=float, default=1.0, dest="kill_after_s",
                   help="seconds into the long suggestion the engine is killed (default 1)")
    g.add_argument("--long-tokens", type=int, default=256, dest="long_tokens",
                   help="completion.maxTokens for the long suggestion (default 256)")
    g.add_argument("--hang-s", type=float, default=60.0, dest="hang_s",
                   help="an answer later than this after the kill is a hang (default 60)")
    g.add_argument("--wait-s", type=float, default=180.0, dest="wait_s",
                   help="longest wait for a suggestion again (default 180)")
    args = parser.parse_args(argv)
    names = list(RUNNERS) if args.benchmark == "all" else [args.benchmark]
    for name in names:
        payload = RUNNERS[name](args)
        print(json.dumps({"benchmark": payload["benchmark"], "goals": payload["goals"],
                          "summary": payload.get("summary") or payload.get("totals")}),
              flush=True)
        write_results(args.out, f"engine-{name}", MODULE, argv, payload, _plot(name, payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
