"""Cross-file snippets and the head (imports, scope headers) of a trimmed window."""

from __future__ import annotations

import pytest

from ghostfill.completion.context import WindowAnchor
from ghostfill.completion.crossfile import SnippetStore
from ghostfill.completion.snapshot import CompletionInput, ContextSources
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.fim import get_template, render_prompt

HELPERS = '''def parse_invoice_total(invoice: dict) -> float:
    """Sum of the invoice's line amounts."""
    return sum(line["amount"] for line in invoice["lines"])
'''


def test_store_selects_related_chunks_and_evicts_near_duplicates(starcoder_tokenizer):
    store = SnippetStore(max_chunks=4)
    store.add_around("file:///helpers.py", HELPERS, 0)
    store.add_around("file:///other.py", "def unrelated_banner():\n    print('hello')\n", 0)
    store.add_around("file:///copy.py", HELPERS, 0)  # same words: evicts helpers.py
    assert len(store) == 2
    chosen = store.select("file:///main.py", "import json\n", "total = parse_invoice_total(",
                          starcoder_tokenizer, 256)
    assert [s.path for s in chosen] == ["file:///copy.py"]
    # Never a chunk of the current file, never more than the cap.
    assert store.select("file:///copy.py", "", "parse_invoice_total", starcoder_tokenizer,
                        256) == []
    assert store.select("file:///main.py", "", "parse_invoice_total", starcoder_tokenizer,
                        5) == []


def test_file_separator_form_for_families_that_have_it(starcoder_tokenizer):
    tok = starcoder_tokenizer
    prompt = render_prompt(get_template("starcoder"), tok, "x = ", "\n",
                           context_files=[("lib/helpers.py", HELPERS)], path="main.py")
    sep = tok.special_id("<file_sep>")
    assert prompt.tokens[0] == sep
    assert prompt.tokens.count(sep) == 2
    assert prompt.display().startswith("<file_sep>lib/helpers.py\n" + HELPERS)


def test_engine_puts_snippets_and_scope_headers_into_the_prompt(gemma_backend):
    config = Config().updated({"completion": {"maxTokens": 16}, "model": {"contextLength": 512}})
    engine = CompletionEngine(config, gemma_backend)
    store = SnippetStore()
    store.add_around("lib/helpers.py", HELPERS, 0)
    body = "".join(f"        self.field_{i} = compute_{i}(value)\n" for i in range(120))
    text = ("import json\nimport math\n\n\nclass Ledger:\n    def __init__(self, value):\n"
            + body + "        total = parse_invoice_total(")
    anchor = WindowAnchor()
    prepared = engine.prepare(CompletionInput.of_text(text, len(text), path="app/ledger.py",
                                                      anchor=anchor),
                              ContextSources(snippets=store))
    shown = prepared.prompt.display()
    assert prepared.window.prefix_start > 0  # the window was cut inside the method
    assert "# lib/helpers.py\n" + HELPERS in shown
    assert "import json\nimport math\n# ...\nclass Ledger:\n    # ...\n" in shown
    assert "    def __init__(self, value):\n        # ...\n" in shown
    assert prepared.prompt.counts()["total"] + 16 <= 512
    # Typing does not change the head or the snippets (the KV cache stays valid).
    tokens = prepared.prompt.tokens
    again = engine.prepare(CompletionInput.of_text(text + "i", len(text) + 1, path="app/ledger.py",
                                                   anchor=anchor),
                           ContextSources(snippets=store))
    head_len = len(prepared.prompt.tokens) - len(prepared.window.prefix_ids)
    assert again.prompt.tokens[:head_len] == tokens[:head_len]


def test_a_model_switch_does_not_reuse_the_anchor_token_ids_of_the_old_vocabulary(
        gemma_backend):
    """A document's anchor caches token ids of its stable prefix; after a switch to a model
    with another vocabulary those ids must not reach the new model's prompt."""
    from ghostfill.completion.context import WindowAnchor
    from ghostfill.config import Config
    from ghostfill.engine import CompletionEngine

    text = "import math\n\n\ndef area(r):\n    return math.pi * r ** 2\n\n\ndef f(x):\n    "
    remote = CompletionEngine.load(Config().updated({
        "model": {"backend": "openai", "template": "starcoder"},
        "remote": {"endpoint": "http://127.0.0.1:9"}}))
    local = CompletionEngine(Config(), gemma_backend)
    anchor = WindowAnchor()
    remote.prepare(CompletionInput.of_text(text, len(text), path="m.py", anchor=anchor))
    assert anchor.stable_ids  # the remote vocabulary's ids are cached
    switched = local.prepare(CompletionInput.of_text(text, len(text), path="m.py", anchor=anchor))
    fresh = local.prepare(CompletionInput.of_text(text, len(text), path="m.py"))
    assert switched.prompt.tokens == fresh.prompt.tokens


@pytest.mark.parametrize(("language", "source", "imports"), [
    ("python", "import os\nimport sys\n\n", "import os\nimport sys\n"),
    ("csharp", "using System;\nusing System.Linq;\n\n", "using System;\nusing System.Linq;\n"),
    ("java", "package shop;\nimport java.util.List;\n\n",
     "package shop;\nimport java.util.List;\n"),
])
def test_the_head_keeps_the_imports_cut_from_the_window(language, source, imports):
    # Keyed by the grammar names `language_for` gives (C#'s `using` lines were lost: "c_sharp").
    from ghostfill.completion.context import line_starts
    from ghostfill.completion.headers import head_for
    from ghostfill.completion.languages import language_for
    from ghostfill.completion.syntax import SyntaxDocument

    body = "".join(f"x{i} = {i}\n" if language == "python" else f"class C{i} {{ }}\n"
                   for i in range(30))
    text = source + body
    grammar = language_for(language)
    starts = line_starts(text)
    head = head_for(SyntaxDocument(text, grammar), text, starts, starts[20])
    assert head.text.startswith(imports), head.text
