"""The CPU backend with the real embedded model: KV reuse, drafts, cancel, deadline, errors."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ghostfill.backends.base import CancelToken, GenerationRequest, PromptParts
from ghostfill.backends.llamacpp import LlamaCppBackend
from ghostfill.backends.sequences import prompt_lookup
from ghostfill.completion.stopping import LineStopper
from ghostfill.errors import ModelLoadError

SOURCE = Path(json.decoder.__file__).read_text()


def prompt(backend, text: str) -> list[int]:
    tok = backend.tokenizer
    return ([tok.bos_id] if tok.add_bos else []) + tok.encode(text)


def test_one_more_character_evaluates_only_a_handful_of_tokens(gemma_backend):
    text = SOURCE[:4000]
    first = gemma_backend.generate(GenerationRequest(PromptParts(prompt(gemma_backend, text)),
                                                     max_tokens=4))
    assert first.timings.prompt_tokens > 900
    second = gemma_backend.generate(
        GenerationRequest(PromptParts(prompt(gemma_backend, text + "x")), max_tokens=4)
    )
    assert second.timings.reused_tokens >= first.timings.prompt_tokens - 2
    assert second.timings.evaluated_tokens <= 4
    assert second.timings.prompt_ms < first.timings.prompt_ms


def test_prompt_lookup_drafts_copy_what_followed_the_same_ngram():
    history = [5, 6, 7, 8, 9, 1, 2, 5, 6, 7]
    assert prompt_lookup(history, 3) == [8, 9, 1]
    assert prompt_lookup([1, 2, 3], 4) == []
    assert prompt_lookup(history, 0) == []


REPETITIVE_PROMPTS = [
    "".join(f"def get_{n}(self):\n    return self._{n}\n\n"
            for n in ["name", "value", "size", "color", "owner", "weight", "height"]) + "def get_",
    "numbers = [" + ", ".join(str(i) for i in range(1, 40)) + ", ",
    "class Point:\n    def __init__(self, x, y, z):\n        self.x = x\n        self.y = y\n"
    "        self.z = z\n\n    def __repr__(self):\n        return f\"Point(x={self.x}, ",
]


def test_drafted_output_equals_plain_greedy_where_the_model_is_decided(gemma_backend):
    """Drafts must not change the answer.

    llama.cpp's CPU kernels are not batch-invariant: verifying 9 tokens in one batch gives
    logits up to ~1.4 apart from evaluating them one by one (measured; docs/benchmarks.md).
    So outputs are compared up to the first token where plain greedy's own top-2 margin is
    within that noise; before it they must agree token for token.
    """
    noise = 1.5
    backend = gemma_backend
    compared = 0
    for text in REPETITIVE_PROMPTS:
        tokens = prompt(backend, text)
        plain = backend.generate(GenerationRequest(PromptParts(tokens),
                                                   max_tokens=30, speculative=False))
        backend.draft_tokens = 6
        try:
            drafted = backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=30))
        finally:
            backend.draft_tokens = 0
        assert drafted.timings.drafted_tokens > 0
        # Margins of plain greedy, recomputed one token at a time from a fresh cache.
        backend._truncate_cache(0)
        backend.warm(tokens)
        decided = 0
        for token in plain.tokens:
            logits = backend._last_logits()
            top2 = np.sort(logits)[-2:]
            if top2[1] - top2[0] < noise:
                break
            assert int(np.argmax(logits)) == token
            decided += 1
            backend._decode([token])
        assert drafted.tokens[:decided] == plain.tokens[:decided]
        compared += decided
    assert compared >= 30


def test_cancel_stops_within_a_step_and_the_next_request_reuses_the_cache(gemma_backend):
    tokens = prompt(gemma_backend, SOURCE[:3000])
    gemma_backend.warm(tokens)
    cancel = CancelToken()
    pieces: list[float] = []

    def on_text(_: str) -> None:
        pieces.append(time.monotonic())
        if len(pieces) == 5:
            threading.Timer(0.0, cancel.cancel).start()

    started = time.monotonic()
    result = gemma_backend.generate(
        GenerationRequest(PromptParts(tokens), max_tokens=200, cancel=cancel, on_text=on_text)
    )
    assert result.stop_reason == "cancelled"
    assert len(result.tokens) <= 8  # a step or two after the cancel, not 200
    assert time.monotonic() - started < 30  # 200 tokens would take far longer on a loaded box
    again = gemma_backend.generate(GenerationRequest(PromptParts([*tokens, result.tokens[0]]),
                                                     max_tokens=2))
    assert again.timings.evaluated_tokens <= 2


def test_cancel_before_start_never_reaches_the_model(gemma_backend):
    cancel = CancelToken()
    cancel.cancel()
    result = gemma_backend.generate(
        GenerationRequest(PromptParts(prompt(gemma_backend, "def f():\n")),
                          max_tokens=10, cancel=cancel)
    )
    assert result.stop_reason == "cancelled" and result.tokens == []
    assert result.timings.evaluated_tokens == 0


def test_deadline_returns_whole_lines_or_whole_words(gemma_backend):
    tokens = prompt(gemma_backend, SOURCE[:3000])
    gemma_backend.warm(tokens)
    streamed: list[str] = []
    result = gemma_backend.generate(
        GenerationRequest(
            PromptParts(tokens),
            max_tokens=400,
            stopper=LineStopper(multiline=True, block_indent=0, max_lines=1000),
            deadline=time.monotonic() + 0.6,
            on_text=streamed.append,
        )
    )
    assert result.stop_reason in ("deadline", "stop_rule")
    raw = "".join(streamed)
    if result.stop_reason == "deadline":
        assert raw.startswith(result.text)
        rest = raw[len(result.text):]
        if "\n" in raw.rstrip("\n").lstrip("\n"):  # a line was finished: whole lines only
            assert result.text == "" or rest.startswith("\n")
        else:  # still on the first line: cut between words, never inside one
            word = re.compile(r"\w")
            assert not (result.text and word.match(result.text[-1]) and word.match(rest[:1]))


def test_prefill_interrupted_by_the_deadline_keeps_its_progress(gemma_backend):
    gemma_backend._truncate_cache(0)
    tokens = prompt(gemma_backend, SOURCE[:6000])
    first = gemma_backend.generate(
        GenerationRequest(PromptParts(tokens), max_tokens=4, deadline=time.monotonic() + 0.3)
    )
    assert first.stop_reason == "deadline" and first.text == ""
    second = gemma_backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=4))
    assert second.timings.reused_tokens >= first.timings.evaluated_tokens > 0


def test_an_infinite_deadline_reads_the_prompt_in_full_batches(gemma_backend):
    # `ghostfill complete` and doctor pass now + inf when no budget is asked for, and so does
    # the HumanEval harness: the prompt is read as without a deadline, not cut to nothing.
    gemma_backend._truncate_cache(0)
    tokens = prompt(gemma_backend, SOURCE[:3000])
    result = gemma_backend.generate(
        GenerationRequest(PromptParts(tokens), max_tokens=4,
                          deadline=time.monotonic() + math.inf)
    )
    assert result.stop_reason != "deadline"
    assert result.timings.evaluated_tokens == len(tokens) and result.timings.generated_tokens


def test_truncated_gguf_is_a_clear_error(gemma_path, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    with gemma_path.open("rb") as src:
        truncated.write_bytes(src.read(1 << 20))
    with pytest.raises(ModelLoadError) as info:
        LlamaCppBackend(truncated)
    assert "truncated.gguf" in str(info.value)
    text_file = tmp_path / "notes.gguf"
    text_file.write_text("not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        LlamaCppBackend(text_file)


def test_a_window_that_moved_down_is_shifted_in_the_cache_not_reread(gemma_backend):
    """Prompt = head + window; the window loses its first lines and gains one at the end."""
    tok = gemma_backend.tokenizer
    head = prompt(gemma_backend, "# file: json/decoder.py\nimport re\n")
    lines = SOURCE.split("\n")
    window = "\n".join(lines[40:140]) + "\n"
    moved = "\n".join(lines[60:141]) + "\n"
    first = gemma_backend.generate(GenerationRequest(PromptParts(head + tok.encode(window)),
                                                     max_tokens=2))
    assert first.timings.prompt_tokens > 600
    cut_tokens = len(tok.encode("\n".join(lines[40:60]) + "\n"))
    second = gemma_backend.generate(GenerationRequest(PromptParts(head + tok.encode(moved)),
                                                      max_tokens=2))
    assert second.timings.shifted_tokens > 300
    # Only the new last line (and the token boundary at the cut) is read again.
    assert second.timings.evaluated_tokens < 60 < cut_tokens
    # The cache now holds exactly the shifted prompt: one more character reuses all of it.
    third = gemma_backend.generate(
        GenerationRequest(PromptParts(head + tok.encode(moved + "x")), max_tokens=2))
    assert third.timings.evaluated_tokens <= 3 and third.timings.shifted_tokens == 0
    # Without the shift the same prompt costs a full read (a cache holding something else).
    gemma_backend.generate(GenerationRequest(PromptParts(prompt(gemma_backend, "reset")),
                                             max_tokens=1))
    fresh = gemma_backend.generate(GenerationRequest(PromptParts(head + tok.encode(moved + "x")),
                                                     max_tokens=2))
    assert fresh.timings.shifted_tokens == 0 and fresh.timings.evaluated_tokens > 600


def test_banned_first_changes_the_first_word_not_the_indentation(gemma_backend):
    tok = gemma_backend.tokenizer
    tokens = prompt(gemma_backend, "def area(width, height):\n    if width < 0:\n")
    plain = gemma_backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=6))
    content = [t for t in plain.tokens if tok.decode_bytes([t]).strip()]
    assert content, plain.text
    other = gemma_backend.generate(GenerationRequest(PromptParts(tokens), max_tokens=6,
                                                     banned_first=frozenset({content[0]})))
    other_content = [t for t in other.tokens if tok.decode_bytes([t]).strip()]
    assert other_content and other_content[0] != content[0]


def test_extra_buffer_types_follow_the_setting_and_the_cpu(gemma_path):
    import llama_cpp

    from ghostfill.backends.cpu_features import amx_present, choose_extra_buffer_types

    default_params = llama_cpp.llama_cpp.llama_model_default_params
    off = LlamaCppBackend(gemma_path, context_length=256, extra_buffer_types=False)
    try:
        # The parameters the model was loaded with, as llama.cpp received them.
        assert off._llm.model_params.use_extra_bufts is False
        assert off.options()["use_extra_bufts"] is False
        out = off.generate(GenerationRequest(PromptParts(prompt(off, "def add(a, b):\n    return")),
                                             max_tokens=4))
        assert out.tokens, "no decode without extra buffer types"
    finally:
        off.close()
    # The override is scoped to the load: llama-cpp-python's defaults are untouched after.
    assert llama_cpp.llama_cpp.llama_model_default_params is default_params
    assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts is True
    # "auto" (None) is off exactly where AMX is, on this machine and on made-up ones.
    assert choose_extra_buffer_types(None).enabled is (not amx_present())
    assert not choose_extra_buffer_types(None, flags=frozenset({"avx2", "amx_tile"})).enabled
    assert not choose_extra_buffer_types(None, ggml={"AMX_INT8": "1"},
                                         flags=frozenset({"avx2"})).enabled
    assert choose_extra_buffer_types(None, ggml={"AVX2": "1", "REPACK": "1"},
                                     flags=frozenset({"avx2"})).enabled
    assert choose_extra_buffer_types(True, flags=frozenset({"amx_tile"})).enabled
