"""Pick the template from the model's own vocabulary.

Choosing a template from a model *name* is the most common cause of chat text instead of code
in other tools; the vocabulary cannot lie about which control tokens exist.
"""

from __future__ import annotations

from ghostfill.completion.tokenizer import Tokenizer
from ghostfill.errors import TemplateError
from ghostfill.fim.templates import DETECTION_ORDER, TEMPLATES, FimTemplate, get_template


def detect_template(tokenizer: Tokenizer) -> FimTemplate:
    for name in DETECTION_ORDER:
        template = TEMPLATES[name]
        if all(tokenizer.special_id(piece) is not None for piece in template.signature):
            return template
    return TEMPLATES["prefix-only"]


def missing_tokens(template: FimTemplate, tokenizer: Tokenizer) -> list[str]:
    needed = [t for t in (template.prefix_token, template.suffix_token, template.middle_token) if t]
    return [piece for piece in needed if tokenizer.special_id(piece) is None]


def select_template(tokenizer: Tokenizer, configured: str = "auto") -> FimTemplate:
    """The configured template if it fits the vocabulary, else detection; misfits are errors."""
    if configured in ("", "auto"):
        return detect_template(tokenizer)
    template = get_template(configured)
    missing = missing_tokens(template, tokenizer)
    if missing:
        detected = detect_template(tokenizer).name
        raise TemplateError(
            f"FIM template '{template.name}' does not fit this model: its vocabulary has no "
            f"{', '.join(missing)} (the vocabulary suggests '{detected}'; set template to "
            "'auto' or to that name)"
        )
    return template
