"""Load Hugging Face causal LMs natively, without running code from model repositories.

The seed models need care that `AutoModelForCausalLM.from_pretrained` does not give:

* DeciCoder-1B's config.json has no `model_type` (its remote code is v4-era and broken on
  current transformers), but its weights are plain Llama weights: we build a `LlamaConfig`
  from the json ourselves.
* DeciLM-6B / DeciCoder-6B use a different number of KV heads per layer. Repeating each
  layer's K/V projection rows up to a common head count is exact (every query head still
  reads the same keys and values), so they load as ordinary GQA Llama models.
* The original `bigcode/santacoder` repo claims `model_type: gpt2`; AutoConfig silently turns
  it into a GPT2Config that would load garbage. We refuse it and point to the native
  `bigcode/gpt_bigcode-santacoder` conversion.
* A load that leaves weights randomly initialised (missing keys) or drops weights
  (unexpected keys) produces a model that writes nonsense; we refuse it instead.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ghostfill.errors import ModelLoadError

#: Keys of DeciCoder/DeciLM configs (and older spellings) mapped to `LlamaConfig` arguments.
_LLAMA_KEYS: dict[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size",),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "kv_heads"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "max_seq_len"),
    "rms_norm_eps": ("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"),
    "rope_theta": ("rope_theta", "rotary_emb_base"),
    "rope_scaling": ("rope_scaling",),
    "hidden_act": ("hidden_act", "activation_function"),
    "initializer_range": ("initializer_range",),
    "tie_word_embeddings": ("tie_word_embeddings",),
    "attention_bias": ("attention_bias",),
    "mlp_bias": ("mlp_bias",),
    "head_dim": ("head_dim",),
    "bos_token_id": ("bos_token_id",),
    "eos_token_id": ("eos_token_id",),
    "pad_token_id": ("pad_token_id",),
}
_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads")

#: Checkpoint entries that are buffers, not weights: harmless when unexpected or missing.
_HARMLESS_KEY_PARTS = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


@dataclass
class LoadedModel:
    """A model on its device, its tokenizer and how it was loaded."""

    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    #: "deci-llama", "deci-llama-vgqa", "auto" or "gguf": which path loaded it.
    loader: str
    #: Positions the model can attend to (its trained context).
    max_positions: int
    path: Path


def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelLoadError(f"{model_dir} has no config.json") from e
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    return raw


def is_deci_family(raw: dict[str, Any]) -> bool:
    """DeciCoder/DeciLM configs: no (or a `deci`) model_type and Deci architectures."""
    if raw.get("model_type") not in (None, "", "deci"):
        return False
    names = " ".join(raw.get("architectures") or []) + " " + json.dumps(raw.get("auto_map") or {})
    return "deci" in names.lower() or "num_key_value_heads_per_layer" in raw


def check_not_santacoder_gpt2(raw: dict[str, Any], source: str) -> None:
    """Refuse the original SantaCoder repo, which plain AutoConfig misreads as GPT-2."""
    if raw.get("model_type") != "gpt2":
        return
    archs = raw.get("architectures") or []
    auto_map = json.dumps(raw.get("auto_map") or {})
    if ("GPT2LMHeadCustomModel" in archs or "attention_head_type" in raw
            or "gpt2_mq" in auto_map or "GPT2CustomConfig" in auto_map):
        raise ModelLoadError(
            f"{source} is the original SantaCoder checkpoint (custom multi-query GPT-2), which "
            "only loads with its outdated remote code; use the native conversion "
            "'bigcode/gpt_bigcode-santacoder' (preset 'santacoder') instead"
        )


def llama_config_from_deci(raw: dict[str, Any]) -> Any:
    """A `LlamaConfig` for a DeciCoder/DeciLM config.json (variable GQA made uniform)."""
    from transformers import LlamaConfig

    kwargs: dict[str, Any] = {}
    for target, aliases in _LLAMA_KEYS.items():
        for alias in aliases:
            if raw.get(alias) is not None:
                kwargs[target] = raw[alias]
                break
    missing = [k for k in _REQUIRED if k not in kwargs]
    if missing:
        raise ModelLoadError(
            f"DeciCoder-style config.json lacks {', '.join(missing)}: cannot build a Llama config"
        )
    per_layer = raw.get("num_key_value_heads_per_layer")
    if per_layer is not None:
        kwargs["num_key_value_heads"] = uniform_kv_heads(
            per_layer, kwargs["num_attention_heads"], kwargs["num_hidden_layers"]
        )
    kwargs.setdefault("hidden_act", "silu")
    kwargs.setdefault("tie_word_embeddings", False)
    kwargs.setdefault("rms_norm_eps", 1e-6)
    config = LlamaConfig(**kwargs)
    config.architectures = ["LlamaForCausalLM"]
    return config


def uniform_kv_heads(per_layer: list[int], n_heads: int, n_layers: int) -> int:
    """Smallest KV-head count every layer's count divides (the lcm; it divides `n_heads`).

    Expanding a layer with g KV heads to G = m*g heads by repeating each head m times keeps
    query head h on the same keys: h // (n_heads/G) // m == h // (n_heads/g).
    """
    if len(per_layer) != n_layers or any(int(g) <= 0 or n_heads % int(g) for g in per_layer):
        raise ModelLoadError(
            f"num_key_value_heads_per_layer {per_layer} does not fit {n_layers} layers of "
            f"{n_heads} attention heads"
        )
    return math.lcm(*(int(g) for g in per_layer))


def expand_kv_heads(state_dict: dict[str, Any], per_layer: list[int], target: int,
                    head_dim: int) -> dict[str, Any]:
    """Repeat each layer's K/V projection rows (and biases) up to `target` heads, in place."""
    for layer, groups in enumerate(per_layer):
        repeat = target // int(groups)
        if repeat == 1:
            continue
        for proj in ("k_proj", "v_proj"):
            for kind in ("weight", "bias"):
                key = f"model.layers.{layer}.self_attn.{proj}.{kind}"
                if key not in state_dict:
                    continue
                t = state_dict[key]
                heads = t.reshape(int(groups), head_dim, *t.shape[1:])
                state_dict[key] = heads.repeat_interleave(repeat, dim=0).reshape(
                    target * head_dim, *t.shape[1:]
                )
    return state_dict


def read_state_dict(model_dir: Path) -> dict[str, Any]:
    """All tensors of a checkpoint directory (safetensors preferred, torch .bin otherwise)."""
    files = sorted(model_dir.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        out: dict[str, Any] = {}
        for f in files:
            out.update(load_file(str(f)))
        return out
    bins = sorted(model_dir.glob("pytorch_model*.bin"))
    if not bins:
        raise ModelLoadError(f"{model_dir} has no weights (*.safetensors or pytorch_model*.bin)")
    import torch

    out = {}
    for f in bins:
        out.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return out


def check_complete(info: dict[str, Any], source: str) -> None:
    """Refuse a partial load: missing, unexpected or mismatched weights are all fatal."""
    problems: list[str] = []
    for label, key in (("missing", "missing_keys"), ("unexpected", "unexpected_keys"),
                       ("mismatched", "mismatched_keys")):
        names = sorted(
            str(k[0] if isinstance(k, tuple) else k) for k in info.get(key) or ()
            if not any(part in str(k) for part in _HARMLESS_KEY_PARTS)
        )
        if names:
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            problems.append(f"{len(names)} {label} ({shown})")
    if info.get("error_msgs"):
        problems.append(f"errors ({str(info['error_msgs'][0]).splitlines()[0]})")
    if problems:
        raise ModelLoadError(
            f"{source} does not match its architecture: {'; '.join(problems)}; refusing a "
            "partially loaded model"
        )


def pick_device(device: str = "auto") -> Any:
    """CUDA when asked for or available (auto), else the CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was requested but no CUDA GPU is available")
    return torch.device(device)


def pick_dtype(device: Any) -> Any:
    """bf16 (fp16 on GPUs without bf16) on CUDA; fp32 on the CPU, where half is slow."""
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_model(source: str | Path, *, device: str = "auto", dtype: Any = None,
               trust_remote_code: bool = False) -> LoadedModel:
    """Load model and tokenizer from a local directory or a .gguf file (natively if we can)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()  # stderr noise in a language server
    transformers.utils.logging.set_verbosity_error()
    path = Path(source)
    dev = pick_device(device)
    dt = dtype or pick_dtype(dev)
    common: dict[str, Any] = {"dtype": dt}
    if dev.type == "cuda":
        common["attn_implementation"] = "sdpa"
    try:
        if path.is_file():
            model = _load_gguf(path, common)
            tokenizer = _load_tokenizer(path.parent, gguf_file=path.name)
            loader = "gguf"
        else:
            raw = read_config(path)
            check_not_santacoder_gpt2(raw, str(path))
            if is_deci_family(raw):
                model, loader = _load_deci(path, raw, common)
            else:
                model, loader = _load_auto(path, raw, common, trust_remote_code), "auto"
            # The model's config is passed so the tokenizer does not parse config.json again
            # (DeciCoder's has no model_type).
            tokenizer = _load_tokenizer(path, config=model.config,
                                        trust_remote_code=trust_remote_code)
    except ModelLoadError:
        raise
    except Exception as e:  # corrupt files, torch/safetensors errors: all "cannot load"
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelLoadError(f"cannot load {path}: {first}") from e
    model.to(dev)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, device=dev, dtype=dt, loader=loader,
                       max_positions=max_positions(model.config), path=path)


def max_positions(config: Any) -> int:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def _with_loading_info(loaded: object) -> tuple[Any, dict[str, Any]]:
    """`from_pretrained(..., output_loading_info=True)`'s (model, loading info) pair."""
    # transformers types from_pretrained as returning the model alone, whatever
    # output_loading_info says; with it set, the call returns the pair.
    return cast(tuple[Any, dict[str, Any]], loaded)


def _load_deci(path: Path, raw: dict[str, Any], common: dict[str, Any]) -> tuple[Any, str]:
    from transformers import LlamaForCausalLM

    config = llama_config_from_deci(raw)
    per_layer = raw.get("num_key_value_heads_per_layer")
    if per_layer is None:
        model, info = _with_loading_info(LlamaForCausalLM.from_pretrained(
            str(path), config=config, output_loading_info=True, **common
        ))
        check_complete(info, str(path))
        return model, "deci-llama"
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    state = expand_kv_heads(read_state_dict(path), per_layer, config.num_key_value_heads, head_dim)
    model, info = _with_loading_info(LlamaForCausalLM.from_pretrained(
        None, config=config, state_dict=state, output_loading_info=True, **common
    ))
    check_complete(info, str(path))
    return model, "deci-llama-vgqa"


def _load_auto(path: Path, raw: dict[str, Any], common: dict[str, Any],
               trust_remote_code: bool) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    if not raw.get("model_type") and not trust_remote_code:
        raise ModelLoadError(
            f"{path}/config.json has no model_type and is not a known architecture; it needs "
            "the code shipped with the model: set model.trust_remote_code = true if you trust it"
        )
    config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    model, info = _with_loading_info(AutoModelForCausalLM.from_pretrained(
        str(path), config=config, trust_remote_code=trust_remote_code,
        output_loading_info=True, **common
    ))
    check_complete(info, str(path))
    return model


def gguf_tensor_count(path: Path) -> int:
    """Number of tensors a GGUF file declares (0 for a vocabulary-only file), from its header."""
    with path.open("rb") as f:
        header = f.read(24)
    if len(header) < 24 or header[:4] != b"GGUF":
        raise ModelLoadError(f"{path} is not a GGUF file")
    version = struct.unpack("<I", header[4:8])[0]
    if version < 2:
        raise ModelLoadError(f"{path} uses GGUF version {version}, which is too old")
    return int(struct.unpack("<Q", header[8:16])[0])


def _load_gguf(path: Path, common: dict[str, Any]) -> Any:
    from transformers import AutoModelForCausalLM

    if gguf_tensor_count(path) == 0:
        raise ModelLoadError(f"{path.name} holds only a vocabulary, no weights")
    try:
        model, info = _with_loading_info(AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, output_loading_info=True, **common
        ))
    except (ValueError, KeyError, NotImplementedError) as e:
        raise ModelLoadError(
            f"transformers cannot load {path.name} ({str(e).splitlines()[0]}); use the "
            "llamacpp backend for GGUF models of this architecture"
        ) from e
    check_complete(info, path.name)
    return model


def _load_tokenizer(model_dir: Path, *, gguf_file: str | None = None, config: Any = None,
                    trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    extra = {"config": config} if config is not None else {}
    try:
        return AutoTokenizer.from_pretrained(
            str(model_dir), gguf_file=gguf_file, trust_remote_code=trust_remote_code, **extra
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"cannot load the tokenizer of {model_dir}: {e}") from e


__all__ = [
    "LoadedModel",
    "check_complete",
    "check_not_santacoder_gpt2",
    "expand_kv_heads",
    "gguf_tensor_count",
    "is_deci_family",
    "llama_config_from_deci",
    "load_model",
    "max_positions",
    "pick_device",
    "pick_dtype",
    "read_config",
    "read_state_dict",
    "uniform_kv_heads",
]
