"""Commit replay: do the user's recent edits help the next line? (issue #18, recent edits)

Real commits of real Python repositories (their git history; `--repo` takes bare or working
git folders, e.g. what the `fetch` tool brings) that change several places: at least two
hunks in Python files, few files, few lines. For each such commit, a later hunk with an added
line worth predicting is the target; the hunks before it (in the diff's order: files, then
lines) are the user's edits so far.

Each hole is replayed through the real `ghostfill serve` over stdio (`bench/repo.py`'s
`Server`; the model in one shared engine for the run): the commit's parent is written to a
temporary folder, which is the workspace folder; every file the commit touches up to the
target is opened (`didOpen`, the parent's text); each earlier hunk is applied with one
`didChange` (its old lines replaced by its new ones, as a paste); then the target hunk is begun
(its old lines removed, its added lines before the target line typed, the target line holding
only its indentation) and an invoked inline completion is asked there. The first line of the
answer is scored against the added line (`bench/repo.py`'s scores: exact, edit similarity,
identifier match).

Conditions, side by side on the same holes, each with a fresh server per hole:

- `off`: `context.recentEdits: false` (the ring and the definitions as the product has them);
- `after`: recent edits on, each shown as its lines are now, under `# recent edit`;
- `diff`: recent edits on, the removed lines shown first as comments;
- `plain`: recent edits on, their lines under the file's path comment only (no
  `# recent edit` line).

    ghostfill bench edits --repo /work/.mirror/pallets+click/repo --holes 30 --set tune
    python -m ghostfill.bench.edit_replay --repo A --repo B --conditions off,after
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tokenize
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ghostfill.bench.latency import _merge
from ghostfill.bench.repo import Server, _tree, format_table, paired, score, summarize
from ghostfill.bench.repo_holes import round_robin

#: Each condition: its initializationOptions (merged over the base settings) and its
#: `GHOSTFILL_EDIT_STYLE`.
CONDITIONS: dict[str, tuple[dict[str, Any], str]] = {
    "off": ({"context": {"recentEdits": False}}, "after"),
    "after": ({"context": {"recentEdits": True}}, "after"),
    "diff": ({"context": {"recentEdits": True}}, "diff"),
    "plain": ({"context": {"recentEdits": True}}, "plain"),
}
#: Commits considered per repository (newest first), and their size.
MAX_COMMITS = 1500
MAX_FILES = 4
MAX_CHANGED_LINES = 80
MIN_HUNKS = 2
MIN_CHARS = 8
MAX_CHARS = 120
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_IDENT = re.compile(r"[A-Za-z_]")
TRIPLE = ('"' * 3, "'" * 3)


@dataclass(frozen=True)
class Hunk:
    file: str
    old_start: int  # 0-based line where the old lines start (or the insertion point)
    old: tuple[str, ...]
    new: tuple[str, ...]
    new_start: int = 0  # 0-based line of the first new line in the commit's file


@dataclass(frozen=True)
class Hole:
    id: str  # "<repo>:<commit[:10]>:<file>:<line>"
    repo: str
    git_dir: str
    commit: str
    parent: str
    subject: str
    hunks: tuple[Hunk, ...]  # the edits before the target, in order
    target: Hunk
    index: int  # the target line: target.new[index]
    truth: str
    same_file_edits: int
    other_file_edits: int


# -- mining --------------------------------------------------------------------------------
def git(git_dir: str, *args: str, binary: bool = False) -> Any:
    out = subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True,
                         check=True, timeout=120)
    return out.stdout if binary else out.stdout.decode("utf-8", "replace")


def parse_diff(diff: str) -> list[Hunk]:
    """Hunks of a `git diff -U0` in order (files as git lists them, then by line)."""
    hunks: list[Hunk] = []
    file = None
    current: list[Any] | None = None

    def flush() -> None:
        if current is not None and file is not None:
            hunks.append(Hunk(file, current[0], tuple(current[1]), tuple(current[2]),
                              current[3]))

    for line in diff.split("\n"):
        if line.startswith("diff --git"):
            flush()
            current, file = None, None
        elif line.startswith("+++ "):
            file = line[6:] if line.startswith("+++ b/") else None
        elif line.startswith("@@"):
            flush()
            m = _HUNK.match(line)
            if m is None:
                current = None
                continue
            start, count = int(m.group(1)), int(m.group(2) or "1")
            current = [start if count == 0 else start - 1, [], [], max(0, int(m.group(3)) - 1)]
        elif current is not None and line.startswith("-") and not line.startswith("---"):
            current[1].append(line[1:])
        elif current is not None and line.startswith("+") and not line.startswith("+++"):
            current[2].append(line[1:])
    flush()
    return hunks


def worth(line: str) -> bool:
    text = line.strip()
    return (MIN_CHARS <= len(text) <= MAX_CHARS and not text.startswith(("#", *TRIPLE))
            and bool(_IDENT.search(text)) and not text.endswith("\\"))


def holes_in(name: str, git_dir: str, max_commits: int = MAX_COMMITS) -> list[Hole]:
    """One hole per qualifying commit: the last hunk (after the first) with a line worth
    predicting; its first such line."""
    log = git(git_dir, "log", "--no-merges", f"-n{max_commits}", "--format=%H %P%x09%s",
              "--", "*.py")
    out: list[Hole] = []
    for row in log.splitlines():
        head, _, subject = row.partition("\t")
        parts = head.split()
        if len(parts) != 2:
            continue
        commit, parent = parts
        try:
            diff = git(git_dir, "diff", "-U0", "--no-color", "--no-renames", parent, commit,
                       "--", "*.py")
        except subprocess.CalledProcessError:
            continue
        hunks = parse_diff(diff)
        files = {h.file for h in hunks}
        changed = sum(len(h.old) + len(h.new) for h in hunks)
        if len(hunks) < MIN_HUNKS or len(files) > MAX_FILES or changed > MAX_CHANGED_LINES:
            continue
        strings: dict[str, set[int]] = {}
        for t in range(len(hunks) - 1, 0, -1):
            target = hunks[t]
            if target.file not in strings:
                strings[target.file] = string_lines(git_dir, commit, target.file)
            inside = strings[target.file]
            k = next((i for i, line in enumerate(target.new)
                      if worth(line) and target.new_start + i not in inside), None)
            if k is None:
                continue
            before = hunks[:t]
            out.append(Hole(f"{name}:{commit[:10]}:{target.file}:{target.old_start + 1}", name,
                            git_dir, commit, parent, subject[:100], tuple(before), target, k,
                            target.new[k].strip(),
                            sum(h.file == target.file for h in before),
                            sum(h.file != target.file for h in before)))
            break
    return out


def string_lines(git_dir: str, commit: str, file: str) -> set[int]:
    """0-based lines of `file` at `commit` inside (or starting) a multi-line string: prose
    (docstrings), not code. Every line when the file does not tokenize."""
    try:
        source = git(git_dir, "show", f"{commit}:{file}")
    except subprocess.CalledProcessError:
        return set()
    out: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            kind = tokenize.tok_name.get(tok.type, "")
            if kind in ("STRING", "FSTRING_START") and tok.end[0] > tok.start[0]:
                out.update(range(tok.start[0] - 1, tok.end[0]))
            elif kind == "STRING" and tok.string.lstrip("rbuRBU").startswith(TRIPLE):
                out.add(tok.start[0] - 1)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return set(range(source.count("\n") + 1))
    return out


def sample(found: dict[str, list[Hole]], count: int, seed: int) -> list[Hole]:
    rng = random.Random(seed)
    queues = []
    for name in sorted(found):
        pool = list(found[name])
        rng.shuffle(pool)
        queues.append(pool)
    return round_robin(queues, count)


# -- replay --------------------------------------------------------------------------------
def checkout(hole: Hole, dest: Path) -> None:
    """The parent commit's tree in `dest` (the workspace folder)."""
    data = git(hole.git_dir, "archive", "--format=tar", hole.parent, binary=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def _range_edit(lines: list[str], start: int, count: int, new: list[str]) -> tuple[
        tuple[int, int], tuple[int, int], str]:
    """The LSP edit that replaces `count` lines from `start` by `new` (whole lines)."""
    text = "".join(line + "\n" for line in new)
    end = start + count
    if end < len(lines):
        return (start, 0), (end, 0), text
    # At the end of the file (its last line may have no line break).
    last = len(lines) - 1
    if start > last:
        return (last, len(lines[last])), (last, len(lines[last])), "\n" + text.rstrip("\n")
    return (start, 0), (last, len(lines[last])), text.rstrip("\n")


async def replay(server: Server, root: Path, hole: Hole, timeout_s: float) -> dict[str, Any]:
    from lsprotocol import types

    texts: dict[str, list[str]] = {}
    versions: dict[str, int] = {}
    uris: dict[str, str] = {}
    order = [h.file for h in hole.hunks] + [hole.target.file]
    for file in dict.fromkeys(order):
        path = root / file
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        uris[file] = server.open(path, text)
        texts[file] = text.split("\n")
        versions[file] = 1
    shift: dict[str, int] = {f: 0 for f in texts}

    def apply(file: str, start: int, count: int, new: list[str]) -> None:
        lines = texts[file]
        a, b, text = _range_edit(lines, start, count, new)
        versions[file] += 1
        server.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uris[file],
                                                                version=versions[file]),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=a[0], character=a[1]),
                                  end=types.Position(line=b[0], character=b[1])),
                text=text)]))
        joined = "\n".join(lines)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line) + 1)
        s = offsets[a[0]] + a[1]
        e = offsets[b[0]] + b[1]
        texts[file] = (joined[:s] + text + joined[e:]).split("\n")

    for h in hole.hunks:
        apply(h.file, h.old_start + shift[h.file], len(h.old), list(h.new))
        shift[h.file] += len(h.new) - len(h.old)
    t = hole.target
    line = t.new[hole.index]
    indent = line[: len(line) - len(line.lstrip())]
    start = t.old_start + shift[t.file]
    apply(t.file, start, len(t.old), [*t.new[: hole.index], indent])
    before = await server.tokens_read()
    shown = await edits_shown(server)
    answer = await server.complete(uris[t.file], start + hole.index, len(indent), timeout_s)
    answer.prompt_tokens = await server.tokens_read() - before
    for uri in uris.values():
        server.close(uri)
    # Recent edits the request's prompts showed (the first prompt and any retry's).
    return {**asdict(answer), "edits_shown": await edits_shown(server) - shown}


async def edits_shown(server: Server) -> int:
    return int((await server.stats()).get("context", {}).get("edits_shown", 0))


@dataclass
class Record:
    hole: Hole
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


async def switch_root(server: Server, old: Path | None, new: Path) -> None:
    """Make `new` the server's only workspace folder (`didChangeWorkspaceFolders`)."""
    from lsprotocol import types

    removed = [types.WorkspaceFolder(uri=old.as_uri(), name=old.name)] if old else []
    server.client.workspace_did_change_workspace_folders(
        types.DidChangeWorkspaceFoldersParams(event=types.WorkspaceFoldersChangeEvent(
            added=[types.WorkspaceFolder(uri=new.as_uri(), name=new.name)],
            removed=removed)))
    server.root = new
    await server.stats()  # the notification is handled before this answer


async def run(holes: list[Hole], conditions: list[str], base: dict[str, Any],
              env: dict[str, str], timeout_s: float, journal: Path) -> list[Record]:
    """One server per condition for the whole run; each hole gets its own workspace folder
    (the parent commit's tree), made the server's only one before the hole is replayed, so
    the edit history (per workspace folder) holds only that hole's edits. The ring of open
    buffers keeps earlier holes' chunks (other folders' files), alike in every condition."""
    records = [Record(h) for h in holes]
    with tempfile.TemporaryDirectory(prefix="gf-edits-") as tmp:
        first = Path(tmp) / "start"
        first.mkdir()

        async def one(name: str) -> Server:
            settings, style = CONDITIONS[name]
            server = Server(_merge(base, settings), first, {**env, "GHOSTFILL_EDIT_STYLE": style})
            await server.start(900)
            return server

        servers = dict(zip(conditions, await asyncio.gather(*(one(c) for c in conditions)),
                           strict=True))
        try:
            previous: Path | None = first
            for n, hole in enumerate(holes):
                root = Path(tmp) / f"h{n}" / hole.repo
                root.mkdir(parents=True)
                checkout(hole, root)
                for server in servers.values():
                    await switch_root(server, previous, root)
                previous = root
                order = conditions[n % len(conditions):] + conditions[: n % len(conditions)]
                for name in order:
                    answer = await replay(servers[name], root, hole, timeout_s)
                    records[n].answers[name] = {**answer,
                                                **score(answer["text"], hole.truth, "")}
                with journal.open("a") as f:
                    f.write(json.dumps({"id": hole.id, "answers": records[n].answers}) + "\n")
                marks = " ".join(f"{c}={'✓' if records[n].answers[c]['exact'] else '·'}"
                                 f"{records[n].answers[c]['edit_similarity']:.2f}"
                                 for c in conditions)
                print(f"[{n + 1}/{len(holes)}] {hole.id}  {marks}", flush=True)
        finally:
            await asyncio.gather(*(s.stop() for s in servers.values()))
    return records


# -- plot ----------------------------------------------------------------------------------
def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghostfill.bench.score_bars import METRICS, score_bars

    colors = {"off": "#7f7f7f", "after": "#1f77b4", "diff": "#2ca02c", "plain": "#ff7f0e"}
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=110)
    meta = data["meta"]
    score_bars(ax, data["summary"], METRICS, colors,
               f"ghostfill commit replay, recent edits ({meta['set']}: "
               f"{', '.join(meta['repos'])}; {meta['holes']} holes, {meta['model']})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- command line --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", action="append", required=True,
                        help="a git folder (bare or not) with history; NAME=PATH names it")
    parser.add_argument("--set", default="custom", dest="set_name",
                        help="a label for the results (tune, report)")
    parser.add_argument("--holes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conditions", default=",".join(CONDITIONS))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model")
    parser.add_argument("--settings", default="", help="more initializationOptions (JSON)")
    parser.add_argument("--timeout", type=float, default=300.0, dest="timeout_s")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--no-plot", action="store_false", dest="plot")
    args = parser.parse_args(argv)
    conditions = [c for c in args.conditions.split(",") if c]
    if any(c not in CONDITIONS for c in conditions):
        parser.error(f"conditions are among {', '.join(CONDITIONS)}")
    repos: dict[str, str] = {}
    for spec in args.repo:
        name, _, path = spec.rpartition("=")
        folder = Path(path).resolve()
        git_dir = folder / ".git" if (folder / ".git").exists() else folder
        if not name:  # /work/.mirror/owner+name/repo -> name
            name = (folder.parent.name if folder.name == "repo" else folder.name)
            name = name.split("+")[-1]
        repos[name] = str(git_dir)
    found = {name: holes_in(name, git_dir) for name, git_dir in repos.items()}
    holes = sample(found, args.holes, args.seed)
    if args.list:
        for h in holes:
            print(f"{h.id}\t{len(h.hunks)} edits ({h.same_file_edits} same file)\t{h.truth}")
        return 0
    base: dict[str, Any] = {
        "server": {"engine": "shared", "debounceMs": 0, "warmOnOpen": False,
                   "prefetch": False, "engineIdleS": 120.0},
        # One suggestion: an invoked request would look for `completion.choices` of them,
        # and only the first is scored.
        "completion": {"multiline": "never", "invokedBudgetMs": 600_000, "choices": 1},
        "model": {"kvReuse": False},
    }
    if args.model:
        base["model"]["name"] = args.model
    if args.threads:
        base["model"]["threads"] = args.threads
    if args.settings:
        base = _merge(base, json.loads(args.settings))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / f"edits-{args.set_name}-{stamp}.jsonl"
    journal.write_text(json.dumps({"conditions": conditions, "settings": base,
                                   "holes": [h.id for h in holes]}) + "\n")
    print(f"journal: {journal}; {len(holes)} holes of "
          f"{ {k: len(v) for k, v in found.items()} }", flush=True)
    load_start = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gf-edits-rt-") as runtime:
        env = {**os.environ, "GHOSTFILL_RUNTIME_DIR": runtime}
        try:
            records = asyncio.run(run(holes, conditions, base, env, args.timeout_s, journal))
        finally:
            subprocess.run([sys.executable, "-m", "ghostfill", "engine", "stop", "--all"],
                           env=env, capture_output=True, timeout=60, check=False)
    summary = summarize(records, conditions)  # type: ignore[arg-type]
    for c in conditions:
        summary[c]["holes_with_edits_shown"] = sum(
            bool(r.answers[c].get("edits_shown")) for r in records if c in r.answers)
    print(format_table(summary))
    payload = {
        "issue": 18,
        "what": "commit replay: earlier hunks of a real commit applied as the user's edits "
                "(didChange), an invoked inline completion at an added line of a later hunk; "
                "first line scored against it; recent edits as context off / on",
        "meta": {"set": args.set_name, "repos": sorted(repos), "holes": len(records),
                 "seed": args.seed,
                 "model": base["model"].get("name", "gemma3-270m (default)"),
                 "candidates": {k: len(v) for k, v in found.items()}},
        "conditions": {c: {"settings": _merge(base, CONDITIONS[c][0]), "style": CONDITIONS[c][1]}
                       for c in conditions},
        "summary": summary,
        "paired": {c: paired(records, c, "off") for c in conditions  # type: ignore[arg-type]
                   if c != "off" and "off" in conditions},
        "by_repo": {r: summarize([x for x in records if x.hole.repo == r],  # type: ignore
                                 conditions) for r in sorted(repos)},
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(load_start),
                    "loadavg_end": list(os.getloadavg()),
                    "wall_s": round(time.monotonic() - started, 1)},
        "journal": str(journal),
        "tree": _tree(),
        "holes": [{"id": r.hole.id, "commit": r.hole.commit, "subject": r.hole.subject,
                   "truth": r.hole.truth, "edits": len(r.hole.hunks),
                   "same_file_edits": r.hole.same_file_edits,
                   "other_file_edits": r.hole.other_file_edits, "answers": r.answers}
                  for r in records],
    }
    from ghostfill.bench.results import write_results

    write_results(args.out, f"edits-{args.set_name}", "edits", argv, payload,
                  (lambda path: plot(payload, path)) if args.plot else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
