"""Benchmark speculative decoding: plain greedy vs a draft model vs prompt lookup.

    python -m ghostfill.bench.speculative --random-tiny --device cpu
    python -m ghostfill.bench.speculative --model decicoder-1b --draft tiny-starcoder-py \
        --device cuda

Prompts are FIM prompts cut from Python standard-library sources (present on every machine).
For each mode it reports decode tokens/s, drafted and accepted tokens and whether the output
is identical to plain greedy decoding, as JSON (and a bar chart) under `bench/results/`.

`--random-tiny` builds a random target/draft pair offline (`build_random_pair`) when the real
models are not available. Random weights say nothing about real acceptance rates; they are
rigged so the draft agrees with the target often (shared token-to-token map, see below), and
they exercise the same code and cost structure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STDLIB_FILES = ("textwrap.py", "argparse.py", "dataclasses.py", "functools.py", "json/decoder.py",
                "pathlib.py", "csv.py", "shlex.py", "difflib.py", "inspect.py")


def starcoder_vocab() -> Path:
    """The StarCoder tokenizer GGUF shipped beside the repository (or $GHOSTFILL_VOCAB_DIR)."""
    base = Path(os.environ.get("GHOSTFILL_VOCAB_DIR", ROOT.parent / "shared" / "vocab"))
    return base / "ggml-vocab-starcoder.gguf"


def load_starcoder_tokenizer(path: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    path = path or starcoder_vocab()
    if not path.is_file():
        raise SystemExit(f"StarCoder vocabulary {path} not found: set GHOSTFILL_VOCAB_DIR")
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@dataclass(frozen=True)
class PairShape:
    """Sizes of a random target (Llama, DeciCoder-style) and draft (GPTBigCode, MQA)."""

    target_hidden: int = 64
    target_layers: int = 2
    target_heads: int = 4
    target_kv_heads: int = 2
    draft_hidden: int = 64
    draft_layers: int = 1
    draft_heads: int = 4
    positions: int = 1024
    #: Scale of the target's / draft's layer outputs against the shared token map: larger
    #: means more context dependence and less agreement (6 and 3 give ~80% agreement).
    target_layer_scale: float = 6.0
    draft_layer_scale: float = 3.0


def build_random_pair(out_dir: Path, tokenizer: Any, *, seed: int = 0,
                      shape: PairShape = PairShape()) -> tuple[Path, Path]:
    """Save a random DeciCoder-style Llama target and a GPTBigCode draft that often agree.

    How agreement is rigged: both models get the same token embedding E (rows centred, std 1)
    in their first `draft_hidden` dimensions and the same output matrix W there, and the
    draft's position embeddings are zero. With layer outputs scaled down, each model's
    prediction is close to argmax W·norm(E[token]) — the same map for both, since RMSNorm and
    LayerNorm agree on centred rows. Random attention and MLP layers (scaled by
    `*_layer_scale`) add context dependence that differs between the two, so some drafts are
    accepted and some rejected. The target's config.json is rewritten in DeciCoder's form
    (no model_type, DeciCoderForCausalLM), so it loads through the native Llama path.
    """
    import torch
    from transformers import (
        GPTBigCodeConfig,
        GPTBigCodeForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    vocab = len(tokenizer)
    d0 = shape.draft_hidden
    if shape.target_hidden < d0:
        raise ValueError("the target must be at least as wide as the draft")
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(vocab, d0, generator=gen)
    emb -= emb.mean(dim=1, keepdim=True)
    out = torch.randn(vocab, d0, generator=gen) * 0.02
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(seed)
    target = LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=shape.target_hidden,
        intermediate_size=shape.target_hidden * 11 // 4, num_hidden_layers=shape.target_layers,
        num_attention_heads=shape.target_heads, num_key_value_heads=shape.target_kv_heads,
        max_position_embeddings=shape.positions, tie_word_embeddings=False, **special,
    )).eval()
    draft = GPTBigCodeForCausalLM(GPTBigCodeConfig(
        vocab_size=vocab, n_embd=d0, n_layer=shape.draft_layers, n_head=shape.draft_heads,
        n_positions=shape.positions, multi_query=True, tie_word_embeddings=False, **special,
    )).eval()
    with torch.no_grad():
        target.model.embed_tokens.weight.zero_()
        target.model.embed_tokens.weight[:, :d0] = emb
        target.lm_head.weight.normal_(0.0, 0.02, generator=gen)
        target.lm_head.weight[:, :d0] = out
        # Layer outputs grow like width^1.5 at this init; keep their share of the residual
        # stream what it is at the draft's width.
        scale = shape.target_layer_scale * (d0 / shape.target_hidden) ** 1.5
        for layer in target.model.layers:
            layer.self_attn.o_proj.weight.mul_(scale)
            layer.mlp.down_proj.weight.mul_(scale)
        draft.transformer.wte.weight.copy_(emb)
        draft.transformer.wpe.weight.zero_()
        draft.lm_head.weight.copy_(out)
        for block in draft.transformer.h:
            block.attn.c_proj.weight.mul_(shape.draft_layer_scale)
            block.mlp.c_proj.weight.mul_(shape.draft_layer_scale)
    target_dir, draft_dir = out_dir / "target", out_dir / "draft"
    for model, path in ((target, target_dir), (draft, draft_dir)):
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    write_decicoder_config(target_dir)
    return target_dir, draft_dir


def write_decicoder_config(model_dir: Path) -> None:
    """Rewrite a saved Llama config.json the way DeciCoder-1B ships it (no model_type)."""
    path = model_dir / "config.json"
    raw = json.loads(path.read_text())
    raw.pop("model_type", None)
    for key in ("head_dim", "attention_bias", "attention_dropout", "mlp_bias", "pad_token_id"):
        raw.pop(key, None)  # keys a transformers-4.31-era config does not have
    raw["torch_dtype"] = raw.pop("dtype", "float32")
    raw["transformers_version"] = "4.31.0"
    rope = raw.pop("rope_parameters", None) or {}
    raw["rope_theta"] = rope.get("rope_theta", 10000.0)
    raw["rope_scaling"] = None
    raw["architectures"] = ["DeciCoderForCausalLM"]
    raw["auto_map"] = {
        "AutoConfig": "configuration_decicoder.DeciCoderConfig",
        "AutoModelForCausalLM": "modeling_decicoder.DeciCoderForCausalLM",
    }
    path.write_text(json.dumps(raw, indent=2))


# -- prompts ----------------------------------------------------------------------------
def fim_ids(tokenizer: Any) -> list[int] | None:
    vocab = tokenizer.get_vocab()
    ids = [vocab.get(p) for p in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")]
    return None if None in ids else ids


def stdlib_fim_cuts(tokenizer: Any, count: int, *, prefix_tokens: int = 384,
                    suffix_tokens: int = 64, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(prefix, suffix) token lists cut at random line starts of standard-library modules."""
    rng = random.Random(seed)
    lib = Path(sysconfig.get_paths()["stdlib"])
    sources = [lib / name for name in STDLIB_FILES if (lib / name).is_file()]
    if not sources:
        raise SystemExit(f"no standard-library sources under {lib}")
    cuts = []
    for i in range(count):
        lines = sources[i % len(sources)].read_text(encoding="utf-8").splitlines(keepends=True)
        cut = rng.randrange(len(lines) // 4, len(lines) * 3 // 4)
        prefix = tokenizer.encode("".join(lines[:cut]), add_special_tokens=False)
        suffix = tokenizer.encode("".join(lines[cut + 1 :]), add_special_tokens=False)
        cuts.append((prefix[-prefix_tokens:], suffix[:suffix_tokens]))
    return cuts


def render(tokenizer: Any, prefix: list[int], suffix: list[int]) -> list[int]:
    fim = fim_ids(tokenizer)
    if fim is None:
        return prefix  # prefix-only models
    return [fim[0], *prefix, fim[1], *suffix, fim[2]]


# -- measurement ------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: str
    generated: int = 0
    decode_s: float = 0.0
    drafted: int = 0
    accepted: int = 0
    first_token_ms: list[float] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)

    def summary(self, plain: ModeResult) -> dict[str, Any]:
        tps = self.generated / self.decode_s if self.decode_s else 0.0
        plain_tps = plain.generated / plain.decode_s if plain.decode_s else 0.0
        return {
            "mode": "plain" if self is plain else self.mode,
            "generated_tokens": self.generated,
            "decode_s": round(self.decode_s, 4),
            "tokens_per_s": round(tps, 2),
            "speedup_vs_plain": round(tps / plain_tps, 3) if plain_tps else None,
            "drafted_tokens": self.drafted,
            "accepted_tokens": self.accepted,
            "acceptance_rate": round(self.accepted / self.drafted, 3) if self.drafted else None,
            "median_first_token_ms": round(statistics.median(self.first_token_ms), 2)
            if self.first_token_ms else None,
            "identical_to_plain": self.outputs == plain.outputs,
        }


def run_modes(backend: Any, modes: list[str], prompts: list[list[int]],
              max_tokens: int) -> dict[str, ModeResult]:
    """Every prompt in every mode, modes interleaved per prompt so that load from other
    processes falls on all modes alike; each request starts from an empty cache."""
    from ghostfill.backends.base import GenerationRequest, PromptParts

    stop = frozenset(backend.tokenizer.eos_ids)

    def run(mode: str, tokens: list[int]) -> Any:
        backend.speculative = mode
        backend.reset_cache()  # every mode pays the same prefill; only decoding differs
        return backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=max_tokens,
                                                  stop_ids=stop))

    for mode in modes:  # warm kernels, allocator and the draft-length controllers
        run(mode, prompts[0])
    results = {mode: ModeResult(mode) for mode in modes}
    for tokens in prompts:
        for mode in modes:
            gen = run(mode, tokens)
            t, r = gen.timings, results[mode]
            r.generated += t.generated_tokens
            r.decode_s += t.decode_ms / 1000
            r.drafted += t.drafted_tokens
            r.accepted += t.accepted_tokens
            r.first_token_ms.append(t.first_token_ms)
            r.outputs.append(gen.tokens)
    return results


def run_scenarios(backend: Any, cuts: list[tuple[list[int], list[int]]], modes: list[str],
                  scenarios: list[str], max_tokens: int) -> dict[str, list[dict[str, Any]]]:
    """`code`: plain FIM prompts. `echo`: the plain answer also sits at the start of the
    suffix (re-completing after an undo, a line duplicated below the cursor): the best case
    for prompt lookup."""
    tok = backend.hf_tokenizer
    out: dict[str, list[dict[str, Any]]] = {}
    code = [render(tok, p, s) for p, s in cuts]
    code_results: dict[str, ModeResult] | None = None
    for scenario in scenarios:
        if code_results is None:
            code_results = run_modes(backend, modes, code, max_tokens)
        if scenario == "code":
            results = code_results
        else:
            answers = code_results["off"].outputs
            prompts = [render(tok, p, [*answer, *s])
                       for (p, s), answer in zip(cuts, answers, strict=True)]
            results = run_modes(backend, modes, prompts, max_tokens)
        plain = results["off"]
        out[scenario] = [results[m].summary(plain) for m in modes]
        if hasattr(backend, "speculation_stats"):
            stats = backend.speculation_stats()
            for row in out[scenario]:
                if row["mode"] in stats:
                    row["controller"] = stats[row["mode"]]
    return out


def plot(report: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    scenarios = report["scenarios"]
    modes = [m["mode"] for m in next(iter(scenarios.values()))]
    width = 0.8 / len(modes)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colors = {"plain": "#888", "draft": "#3a7", "prompt-lookup": "#37a"}
    for j, mode in enumerate(modes):
        for i, rows in enumerate(scenarios.values()):
            row = rows[j]
            x = i + (j - (len(modes) - 1) / 2) * width
            ax.bar(x, row["tokens_per_s"], width, color=colors.get(mode, "#a73"),
                   label=mode if i == 0 else None)
            rate = row["acceptance_rate"]
            label = f"{row['tokens_per_s']:.0f}" + (f"\n{rate:.0%}" if rate is not None else "")
            ax.text(x, row["tokens_per_s"], label, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(scenarios)), list(scenarios))
    ax.set_ylabel("decode tokens/s (label: acceptance)")
    ax.set_title(f"{report['model']} on {report['device']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="target: preset, directory or repo id")
    parser.add_argument("--draft", help="draft model: preset, directory or repo id")
    parser.add_argument("--random-tiny", action="store_true",
                        help="build a random target/draft pair offline (no real models needed)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--prefix-tokens", type=int, default=384)
    parser.add_argument("--scenarios", default="code,echo", help="comma-separated: code, echo")
    parser.add_argument("--k", type=int, default=None,
                        help="fixed draft length (default: adapt to the acceptance rate)")
    parser.add_argument("--target-hidden", type=int, default=256,
                        help="--random-tiny: target width (the draft is 64 wide, 1 layer)")
    parser.add_argument("--target-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is steadier on a machine shared with others)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.random_tiny and not args.model:
        parser.error("give --model (and optionally --draft) or --random-tiny")
    scenarios = [s for s in args.scenarios.split(",") if s]
    if not set(scenarios) <= {"code", "echo"}:
        parser.error("--scenarios takes code and/or echo")

    import tempfile

    import torch

    from ghostfill.backends.transformers_backend import TransformersBackend
    from ghostfill.errors import GhostfillError

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_tiny:
            tokenizer = load_starcoder_tokenizer()
            shape = PairShape(target_hidden=args.target_hidden, target_layers=args.target_layers,
                              target_heads=max(4, args.target_hidden // 64),
                              target_kv_heads=max(2, args.target_hidden // 256))
            model, draft = build_random_pair(Path(tmp), tokenizer, seed=args.seed, shape=shape)
            label = f"random-tiny (Llama {args.target_hidden}x{args.target_layers}, draft 64x1)"
        else:
            model, draft, label = args.model, args.draft, args.model
        t0 = time.monotonic()
        try:
            backend = TransformersBackend(model, draft=draft, device=args.device,
                                          model_name=label)
        except GhostfillError as e:
            raise SystemExit(f"{e}\n(no real models here? run with --random-tiny)") from e
        load_s = time.monotonic() - t0
        backend.fix_draft_length(args.k)
        cuts = stdlib_fim_cuts(backend.hf_tokenizer, args.prompts,
                               prefix_tokens=args.prefix_tokens, seed=args.seed)
        modes = ["off", *(["draft"] if draft else []), "prompt-lookup"]
        results = run_scenarios(backend, cuts, modes, scenarios, args.max_tokens)
    device = str(backend.device)
    if backend.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name()})"
    report = {
        "benchmark": "speculative",
        "model": label,
        "draft": str(args.draft) if args.draft else ("random GPTBigCode 64x1"
                                                     if args.random_tiny else None),
        "device": device,
        "dtype": str(backend.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "prompts": len(cuts),
        "max_tokens": args.max_tokens,
        "draft_length": args.k if args.k is not None else "adaptive",
        "command": "python -m ghostfill.bench.speculative "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "scenarios": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "random-tiny" if args.random_tiny else Path(str(args.model)).name
    stem = f"speculative-{name}-{backend.device.type}"
    json_path = args.out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png = plot(report, args.out / f"{stem}.png")
    for scenario, rows in results.items():
        for m in rows:
            print(f"{scenario:>5} {m['mode']:>14}: {m['tokens_per_s']:8.1f} tok/s  speedup "
                  f"{m['speedup_vs_plain']}  accepted {m['accepted_tokens']}/"
                  f"{m['drafted_tokens']}  identical={m['identical_to_plain']}")
    print(f"wrote {json_path}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
