"""FIM order and KV reuse: what one keystroke changes in the prompt, with a real FIM vocabulary.

SPM keeps the typed text at the tail of the prompt; PSM puts the suffix after it, so there the
suffix is capped (`context.psm_suffix_tokens`) and gets none of the prefix's unused budget.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from ghostfill.backends.sequences import common_prefix
from ghostfill.bench.fim_order import VocabOnly
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine


def _engine(tokenizer, order: str, **context: int) -> CompletionEngine:
    settings = {"model": {"fim_order": order}, "context": context}
    engine = CompletionEngine(Config().updated(settings), VocabOnly(tokenizer, "starcoder"))
    assert engine.order == order
    return engine


def _typed_once(engine: CompletionEngine, text: str, offset: int) -> tuple[int, int]:
    """(suffix tokens, prompt tokens after the first difference) for typing one character."""
    before = engine.prepare(CompletionInput.of_text(text, offset, language_id="python"))
    after = engine.prepare(CompletionInput.of_text(text[:offset] + "x" + text[offset:], offset + 1,
                                                   language_id="python"))
    changed = len(after.prompt.tokens) - common_prefix(before.prompt.tokens, after.prompt.tokens)
    return len(after.window.suffix_ids), changed


def test_typing_changes_the_tail_in_spm_and_the_suffix_in_psm(starcoder_tokenizer) -> None:
    text = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
    offset = text.index("        # Arrange in reverse order")
    spm_suffix, spm_changed = _typed_once(_engine(starcoder_tokenizer, "spm"), text, offset)
    psm_suffix, psm_changed = _typed_once(_engine(starcoder_tokenizer, "psm"), text, offset)
    assert spm_suffix > 64 and spm_changed <= 3
    assert psm_suffix <= 64 and psm_changed > psm_suffix
    longer = _engine(starcoder_tokenizer, "psm", psm_suffix_tokens=200)
    suffix, changed = _typed_once(longer, text, offset)
    assert 64 < suffix <= 200 and changed > suffix
