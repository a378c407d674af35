"""The template registry: every FIM format ghostfill knows, in one table.

A template names its control tokens by their spelling; the ids come from the model's own
vocabulary at render time, so a template never smuggles a control token in as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ghostfill.errors import TemplateError

Order = Literal["psm", "spm"]


@dataclass(frozen=True)
class FimTemplate:
    name: str
    description: str
    #: Control-token spellings; all None for the prefix-only template.
    prefix_token: str | None = None
    suffix_token: str | None = None
    middle_token: str | None = None
    #: Orders the family was trained on; the first is the default.
    orders: tuple[Order, ...] = ("psm",)
    #: Text placed right after the prefix marker (CodeLlama: `<PRE> {prefix}`).
    prefix_lead: str = ""
    #: Text placed right before the middle marker (CodeLlama: `{suffix} <MID>`).
    middle_lead: str = ""
    #: Control tokens that end the answer, besides the model's EOS/EOT.
    stop_tokens: tuple[str, ...] = ()
    #: Cross-file form: file separator token (StarCoder2/Qwen repo form); None → path comments.
    file_sep_token: str | None = None
    #: Vocabulary entries that identify the family during detection (all must be present).
    signature: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_fim(self) -> bool:
        return self.prefix_token is not None

    @property
    def control_tokens(self) -> tuple[str, ...]:
        own = (self.prefix_token, self.suffix_token, self.middle_token)
        return tuple(t for t in own if t) + self.stop_tokens


_STARCODER_STOPS = ("<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>")

_TEMPLATES = (
    FimTemplate(
        name="starcoder",
        description="StarCoder/StarCoder2, DeciCoder-1B, tiny_starcoder_py, Refact, CodeQwen1.5",
        prefix_token="<fim_prefix>",
        suffix_token="<fim_suffix>",
        middle_token="<fim_middle>",
        orders=("psm", "spm"),
        stop_tokens=_STARCODER_STOPS,
        file_sep_token="<file_sep>",
        signature=("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
        aliases=("starcoder2", "decicoder", "tiny_starcoder", "refact", "codeqwen1.5"),
    ),
    FimTemplate(
        name="santacoder",
        description="SantaCoder (bigcode/santacoder, gpt_bigcode-santacoder)",
        prefix_token="<fim-prefix>",
        suffix_token="<fim-suffix>",
        middle_token="<fim-middle>",
        orders=("psm", "spm"),
        stop_tokens=("<|endoftext|>", "<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
        signature=("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
    ),
    FimTemplate(
        name="codellama",
        description="CodeLlama (7B/13B base and instruct)",
        prefix_token="▁<PRE>",
        suffix_token="▁<SUF>",
        middle_token="▁<MID>",
        orders=("psm", "spm"),
        prefix_lead=" ",
        middle_lead="",
        stop_tokens=("▁<EOT>", "<EOT>"),
        signature=("▁<PRE>", "▁<SUF>", "▁<MID>"),
    ),
    FimTemplate(
        name="codellama-plain",
        description="CodeLlama converted with plain <PRE>/<SUF>/<MID> tokens",
        prefix_token="<PRE>",
        suffix_token="<SUF>",
        middle_token="<MID>",
        orders=("psm", "spm"),
        prefix_lead=" ",
        middle_lead=" ",
        stop_tokens=("<EOT>",),
        signature=("<PRE>", "<SUF>", "<MID>"),
    ),
    FimTemplate(
        name="deepseek-coder",
        description="DeepSeek-Coder (1.3B/6.7B/33B base) and DeepSeek-Coder-V2",
        prefix_token="<｜fim▁begin｜>",
        suffix_token="<｜fim▁hole｜>",
        middle_token="<｜fim▁end｜>",
        stop_tokens=("<｜end▁of▁sentence｜>", "<|EOT|>"),
        signature=("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        aliases=("deepseek",),
    ),
    FimTemplate(
        name="codegemma",
        description="CodeGemma (2B, 7B)",
        prefix_token="<|fim_prefix|>",
        suffix_token="<|fim_suffix|>",
        middle_token="<|fim_middle|>",
        stop_tokens=("<|file_separator|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        file_sep_token="<|file_separator|>",
        signature=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>"),
    ),
    FimTemplate(
        name="qwen2.5-coder",
        description="Qwen2.5-Coder (0.5B-32B base), Qwen3-Coder",
        prefix_token="<|fim_prefix|>",
        suffix_token="<|fim_suffix|>",
        middle_token="<|fim_middle|>",
        stop_tokens=(
            "<|endoftext|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
            "<|im_end|>",
            "<|fim_prefix|>",
            "<|fim_suffix|>",
            "<|fim_middle|>",
        ),
        file_sep_token="<|file_sep|>",
        signature=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
        aliases=("qwen", "qwen2.5", "qwen3-coder"),
    ),
    FimTemplate(
        name="codestral",
        description="Codestral / Mistral FIM ([SUFFIX] suffix [PREFIX] prefix)",
        prefix_token="[PREFIX]",
        suffix_token="[SUFFIX]",
        middle_token=None,
        orders=("spm",),
        stop_tokens=("[PREFIX]", "[SUFFIX]", "[MIDDLE]"),
        signature=("[PREFIX]", "[SUFFIX]"),
        aliases=("mistral",),
    ),
    FimTemplate(
        name="prefix-only",
        description="Plain continuation for models without FIM tokens (the suffix still "
        "drives post-processing)",
        orders=("psm",),
        aliases=("none", "completion"),
    ),
)

TEMPLATES: dict[str, FimTemplate] = {t.name: t for t in _TEMPLATES}
_ALIASES = {alias: t.name for t in _TEMPLATES for alias in t.aliases}

#: Detection order: most specific signature first (CodeGemma before Qwen share tokens).
DETECTION_ORDER = (
    "deepseek-coder",
    "codegemma",
    "qwen2.5-coder",
    "starcoder",
    "santacoder",
    "codellama",
    "codellama-plain",
    "codestral",
)


def get_template(name: str) -> FimTemplate:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TEMPLATES:
        known = ", ".join(TEMPLATES)
        raise TemplateError(f"unknown FIM template '{name}' (known: {known})")
    return TEMPLATES[key]
