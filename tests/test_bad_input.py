"""Bad input never crashes or hangs the context engine: NUL bytes, lone surrogates, huge files,
unknown languages, positions outside the document."""

from __future__ import annotations

import pytest

from ghostfill.completion.snapshot import CompletionInput
from ghostfill.config import Config
from ghostfill.engine import CompletionEngine
from ghostfill.errors import InvalidPosition


@pytest.fixture(scope="module")
def engine(gemma_backend):
    return CompletionEngine(Config().updated({"completion": {"maxTokens": 8}}), gemma_backend)


@pytest.mark.parametrize("text", [
    "x = 1\x00\x00\ny = ",
    "s = '\ud800 lone surrogate'\nt = ",
    "\ufeff\u202e evil = 'bidi'\nu = ",
    "",
    "\n\n\n",
])
def test_odd_text_gives_a_prompt_that_fits(engine, text):
    prepared = engine.prepare(CompletionInput.of_text(text, len(text), language_id="python"))
    assert prepared.prompt.counts()["total"] + 8 <= engine.context_length


def test_ten_megabyte_file(engine):
    text = "value = compute(1, 2)  # a fairly ordinary line of code\n" * 180_000
    assert len(text) > 10_000_000
    offset = len(text) // 2
    prepared = engine.prepare(CompletionInput.of_text(text, offset, language_id="python"))
    assert prepared.window.prefix == text[prepared.window.prefix_start:offset]
    assert prepared.prompt.counts()["total"] + 8 <= engine.context_length


@pytest.mark.parametrize("language", ["klingon", "", None, "plaintext"])
def test_unknown_language_falls_back_to_lines(engine, language):
    text = "alpha beta\ngamma delta\nepsilon "
    prepared = engine.prepare(CompletionInput.of_text(text, len(text), language_id=language,
                                                      path="notes.unknownext"))
    assert prepared.grammar is None
    assert prepared.window.prefix.endswith("epsilon ")


@pytest.mark.parametrize("offset", [-1, 10_000])
def test_cursor_outside_the_document_is_a_clear_error(engine, offset):
    with pytest.raises(InvalidPosition):
        engine.prepare(CompletionInput.of_text("short\n", offset))


def test_generation_on_odd_text_returns_text(engine):
    result = engine.complete(CompletionInput.of_text("s = '\ud800'\x00\nname = ",
                                                     len("s = '\ud800'\x00\nname = ")))
    result.text.encode("utf-8")  # valid text out, whatever came in
