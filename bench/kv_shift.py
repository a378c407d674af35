"""A window whose start moved down: KV shift against re-reading, with the embedded model.

The prompt is a fixed head plus a 100-line window of a standard-library file; the window then
loses its first 20 lines and gains one at the end (what typing past the window's slack does).
Measured with `model.kvShift` on and off: prompt tokens evaluated and prompt time for the
moved window.

    python -m ghostfill.bench.kv_shift --out bench/results
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def measure(model_path: Path, shift: bool) -> dict[str, Any]:
    import json.decoder as decoder

    from ghostfill.backends.base import GenerationRequest, PromptParts
    from ghostfill.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(model_path, context_length=2048, kv_shift=shift)
    try:
        tok = backend.tokenizer
        head = ([tok.bos_id] if tok.add_bos and tok.bos_id is not None else []) + tok.encode(
            "# file: json/decoder.py\nimport re\n")
        lines = Path(decoder.__file__).read_text().split("\n")
        window = "\n".join(lines[40:140]) + "\n"
        moved = "\n".join(lines[60:141]) + "\n"
        backend.generate(GenerationRequest(PromptParts(head + tok.encode(window)), max_tokens=2))
        after = backend.generate(GenerationRequest(PromptParts(head + tok.encode(moved)),
                                                   max_tokens=2))
        t = after.timings
        return {"kv_shift": shift, "prompt_tokens": t.prompt_tokens,
                "evaluated_tokens": t.evaluated_tokens, "shifted_tokens": t.shifted_tokens,
                "prompt_ms": round(t.prompt_ms, 1)}
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    from ghostfill.models import resolve

    path = resolve(args.model).path
    rows = [measure(path, shift) for shift in (True, False)]
    for row in rows:
        print(json.dumps(row), flush=True)
    from ghostfill.bench.results import write_results

    write_results(args.out, "kv-shift", "kv_shift", argv, {"model": args.model, "rows": rows},
                  lambda path: plot(rows, path))
    return 0


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["KV shift" if r["kv_shift"] else "re-read" for r in rows],
           [r["prompt_ms"] for r in rows], color=["#4a4", "#c44"])
    ax.set_ylabel("prompt time after the move (ms)")
    ax.set_title("Window start moved by 20 lines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
