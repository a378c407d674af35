"""PSM vs SPM: how many prompt tokens each keystroke changes, with real FIM vocabularies.

With KV reuse a keystroke costs the tokens after the first one that differs from the last
prompt. In PSM order (`<prefix>…<suffix>…<middle>`) the text typed sits before the suffix, so
every keystroke re-evaluates the whole suffix too; in SPM order (`<suffix>…<prefix>…<middle>`)
only the tail of the prefix changes. This replays the latency benchmark's typing (real
standard-library files, a line erased and typed back) through the real context engine and
template registry with the real tokenizers of FIM models (`../shared/vocab`: StarCoder =
DeciCoder-1B and tiny_starcoder_py, DeepSeek-Coder, Qwen2.5-Coder, Refact) and counts, per
keystroke, the tokens that would be evaluated. No model runs: the FIM models themselves are
not available offline, and the count is what decides the prefill cost (multiply by the
model's per-token prefill time: `python -m ghostfill.bench.kv_shift` measured 833 tokens in
1.9 s, about 2.3 ms each, for the 270M embedded model on these cores).

    python -m ghostfill.bench.fim_order --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ghostfill.backends.sequences import common_prefix
from ghostfill.bench.latency import erase, pct, pick_spans

VOCABS = ("starcoder", "deepseek-coder", "qwen2", "refact")


class VocabOnly:
    """A tokenizer standing where a backend would: enough for `CompletionEngine.prepare`."""

    name = "vocab-only"

    def __init__(self, tokenizer: Any, name: str, context_length: int = 2048) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.model_name = name


def _prepare(engine: Any, session: Any, offset: int) -> Any:
    """What the server prepares at `offset` (and keeps for the next keystroke)."""
    source = session.snapshot(offset)
    prepared = engine.prepare(source)
    session.adopt(source)
    return prepared


def replay(engine: Any, spans: list[Any]) -> list[int]:
    """Tokens evaluated per keystroke (at least one: the last is always re-run for logits)."""
    from ghostfill.lsp.documents import OpenDocument
    from ghostfill.lsp.session import DocumentSession

    evaluated: list[int] = []
    for n, span in enumerate(spans):
        doc = OpenDocument.open(f"file://{span.path}#{n}", "python", 1, erase(span.path.read_text(),
                                                                                span))
        offset = doc.starts[span.line] + span.column
        session = DocumentSession(doc)
        previous = _prepare(engine, session, offset).prompt.tokens
        for i, ch in enumerate(span.erased):
            session.edit(offset + i, offset + i, ch)
            tokens = _prepare(engine, session, offset + i + 1).prompt.tokens
            evaluated.append(max(1, len(tokens) - common_prefix(previous, tokens)))
            previous = tokens
    return evaluated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-dir", default=os.environ.get(
        "GHOSTFILL_VOCAB_DIR", str(Path.cwd().parent / "shared" / "vocab")))
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)

    from ghostfill.completion.tokenizer import LlamaCppTokenizer
    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine

    spans = pick_spans(args.files, args.lines, args.seed)
    rows: list[dict[str, Any]] = []
    for name in VOCABS:
        path = Path(args.vocab_dir) / f"ggml-vocab-{name}.gguf"
        if not path.is_file():
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        backend = VocabOnly(LlamaCppTokenizer.from_gguf(str(path)), name)
        for order in ("psm", "spm"):
            # A stand-in, not a Backend: `prepare` uses only its tokenizer and context length.
            engine = CompletionEngine(Config().updated({"model": {"fim_order": order}}),
                                      backend)  # type: ignore[arg-type]
            if engine.order != order:
                continue  # the family was not trained in this order
            evaluated = replay(engine, spans)
            rows.append({
                "vocabulary": name, "template": engine.template.name, "order": order,
                "keystrokes": len(evaluated),
                "evaluated_p50": pct([float(e) for e in evaluated], 50),
                "evaluated_p95": pct([float(e) for e in evaluated], 95),
                "evaluated_mean": round(statistics.mean(evaluated), 1),
                "evaluated": evaluated,
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "evaluated"}),
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "command": "python -m ghostfill.bench.fim_order " + " ".join(argv or sys.argv[1:]),
        "spans": [{"file": s.path.name, "line": s.line + 1, "text": s.erased} for s in spans],
        "rows": rows,
    }
    json_path = out / f"fim-order-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=1))
    plot(rows, out / f"fim-order-{stamp}.png")
    print(f"wrote {json_path}")
    return 0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['vocabulary']}\n{r['order'].upper()}" for r in rows]
    ax.bar(labels, [r["evaluated_mean"] for r in rows],
           color=["#c44" if r["order"] == "psm" else "#4a4" for r in rows])
    ax.set_ylabel("prompt tokens evaluated per keystroke (mean)")
    ax.set_yscale("log")
    ax.set_title("FIM order and KV reuse while typing")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
