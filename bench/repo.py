"""Repo-level benchmark: holes in real packages that need another file (issue #18).

Statement lines of real PyPI packages that use a name imported from another module of the
same package (CrossCodeEval's idea; `bench/repo_holes.py` finds and samples them) are erased
after their indentation, and the real `ghostfill serve` is asked, over stdio, for an invoked
inline completion at the start of the empty line (the latency budget does not decide what is
shown). The project's root folder is the workspace folder (`rootUri`, `workspaceFolders`); the
file with the hole is open, and, in the conditions with the ring, the module that defines the
imported name is open too (a user who just looked at it).

Conditions, the same holes side by side in one run:

- `off`: no cross-file context (`context.crossFile: false`), the same files open as in `both`;
- `ring`: the ring of open buffers only (`context.importDefinitions: false`), module open;
- `definitions`: definitions of imported names only (on), the module NOT open;
- `both`: the product's default, module open.

With `--servers per-hole` (the default) every hole gets fresh servers for the cross-file
conditions, so the ring holds only what that hole opened (closed documents' chunks stay in the
ring: a server kept across holes would give `definitions` the previous holes' files; `off`
keeps its server, it reads no ring); the model itself is loaded once, in a shared engine in a
private runtime folder, and stopped at the end.
`--servers per-condition` keeps one server per condition for the whole run (faster; the ring
then also holds earlier holes' files, as in a long editing session).

Scores of the answer's first line against the erased line (both stripped): exact match, edit
similarity (1 - Levenshtein distance / the longer length, as CodeXGLUE/ReACC), identifier
match (CrossCodeEval: the identifiers in order, exact, and their multiset F1) and whether the
imported name appears; latency from the request to its answer.

The model reads every prompt from scratch (`model.kvReuse: false`, `--kv-reuse on` to change
it): with reuse, a request continues from whatever prefix the shared engine cached for that
file (another condition's, an earlier hole's), and those other numerics flip a greedy token
now and then, so equal prompts got different answers in 5 of 24 holes. Off, equal prompts get
equal answers and the conditions differ only by their prompts; the prompt's size is recorded
per answer (`prompt_tokens`), which shows what cross-file context took.

Each finished hole is appended to a journal (`<out>/repo-<set>-<stamp>.jsonl`): `--resume`
with it asks only the holes not done, and since the sample of N holes is the first N of any
longer sample of the same seed, a run can be cut short or extended by `--holes`.

    python -m ghostfill.bench.repo --set report --holes 60 --threads 1
    ghostfill bench repo --set tune --holes 40 --servers per-condition
    ghostfill bench repo --set tune --settings '{"context": {"crossFileTokens": 512}}'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import keyword
import os
import re
import subprocess
import sys
import tempfile
import time
import tokenize
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.bench.latency import _merge, pct
from ghostfill.bench.repo_holes import (
    CACHE,
    PACKAGES,
    Hole,
    Project,
    erase,
    fetch,
    holes_in,
    sample,
)

#: Each condition: its initializationOptions (merged over the base settings) and whether the
#: module that defines the imported name is opened beside the file.
CONDITIONS: dict[str, tuple[dict[str, Any], bool]] = {
    "off": ({"context": {"crossFile": False}}, True),
    "ring": ({"context": {"crossFile": True, "importDefinitions": False}}, True),
    "definitions": ({"context": {"crossFile": True, "importDefinitions": True}}, False),
    "both": ({"context": {"crossFile": True, "importDefinitions": True}}, True),
}
#: The issue's goal: with cross-file context at least this many times the exact matches of
#: without, and never worse on edit similarity.
EXACT_RATIO_GOAL = 1.3
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- scores ----------------------------------------------------------------------------------
def first_line(answer: str) -> str:
    return answer.split("\n", 1)[0].strip()


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance. Written out (two rows of the usual DP) because difflib's
    `SequenceMatcher.ratio` is not an edit distance (it matches blocks, with a junk heuristic)
    and no Levenshtein package is a dependency; lines are short, so O(len a * len b) is
    nothing."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(answer: str, truth: str) -> float:
    """1 - Levenshtein distance / the longer length; 1.0 for two empty strings."""
    longest = max(len(answer), len(truth))
    return 1.0 if longest == 0 else 1.0 - levenshtein(answer, truth) / longest


def identifiers(line: str) -> list[str]:
    """The identifiers of a line of Python in order (keywords and string contents left out),
    from the tokenizer; a line cut short (an open bracket, an unterminated string) keeps the
    tokens read before the tokenizer gave up."""
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string):
                out.append(tok.string)
            elif tok.type == tokenize.ERRORTOKEN and tok.string.strip() in ("'", '"'):
                break  # an unterminated string: the rest is its content
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def identifier_scores(answer: str, truth: str) -> dict[str, float]:
    """CrossCodeEval's identifier exact match (the same identifiers in the same order) and the
    precision, recall and F1 of the answer's identifiers (as multisets) against the truth's."""
    got, want = identifiers(answer), identifiers(truth)
    common = sum((Counter(got) & Counter(want)).values())
    precision = common / len(got) if got else float(not want)
    recall = common / len(want) if want else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"identifier_em": float(got == want), "identifier_precision": precision,
            "identifier_recall": recall, "identifier_f1": f1}


def uses_name(answer: str, name: str) -> bool:
    """The imported name (possibly a module used as `m.attr`) appears as an identifier."""
    return name in identifiers(answer)


def score(answer: str, truth: str, name: str) -> dict[str, Any]:
    line = first_line(answer)
    want = truth.strip()
    return {"first_line": line, "exact": line == want,
            "edit_similarity": round(edit_similarity(line, want), 4),
            **{k: round(v, 4) for k, v in identifier_scores(line, want).items()},
            "name_used": uses_name(line, name)}


# -- one server -------------------------------------------------------------------------------
@dataclass
class Answer:
    text: str = ""
    source: str = ""
    latency_ms: float = 0.0
    error: str | None = None
    prompt_tokens: int = 0


class Server:
    """One `ghostfill serve` over stdio (a pygls client), with the project root as its
    workspace folder."""

    def __init__(self, settings: dict[str, Any], root: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.root = root
        self.env = env
        self.client: Any = None
        self.messages: list[str] = []
        self.ready_s: float | None = None

    async def start(self, wait_s: float) -> None:
        from lsprotocol import types
        from pygls.lsp.client import LanguageClient

        self.client = LanguageClient("ghostfill-bench-repo", "1")

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params: types.LogMessageParams) -> None:
            self.messages.append(params.message)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: Any) -> None:  # the model's load reports progress
            return None

        @self.client.feature(types.PROGRESS)
        def progress(params: Any) -> None:
            pass

        started = time.monotonic()
        await self.client.start_io(sys.executable, "-m", "ghostfill", "serve", env=self.env)
        uri = self.root.as_uri()
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=uri,
            workspace_folders=[types.WorkspaceFolder(uri=uri, name=self.root.name)],
            initialization_options=self.settings))
        self.client.initialized(types.InitializedParams())
        while True:  # the model (or the connection to the engine) is ready
            stats = await self.stats()
            if stats.get("state") != "loading":
                break
            if time.monotonic() - started > wait_s:
                raise RuntimeError(f"the server was still loading after {wait_s:g} s")
            await asyncio.sleep(0.1)
        if stats.get("error"):
            raise RuntimeError(f"the server could not load the model: {stats['error']}")
        self.ready_s = round(time.monotonic() - started, 2)

    async def tokens_read(self) -> int:
        """Prompt tokens of the server's model calls so far, evaluated or reused."""
        tokens = (await self.stats()).get("tokens", {})
        return int(tokens.get("evaluated", 0)) + int(tokens.get("reused", 0))

    async def stats(self) -> dict[str, Any]:
        from ghostfill.lsp.protocol import plain

        result = await self.client.protocol.send_request_async("ghostfill/stats", None)
        return dict(plain(result))

    def open(self, path: Path, text: str) -> str:
        from lsprotocol import types

        uri = path.as_uri()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))
        return uri

    def close(self, uri: str) -> None:
        from lsprotocol import types

        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    async def complete(self, uri: str, line: int, column: int, timeout_s: float) -> Answer:
        """An invoked inline completion at (line, column)."""
        from lsprotocol import types

        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=column),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked))
        sent = time.monotonic()
        try:
            result = await asyncio.wait_for(
                self.client.text_document_inline_completion_async(params), timeout_s)
        except Exception as e:  # a timeout or the server's error: recorded, the run goes on
            return Answer(latency_ms=round((time.monotonic() - sent) * 1000, 1),
                          error=f"{type(e).__name__}: {e}")
        latency = round((time.monotonic() - sent) * 1000, 1)
        items = (list(result.items) if isinstance(result, types.InlineCompletionList)
                 else list(result or []))
        if not items:
            return Answer(latency_ms=latency, source="none")
        item = items[0]
        text = item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value
        command = item.command
        source = str(command.arguments[0]) if command is not None and command.arguments else ""
        return Answer(text, source, latency)

    async def stop(self) -> None:
        """Shut the server down; a server that died or hangs is left to `client.stop`."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_async(None), 30)
            self.client.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), 30)


# -- the run ----------------------------------------------------------------------------------
@dataclass
class Options:
    conditions: list[str]
    base: dict[str, Any]
    servers: str = "per-hole"
    timeout_s: float = 300.0
    load_s: float = 600.0
    #: Each hole's answers are appended here as soon as it is done (JSON lines), so a run
    #: that is stopped can be resumed (`--resume`) without asking them again.
    journal: Path | None = None


@dataclass
class Record:
    hole: Hole
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


async def ask(server: Server, proj: Project, hole: Hole, open_module: bool,
              timeout_s: float) -> Answer:
    """Open the hole's file (and the defining module first, when the condition opens it),
    ask, close them again."""
    path = proj.root / hole.file
    uris = []
    if open_module:
        module = proj.root / hole.defined_in
        uris.append(server.open(module, module.read_text(encoding="utf-8")))
    uri = server.open(path, erase(path.read_text(encoding="utf-8"), hole))
    uris.append(uri)
    before = await server.tokens_read()
    answer = await server.complete(uri, hole.line, hole.column, timeout_s)
    # The prompt's size (tokens the model read or found cached): cross-file context shows.
    answer.prompt_tokens = await server.tokens_read() - before
    for u in uris:
        server.close(u)
    return answer


async def run_holes(holes: list[tuple[Project, Hole]], options: Options,
                    env: dict[str, str], progress: bool = True) -> tuple[list[Record],
                                                                         dict[str, Any]]:
    """Every hole in every condition; the conditions' order rotates from hole to hole so a
    drift in the machine's load touches them alike.

    Per hole (`per-hole`), the cross-file conditions get fresh servers, started together
    while the previous hole's requests run (a start is mostly Python imports: the next hole
    then need not wait for them), and stopped after the hole. The `off` server is kept for
    the project: without cross-file context, what the ring holds changes nothing."""
    records = [Record(hole) for _, hole in holes]
    info: dict[str, Any] = {"ready_s": [], "messages": {}}
    conditions = options.conditions
    fresh = [c for c in conditions if options.servers == "per-hole" and c != "off"]
    kept: dict[str, Server] = {}

    async def start(names: list[str], root: Path) -> dict[str, Server]:
        async def one(name: str) -> Server:
            server = Server(_merge(options.base, CONDITIONS[name][0]), root, env)
            await server.start(options.load_s)
            info["ready_s"].append(server.ready_s)
            return server

        results = await asyncio.gather(*(one(c) for c in names), return_exceptions=True)
        started = {c: r for c, r in zip(names, results, strict=True) if isinstance(r, Server)}
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(s.stop() for s in started.values()))
            raise failed[0]
        return started

    async def stop(servers: dict[str, Server]) -> None:
        await asyncio.gather(*(s.stop() for s in servers.values()))

    upcoming: asyncio.Task[dict[str, Server]] | None = None
    current: dict[str, Server] = {}
    try:
        for n, (proj, hole) in enumerate(holes):
            await stop({c: kept.pop(c) for c in list(kept) if kept[c].root != proj.root})
            missing = [c for c in conditions if c not in fresh and c not in kept]
            if upcoming is None:
                servers = await start(missing + fresh, proj.root)
            else:
                servers = {**await upcoming, **await start(missing, proj.root)}
                upcoming = None
            current = {c: servers[c] for c in fresh}
            kept.update({c: servers[c] for c in missing})
            servers.update(kept)
            if fresh and n + 1 < len(holes):
                upcoming = asyncio.create_task(start(fresh, holes[n + 1][0].root))
            order = conditions[n % len(conditions):] + conditions[: n % len(conditions)]
            for name in order:
                server = servers[name]
                answer = await ask(server, proj, hole, CONDITIONS[name][1], options.timeout_s)
                records[n].answers[name] = {**asdict(answer),
                                            **score(answer.text, hole.truth, hole.name)}
                if answer.error:
                    info["messages"].setdefault(name, []).extend(server.messages[-5:])
            await stop(current)
            current = {}
            if options.journal is not None:
                with options.journal.open("a") as journal:
                    journal.write(json.dumps({"id": hole.id,
                                              "answers": records[n].answers}) + "\n")
            if progress:
                marks = " ".join(f"{c}={'✓' if records[n].answers[c]['exact'] else '·'}"
                                 for c in conditions)
                print(f"[{n + 1}/{len(holes)}] {hole.id}  {marks}", flush=True)
    finally:
        if upcoming is not None:
            with contextlib.suppress(Exception):
                await stop(await upcoming)
        await stop({**current, **kept})
    return records, info


# -- figures ----------------------------------------------------------------------------------
def summarize(records: list[Record], conditions: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in conditions:
        rows = [r.answers[name] for r in records if name in r.answers]
        n = len(rows)
        lat = [a["latency_ms"] for a in rows if not a["error"]]

        def mean(key: str, rows: list[dict[str, Any]] = rows, n: int = n) -> float:
            return round(sum(float(a[key]) for a in rows) / n, 4) if n else 0.0

        out[name] = {
            "holes": n,
            "exact": sum(a["exact"] for a in rows),
            "exact_share": mean("exact"),
            "edit_similarity": mean("edit_similarity"),
            "identifier_em": mean("identifier_em"),
            "identifier_precision": mean("identifier_precision"),
            "identifier_recall": mean("identifier_recall"),
            "identifier_f1": mean("identifier_f1"),
            "name_used": sum(a["name_used"] for a in rows),
            "name_used_share": mean("name_used"),
            "shown": sum(bool(a["text"]) for a in rows),
            "errors": sum(bool(a["error"]) for a in rows),
            "prompt_tokens_mean": round(mean("prompt_tokens"), 1),
            "latency_p50_ms": round(pct(lat, 50), 1),
            "latency_p95_ms": round(pct(lat, 95), 1),
        }
    return out


def by_project(records: list[Record], conditions: list[str]) -> dict[str, Any]:
    projects = sorted({r.hole.project for r in records})
    return {p: summarize([r for r in records if r.hole.project == p], conditions)
            for p in projects}


def paired(records: list[Record], a: str, b: str) -> dict[str, int]:
    """Holes exact in one condition and not the other, and edit similarity wins either way."""
    both = [r for r in records if a in r.answers and b in r.answers]
    return {
        f"exact_{a}_only": sum(r.answers[a]["exact"] and not r.answers[b]["exact"]
                               for r in both),
        f"exact_{b}_only": sum(r.answers[b]["exact"] and not r.answers[a]["exact"]
                               for r in both),
        f"es_{a}_better": sum(r.answers[a]["edit_similarity"] > r.answers[b]["edit_similarity"]
                              for r in both),
        f"es_{b}_better": sum(r.answers[b]["edit_similarity"] > r.answers[a]["edit_similarity"]
                              for r in both),
    }


def goals(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's goal for each cross-file condition against `off`."""
    off = summary.get("off")
    if off is None:
        return {}
    out: dict[str, Any] = {}
    for name, s in summary.items():
        if name == "off":
            continue
        ratio = s["exact"] / off["exact"] if off["exact"] else None
        out[name] = {
            "exact_ratio": None if ratio is None else round(ratio, 3),
            "exact_ge_1.3x": (s["exact"] >= EXACT_RATIO_GOAL * off["exact"]
                              and s["exact"] > 0),
            "edit_similarity_not_worse": s["edit_similarity"] >= off["edit_similarity"],
        }
    return out


def format_table(summary: dict[str, dict[str, Any]]) -> str:
    head = (f"{'condition':<12} {'holes':>5} {'exact':>6} {'ES':>6} {'id EM':>6} {'id F1':>6} "
            f"{'name':>5} {'shown':>5} {'err':>4} {'p50 ms':>8}")
    lines = [head]
    for name, s in summary.items():
        lines.append(f"{name:<12} {s['holes']:>5} {s['exact']:>6} {s['edit_similarity']:>6.3f} "
                     f"{s['identifier_em']:>6.3f} {s['identifier_f1']:>6.3f} "
                     f"{s['name_used']:>5} {s['shown']:>5} {s['errors']:>4} "
                     f"{s['latency_p50_ms']:>8.0f}")
    return "\n".join(lines)


# -- plot -------------------------------------------------------------------------------------
def plot_report(data: dict[str, Any], path: Path) -> None:
    """Bars per metric, one per condition; beside them latency p50/p95 per condition. Drawn
    from the result JSON alone, so an old run can be re-plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghostfill.bench.score_bars import METRICS, score_bars

    summary = data["summary"]
    names = list(summary)
    colors = {"off": "#7f7f7f", "ring": "#ff7f0e", "definitions": "#2ca02c", "both": "#1f77b4"}
    fig, (ax, lat) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110,
                                  gridspec_kw={"width_ratios": (3, 1)})
    meta = data["meta"]
    score_bars(ax, summary, [*METRICS, ("imported name used", "name_used_share")], colors,
               f"ghostfill repo-level holes ({meta['set']} set: "
               f"{', '.join(meta['projects'])}; {meta['holes']} holes, {meta['model']})")
    for j, (label, key) in enumerate((("p50", "latency_p50_ms"), ("p95", "latency_p95_ms"))):
        values = [summary[n][key] / 1000 for n in names]
        xs = [i + (j - 0.5) * 0.4 for i in range(len(names))]
        bars = lat.bar(xs, values, 0.4, label=label, alpha=1.0 if j == 0 else 0.5,
                       color=[colors.get(n) for n in names])
        lat.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=7, padding=1)
    lat.set_xticks(range(len(names)), names, rotation=20)
    lat.set_ylabel("request → answer (s)")
    lat.set_title("latency p50 (solid) / p95 (pale)", fontsize=9)
    lat.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- command line -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=sorted(PACKAGES), default="report", dest="set_name",
                        help="packages tuned on, or held out for reporting (default report)")
    parser.add_argument("--packages", default="",
                        help="comma list of name==version (sdists from PyPI) or project "
                             "folders, instead of --set's")
    parser.add_argument("--holes", type=int, default=60, help="holes sampled (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-file", type=int, default=3, dest="per_file",
                        help="at most this many holes from one file (default 3)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma list of {', '.join(CONDITIONS)} (default all)")
    parser.add_argument("--servers", choices=["per-hole", "per-condition"], default="per-hole",
                        help="a fresh server per hole and condition (clean ring, default), "
                             "or one per condition for the whole run")
    parser.add_argument("--engine", choices=["shared", "private", "inprocess"],
                        default="shared",
                        help="server.engine (default shared: one engine, in a private runtime "
                             "folder, loads the model once for the whole run)")
    parser.add_argument("--model", help="model.name (default: the product's)")
    parser.add_argument("--threads", type=int, help="model.threads")
    parser.add_argument("--max-tokens", type=int, dest="max_tokens",
                        help="completion.maxTokens (default: the product's)")
    parser.add_argument("--kv-reuse", choices=["off", "on"], default="off", dest="kv_reuse",
                        help="model.kvReuse (default off: every prompt is read from scratch, "
                             "so equal prompts get equal answers; with it on, the shared "
                             "engine reuses another condition's or hole's cached prefix, whose "
                             "other numerics flip a greedy token now and then)")
    parser.add_argument("--multiline", choices=["never", "auto"], default="never",
                        help="completion.multiline: never (default; only the first line is "
                             "scored, and the rest would cost time) or the product's auto")
    parser.add_argument("--settings", default="",
                        help="more initializationOptions as JSON, merged into every condition "
                             "(e.g. '{\"context\": {\"crossFileTokens\": 512}}')")
    parser.add_argument("--timeout", type=float, default=300.0, dest="timeout_s",
                        help="seconds per request before it counts as an error (default 300)")
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help="where sdists are downloaded and unpacked (default %(default)s)")
    parser.add_argument("--list", action="store_true", help="print the sampled holes and exit")
    parser.add_argument("--only", default="",
                        help="comma list of hole ids (as --list prints them): ask only these "
                             "of the sample")
    parser.add_argument("--resume", type=Path,
                        help="a run's journal (.jsonl, printed at its start): its holes are "
                             "not asked again; the same options are needed")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--no-plot", action="store_false", dest="plot")
    args = parser.parse_args(argv)
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        parser.error(f"unknown condition(s): {', '.join(unknown) or '(none)'}")
    if args.holes < 1:
        parser.error("--holes must be at least 1")
    specs = ([s for s in args.packages.split(",") if s] if args.packages
             else list(PACKAGES[args.set_name]))
    set_name = "custom" if args.packages else args.set_name

    projects = [fetch(spec, args.cache) for spec in specs]
    found = {p.name: holes_in(p) for p in projects}
    chosen = sample(found, args.holes, args.seed, args.per_file)
    by_name = {p.name: p for p in projects}
    holes = [(by_name[h.project], h) for h in chosen]
    if args.only:
        wanted = set(args.only.split(","))
        holes = [(p, h) for p, h in holes if h.id in wanted]
        if missing := wanted - {h.id for _, h in holes}:
            parser.error(f"not in the sample: {', '.join(sorted(missing))}")
    if args.list:
        for _, h in holes:
            print(f"{h.id}\t{h.name}\t{h.defined_in}\t{h.truth}")
        return 0

    # Invoked requests wait for their answer whatever the machine's load; no warm-ups or
    # prefetches (they would only spend the CPU the requests need; the prompt is the same).
    base: dict[str, Any] = {
        "server": {"engine": args.engine, "debounceMs": 0, "warmOnOpen": False,
                   "prefetch": False, "engineIdleS": 120.0},
        "completion": {"multiline": args.multiline, "invokedBudgetMs": 600_000},
    }
    base["model"] = {} if args.kv_reuse == "on" else {"kvReuse": False}  # on: the default
    if args.model:
        base["model"]["name"] = args.model
    if args.threads:
        base.setdefault("model", {})["threads"] = args.threads
    if args.max_tokens:
        base["completion"]["maxTokens"] = args.max_tokens
    if args.settings:
        base = _merge(base, json.loads(args.settings))
    header = {"conditions": conditions, "settings": base, "servers": args.servers,
              "holes": [h.id for _, h in holes]}
    done = read_journal(args.resume, header) if args.resume else {}
    stamp = time.strftime("%Y%m%d-%H%M%S")
    journal = args.resume or Path(args.out) / f"repo-{set_name}-{stamp}.jsonl"
    if not args.resume:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_text(json.dumps(header) + "\n")
    print(f"journal: {journal}" + (f" ({len(done)} holes done)" if done else ""), flush=True)
    options = Options(conditions, base, args.servers, args.timeout_s, journal=journal)

    load_start = os.getloadavg()
    started = time.monotonic()
    todo = [(p, h) for p, h in holes if h.id not in done]
    with tempfile.TemporaryDirectory(prefix="gf-repo-") as runtime:
        env = {**os.environ, "GHOSTFILL_RUNTIME_DIR": runtime}
        try:
            asked, info = asyncio.run(run_holes(todo, options, env))
        finally:
            if args.engine == "shared":  # only the engine of this run, in its own folder
                subprocess.run([sys.executable, "-m", "ghostfill", "engine", "stop", "--all"],
                               env=env, capture_output=True, timeout=60, check=False)
    wall_s = time.monotonic() - started
    fresh = {r.hole.id: r for r in asked}
    records = [fresh.get(h.id) or Record(h, done[h.id]) for _, h in holes]
    summary = summarize(records, conditions)
    print(format_table(summary))
    payload = report(args, set_name, projects, found, records, summary, options, info,
                     load_start, wall_s)
    print(json.dumps(payload["goals"]))
    from ghostfill.bench.results import write_results

    write_results(args.out, f"repo-{set_name}", "repo", argv, payload,
                  (lambda path: plot_report(payload, path)) if args.plot else None)
    return 0


def read_journal(path: Path, header: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The answers of the holes a stopped run finished (hole id -> answers per condition).

    The conditions, settings and server mode must be the run's; the holes may be fewer or
    more than it sampled, with the same seed (the sample of N holes is the first N of any
    longer sample: a run can be cut short, or extended, and reported on either way)."""
    lines = path.read_text().splitlines()
    first = json.loads(lines[0]) if lines else {}
    wanted = json.loads(json.dumps(header))
    same = all(first.get(k) == wanted[k] for k in ("conditions", "settings", "servers"))
    had, have = first.get("holes", []), wanted["holes"]
    shorter = min(len(had), len(have))
    if not same or had[:shorter] != have[:shorter]:
        raise SystemExit(f"{path}: another run's journal (other holes, conditions or settings)")
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the run was stopped
            continue
        if entry["id"] in have and set(entry["answers"]) == set(header["conditions"]):
            done[entry["id"]] = entry["answers"]
    return done


def report(args: argparse.Namespace, set_name: str, projects: list[Project],
           found: dict[str, list[Hole]], records: list[Record],
           summary: dict[str, dict[str, Any]], options: Options, info: dict[str, Any],
           load_start: tuple[float, float, float], wall_s: float) -> dict[str, Any]:
    conditions = options.conditions
    ready = [r for r in info["ready_s"] if r is not None]
    return {
        "issue": 18,
        "what": "repo-level holes: statement lines using a name imported from another module "
                "of the same package, erased after their indentation; an invoked inline "
                "completion through `ghostfill serve` (stdio) with the project root as the "
                "workspace folder; first line scored against the erased text",
        "meta": {"set": set_name, "projects": [p.name for p in projects],
                 "holes": len(records), "seed": args.seed, "per_file": args.per_file,
                 "model": options.base.get("model", {}).get("name", "gemma3-270m (default)"),
                 "kv_reuse": options.base.get("model", {}).get("kvReuse", True),
                 "servers": options.servers, "multiline": args.multiline},
        "projects": [{"spec": p.spec, "root": str(p.root), "packages": list(p.packages),
                      "candidate_holes": len(found[p.name]),
                      "sampled": sum(r.hole.project == p.name for r in records)}
                     for p in projects],
        "conditions": {c: {"settings": _merge(options.base, CONDITIONS[c][0]),
                           "module_open": CONDITIONS[c][1]} for c in conditions},
        "summary": summary,
        "goals": goals(summary),
        "paired": {c: paired(records, c, "off") for c in conditions
                   if c != "off" and "off" in conditions},
        "by_project": by_project(records, conditions),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(load_start),
                    "loadavg_end": list(os.getloadavg()), "wall_s": round(wall_s, 1),
                    "server_ready_p50_s": round(pct(ready, 50), 2) if ready else None},
        "journal": str(options.journal) if options.journal else None,
        "tree": _tree(),
        "server_messages_on_errors": info["messages"],
        "holes": [{**asdict(r.hole), "line": r.hole.line + 1, "answers": r.answers}
                  for r in records],
    }


def _tree(here: Path | None = None) -> dict[str, Any]:
    """The commit the run measured, and the files that differed from it (others' work in
    progress changes what a run measures)."""
    here = here or Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True,
                                  timeout=30, check=False).stdout
        except OSError:
            return ""

    return {"commit": git("rev-parse", "HEAD").strip(),
            "modified": porcelain_paths(git("status", "--porcelain", "-z",
                                            "--untracked-files=no"))}


def porcelain_paths(status: str) -> list[str]:
    """The paths in `git status --porcelain -z` output: "XY path" entries ended by NUL (no
    quoting; never strip it, the first entry's X is often a space), a rename's or copy's
    entry followed by its source path, which is skipped."""
    paths: list[str] = []
    entries = iter(status.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if "R" in entry[:2] or "C" in entry[:2]:
            next(entries, None)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
