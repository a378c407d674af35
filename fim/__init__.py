"""FIM prompt templates: one registry, detection from the vocabulary, rendering to token ids."""

from ghostfill.fim.detect import detect_template, select_template
from ghostfill.fim.render import Prompt, render_prompt
from ghostfill.fim.templates import TEMPLATES, FimTemplate, get_template

__all__ = [
    "TEMPLATES",
    "FimTemplate",
    "Prompt",
    "detect_template",
    "get_template",
    "render_prompt",
    "select_template",
]
