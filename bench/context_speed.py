"""Context assembly per keystroke on a 10,000-line file, and how often the KV prefix survives.

A real 10,000-line Python file is built from standard-library sources; a line is typed
character by character in the middle of it. Each keystroke applies the edit the way the server
does (text, line table and tree edit) and assembles the prompt as a request does (reparse
within `context.parse_budget_ms`, window, head, template). `fresh_tree_share` is the share of
keystrokes whose reparse finished within that budget (the others used the edited tree, and
the halted parse resumed on the next keystroke). The model is loaded only for its tokenizer;
nothing is generated.

    python -m ghostfill.bench.context_speed --out bench/results
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import time
from pathlib import Path

from ghostfill.backends.sequences import common_prefix
from ghostfill.bench.latency import pct

TYPED = "        result = self.compute_total(values, scale=2.0)  # typed back"


def ten_thousand_lines() -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows: list[str] = []
    for name in ("argparse.py", "configparser.py", "difflib.py", "tokenize.py", "pydoc.py",
                 "inspect.py", "typing.py", "subprocess.py"):
        path = stdlib / name
        if path.is_file():
            rows.extend(path.read_text().split("\n"))
        if len(rows) >= 10_000:
            break
    return "\n".join(rows[:10_000]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--rounds", type=int, default=3, help="lines typed")
    parser.add_argument("--parse-budget-ms", type=float, default=None,
                        help="context.parse_budget_ms (default: the configured default)")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)

    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine
    from ghostfill.lsp.documents import OpenDocument
    from ghostfill.lsp.session import DocumentSession

    settings: dict = {"model": {"name": args.model}}
    if args.parse_budget_ms is not None:
        settings["context"] = {"parse_budget_ms": args.parse_budget_ms}
    engine = CompletionEngine.load(Config().updated(settings))
    text = ten_thousand_lines()
    t0 = time.perf_counter()
    doc = OpenDocument.open("file:///bench/big.py", "python", 1, text)
    open_ms = (time.perf_counter() - t0) * 1000
    session = DocumentSession(doc)
    times: list[float] = []
    edit_times: list[float] = []
    kept = 0
    fresh = 0
    total = 0
    previous: list[int] | None = None
    for r in range(args.rounds):
        line = 2000 + 2500 * r
        insert_at = doc.starts[line]
        session.edit(insert_at, insert_at, "\n")
        for i, ch in enumerate(TYPED):
            t0 = time.perf_counter()
            session.edit(insert_at + i, insert_at + i, ch)
            t1 = time.perf_counter()
            source = session.snapshot(insert_at + i + 1)
            prepared = engine.prepare(source)  # parses within the parse budget, as served
            fresh += source.syntax.fresh
            session.adopt(source)
            t2 = time.perf_counter()
            edit_times.append((t1 - t0) * 1000)
            times.append((t2 - t0) * 1000)
            tokens = prepared.prompt.tokens
            if previous is not None and i > 0:
                total += 1
                # Kept: only the last few tokens (the word being typed) differ.
                if common_prefix(previous, tokens) >= len(previous) - 4:
                    kept += 1
            previous = tokens
    report = {
        "command": "python -m ghostfill.bench.context_speed " + " ".join(argv or []),
        "document_lines": len(doc.starts),
        "open_and_parse_ms": round(open_ms, 2),
        "keystrokes": len(times),
        "assembly_p50_ms": round(pct(times, 50), 3),
        "assembly_p95_ms": round(pct(times, 95), 3),
        "assembly_max_ms": round(max(times), 3),
        "edit_p50_ms": round(pct(edit_times, 50), 3),
        "edit_p95_ms": round(pct(edit_times, 95), 3),
        "prefix_kept_share": round(kept / total, 4) if total else None,
        "fresh_tree_share": round(fresh / len(times), 4),
        "parse_budget_ms": engine.config.context.parse_budget_ms,
        "prompt_tokens": len(previous or []),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"context-speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({**report, "times_ms": times}, indent=1))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
