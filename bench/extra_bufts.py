"""llama.cpp's extra buffer types on and off: prefill and decode speed, side by side.

What `model.extraBufferTypes` costs or buys on this CPU, to choose the default by measurement
(backends/cpu_features.py): the same model is loaded both ways, alternately, and each load
reads a 1,000-token prompt (no KV reuse) and decodes 64 greedy tokens. The two runs' texts are
compared too (a repacked layout may round differently).

    python -m ghostfill.bench.extra_bufts --out bench/results
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

PROMPT_TOKENS = 1000
DECODE_TOKENS = 64


def measure(model_path: Path, extra: bool, threads: int | None) -> dict[str, Any]:
    import json.decoder as decoder

    from ghostfill.backends.base import GenerationRequest, PromptParts
    from ghostfill.backends.llamacpp import LlamaCppBackend

    started = time.monotonic()
    backend = LlamaCppBackend(model_path, context_length=2048, threads=threads,
                              extra_buffer_types=extra, kv_reuse=False)
    load_s = time.monotonic() - started
    try:
        tok = backend.tokenizer
        source = Path(decoder.__file__).read_text()
        ids = ([tok.bos_id] if tok.add_bos and tok.bos_id is not None else []) + tok.encode(source)
        prompt = ids[:PROMPT_TOKENS]
        out = backend.generate(GenerationRequest(PromptParts(prompt), max_tokens=DECODE_TOKENS))
        t = out.timings
        decoded = max(1, t.generated_tokens - 1)
        return {
            "extra_buffer_types": extra,
            "use_extra_bufts": backend.options()["use_extra_bufts"],
            "load_s": round(load_s, 3),
            "prompt_tokens": t.evaluated_tokens,
            "prefill_tok_s": round(1000 * t.evaluated_tokens / t.prompt_ms, 1),
            "decode_ms_per_token": round((t.total_ms - t.first_token_ms) / decoded, 2),
            "generated_tokens": t.generated_tokens,
            "text": out.text,
        }
    finally:
        backend.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gemma3-270m,smollm2-135m",
                        help="comma-separated presets or .gguf files")
    parser.add_argument("--rounds", type=int, default=3, help="loads per setting, alternating")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    from ghostfill.backends.cpu_features import cpu_flags, cpu_name
    from ghostfill.bench.results import write_results
    from ghostfill.models import resolve

    runs: list[dict[str, Any]] = []
    for name in args.models.split(","):
        path = resolve(name).path
        for _ in range(args.rounds):
            for extra in (True, False):
                row = {"model": name, **measure(path, extra, args.threads)}
                runs.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "text"}), flush=True)
    summary = summarize(runs)
    for row in summary:
        print(json.dumps(row))
    write_results(args.out, "extra-bufts", "extra_bufts", argv, {
        "cpu": cpu_name(), "amx": any(f.startswith("amx") for f in cpu_flags()),
        "summary": summary, "runs": runs}, lambda path: plot(summary, path))
    return 0


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        texts = {}
        for extra in (True, False):
            mine = [r for r in runs if r["model"] == model and r["extra_buffer_types"] is extra]
            texts[extra] = mine[0]["text"]
            rows.append({
                "model": model, "extra_buffer_types": extra, "loads": len(mine),
                "prefill_tok_s_median": statistics.median(r["prefill_tok_s"] for r in mine),
                "decode_ms_per_token_median": statistics.median(
                    r["decode_ms_per_token"] for r in mine),
            })
        rows[-1]["same_text_both_ways"] = texts[True] == texts[False]
    return rows


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in summary))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, label in ((axes[0], "prefill_tok_s_median", "prefill (tokens/s, higher better)"),
                           (axes[1], "decode_ms_per_token_median",
                            "decode (ms/token, lower better)")):
        for i, extra in enumerate((True, False)):
            values = [next(r[key] for r in summary if r["model"] == m
                           and r["extra_buffer_types"] is extra) for m in models]
            xs = [j + i * 0.4 for j in range(len(models))]
            ax.bar(xs, values, width=0.4, label="extra buffer types " + ("on" if extra else "off"),
                   color="#1f77b4" if extra else "#ff7f0e")
        ax.set_xticks([j + 0.2 for j in range(len(models))], models)
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
