"""ghostfill through a real llama-server next to ghostfill in-process, in one run.

The typing replay of `bench.latency` (engine mode: `CompletionEngine` without the protocol, so
only the backend differs): lines deep in standard-library files are erased after their
indentation and typed back one character at a time, and each keystroke waits for the whole
suggestion (`--max-tokens`, a budget long enough that no answer is cut). Configurations, all
with the embedded Gemma 3 270M Q4_K_M on the same machine:

* `in-process` — the llama.cpp backend (llama-cpp-python), prefix-only prompt;
* `llama-server /v1/completions` — the `openai` backend against llama-server on 127.0.0.1
  (the same prompt text; exact counts from `--tokenizer` = the model file);
* `llama-server /infill` — the `infill` backend against llama-server serving the copy with FIM
  tokens (`bench.llama_server.with_fim_tokens`): the server builds the prompt from parts, so
  the prompt differs (FIM layout, the typed line after the middle marker);
* `in-process (FIM copy)` — the llama.cpp backend on that same copy, for the `/infill` row.

llama-server is built or reused as in the tests (`scripts/llama_server.sh`).

    python -m ghostfill.bench.llama_server_latency --files 2 --lines 2 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ghostfill.bench.latency import Replay, pick_spans, plot, replay_engine
from ghostfill.bench.llama_server import LlamaServer, binary, with_fim_tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--lines", type=int, default=2, help="erased lines per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=16, dest="max_tokens")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both engines (default: llama.cpp's own choice)")
    parser.add_argument("--alternatives", type=int, default=None,
                        help="completion.alternatives (retries after a filtered answer, "
                             "in-process only; 0 compares single generations)")
    parser.add_argument("--server-args", default="--cache-reuse 256", dest="server_args",
                        help="extra llama-server arguments (default: %(default)s)")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    from ghostfill.models import resolve

    gemma = resolve("gemma3-270m").path
    server_bin = binary()
    spans = pick_spans(args.files, args.lines, args.seed)
    base: dict[str, Any] = {
        "completion": {"maxTokens": args.max_tokens, "latencyBudgetMs": 60000,
                       **({} if args.alternatives is None
                          else {"alternatives": args.alternatives})},
        "model": {"contextLength": 2048, **({"threads": args.threads} if args.threads else {})},
    }
    replays: list[Replay] = []
    with tempfile.TemporaryDirectory() as tmp:
        fim = with_fim_tokens(gemma)
        runs: list[tuple[str, dict[str, Any], Path | None]] = [
            ("in-process", {"model": {"name": str(gemma), "backend": "llamacpp"}}, None),
            ("llama-server /v1/completions",
             {"model": {"backend": "openai"}, "remote": {"tokenizer": str(gemma)}}, gemma),
            ("in-process (FIM copy)", {"model": {"name": str(fim), "backend": "llamacpp"}},
             None),
            ("llama-server /infill",
             {"model": {"backend": "infill"}, "remote": {"tokenizer": str(fim)}}, fim),
        ]
        for label, settings, served in runs:
            merged = {k: {**base.get(k, {}), **settings.get(k, {})}
                      for k in {*base, *settings}}
            if served is None:
                replays.append(replay_engine(spans, merged, label))
            else:
                server = LlamaServer(server_bin, served, Path(tmp) / f"{served.stem}.log",
                                     threads=args.threads,
                                     extra=("-b", "1024", "-ub", "1024",
                                            *args.server_args.split()))
                with server:
                    merged["remote"]["endpoint"] = server.url
                    replays.append(replay_engine(spans, merged, label))
            print(json.dumps(replays[-1].summary()), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "command": "python -m ghostfill.bench.llama_server_latency "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
        "llama_server": str(server_bin),
        "spans": [{"file": s.path.name, "line": s.line + 1, "text": s.erased} for s in spans],
        "summaries": [r.summary() for r in replays],
        "replays": [asdict(r) for r in replays],
    }
    json_path = out / f"llama-server-latency-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=1))
    plot(replays, out / f"llama-server-latency-{stamp}.png", targets_ms=(), with_mode=False,
         title="ghostfill in-process vs through llama-server (Gemma 3 270M, same machine)")
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
