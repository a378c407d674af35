"""The suffix for models without FIM tokens (#18): a block before the prefix.

Golden layout with a real vocabulary; the budget, the cache-friendly tail and the settings with
the real default model (Gemma 3 270M, prefix-only) and its own tokenizer; the filters that
keep an answer from writing the suffix again.
"""

from __future__ import annotations

import pytest

from ghostfill.completion.context import WindowAnchor
from ghostfill.completion.postprocess import FilterContext, postprocess
from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine, suffix_block_text
from ghostfill.errors import ConfigError
from ghostfill.fim import TEMPLATES, get_template, render_prompt
from tests.conftest import vocab


@pytest.fixture(scope="module")
def gpt2():
    from ghostfill.completion.tokenizer import LlamaCppTokenizer

    return LlamaCppTokenizer.from_gguf(str(vocab("gpt-2")))


def test_prefix_only_layout_with_the_suffix_block_before_the_prefix(gpt2):
    prompt = render_prompt(TEMPLATES["prefix-only"], gpt2, "def f(x):\n    y = ", "\n",
                           path="app/main.py", suffix_block="    return y\n")
    assert prompt.display() == ("# app/main.py (after the cursor)\n    return y\n"
                                "\n# app/main.py\ndef f(x):\n    y = ")
    roles = [part.role for part in prompt.parts]
    assert roles.index("suffix") < roles.index("prefix") == len(roles) - 1
    # Each part is its own text tokenized plainly; the prefix's ids are the prompt's tail.
    assert prompt.tokens[-len(gpt2.encode("def f(x):\n    y = ")):] == \
        gpt2.encode("def f(x):\n    y = ")
    assert prompt.counts()["suffix"] == len(gpt2.encode("    return y\n"))


def test_suffix_block_follows_cross_file_snippets_and_uses_the_comment_syntax(gpt2):
    prompt = render_prompt(TEMPLATES["prefix-only"], gpt2, "let y = ", "",
                           context_files=[("lib/a.js", "export const a = 1;")],
                           path="main.js", comment="//", suffix_block="use(y);\n")
    assert prompt.display() == ("// lib/a.js\nexport const a = 1;\n\n"
                                "// main.js (after the cursor)\nuse(y);\n\n// main.js\nlet y = ")


def test_without_a_block_the_prefix_only_prompt_is_as_before(gpt2):
    plain = render_prompt(TEMPLATES["prefix-only"], gpt2, "x = 1\n", "print(x)\n",
                          path="main.py")
    assert plain.tokens == gpt2.encode("x = 1\n")


def test_fim_templates_ignore_the_block(starcoder_tokenizer):
    tok = starcoder_tokenizer
    template = get_template("starcoder")
    with_block = render_prompt(template, tok, "a = ", "\nb = a\n", suffix_block="b = a\n")
    assert with_block.tokens == render_prompt(template, tok, "a = ", "\nb = a\n").tokens


def test_suffix_block_text():
    assert suffix_block_text("\n\n    return y\n\n\ndef g():\n    pass\n") == \
        "    return y\n\n\ndef g():\n    pass\n"
    assert suffix_block_text("\n    a\n    b\n    c\n", 2) == "    a\n    b\n"
    assert suffix_block_text("\n  \n") == ""
    assert suffix_block_text(")\n    return y\n") == ")\n    return y\n"  # mid-line


def test_the_setting_is_validated():
    assert Config().updated({"completion": {"suffixLayout": "none"}}).completion.suffix_layout \
        == "none"
    with pytest.raises(ConfigError):
        Config().updated({"completion": {"suffixLayout": "after"}})
    with pytest.raises(ConfigError):
        Config().updated({"context": {"suffixBlockTokens": -1}})


BODY = "".join(f"    total_{i} = compute_{i}(value) + total_{i - 1}\n" for i in range(1, 60))
AFTER = "".join(f"    check_{i}(total_{i})\n" for i in range(1, 90)) + "    return total_59\n"
TEXT = "def ledger(value):\n    total_0 = 0\n" + BODY + "    result = \n" + AFTER
CURSOR = TEXT.index("    result = \n") + len("    result = ")


def _engine(gemma_backend, layout: str, **context: object) -> CompletionEngine:
    config = Config().updated({"completion": {"maxTokens": 16, "suffixLayout": layout},
                               "model": {"contextLength": 512}, "context": context})
    return CompletionEngine(config, gemma_backend)


def test_engine_puts_the_suffix_before_the_prefix_within_the_exact_budget(gemma_backend):
    engine = _engine(gemma_backend, "before-prefix")
    assert engine.template.name == "prefix-only"
    prepared = engine.prepare(CompletionInput.of_text(TEXT, CURSOR, path="ledger.py"))
    shown = prepared.prompt.display()
    block = shown.index("# ledger.py (after the cursor)\n    check_1(total_1)\n")
    assert block < shown.index("\n# ledger.py\n") < shown.index("    result = ")
    assert shown.endswith("    result = ")
    # Counted with the model's own tokenizer, everything leaves the answer its 16 tokens; the
    # block takes at most a quarter of the window (prefix_share 0.75) and both were cut.
    tokens = prepared.prompt.tokens
    assert tokens == [t for part in prepared.prompt.parts for t in part.tokens]
    assert len(tokens) + 16 <= 512
    counts = prepared.prompt.counts()
    budget = prepared.window.budget
    assert 0 < counts["suffix"] <= budget.suffix_limit <= 0.25 * (budget.available + 1)
    assert prepared.window.prefix_start > 0 and prepared.window.suffix_end < len(TEXT)
    assert counts["suffix"] == len(gemma_backend.tokenizer.encode(
        suffix_block_text(prepared.window.suffix)))
    # The filters still see the whole suffix.
    assert prepared.filters.suffix == TEXT[CURSOR:]


def test_typing_changes_only_the_tail_of_the_prompt(gemma_backend):
    engine = _engine(gemma_backend, "before-prefix")
    anchor = WindowAnchor()
    first = engine.prepare(CompletionInput.of_text(TEXT, CURSOR, path="ledger.py",
                                                   anchor=anchor))
    typed = TEXT[:CURSOR] + "t" + TEXT[CURSOR:]
    again = engine.prepare(CompletionInput.of_text(typed, CURSOR + 1, path="ledger.py",
                                                   anchor=anchor))
    a, b = first.prompt.tokens, again.prompt.tokens
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
    # Everything up to the cursor's line is the same tokens: the block, the headers and the
    # prefix's earlier lines stay in the KV cache.
    cursor_line = len(gemma_backend.tokenizer.encode("\n    result = t"))
    assert same >= len(a) - cursor_line
    assert again.window.suffix == first.window.suffix


def test_the_block_is_capped_in_tokens_and_lines(gemma_backend):
    lines = _engine(gemma_backend, "before-prefix", suffixBlockLines=3)
    prepared = lines.prepare(CompletionInput.of_text(TEXT, CURSOR, path="ledger.py"))
    block = next(p.text for p in prepared.prompt.parts if p.role == "suffix")
    assert block == "    check_1(total_1)\n    check_2(total_2)\n    check_3(total_3)\n"
    small = _engine(gemma_backend, "before-prefix", suffixBlockTokens=20)
    prepared = small.prepare(CompletionInput.of_text(TEXT, CURSOR, path="ledger.py"))
    assert 0 < prepared.prompt.counts()["suffix"] <= 20


def test_the_prefix_only_layout_stays_selectable(gemma_backend):
    engine = _engine(gemma_backend, "none")
    prepared = engine.prepare(CompletionInput.of_text(TEXT, CURSOR, path="ledger.py"))
    assert "suffix" not in prepared.prompt.counts()
    assert "(after the cursor)" not in prepared.prompt.display()
    tok = gemma_backend.tokenizer
    head = tok.encode(prepared.head.text) if prepared.head.text else []
    assert prepared.prompt.tokens == [tok.bos_id, *head, *prepared.window.prefix_ids]


def _filters(prefix: str, suffix: str, before_code: bool = False,
             multiline: bool = False) -> FilterContext:
    return FilterContext(prefix=prefix, suffix=suffix, grammar="python", multiline=multiline,
                         block_indent=4, before_code=before_code)


def test_an_answer_repeating_the_suffix_first_line_is_dropped():
    prefix = "def f(x):\n    y = x + 1\n"
    # The cursor on an empty line before `return y` (HumanEval's open-line layout).
    ctx = _filters(prefix + "    ", "\n    return y\n")
    assert postprocess("return y", ctx) == ""
    assert postprocess("y = y * 2", ctx) == "y = y * 2"
    # Before code: the cursor at column 0 of the `return y` line (as-given).
    ctx = _filters(prefix, "    return y\n", before_code=True)
    assert postprocess("    return y\n", ctx) == ""
    # A multi-line answer that runs into the suffix is cut where it starts repeating it.
    ctx = _filters(prefix + "    ", "\n    return y\n", multiline=True)
    assert postprocess("y = y * 2\n    return y", ctx) == "y = y * 2"


def test_bench_layout_configurations_are_not_filter_ablations():
    """`pipeline-no-<filter>` names an ablation; a layout configuration must not look like one
    (its attempts would be counted twice)."""
    from ghostfill.bench.humaneval import ABLATION, VARIANTS, all_configs, parse_configs

    assert VARIANTS and not any(name.startswith(ABLATION) for name in VARIANTS)
    assert set(VARIANTS) <= set(all_configs())
    assert not set(VARIANTS) & set(parse_configs("ablations"))
    assert VARIANTS["pipeline-suffix-before"]["completion"]["suffix_layout"] == "before-prefix"
