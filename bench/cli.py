"""`ghostfill bench …`: benchmark commands.

`add_bench_parser(subparsers)` plugs `bench` into the main `ghostfill` parser; until then,
and for scripts, `python -m ghostfill.bench.cli humaneval …` runs the same commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ghostfill.errors import GhostfillError

if TYPE_CHECKING:  # not subscriptable at run time
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_bench_parser(subparsers: _Subparsers) -> None:
    """Register `bench` and its commands on the `ghostfill` parser's subparsers."""
    bench = subparsers.add_parser("bench", help="measure completion quality and latency")
    add_bench_commands(bench.add_subparsers(dest="bench_command", required=True))


def add_bench_commands(subparsers: _Subparsers) -> None:
    add_humaneval_parser(subparsers)
    for name, module, summary in PASSTHROUGH:
        p = subparsers.add_parser(name, help=summary, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_passthrough(module))


#: Benchmarks with their own argument parsers: `ghostfill bench NAME …` runs `NAME.main(…)`.
PASSTHROUGH = [
    ("latency", "latency", "typing replay: keystroke -> ghost text, LSP and engine"),
    ("context", "context_speed", "context assembly per keystroke on a 10,000-line file"),
    ("fim-order", "fim_order", "PSM vs SPM: prompt tokens each keystroke re-evaluates"),
    ("kv-shift", "kv_shift", "moved window: KV shift against re-reading"),
    ("extra-bufts", "extra_bufts", "llama.cpp extra buffer types on/off: prefill and decode"),
    ("soak", "soak", "thousands of edits and requests over stdio: memory over time"),
    ("speculative", "speculative", "speculative decoding speed (transformers backend)"),
    ("remote-load", "remote_load", "several LSP sessions sharing one serving engine"),
    ("file-switch", "file_switch", "several open files typed round-robin: keystroke latency "
     "after each switch, per server.engine mode"),
    ("engine", "engine_process", "the engine process: IPC cost per keystroke, memory of "
     "several servers + one engine, recovery from kills"),
    ("repo", "repo", "holes in real packages that use another module's names: cross-file "
     "context off / ring / definitions / both"),
    ("edits", "edit_replay", "commit replay: a commit's earlier hunks as the user's edits, a "
     "line of a later hunk asked; recent edits as context off / on"),
]


def _passthrough(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(importlib.import_module(f"ghostfill.bench.{module}").main(args.rest) or 0)

    return run


def add_humaneval_parser(subparsers: _Subparsers) -> None:
    from ghostfill.bench.humaneval import DEFAULT_DATA

    p = subparsers.add_parser(
        "humaneval",
        help="HumanEval infilling through the real pipeline vs the raw model",
        description="Fill HumanEval holes through the completion pipeline, next to the raw "
                    "model and per-filter ablations; score exact match, pass@1 and latency.",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="HumanEval-infilling JSONL(.gz) (default: %(default)s)")
    p.add_argument("--holes", choices=["single", "multi"], default="single",
                   help="single-line holes from the file, or multi-line holes derived from "
                        "the same programs")
    p.add_argument("--limit", type=int, help="at most this many tasks")
    p.add_argument("--seed", type=int,
                   help="random sample of --limit tasks (and the multi-line holes' choice)")
    p.add_argument("--model", help="preset, .gguf file, model directory or HF repo id")
    p.add_argument("--backend", choices=["auto", "llamacpp", "transformers", "openai",
                                         "infill"])
    p.add_argument("--max-tokens", type=int, dest="max_tokens",
                   help="token limit for every configuration (default 64 single, 128 multi)")
    p.add_argument("--configs", default="all",
                   help="comma list: raw, pipeline, pipeline-one-try, pipeline-mid-line, "
                        "pipeline-no-<filter>, 'ablations', 'all' (default)")
    p.add_argument("--out", type=Path, help="results folder (default bench/results)")
    p.add_argument("--jobs", type=int, default=2, help="parallel test executions (default 2)")
    p.add_argument("--timeout", type=float, default=10.0, dest="timeout_s",
                   help="seconds per test execution (default 10)")
    p.add_argument("--budget-ms", type=int, dest="budget_ms",
                   help="latency budget per completion (default none: scores independent of "
                        "machine load)")
    p.add_argument("--document", choices=["open-line", "as-given"], default="open-line",
                   help="buffer layout: the hole as an empty line (default) or prompt+suffix")
    p.add_argument("--multiline", choices=["hole", "auto"], default="hole",
                   help="single/multi-line mode from the hole (default) or the editor's own "
                        "decision")
    p.add_argument("--ablation-mode", choices=["reuse", "rerun"], default="reuse",
                   dest="ablation_mode",
                   help="ablations re-filter the pipeline's generation (default) or generate "
                        "again through engine.run")
    p.add_argument("--only", default="",
                   help="comma list of task ids: run only these of the selection")
    p.add_argument("--no-plots", action="store_false", dest="plots", help="skip the PNGs")
    p.set_defaults(func=cmd_humaneval)


def cmd_humaneval(args: argparse.Namespace) -> int:
    from ghostfill.bench.humaneval import Options, format_table, parse_configs, run_humaneval

    if args.limit is not None and args.limit < 1:
        raise GhostfillError("--limit must be at least 1")
    if args.max_tokens is not None and not 1 <= args.max_tokens <= 4096:
        raise GhostfillError("--max-tokens must be 1..4096")
    options = Options(
        data=args.data,
        holes=args.holes,
        limit=args.limit,
        seed=args.seed,
        model=args.model,
        backend=args.backend,
        max_tokens=args.max_tokens,
        configs=parse_configs(args.configs),
        jobs=max(1, args.jobs),
        timeout_s=args.timeout_s,
        budget_ms=args.budget_ms,
        document=args.document,
        multiline=args.multiline,
        only=frozenset(t for t in args.only.split(",") if t),
        ablation_mode=args.ablation_mode,
        plots=args.plots,
    )
    if args.out is not None:
        options.out = args.out
    report = run_humaneval(options, argv=sys.argv)
    print(format_table(report.summary))
    print(f"results: {report.path}")
    for plot in report.plots:
        print(f"plot:    {plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m ghostfill.bench.cli …` is `ghostfill bench …` (one parser, one error path)."""
    from ghostfill.cli import main as ghostfill_main

    return ghostfill_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
